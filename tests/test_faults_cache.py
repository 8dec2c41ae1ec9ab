"""Faults of cached data: a damaged, zeroed, shuffled or non-finite trunk cache is rebuilt with one
warning line naming the file; a read-only folder holding a valid cache is read without a lock."""
import warnings

import numpy as np
import pytest
import torch
from test_trunk_cache import CountingTrunk, _dataset

from fgra_core.data.records import Tracklet
from fgra_core.engine import trunk_cache as tc
from fgra_core.engine.trunk_checks import checksums
from fgra_core.utils.errors import StorageError, WeightsError
from fgra_core.utils.warn import CacheWarning


def _load(ds, trunk, folder):
    return tc.load_or_build(ds, trunk, 16, 8, cache_dir=folder, load_frames=lambda t: t.frames,
                            show_progress=False, keep_in_memory=False)


def _reload_expecting_one_warning(ds, folder, path, match):
    trunk = CountingTrunk()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        feats = _load(ds, trunk, folder)
    ours = [w for w in seen if issubclass(w.category, CacheWarning)]
    assert len(ours) == 1, [str(w.message) for w in seen]
    w = ours[0]
    text = warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
    assert text.count("\n") == 1 and str(path) in text and match in text, text
    assert trunk.frames == 16                                    # rebuilt, not served
    return feats


