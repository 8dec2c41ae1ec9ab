"""Dataset readers: MARS (shared mini set and real info files), iLIDS-VID and PRID-2011 on
generated trees in their exact layouts, frame ordering / decoding / caching, the registry,
and the errors for bad input."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fgra_core.data import build_dataset, load_ilidsvid, load_mars, load_prid2011, parse_mars_info
from fgra_core.data.datasets.mars import read_name_list
from fgra_core.data.frames import FrameCache, frame_index, read_image, sort_frames
from fgra_core.data.splits import read_json_splits
from fgra_core.utils.errors import ConfigError, DatasetError


# ----------------------------------------------------------------------------- helpers
def write_frame(path: Path, value: int, size=(8, 4)) -> None:
    """A tiny RGB image whose pixels all hold ``value`` (so the decoded order can be checked)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value % 256, np.uint8)).save(path)


def pixel_values(frames: np.ndarray) -> list[int]:
    return [int(f[0, 0, 0]) for f in frames]


def make_ilids(root: Path, n_persons=6, lengths=None, skip=()) -> Path:
    """iLIDS-VID tree; frame numbers are unpadded so that string order is wrong (9 < 10 < 100)."""
    seq = root / "i-LIDS-VID" / "sequences"
    for cam in (1, 2):
        for p in range(1, n_persons + 1):
            if (cam, p) in skip:
                continue
            n = lengths[(cam, p)] if lengths and (cam, p) in lengths else 5
            for k, fnum in enumerate([9, 10, 100, 11, 2][:n] + list(range(200, 200 + max(0, n - 5)))):
                write_frame(seq / f"cam{cam}" / f"person{p:03d}" / f"cam{cam}_person{p:03d}_{fnum}.png", fnum)
    return root


def make_prid(root: Path, lengths: dict) -> Path:
    """PRID-2011 tree; ``lengths[(cam, person)]`` frames each, named 1.png .. N.png (unpadded)."""
    shot = root / "prid_2011" / "multi_shot"
    for (cam, p), n in lengths.items():
        for f in range(1, n + 1):
            write_frame(shot / f"cam_{cam}" / f"person_{p:04d}" / f"{f}.png", f)
    return root


def mars_names_from_rows(rows: np.ndarray) -> list[str]:
    """MARS frame names for info rows: <pid:4>C<cam>T<track:4>F<frame:3>.jpg, pid -1 written 00-1."""
    names: list[str] = []
    counter: Counter = Counter()
    for s, e, pid, cam in rows[:, :4].tolist():
        assert s == len(names) + 1
        counter[(pid, cam)] += 1
        prefix = f"{str(pid).rjust(4, '0')}C{cam}T{counter[(pid, cam)]:04d}F"
        names.extend(f"{prefix}{f:03d}.jpg" for f in range(1, e - s + 2))
    return names


def make_mars(root: Path, shuffled=False) -> Path:
    """Tiny MARS tree: 2 train tracklets (pids 5, 7), 4 test tracklets (pids 3, 3, -1, 0)."""
    info = root / "info"
    info.mkdir(parents=True)
    train = np.array([[1, 3, 5, 1], [4, 5, 7, 2]], np.int32)
    test = np.array([[1, 2, 3, 1], [3, 5, 3, 2], [6, 6, -1, 1], [7, 8, 0, 3]], np.int32)
    train_names, test_names = mars_names_from_rows(train), mars_names_from_rows(test)
    if shuffled:  # frames 10 and 9 of one tracklet listed out of order
        test_names[2:5] = ["0003C2T0001F010.jpg", "0003C2T0001F009.jpg", "0003C2T0001F100.jpg"]
    for split, names in (("train", train_names), ("test", test_names)):
        (info / f"{split}_name.txt").write_bytes(("\r\n".join(names) + "\r\n").encode())
        for n in names:
            write_frame(root / f"bbox_{split}" / n[:4] / n, frame_index(n))
    scipy.io.savemat(info / "tracks_train_info.mat", {"track_train_info": train})
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": test})
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array([[1]], np.uint16)})
    return root


