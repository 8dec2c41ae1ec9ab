"""The head regime's trunk feature cache: hits, invalidation, and corrupt or foreign files."""
import numpy as np
import pytest
import torch
from torch import nn

from fgra_core.data.records import Tracklet, VideoDataset
from fgra_core.engine import trunk_cache as tc


class CountingTrunk(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.frames = 0

    def forward(self, x):
        self.frames += x.shape[0]
        return self.conv(x)


def _dataset(seed=0):
    rng = np.random.default_rng(seed)
    mk = lambda pid, cam, n: Tracklet(rng.integers(0, 255, (n, 16, 8, 3), dtype=np.uint8), pid, cam)  # noqa: E731
    return VideoDataset("toy", [mk(0, 0, 3), mk(1, 1, 2)], [mk(5, 0, 2)], [mk(5, 1, 4)], 2, {})


def _load(ds, trunk, tmp_path, size=(16, 8), **kw):
    return tc.load_or_build(ds, trunk, *size, cache_dir=tmp_path, load_frames=lambda t: t.frames,
                            show_progress=False, keep_in_memory=False, **kw)


def test_layout_views_and_values(tmp_path):
    ds, trunk = _dataset(), CountingTrunk()
    f = _load(ds, trunk, tmp_path)
    # train: (3 + 2) frames x 2 views, query 2, gallery 4
    assert f.maps.shape[0] == 10 + 2 + 4 and trunk.frames == 16 and f.maps.dtype == torch.float16
    from fgra_core.data.transforms import ClipTransform

    x = ClipTransform(16, 8, train=False)(ds.train[1].frames)
    with torch.no_grad():
        plain, mirrored = trunk(x), trunk(x.flip(-1))
    got = f.gather("train", np.array([1, 1]), np.array([[0, 1], [0, 1]]), np.array([0, 1]))
    assert torch.allclose(got[0], plain.half().float()) and torch.allclose(got[1], mirrored.half().float())
    assert torch.allclose(f.gather("gallery", np.array([0]), np.array([[3]]))[0, 0],
                          trunk(ClipTransform(16, 8, train=False)(ds.gallery[0].frames))[3].detach().half().float())


def test_a_cache_hit_runs_no_trunk_forward(tmp_path):
    ds = _dataset()
    first = _load(ds, CountingTrunk(), tmp_path)
    again_trunk = CountingTrunk()
    built = []
    second = _load(ds, again_trunk, tmp_path, on_build=lambda: built.append(1))
    assert again_trunk.frames == 0 and built == [] and torch.equal(first.maps, second.maps)
    assert len(list(tmp_path.glob("*.pt"))) == 1


@pytest.mark.parametrize("change", ["frame", "weights", "size", "order"])
def test_a_change_of_frame_weights_size_or_order_misses(tmp_path, change):
    ds, trunk = _dataset(), CountingTrunk()
    key = tc.cache_key(ds, trunk, 16, 8)
    size = (16, 8)
    if change == "frame":
        ds.query[0].frames[1, 3, 2, 0] ^= 1                      # one channel of one pixel
    elif change == "weights":
        with torch.no_grad():
            trunk.conv.bias[0] += 1e-6
    elif change == "size":
        size = (32, 8)
    else:
        ds.gallery.reverse()
        ds.train.reverse()
    assert tc.cache_key(ds, trunk, *size) != key
    _load(_dataset(), CountingTrunk(), tmp_path)
    fresh = CountingTrunk()
    if change == "weights":
        fresh = trunk
        trunk.frames = 0
    _load(ds, fresh, tmp_path, size)
    assert fresh.frames > 0                                      # recomputed, not served stale


def test_corrupt_or_foreign_cache_is_rebuilt_not_trusted(tmp_path):
    ds = _dataset()
    f = _load(ds, CountingTrunk(), tmp_path)
    path = next(tmp_path.glob("*.pt"))
    path.write_bytes(path.read_bytes()[:100])                    # truncated
    trunk = CountingTrunk()
    with pytest.warns(UserWarning, match="unreadable"):
        again = _load(ds, trunk, tmp_path)
    assert trunk.frames == 16 and torch.equal(again.maps, f.maps)
    blob = torch.load(path, weights_only=True)
    blob["key"] = "0" * 64                                       # another dataset's file under this name
    torch.save(blob, path)
    trunk = CountingTrunk()
    with pytest.warns(UserWarning, match="other or incomplete"):
        _load(ds, trunk, tmp_path)
    assert trunk.frames == 16


def test_frames_on_disk_are_hashed_by_content(tmp_path):
    from PIL import Image

    paths = []
    for i in range(2):
        p = tmp_path / f"f{i}.png"
        Image.fromarray(np.full((16, 8, 3), 40 * i, np.uint8)).save(p)
        paths.append(str(p))
    t = Tracklet(tuple(paths), 0, 0)
    ds = VideoDataset("disk", [t], [t], [t], 1, {})
    before = tc.dataset_digest(ds)
    Image.fromarray(np.full((16, 8, 3), 41, np.uint8)).save(paths[1])   # same path, new pixels
    assert tc.dataset_digest(ds) != before
