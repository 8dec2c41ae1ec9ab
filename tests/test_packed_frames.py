"""The packed frame cache: footprint, round trips, decode-once, cold passes, bad files."""
import os

import numpy as np
import pytest
from PIL import Image

from fgra_core.data.frames import FrameCache, read_image
from fgra_core.data.packed_frames import PackedFrameCache, cache_footprint
from fgra_core.data.records import Tracklet
from fgra_core.utils.errors import DatasetError


def make_tracklets(folder, lengths=(3, 5, 2), h=16, w=8, fmt="jpg", seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for t, n in enumerate(lengths):
        d = folder / f"t{t}"
        d.mkdir(parents=True)
        paths = []
        for f in range(n):
            p = d / f"{t:04d}C1T0001F{f + 1:03d}.{fmt}"
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
            paths.append(str(p))
        out.append(Tracklet(frames=tuple(paths), pid=t, camid=0, name=f"t{t}"))
    return out


def test_cache_footprint_by_hand():
    # 5 frames of 4 x 2 x 3 = 24 bytes; packed: header page + 5 flag bytes + 5 CRC-32s -> 8,192 bytes, then 120
    assert cache_footprint([2, 3], 4, 2) == 8192 + 120
    # per-tracklet files: 64-byte header + 1 flag byte and a 4-byte CRC-32 per frame + frames
    assert cache_footprint([2, 3], 4, 2, layout="per-tracklet") == 2 * 64 + 5 * 5 + 120
    # MARS train (509,914 frames) at 256 x 128: 50.1 GB of frames plus one flag byte and one CRC-32 each
    assert cache_footprint([509_914], 256, 128) == 4096 * 624 + 509_914 * 98_304  # ceil(2,553,666 / 4,096) pages
    with pytest.raises(ValueError, match="cache layout must be 'packed' or 'per-tracklet', got 'flat'"):
        cache_footprint([1], 2, 2, layout="flat")


def test_footprint_matches_the_files(tmp_path):
    tracklets = make_tracklets(tmp_path / "img", lengths=(3, 5, 2))
    packed = PackedFrameCache(tracklets, tmp_path / "cache")
    packed.fill()
    assert os.path.getsize(packed.path) == cache_footprint([3, 5, 2], 16, 8)
    fc = FrameCache(tmp_path / "tc")
    for t in tracklets:
        fc.get(t)
    assert sum(p.stat().st_size for p in (tmp_path / "tc").glob("*.frames")) == \
        cache_footprint([3, 5, 2], 16, 8, layout="per-tracklet")


def test_read_into_round_trip_and_decode_once(tmp_path):
    tracklets = make_tracklets(tmp_path / "img", fmt="png")
    packed = PackedFrameCache(tracklets, tmp_path / "cache")
    assert (packed.height, packed.width, packed.num_frames) == (16, 8, 10)
    assert packed.disk_bytes() < os.path.getsize(packed.path)  # sparse until decoded
    out = np.zeros((4, 16, 8, 3), np.uint8)
    idx = np.array([0, 1, 2, 4])  # a run of three, then one more
    packed.read_into(out, 1, idx)
    want = np.stack([read_image(tracklets[1].frames[i]) for i in idx])
    assert np.array_equal(out, want)
    first = packed.decoded
    out2 = np.zeros_like(out)
    packed.read_into(out2, 1, idx)
    assert np.array_equal(out2, want) and packed.decoded == first
    again = PackedFrameCache(tracklets, tmp_path / "cache")  # a later run reopens the same file
    assert again.path == packed.path
    out3 = np.zeros_like(out)
    again.read_into(out3, 1, idx)
    assert np.array_equal(out3, want) and again.decoded == 0
    assert again.filled().sum() == 4 and len(again.missing()) == 6
    with pytest.raises(IndexError, match="out of range for a tracklet of 2 frames"):
        again.read_into(np.zeros((1, 16, 8, 3), np.uint8), 2, [2])
    with pytest.raises(ValueError, match=r"expected a C-contiguous uint8 buffer of shape \(1, 16, 8, 3\)"):
        again.read_into(np.zeros((1, 8, 16, 3), np.uint8), 2, [0])


def test_cold_passes_agree(tmp_path):
    tracklets = make_tracklets(tmp_path / "img")
    a = PackedFrameCache(tracklets, tmp_path / "a")
    assert a.fill_parallel(workers=2, chunk=3) == 10
    assert a.filled().all() and len(a.missing()) == 0
    b = PackedFrameCache(tracklets, tmp_path / "b")
    assert b.fill_with_torchvision("cpu", batch=4) == 10
    c = PackedFrameCache(tracklets, tmp_path / "c")
    c.fill()
    bufs = []
    for cache in (a, b, c):
        out = np.zeros((5, 16, 8, 3), np.uint8)
        cache.read_into(out, 1, np.arange(5))
        bufs.append(out)
    assert np.array_equal(bufs[0], bufs[2])
    assert np.array_equal(bufs[1], bufs[2])  # libjpeg-turbo on both sides


def test_size_option_resizes_and_bad_files(tmp_path):
    tracklets = make_tracklets(tmp_path / "img", lengths=(2,))
    packed = PackedFrameCache(tracklets, tmp_path / "cache", size=(8, 4))
    out = np.zeros((1, 8, 4, 3), np.uint8)
    packed.read_into(out, 0, [1])
    assert np.array_equal(out[0], read_image(tracklets[0].frames[1], size=(8, 4)))
    with open(packed.path, "r+b") as fh:
        fh.truncate(os.path.getsize(packed.path) - 1)
    with pytest.raises(DatasetError, match="is truncated or not made for these tracklets; delete it to rebuild"):
        PackedFrameCache(tracklets, tmp_path / "cache", size=(8, 4))
    with pytest.raises(DatasetError, match="in-memory tracklets need no cache"):
        PackedFrameCache([Tracklet(frames=np.zeros((2, 4, 4, 3), np.uint8), pid=0, camid=0)], tmp_path / "x")
    bad = Tracklet(frames=(str(tmp_path / "missing.jpg"),), pid=0, camid=0)
    with pytest.raises(DatasetError, match="missing.jpg cannot be read"):
        PackedFrameCache([bad], tmp_path / "y")


def test_torchvision_fill_resizes_to_the_cache_size(tmp_path):
    tracklets = make_tracklets(tmp_path / "img", lengths=(3,), h=32, w=16)
    packed = PackedFrameCache(tracklets, tmp_path / "cache", size=(16, 8))
    assert packed.fill_with_torchvision("cpu") == 3
    out = np.zeros((3, 16, 8, 3), np.uint8)
    packed.read_into(out, 0, np.arange(3))
    assert packed.decoded == 3  # nothing decoded again by the read
    pil = np.stack([read_image(f, size=(16, 8)) for f in tracklets[0].frames]).astype(int)
    # antialiased bilinear (torch) against PIL's bilinear reduction: the same image, within rounding
    assert np.abs(out.astype(int) - pil).mean() < 2.0