# ----------------------------------------------------------------------------- MARS
def test_mars_mini_statistics(mars_mini):
    ds = load_mars(mars_mini)
    assert len(ds.train) == 32 and ds.num_train_pids == 16
    assert sorted({t.pid for t in ds.train}) == list(range(16))
    assert len(ds.query) == 32 and len(ds.query) + len(ds.gallery) == 64
    assert sum(len(t) for t in ds.train) == 1719
    assert sum(len(t) for t in ds.query + ds.gallery) == 3853
    assert not {t.name for t in ds.query} & {t.name for t in ds.gallery}
    assert {t.camid for t in ds.train + ds.query + ds.gallery} <= set(range(6))
    assert min(t.camid for t in ds.train + ds.query + ds.gallery) == 0
    # original pid kept for the relabelled train set
    assert ds.info["train_pid_map"][0] == 3 and ds.train[0].name.startswith("0003C4T0003")
    t = ds.train[0]
    assert Path(t.frames[0]).name == "0003C4T0003F001.jpg" and Path(t.frames[0]).parent.name == "0003"
    assert [frame_index(f) for f in t.frames] == list(range(1, len(t) + 1))
    img = read_image(t.frames[0])
    assert img.dtype == np.uint8 and img.shape == (256, 128, 3)


def test_mars_info_full_statistics(mars_info_full, tmp_path):
    train_rows = scipy.io.loadmat(mars_info_full / "tracks_train_info.mat")["track_train_info"]
    test_rows = scipy.io.loadmat(mars_info_full / "tracks_test_info.mat")["track_test_info"]
    ds = parse_mars_info(mars_info_full, mars_names_from_rows(train_rows), mars_names_from_rows(test_rows), root=tmp_path)
    test = ds.query + ds.gallery
    assert len(ds.train) == 8298 and len(test) == 12180
    assert ds.num_train_pids == 625
    assert len(ds.query) == 1980 and len({t.pid for t in ds.query}) == 626
    assert sum(t.pid == -1 for t in test) == 870 and sum(t.pid == 0 for t in test) == 3248
    assert ds.info["num_junk"] == 870 and ds.info["num_distractors"] == 3248
    lengths = [len(t) for t in ds.train + test]
    assert min(lengths) == 2 and max(lengths) == 920
    assert ds.info["reordered_tracklets"] == 0
    assert sorted(ds.info["query_rows"] + ds.info["gallery_rows"]) == list(range(12180))
    assert {t.camid for t in test} == set(range(6))
    junk = next(t for t in test if t.pid == -1)
    assert Path(junk.frames[0]).parent.name == "00-1" and Path(junk.frames[0]).parent.parent.name == "bbox_test"


def test_mars_generated_tree_reorders_and_tolerates_crlf(tmp_path):
    root = make_mars(tmp_path / "MARS", shuffled=True)
    assert read_name_list(root / "info" / "train_name.txt")[0] == "0005C1T0001F001.jpg"
    ds = load_mars(root)
    assert [t.pid for t in ds.train] == [0, 1] and ds.info["train_pid_map"] == {0: 5, 1: 7}
    assert [t.camid for t in ds.train] == [0, 1]
    assert [t.pid for t in ds.query] == [3] and [t.pid for t in ds.gallery] == [3, -1, 0]
    assert ds.info["reordered_tracklets"] == 1
    reordered = ds.gallery[0]
    assert [frame_index(f) for f in reordered.frames] == [9, 10, 100]
    assert pixel_values(FrameCache().get(reordered)) == [9, 10, 100]


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda r: (r / "info" / "query_IDX.mat").unlink(), "query_IDX.mat"),
        (lambda r: (r / "info" / "test_name.txt").unlink(), "test_name.txt"),
        (lambda r: __import__("shutil").rmtree(r / "bbox_test"), "bbox_test"),
        (lambda r: scipy.io.savemat(r / "info" / "query_IDX.mat", {"query_IDX": np.array([[9]], np.uint16)}), "query_IDX"),
        (lambda r: scipy.io.savemat(r / "info" / "tracks_train_info.mat", {"wrong": np.zeros((1, 4))}), "track_train_info"),
        (lambda r: (r / "info" / "tracks_test_info.mat").write_bytes(b"not a mat file"), "tracks_test_info.mat"),
    ],
)
def test_mars_bad_layout_errors(tmp_path, breakage, expected):
    root = make_mars(tmp_path / "MARS")
    breakage(root)
    with pytest.raises(DatasetError, match="expected|names rows") as err:
        load_mars(root)
    assert expected in str(err.value)
    assert str(root) in str(err.value)