def test_a_byte_flipped_inside_the_maps_is_detected_and_rebuilt(tmp_path):
    ds = _dataset()
    good = _load(ds, CountingTrunk(), tmp_path)
    path = next(tmp_path.glob("*.pt"))
    raw = bytearray(path.read_bytes())
    data = good.maps.contiguous().view(torch.uint8).numpy().tobytes()
    at = raw.find(data[:64])
    assert at > 0 and raw[at:at + len(data)] == data             # the maps lie uncompressed in the file
    raw[at + len(data) // 2] ^= 0x10                             # one byte, key and index unchanged
    path.write_bytes(bytes(raw))
    served = torch.load(path, weights_only=True)
    assert served["key"] == good.key and not torch.equal(served["maps"], good.maps)   # torch.load alone serves it
    again = _reload_expecting_one_warning(ds, tmp_path, path, "fails its checksum in rows")
    assert torch.equal(again.maps, good.maps)
    assert torch.equal(torch.load(path, weights_only=True)["maps"], good.maps)        # the file is repaired


@pytest.mark.parametrize("damage", ["zeroed", "shuffled", "offsets"])
def test_zeroed_shuffled_or_reindexed_maps_fail_the_checksum(tmp_path, damage):
    ds = _dataset()
    good = _load(ds, CountingTrunk(), tmp_path)
    path = next(tmp_path.glob("*.pt"))
    blob = torch.load(path, weights_only=True)
    if damage == "zeroed":
        blob["maps"] = torch.zeros_like(blob["maps"])
    elif damage == "shuffled":
        blob["maps"] = blob["maps"][torch.randperm(blob["maps"].shape[0], generator=torch.Generator().manual_seed(1))]
    else:
        blob["offsets"]["gallery"] = blob["offsets"]["gallery"] - 1
    torch.save(blob, path)
    match = "row index" if damage == "offsets" else "fails its checksum in rows 0..15"
    again = _reload_expecting_one_warning(ds, tmp_path, path, match)
    assert torch.equal(again.maps, good.maps)


def test_non_finite_maps_are_a_corrupt_cache_not_a_training_problem(tmp_path):
    ds = _dataset()
    good = _load(ds, CountingTrunk(), tmp_path)
    path = next(tmp_path.glob("*.pt"))
    blob = torch.load(path, weights_only=True)
    blob["maps"][3, 0, 0, 0] = float("nan")
    blob["maps"][4, 1, 0, 0] = float("inf")
    offsets = {w: blob["offsets"][w].numpy() for w in tc.SETS}
    lengths = {w: blob["lengths"][w].numpy() for w in tc.SETS}
    blob["checksums"] = checksums(blob["maps"], offsets, lengths)   # consistent checksums, bad values
    torch.save(blob, path)
    again = _reload_expecting_one_warning(ds, tmp_path, path, "holds 2 non-finite values")
    assert torch.isfinite(again.maps.float()).all() and torch.equal(again.maps, good.maps)


def test_a_file_without_checksums_is_rebuilt(tmp_path):
    ds = _dataset()
    _load(ds, CountingTrunk(), tmp_path)
    path = next(tmp_path.glob("*.pt"))
    blob = torch.load(path, weights_only=True)
    del blob["checksums"]
    torch.save(blob, path)
    _reload_expecting_one_warning(ds, tmp_path, path, "holds no checksums")


def test_a_trunk_computing_nan_is_an_error_and_nothing_is_cached(tmp_path):
    trunk = CountingTrunk()
    with torch.no_grad():
        trunk.conv.bias[1] = float("nan")
    with pytest.raises(WeightsError, match=r"computed \d+ non-finite values .*check model.weights"):
        _load(_dataset(), trunk, tmp_path)
    assert list(tmp_path.glob("*.pt")) == []


def test_a_read_only_folder_with_a_valid_cache_is_read_without_a_lock(tmp_path, monkeypatch):
    ds = _dataset()
    good = _load(ds, CountingTrunk(), tmp_path)
    for lock in tmp_path.glob("*.lock"):
        lock.unlink()
    tmp_path.chmod(0o555)
    try:
        def no_lock(path):
            raise AssertionError(f"a write lock was taken: {path}")
        monkeypatch.setattr(tc, "_locked", no_lock)
        trunk = CountingTrunk()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = _load(ds, trunk, tmp_path)
        assert trunk.frames == 0 and torch.equal(again.maps, good.maps)
        assert list(tmp_path.glob("*.lock")) == []
    finally:
        tmp_path.chmod(0o755)


def test_a_read_only_folder_without_a_valid_cache_is_one_error(tmp_path, monkeypatch):
    def read_only(path, *a, **k):
        raise PermissionError(13, "Read-only file system", str(path))
    monkeypatch.setattr(tc, "open", read_only, raising=False)
    with pytest.raises(StorageError, match=rf"trunk feature cache folder {tmp_path} is not writable "
                                           r"\(Read-only file system\) and holds no valid cache"):
        _load(_dataset(), CountingTrunk(), tmp_path)


# --------------------------------------------------------------------------- the packed frame cache


def _frames(folder, n=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for f in range(n):
        p = folder / f"0001C1T0001F{f + 1:03d}.png"
        Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return [Tracklet(frames=tuple(paths), pid=1, camid=0, name="t0")]


def test_a_byte_flipped_in_a_packed_frame_is_decoded_again_with_one_warning(tmp_path):
    from fgra_core.data.frames import read_image
    from fgra_core.data.packed_frames import PackedFrameCache

    tracks = _frames(tmp_path / "img")
    cache = PackedFrameCache(tracks, tmp_path / "cache")
    cache.fill()
    truth = np.stack([read_image(f) for f in tracks[0].frames])
    with open(cache.path, "r+b") as fh:                           # frames 1 and 2 damaged on disk
        for g in (1, 2):
            at = cache.data_offset + g * cache.frame_bytes + 7
            fh.seek(at)
            b = fh.read(1)
            fh.seek(at)
            fh.write(bytes([b[0] ^ 0x40]))
    again = PackedFrameCache(tracks, tmp_path / "cache")
    out = np.zeros((4, 16, 8, 3), np.uint8)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        again.read_into(out, 0, np.arange(4))
        again.read_into(out, 0, np.arange(4))                     # checked once per process: no second line
    ours = [w for w in seen if issubclass(w.category, CacheWarning)]
    assert len(ours) == 1 and str(cache.path) in str(ours[0].message)
    assert "fails the checksum of frame 1 of tracklet 0" in str(ours[0].message)
    assert np.array_equal(out, truth) and again.decoded == 2       # the two damaged frames, decoded again
    third = PackedFrameCache(tracks, tmp_path / "cache")           # stored again: a clean read now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third.read_into(out, 0, np.arange(4))
    assert third.decoded == 0 and np.array_equal(out, truth)


def test_a_packed_cache_of_the_layout_without_checksums_is_replaced(tmp_path):
    from fgra_core.data.packed_frames import PackedFrameCache

    tracks = _frames(tmp_path / "img")
    cache = PackedFrameCache(tracks, tmp_path / "cache")
    cache.fill()
    raw = bytearray(cache.path.read_bytes())
    raw[:8] = b"FGRAPCK1"
    cache.path.write_bytes(bytes(raw))
    with pytest.warns(CacheWarning, match=r"frame cache file .*packed-.*\.frames is of the layout without checksums"):
        again = PackedFrameCache(tracks, tmp_path / "cache")
    assert not again.filled().any()                                # a new, empty file


# --------------------------------------------------------------------------- the per-tracklet frame cache


def test_a_byte_flipped_in_the_per_tracklet_frame_cache_is_decoded_again_with_one_warning(tmp_path):
    from fgra_core.data.frames import FrameCache, read_image

    tracks = _frames(tmp_path / "img")
    truth = np.stack([read_image(f) for f in tracks[0].frames])
    FrameCache(cache_dir=tmp_path / "cache").get(tracks[0])                # decoded and stored
    path = next((tmp_path / "cache").glob("*.frames"))
    raw = bytearray(path.read_bytes())
    frame_bytes = 16 * 8 * 3
    data_at = len(raw) - 4 * frame_bytes
    for i in (1, 3):
        raw[data_at + i * frame_bytes + 5] ^= 0x20
    path.write_bytes(bytes(raw))
    cache = FrameCache(cache_dir=tmp_path / "cache")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = cache.get(tracks[0])
        again = cache.get(tracks[0])
    ours = [w for w in seen if issubclass(w.category, CacheWarning)]
    assert len(ours) == 1 and f"frame cache file {path} fails the checksum of frame 1" in str(ours[0].message)
    assert np.array_equal(got, truth) and np.array_equal(again, truth) and cache.decoded == 2
    fresh = FrameCache(cache_dir=tmp_path / "cache")                       # stored again: clean now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(fresh.get(tracks[0]), truth) and fresh.decoded == 0


def test_a_per_tracklet_frame_cache_without_checksums_is_replaced(tmp_path):
    from fgra_core.data.frames import FrameCache, read_image

    tracks = _frames(tmp_path / "img")
    FrameCache(cache_dir=tmp_path / "cache").get(tracks[0])
    path = next((tmp_path / "cache").glob("*.frames"))
    raw = bytearray(path.read_bytes())
    raw[:8] = b"FGRAFRM1"
    path.write_bytes(bytes(raw))
    cache = FrameCache(cache_dir=tmp_path / "cache")
    with pytest.warns(CacheWarning, match=rf"frame cache file {path} is of the layout without checksums"):
        got = cache.get(tracks[0])
    assert np.array_equal(got, np.stack([read_image(f) for f in tracks[0].frames])) and cache.decoded == 4
