"""Temporal sampling, the P x K sampler, clip-consistent transforms and the training loader,
checked by property."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from fgra_core.data.frames import FrameCache
from fgra_core.data.loaders import TrainClipDataset, build_train_loader, load_frames
from fgra_core.data.records import Tracklet
from fgra_core.data.samplers import RandomIdentitySampler
from fgra_core.data.sampling import test_clips as make_test_clips
from fgra_core.data.sampling import train_indices
from fgra_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipParams, ClipTransform
from fgra_core.utils.errors import ConfigError, DatasetError


# ----------------------------------------------------------------------------- temporal sampling
@pytest.mark.parametrize("mode", ["consecutive", "random"])
def test_train_indices_properties(mode):
    rng = np.random.default_rng(0)
    starts = set()
    for length in [1, 2, 5, 6, 7, 40]:
        for _ in range(30):
            idx = train_indices(length, 6, mode, rng)
            assert idx.shape == (6,) and idx.dtype == np.int64
            assert np.all(np.diff(idx) >= 0) and idx.min() >= 0 and idx.max() < length
            if length >= 6:
                assert len(set(idx.tolist())) == 6  # no repeats when the tracklet is long enough
                if mode == "consecutive":
                    assert np.all(np.diff(idx) == 1)
                starts.add(int(idx[0]))
            else:
                assert set(idx.tolist()) == set(range(length))  # short: every frame, repeated
    assert len(starts) > 10  # random positions, not always the first frames
    assert train_indices(3, 6, mode, 0).tolist() == [0, 0, 1, 1, 2, 2]


def test_train_indices_random_mode_is_not_consecutive():
    gaps = [np.diff(train_indices(100, 6, "random", s)).max() for s in range(20)]
    assert max(gaps) > 1
    with pytest.raises(ValueError, match="sampling mode 'every' unknown"):
        train_indices(10, 6, "every")


@pytest.mark.parametrize("length", [1, 4, 6, 7, 8, 9, 10, 13, 100, 101])
def test_test_clips_cover_every_frame(length):
    clips = make_test_clips(length, 6)
    assert all(len(c) == 6 for c in clips)
    assert set().union(*map(set, clips)) == set(range(length))
    assert clips[-1][-1] == length - 1 and clips[0][0] == 0
    if length >= 6:
        assert all(c == list(range(c[0], c[0] + 6)) for c in clips)
        starts = [c[0] for c in clips]
        gaps = np.diff(starts)
        assert np.all(gaps[:-1] == 3) and (len(gaps) == 0 or 0 < gaps[-1] <= 3)  # stride 6 // 2; last may overlap more
    else:
        assert len(clips) == 1 and clips[0] == sorted(clips[0])


def test_test_clips_counts_and_stride():
    assert make_test_clips(12, 6) == [[0, 1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], [6, 7, 8, 9, 10, 11]]
    assert [c[0] for c in make_test_clips(13, 6)] == [0, 3, 6, 7]
    assert [c[0] for c in make_test_clips(10, 4, stride=4)] == [0, 4, 6]
    assert len(make_test_clips(100, 1)) == 100  # stride defaults to max(1, 1 // 2)


# ----------------------------------------------------------------------------- sampler
def pids_of(n_ids, per_id):
    return [p for p in range(n_ids) for _ in range(per_id)] if isinstance(per_id, int) else \
        [p for p, n in enumerate(per_id) for _ in range(n)]


@pytest.mark.parametrize("per_id", [2, 7, [1, 2, 3, 4, 5, 6, 9, 12, 4, 4]])
def test_sampler_batches_are_p_by_k(per_id):
    pids = pids_of(10, per_id)
    s = RandomIdentitySampler(pids, P=4, K=4, seed=1)
    batches = list(s)
    assert len(batches) == len(s) > 0
    for b in batches:
        assert len(b) == 16
        counts = Counter(pids[i] for i in b)
        assert len(counts) == 4 and set(counts.values()) == {4}
        for p in counts:
            mine = [i for i in b if pids[i] == p]
            n_avail = pids.count(p)
            assert len(set(mine)) == min(4, n_avail)  # with replacement only when fewer than K
    if per_id == 2:
        assert len(batches) == 2  # each identity gives one group of K: 10 groups -> 2 batches of 4


def test_sampler_deterministic_per_seed_epoch_and_rank_shares():
    pids = pids_of(30, 6)
    a, b = RandomIdentitySampler(pids, 4, 2, seed=5), RandomIdentitySampler(pids, 4, 2, seed=5)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(RandomIdentitySampler(pids, 4, 2, seed=6)) != list(RandomIdentitySampler(pids, 4, 2, seed=5))
    ranks = [RandomIdentitySampler(pids, 4, 2, seed=5, rank=r, world_size=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(1)
    shares = [list(r) for r in ranks]
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == len(a) // 3
    keys = [tuple(bt) for s in shares for bt in s]
    assert len(set(keys)) == len(keys)  # disjoint shares
    assert set(keys) <= {tuple(bt) for bt in a}  # of one shared permutation


def test_sampler_errors():
    with pytest.raises(ConfigError, match="P=8 identities per batch but the training set has only 3"):
        RandomIdentitySampler([0, 1, 2], P=8, K=2)
    with pytest.raises(ConfigError, match="rank 2 is not in"):
        RandomIdentitySampler([0, 1, 2], P=2, K=2, rank=2, world_size=2)


# ----------------------------------------------------------------------------- transforms
def random_clip(n=4, h=40, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_transform_same_params_on_every_frame():
    tf = ClipTransform(32, 16, train=True, flip_p=0.5, erase_p=1.0)
    clip = random_clip()
    for seed in range(6):
        params = tf.sample_params(seed)
        out = tf(clip, seed)
        assert out.shape == (4, 3, 32, 16) and out.dtype == torch.float32
        # the clip result equals each frame transformed alone with the same parameters
        for i in range(4):
            torch.testing.assert_close(out[i], tf.apply(clip[i:i + 1], params)[0])
        t, l, h, w = params.erase
        assert torch.all(out[:, :, t:t + h, l:l + w] == 0)  # one erased rectangle, same place on every frame
    # identical frames stay identical
    same = np.repeat(random_clip(1), 5, axis=0)
    out = tf(same, 3)
    assert torch.equal(out, out[:1].expand_as(out))


def test_transform_crop_and_flip_geometry():
    tf = ClipTransform(32, 16, train=True, erase_p=0.0, mean=(0, 0, 0), std=(1, 1, 1))
    assert tf.resized == (36, 18)
    # a clip already at the resized size: the crop is a plain slice of every frame
    clip = random_clip(3, 36, 18, seed=1)
    seen_flip = set()
    crops = set()
    for seed in range(30):
        p = tf.sample_params(seed)
        out = tf(clip, seed)
        ref = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
        ref = ref[:, :, p.crop_top:p.crop_top + 32, p.crop_left:p.crop_left + 16]
        if p.flip:
            ref = ref.flip(-1)
        torch.testing.assert_close(out, ref)
        seen_flip.add(p.flip)
        crops.add((p.crop_top, p.crop_left))
        assert 0 <= p.crop_top <= 4 and 0 <= p.crop_left <= 2
    assert seen_flip == {True, False} and len(crops) > 3


def test_transform_eval_and_reproducibility():
    clip = random_clip(2, 64, 32)
    ev = ClipTransform(32, 16, train=False)
    out = ev(clip)
    assert out.shape == (2, 3, 32, 16)
    torch.testing.assert_close(out, ev(clip, 123))  # no randomness in eval mode
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    flat = np.full((1, 64, 32, 3), 128, np.uint8)
    torch.testing.assert_close(ev(flat)[0], ((torch.full((3, 32, 16), 128 / 255) - mean) / std))
    tr = ClipTransform(32, 16, train=True)
    torch.testing.assert_close(tr(clip, 9), tr(clip, torch.Generator().manual_seed(9)))
    assert not torch.equal(tr(clip, 1), tr(clip, 2))
    assert tr.sample_params(0) != ClipParams() or tr.sample_params(1) != ClipParams()


# ----------------------------------------------------------------------------- loaders
def mem_tracklets(n_ids=6, per_id=2, T=9, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_ids):
        for c in range(per_id):
            frames = np.empty((T, 16, 8, 3), np.uint8)
            frames[:] = rng.integers(0, 256, size=(1, 16, 8, 3))
            frames[:, 0, 0, 0] = np.arange(T) * 10  # frame identity readable at pixel (0, 0)
            out.append(Tracklet(frames=frames, pid=p, camid=c % 2, name=f"p{p}c{c}"))
    return out


def test_train_dataset_reproducible_and_epoch_dependent():
    trs = mem_tracklets()
    tf = ClipTransform(16, 8, train=True)
    ds = TrainClipDataset(trs, seq_len=4, transform=tf, seed=3)
    clip, pid, camid = ds[5]
    assert clip.shape == (4, 3, 16, 8) and pid == trs[5].pid and camid == trs[5].camid
    again = TrainClipDataset(trs, seq_len=4, transform=tf, seed=3)
    assert torch.equal(again[5][0], clip)
    assert torch.equal(ds[(5, 0, 0)][0], clip)  # int index == key (index, epoch 0, draw 0)
    ds.set_epoch(1)
    assert not torch.equal(ds[5][0], clip)
    assert not torch.equal(ds[(5, 0, 1)][0], clip)  # another draw of the same tracklet differs


def test_train_loader_batches_independent_of_workers():
    trs = mem_tracklets(n_ids=6, per_id=2)
    kw = dict(seq_len=4, P=3, K=4, height=16, width=8, seed=11)
    l0 = build_train_loader(trs, num_workers=0, **kw)
    l2 = build_train_loader(trs, num_workers=2, **kw)
    for epoch in (0, 1):
        l0.set_epoch(epoch)
        l2.set_epoch(epoch)
        b0, b2 = list(l0), list(l2)
        assert len(b0) == len(b2) == len(l0) == 2  # 6 ids, one group of K each, P=3
        for (c0, p0, k0), (c2, p2, k2) in zip(b0, b2):
            assert c0.shape == (12, 4, 3, 16, 8)
            assert torch.equal(c0, c2) and torch.equal(p0, p2) and torch.equal(k0, k2)
            assert Counter(p0.tolist()) == Counter({p: 4 for p in set(p0.tolist())}) and len(set(p0.tolist())) == 3
            # an identity with 2 tracklets appears 4 times: the repeated tracklet gets different clips
            assert len({c0[i].sum().item() for i in range(12)}) == 12
        if epoch == 0:
            first = b0[0][0]
    assert not torch.equal(first, b0[0][0])
    del l2


def test_loader_cache_no_decode_after_first_epoch(tmp_path):
    from PIL import Image

    trs = []
    for p in range(4):
        for c in range(2):
            paths = []
            for f in range(8):
                path = tmp_path / f"p{p}c{c}" / f"{f}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((16, 8, 3), 10 * f + p, np.uint8)).save(path)
                paths.append(str(path))
            trs.append(Tracklet(frames=tuple(paths), pid=p, camid=c, name=f"p{p}c{c}"))
    cache = FrameCache()
    ds = TrainClipDataset(trs, seq_len=8, transform=ClipTransform(16, 8, train=False), cache=cache)
    for i in range(len(ds)):
        ds[i]
    decoded = cache.decoded
    assert decoded == 8 * 8
    ds.set_epoch(1)
    for i in range(len(ds)):
        ds[i]
    assert cache.decoded == decoded
    frames = load_frames(trs[3], cache)
    assert frames.shape == (8, 16, 8, 3) and frames[:, 0, 0, 0].tolist() == [10 * f + 1 for f in range(8)]
    empty = Tracklet(frames=(), pid=0, camid=0, name="nothing")
    with pytest.raises(DatasetError, match="empty tracklet nothing"):
        TrainClipDataset(trs + [empty], seq_len=4)