def test_mars_empty_tracklet_and_missing_root(tmp_path):
    root = make_mars(tmp_path / "MARS")
    scipy.io.savemat(root / "info" / "tracks_train_info.mat", {"track_train_info": np.array([[3, 2, 5, 1]], np.int32)})
    with pytest.raises(DatasetError, match="empty tracklet at row 1 of .*tracks_train_info.mat"):
        load_mars(root)
    with pytest.raises(DatasetError, match=r"nowhere.*bbox_train"):
        load_mars(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- iLIDS-VID
def test_ilids_generated_splits(tmp_path):
    root = make_ilids(tmp_path / "ilids")
    ds = load_ilidsvid(root, split_id=2, seed=7)
    assert ds.info["split_source"] == "generated" and ds.info["num_splits"] == 10
    split_path = Path(ds.info["split_path"])
    assert split_path.parent == root and split_path.is_file()
    saved = json.loads(split_path.read_text())
    assert len(saved["splits"]) == 10 and saved["seed"] == 7
    assert all(len(s["train"]) == 3 and len(s["test"]) == 3 for s in saved["splits"])
    assert all(not set(s["train"]) & set(s["test"]) for s in saved["splits"])
    assert ds.info["test_ids"] == saved["splits"][2]["test"]
    assert len({tuple(s["test"]) for s in saved["splits"]}) > 1  # the 10 splits are not all the same
    # train: both cameras of 3 ids relabelled 0..2; query camera 1, gallery camera 2
    assert len(ds.train) == 6 and ds.num_train_pids == 3 and sorted({t.pid for t in ds.train}) == [0, 1, 2]
    assert {t.camid for t in ds.query} == {0} and {t.camid for t in ds.gallery} == {1}
    assert sorted(t.pid for t in ds.query) == sorted(int(p[-3:]) for p in ds.info["test_ids"])
    # numeric frame order although the names sort wrongly as strings
    q = ds.query[0]
    assert [frame_index(f) for f in q.frames] == [2, 9, 10, 11, 100]
    assert sorted(Path(f).name for f in q.frames) != [Path(f).name for f in q.frames]
    assert pixel_values(FrameCache().get(q)) == [2, 9, 10, 11, 100]
    # same seed -> same splits; another seed -> others
    again = load_ilidsvid(root, split_id=2, seed=7)
    assert again.info["test_ids"] == ds.info["test_ids"]
    other = json.loads(Path(load_ilidsvid(root, seed=8).info["split_path"]).read_text())
    assert other["splits"] != saved["splits"]


def test_ilids_split_mat(tmp_path):
    root = make_ilids(tmp_path / "ilids")
    rows = np.array([[6, 1, 4, 2, 3, 5]] + [[1, 2, 3, 4, 5, 6]] * 9, np.float64)  # 1-based, first half = test
    (root / "train-test people splits").mkdir()
    scipy.io.savemat(root / "train-test people splits" / "train_test_splits_ilidsvid.mat", {"ls_set": rows})
    ds = load_ilidsvid(root, split_id=0)
    assert ds.info["split_source"] == "file" and ds.info["num_splits"] == 10
    assert ds.info["test_ids"] == ["person001", "person004", "person006"]
    assert sorted(t.pid for t in ds.query) == [1, 4, 6] and sorted(t.pid for t in ds.gallery) == [1, 4, 6]
    assert ds.info["train_pid_map"] == {0: 2, 1: 3, 2: 5}
    assert not list(root.glob("*generated*.json"))
    with pytest.raises(DatasetError, match="split_id 10 out of range"):
        load_ilidsvid(root, split_id=10)
    scipy.io.savemat(root / "train-test people splits" / "train_test_splits_ilidsvid.mat", {"ls_set": rows + 1})
    with pytest.raises(DatasetError, match="ls_set names person 7 but sequences/cam1 holds 6"):
        load_ilidsvid(root)


def test_ilids_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"missing.*i-LIDS-VID/sequences/cam1") as err:
        load_ilidsvid(tmp_path / "missing")
    assert "does not exist" in str(err.value)
    root = make_ilids(tmp_path / "a", n_persons=4)
    (root / "i-LIDS-VID" / "sequences" / "cam1" / "person005").mkdir()
    with pytest.raises(DatasetError, match=r"empty tracklet: .*cam1/person005 holds no image files"):
        load_ilidsvid(root)
    root = make_ilids(tmp_path / "b", n_persons=4)
    import shutil

    shutil.rmtree(root / "i-LIDS-VID" / "sequences" / "cam2")
    with pytest.raises(DatasetError, match=r"camera folder .*cam2 is missing"):
        load_ilidsvid(root)
    root = make_ilids(tmp_path / "c", n_persons=4)
    bad = root / "my_splits.json"
    bad.write_text(json.dumps([{"train": ["person001", "person999"], "test": ["person002"]}]))
    with pytest.raises(DatasetError, match=r"split 0 of .*my_splits.json names unknown identities \['person999'\]"):
        load_ilidsvid(root, split_file=bad)


