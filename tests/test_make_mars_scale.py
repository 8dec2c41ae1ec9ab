"""benchmarks/make_mars_scale.py on a reduced subset: the tree reads back with MARS's own tracks."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from fgra_core.data.datasets.mars import load_mars

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("make_mars_scale", REPO / "benchmarks" / "make_mars_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_names_and_rows_by_hand():
    mod = _module()
    rows = np.array([[10, 12, 3, 1], [13, 13, 3, 1], [14, 15, -1, 2], [16, 17, 0, 6]])
    names, tracks = mod.names_for(rows)
    assert names == ["0003C1T0001F001.jpg", "0003C1T0001F002.jpg", "0003C1T0001F003.jpg",
                     "0003C1T0002F001.jpg", "00-1C2T0001F001.jpg", "00-1C2T0001F002.jpg",
                     "0000C6T0001F001.jpg", "0000C6T0001F002.jpg"]
    assert tracks.tolist() == [[1, 3, 3, 1], [4, 4, 3, 1], [5, 6, -1, 2], [7, 8, 0, 6]]
    assert mod.select_rows(10, 0.25).tolist() == [0, 4, 8]
    with pytest.raises(ValueError, match=r"--fraction must be in \(0, 1\], got 0"):
        mod.select_rows(10, 0)


def test_reduced_tree_matches_the_mat_files(tmp_path, mars_info_full, mars_mini):
    mod = _module()
    summary = mod.build_mars_scale(tmp_path / "mars", mars_info_full, mars_mini, fraction=0.01)
    train = scipy.io.loadmat(str(mars_info_full / "tracks_train_info.mat"))["track_train_info"][::100]
    test = scipy.io.loadmat(str(mars_info_full / "tracks_test_info.mat"))["track_test_info"][::100]
    qidx = scipy.io.loadmat(str(mars_info_full / "query_IDX.mat"))["query_IDX"].ravel().astype(int) - 1
    kept_q = [q // 100 for q in qidx if q % 100 == 0]
    assert summary["train_tracklets"] == len(train) == 83 and summary["test_tracklets"] == len(test) == 122
    assert summary["queries"] == len(kept_q) > 0
    ds = load_mars(tmp_path / "mars")
    assert [len(t) for t in ds.train] == (train[:, 1] - train[:, 0] + 1).tolist()
    pid_map = ds.info["train_pid_map"]  # {label: MARS pid}
    assert sorted(pid_map.values()) == sorted(set(train[:, 2].tolist()))
    assert [pid_map[t.pid] for t in ds.train] == train[:, 2].tolist()
    assert [t.camid + 1 for t in ds.train] == train[:, 3].tolist()
    test_tracks = {r: t for r, t in zip(ds.info["query_rows"] + ds.info["gallery_rows"], ds.query + ds.gallery)}
    assert [len(test_tracks[r]) for r in range(len(test))] == (test[:, 1] - test[:, 0] + 1).tolist()
    assert [test_tracks[r].pid for r in range(len(test))] == test[:, 2].tolist()
    assert [test_tracks[r].camid + 1 for r in range(len(test))] == test[:, 3].tolist()
    assert ds.info["query_rows"] == kept_q
    assert ds.info["num_junk"] == int((test[:, 2] == -1).sum()) and ds.info["num_distractors"] == int((test[:, 2] == 0).sum())
    frame = ds.gallery[0].frames[-1]
    assert os.path.islink(frame) and os.path.realpath(frame).startswith(str(mars_mini.resolve()))
    assert all(os.path.isfile(f) for t in ds.train[:5] for f in t.frames)