# ----------------------------------------------------------------------------- PRID-2011
def prid_lengths():
    # person 1-4: both cameras, long enough; 5: 21 frames in cam_b (dropped); 6: exactly 22 (kept);
    # 7: only in cam_a; 8: 30/30
    L = {}
    for p in (1, 2, 3, 4, 8):
        L[("a", p)], L[("b", p)] = 23, 25
    L[("a", 5)], L[("b", 5)] = 30, 21
    L[("a", 6)], L[("b", 6)] = 22, 22
    L[("a", 7)] = 40
    return L


def test_prid_generated_splits_keep_long_sequences(tmp_path):
    root = make_prid(tmp_path / "prid", prid_lengths())
    ds = load_prid2011(root, split_id=1, seed=3)
    assert ds.info["split_source"] == "generated"
    ids = sorted(ds.info["train_ids"] + ds.info["test_ids"])
    assert ids == ["person_0001", "person_0002", "person_0003", "person_0004", "person_0006", "person_0008"]
    assert len(ds.info["train_ids"]) == 3 and len(ds.info["test_ids"]) == 3
    saved = json.loads(Path(ds.info["split_path"]).read_text())
    assert saved["min_frames"] == 22 and len(saved["splits"]) == 10
    assert {t.camid for t in ds.query} == {0} and {t.camid for t in ds.gallery} == {1}
    assert len(ds.train) == 6 and sorted({t.pid for t in ds.train}) == [0, 1, 2]
    t = ds.query[0]
    assert [frame_index(f) for f in t.frames] == list(range(1, len(t) + 1))  # 1, 2, ..., 10, 11 (not 1, 10, 11, 2)
    assert pixel_values(FrameCache().get(t))[:12] == list(range(1, 13))
    # a stricter threshold drops person 6 (22 frames) too
    ds2 = load_prid2011(root, min_frames=23)
    assert "person_0006" not in ds2.info["train_ids"] + ds2.info["test_ids"]


def test_prid_split_file(tmp_path):
    root = make_prid(tmp_path / "prid", prid_lengths())
    splits = [{"train": ["person_0001", "person_0002"], "test": ["person_0003", "person_0005"]}] * 10
    (root / "splits_prid2011.json").write_text(json.dumps(splits))
    ds = load_prid2011(root, split_id=4)
    assert ds.info["split_source"] == "file" and ds.info["num_splits"] == 10
    assert sorted(t.pid for t in ds.query) == [3, 5]  # identities of the file are used as listed
    assert ds.info["train_pid_map"] == {0: 1, 1: 2}
    (root / "splits_prid2011.json").write_text(json.dumps([{"train": ["person_0001"], "test": ["person_0007"]}]))
    with pytest.raises(DatasetError, match=r"splits_prid2011.json names unknown identities \['person_0007'\]"):
        load_prid2011(root)
    (root / "splits_prid2011.json").write_text('{"train": 1}')
    with pytest.raises(DatasetError, match=r"splits_prid2011.json has the wrong structure; expected a JSON list"):
        load_prid2011(root)


def test_prid_shared_split_file(prid_splits_file):
    splits = read_json_splits(prid_splits_file)
    assert len(splits) == 10
    for s in splits:
        assert len(s["train"]) == 89 and len(s["test"]) == 89
        assert not set(s["train"]) & set(s["test"])
        assert len(set(s["train"]) | set(s["test"])) == 178
        assert all(x.startswith("person_") for x in s["train"] + s["test"])


def test_prid_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"prid_2011/multi_shot/cam_a/person_XXXX"):
        load_prid2011(tmp_path)
    root = make_prid(tmp_path / "short", {("a", 1): 5, ("b", 1): 5, ("a", 2): 5, ("b", 2): 5})
    with pytest.raises(DatasetError, match="only 0 identities .* at least 22 frames"):
        load_prid2011(root)


# ----------------------------------------------------------------------------- frames
def test_sort_frames_numeric():
    names = ["F10.jpg", "F9.jpg", "F100.jpg", "F1.jpg"]
    assert sorted(names) == ["F1.jpg", "F10.jpg", "F100.jpg", "F9.jpg"]  # string order is wrong
    assert sort_frames(names) == ["F1.jpg", "F9.jpg", "F10.jpg", "F100.jpg"]
    assert sort_frames(["d/0010.png", "d/9.png", "d/00012.png"]) == ["d/9.png", "d/0010.png", "d/00012.png"]
    assert sort_frames(["person_0001_10.png", "person_0001_9.png"]) == ["person_0001_9.png", "person_0001_10.png"]
    assert sort_frames(["0003C4T0003F010.jpg", "0003C4T0003F002.jpg"]) == ["0003C4T0003F002.jpg", "0003C4T0003F010.jpg"]
    assert frame_index("cam1_person001_00317.png") == 317


def test_read_image_errors(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"empty.png is empty \(0 bytes\)"):
        read_image(empty)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DatasetError, match=r"bad.jpg is corrupt or not an image"):
        read_image(bad)
    with pytest.raises(DatasetError, match=r"absent.png cannot be read"):
        read_image(tmp_path / "absent.png")
    ok = tmp_path / "ok.png"
    write_frame(ok, 77, size=(6, 3))
    arr = read_image(ok)
    assert arr.shape == (6, 3, 3) and arr.dtype == np.uint8 and int(arr[0, 0, 0]) == 77
    assert read_image(ok, size=(12, 6)).shape == (12, 6, 3)


def test_unreadable_frame_in_dataset(tmp_path):
    root = make_prid(tmp_path / "prid", prid_lengths())
    broken = root / "prid_2011" / "multi_shot" / "cam_a" / "person_0001" / "3.png"
    broken.write_bytes(b"")
    ds = load_prid2011(root, split_file=None)
    t = next(t for t in ds.train + ds.query if t.name == "cam_a/person_0001")
    with pytest.raises(DatasetError, match=r"person_0001/3.png is empty"):
        FrameCache().get(t)


@pytest.mark.parametrize("on_disk", [False, True])
def test_frame_cache_decodes_once(tmp_path, on_disk):
    root = make_prid(tmp_path / "prid", {("a", 1): 12, ("b", 1): 12})
    from fgra_core.data.splits import scan_cameras

    t = scan_cameras({0: root / "prid_2011/multi_shot/cam_a"}, "person_", "")["person_0001"][0]
    cache_dir = tmp_path / "cache" if on_disk else None
    cache = FrameCache(cache_dir)
    first = cache.get(t, [3, 4, 5])
    assert pixel_values(first) == [4, 5, 6] and cache.decoded == 4  # frame 0 (shape) + 3 requested
    assert pixel_values(cache.get(t, [5, 3])) == [6, 4] and cache.decoded == 4
    full = cache.get(t)
    assert full.shape == (12, 8, 4, 3) and pixel_values(full) == list(range(1, 13)) and cache.decoded == 12
    cache.get(t)
    assert cache.decoded == 12
    if on_disk:  # another process / run reuses the memmap file
        other = FrameCache(cache_dir)
        np.testing.assert_array_equal(other.get(t), full)
        assert other.decoded == 0 and len(list((tmp_path / "cache").glob("*.frames"))) == 1
        import pickle

        clone = pickle.loads(pickle.dumps(other))
        np.testing.assert_array_equal(clone.get(t, [0]), full[:1])


# ----------------------------------------------------------------------------- registry
def test_registry(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'duke'.*mars, ilidsvid, prid2011, synthetic"):
        build_dataset("duke")
    with pytest.raises(DatasetError, match="needs a data folder.*bbox_train"):
        build_dataset("mars")
    with pytest.raises(DatasetError, match=r"nope for dataset 'prid2011' does not exist.*cam_a"):
        build_dataset("prid2011", tmp_path / "nope")
    ds = build_dataset("synthetic", num_train_ids=3, num_test_ids=2, frames_per_tracklet=4, height=32, width=16)
    assert ds.num_train_pids == 3 and len(ds.query) == 2 and ds.train[0].frames.shape == (4, 32, 16, 3)
    root = make_prid(tmp_path / "prid", prid_lengths())
    assert build_dataset("PRID-2011", root, split_id=0).name == "prid2011"
    with pytest.raises(ConfigError, match="unexpected keyword"):
        build_dataset("prid2011", root, bogus=1)


def test_generated_splits_fall_back_to_cache_dir_when_data_is_read_only(tmp_path, monkeypatch):
    import fgra_core.data.splits as splits_mod

    root = make_ilids(tmp_path / "ilids", n_persons=4)
    real_write = splits_mod.atomic_write_json

    def read_only_data(path, obj):
        if Path(path).parent == root:
            raise PermissionError(13, "Read-only file system", str(path))
        return real_write(path, obj)

    monkeypatch.setattr(splits_mod, "atomic_write_json", read_only_data)
    monkeypatch.setenv("FGRA_CACHE_DIR", str(tmp_path / "cache"))
    ds = load_ilidsvid(root, seed=1)
    path = Path(ds.info["split_path"])
    assert ds.info["split_source"] == "generated"
    assert path.is_file() and (tmp_path / "cache" / "splits") in path.parents
    assert not list(root.glob("*.json"))
    assert json.loads(path.read_text())["splits"][0]["test"] == ds.info["test_ids"]


def test_mars_takes_the_common_reader_options(tmp_path):
    root = make_mars(tmp_path / "MARS")
    assert len(build_dataset("mars", root, split_id=0, split_file=None).train) == 2
    with pytest.raises(ConfigError, match="MARS has one fixed train/test split"):
        build_dataset("mars", root, split_id=3)


def test_frame_cache_memory_bound(tmp_path):
    root = make_prid(tmp_path / "prid", {("a", p): 4 for p in (1, 2, 3)})
    from fgra_core.data.splits import scan_cameras

    seqs = scan_cameras({0: root / "prid_2011/multi_shot/cam_a"}, "person_", "")
    t1, t2, t3 = (seqs[f"person_000{p}"][0] for p in (1, 2, 3))
    one = 4 * 8 * 4 * 3  # bytes of one tracklet
    cache = FrameCache(max_bytes=2 * one)
    for t in (t1, t2, t1, t3):  # t2 is the least recently used when t3 arrives
        cache.get(t)
    assert len(cache) == 2 and cache.decoded == 12
    cache.get(t1)
    assert cache.decoded == 12
    cache.get(t2)
    assert cache.decoded == 16


def test_frame_cache_on_disk_keeps_few_files_open(tmp_path, monkeypatch):
    root = make_prid(tmp_path / "prid", {("a", p): 2 for p in range(1, 6)})
    from fgra_core.data.splits import scan_cameras

    seqs = [v[0] for v in scan_cameras({0: root / "prid_2011/multi_shot/cam_a"}, "person_", "").values()]
    monkeypatch.setattr(FrameCache, "MAX_OPEN_MAPS", 2)
    cache = FrameCache(tmp_path / "cache")
    for t in seqs + seqs:
        assert pixel_values(cache.get(t)) == [1, 2]
    assert len(cache._maps) == 2 and cache.decoded == 10  # reopened files are not decoded again
