"""Fault suite, bad datasets: every broken tree gives one ``FGRAError`` naming the file and what
was expected -- never a bare traceback from PIL or scipy -- from the readers, the frame cache,
the training loader (worker processes included), a run and the command line.

See docs/reliability.md for the table of faults and what the user gets.
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from test_data_readers import make_ilids, make_mars, make_prid, write_frame

from fgra_core.data import build_dataset, load_ilidsvid, load_mars, load_prid2011
from fgra_core.data.frames import FrameCache, read_image
from fgra_core.data.loaders import build_train_loader
from fgra_core.train import run
from fgra_core.utils.errors import DatasetError, FGRAError

REPO = Path(__file__).resolve().parents[1]
INFO = "info"


def assert_clear(exc: BaseException, *fragments: str) -> str:
    """The error is an FGRAError whose message names every fragment, on one line, without a
    traceback or torch's worker wrapper text."""
    assert isinstance(exc, FGRAError), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert "Traceback" not in text and "Caught " not in text, text
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text}"
    return text


def raises_clear(fn, *fragments: str, error=DatasetError) -> str:
    with pytest.raises(error) as info:
        fn()
    return assert_clear(info.value, *fragments)


# ----------------------------------------------------------------------------- trees


def prid_tree(root: Path, persons: int = 8, frames: int = 8) -> Path:
    """PRID-2011 tree with a split file: persons 1..P/2 train, the rest test; 8 frames each."""
    make_prid(root, {(cam, p): frames for cam in "ab" for p in range(1, persons + 1)})
    ids = [f"person_{p:04d}" for p in range(1, persons + 1)]
    split = {"train": ids[: persons // 2], "test": ids[persons // 2:]}
    (root / "splits_prid2011.json").write_text(json.dumps([split]))
    return root


def break_image(path: Path, how: str) -> None:
    """Corrupt one frame file: ``zero`` bytes, ``garbage`` after a valid signature, ``truncated``
    to half its bytes, or a header that claims a ``huge`` size (400 M pixels)."""
    data = path.read_bytes()
    if how == "zero":
        path.write_bytes(b"")
    elif how == "garbage":
        sig = data[:8] if data[:4] == b"\x89PNG" else data[:4]
        path.write_bytes(sig + b"\x13\x37" * 40)
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "huge":  # a valid BMP whose header says 20000 x 20000 pixels
        from PIL import Image

        img = Image.new("RGB", (4, 8))
        img.save(path.with_suffix(".bmp"))
        bmp = bytearray(path.with_suffix(".bmp").read_bytes())
        path.with_suffix(".bmp").unlink()
        bmp[18:26] = struct.pack("<ii", 20000, 20000)
        path.write_bytes(bytes(bmp))
    else:  # pragma: no cover
        raise ValueError(how)


# ----------------------------------------------------------------------------- missing things


@pytest.mark.parametrize("name, layout_hint", [("mars", "bbox_train"), ("ilidsvid", "i-LIDS-VID/sequences/cam1"),
                                               ("prid2011", "prid_2011/multi_shot/cam_a")])
def test_missing_root_names_the_folder_and_the_layout(tmp_path, name, layout_hint):
    missing = tmp_path / "not-downloaded"
    raises_clear(lambda: build_dataset(name, missing), str(missing), "does not exist", layout_hint)
    # the readers themselves say the same when called directly
    reader = {"mars": load_mars, "ilidsvid": load_ilidsvid, "prid2011": load_prid2011}[name]
    raises_clear(lambda: reader(missing), str(missing), layout_hint)


@pytest.mark.parametrize("missing", ["train_name.txt", "test_name.txt", "tracks_train_info.mat",
                                     "tracks_test_info.mat", "query_IDX.mat"])
def test_missing_info_file(tmp_path, missing):
    root = make_mars(tmp_path / "MARS")
    (root / INFO / missing).unlink()
    raises_clear(lambda: load_mars(root), str(root / INFO / missing), "missing", "expected the official MARS layout")


def test_missing_info_folder_and_image_folder(tmp_path):
    root = make_mars(tmp_path / "MARS")
    shutil.rmtree(root / INFO)
    raises_clear(lambda: load_mars(root), str(root), "no info/ folder")
    root = make_mars(tmp_path / "MARS2")
    shutil.rmtree(root / "bbox_train")
    raises_clear(lambda: load_mars(root), str(root), "no bbox_train/ folder")


@pytest.mark.parametrize("name", ["tracks_train_info.mat", "tracks_test_info.mat", "query_IDX.mat"])
@pytest.mark.parametrize("keep", [0.0, 0.3, 0.6, 0.95])
def test_truncated_mat_file(tmp_path, name, keep):
    root = make_mars(tmp_path / "MARS")
    path = root / INFO / name
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    raises_clear(lambda: load_mars(root), str(path), "not a readable MATLAB .mat file", "expected the official MARS layout")


def test_truncated_ilids_split_mat(tmp_path):
    root = make_ilids(tmp_path / "ilids")
    folder = root / "train-test people splits"
    folder.mkdir()
    path = folder / "train_test_splits_ilidsvid.mat"
    scipy.io.savemat(path, {"ls_set": np.array([[6, 1, 4, 2, 3, 5]] * 10, np.float64)})
    path.write_bytes(path.read_bytes()[:150])
    raises_clear(lambda: load_ilidsvid(root), str(path), "not a readable MATLAB .mat file", "ls_set")


def test_mat_file_with_wrong_content(tmp_path):
    root = make_mars(tmp_path / "MARS")
    path = root / INFO / "tracks_test_info.mat"
    scipy.io.savemat(path, {"track_test_info": np.array([1, 2, 3], np.int32)})
    raises_clear(lambda: load_mars(root), str(path), "must be an N x 4 array of [start, end, pid, camid] rows")


@pytest.mark.parametrize("split, keep", [("test", 5), ("train", 4), ("test", 0)])
def test_name_list_shorter_than_the_track_rows(tmp_path, split, keep):
    root = make_mars(tmp_path / "MARS")
    names = root / INFO / f"{split}_name.txt"
    lines = names.read_bytes().split(b"\r\n")
    names.write_bytes(b"\r\n".join(lines[:keep]) + (b"\r\n" if keep else b""))
    text = raises_clear(lambda: load_mars(root), str(names), f"tracks_{split}_info.mat", f"has {keep} names",
                        "1-based inclusive indices into the name list")
    assert "spans names" in text


def test_name_list_that_is_not_text(tmp_path):
    root = make_mars(tmp_path / "MARS")
    names = root / INFO / "train_name.txt"
    names.write_bytes(b"\xff\xfe\x00\x81 not text")
    raises_clear(lambda: load_mars(root), str(names), "not a UTF-8 text file", "one frame file name per line")


def test_name_list_that_belongs_to_other_rows(tmp_path):
    root = make_mars(tmp_path / "MARS")
    names = root / INFO / "test_name.txt"
    lines = names.read_bytes().split(b"\r\n")
    names.write_bytes(b"\r\n".join(lines[2:] + lines[:2]))  # rotated: row 3 (pid -1) now starts at a pid-0 name
    raises_clear(lambda: load_mars(root), str(names), "row 3 of", "says pid -1", "belongs to pid 0",
                 "the name list and the info file do not match")


# ----------------------------------------------------------------------------- bad frames


def mars_middle_frame(root: Path) -> tuple:
    ds = load_mars(root)
    t = ds.gallery[0]  # 3 frames: break the middle one
    assert len(t) == 3
    return t, Path(t.frames[1])


@pytest.mark.parametrize("how", ["zero", "garbage", "truncated", "huge"])
def test_bad_jpeg_in_the_middle_of_a_mars_tracklet(tmp_path, how):
    root = make_mars(tmp_path / "MARS")
    t, frame = mars_middle_frame(root)
    break_image(frame, how)
    for cache in (FrameCache(), FrameCache(tmp_path / "cache")):
        text = raises_clear(lambda: cache.get(t), str(frame), "expected an RGB JPEG/PNG file")
        assert ("empty (0 bytes)" in text) if how == "zero" else ("corrupt or not an image" in text)
    raises_clear(lambda: read_image(frame), str(frame))


def test_missing_jpeg_in_the_middle_of_a_mars_tracklet(tmp_path):
    root = make_mars(tmp_path / "MARS")
    t, frame = mars_middle_frame(root)
    frame.unlink()
    raises_clear(lambda: FrameCache().get(t), str(frame), "cannot be read", "expected an RGB JPEG/PNG file")


@pytest.mark.parametrize("how", ["zero", "garbage", "truncated"])
@pytest.mark.parametrize("workers", [0, 2])
def test_bad_png_reaches_the_training_loop_as_one_clear_error(tmp_path, how, workers):
    """The training loader, also from worker processes, gives the reader's own error."""
    root = prid_tree(tmp_path / "prid")
    frame = root / "prid_2011" / "multi_shot" / "cam_a" / "person_0002" / "4.png"
    break_image(frame, how)
    ds = load_prid2011(root)
    loader = build_train_loader(ds, seq_len=8, P=2, K=2, height=16, width=8, num_workers=workers)
    loader.set_epoch(0)

    def consume():
        for _ in loader:
            pass

    text = raises_clear(consume, str(frame), "expected an RGB JPEG/PNG file")
    if workers:
        assert "DataLoader worker" not in text


def test_bad_frame_during_a_run_stops_it_with_the_file_named(tmp_path):
    root = prid_tree(tmp_path / "prid")
    frame = root / "prid_2011" / "multi_shot" / "cam_b" / "person_0007" / "5.png"  # a gallery tracklet
    break_image(frame, "truncated")
    from test_faults_runs import tiny_run

    cfg = tiny_run(tmp_path / "run", data={"dataset": "prid2011", "root": str(root), "num_workers": 0},
                   train={"epochs": 1, "P": 2, "K": 2})
    raises_clear(lambda: run(cfg, show_progress=False), str(frame), "corrupt or not an image")
    # training finished and was checkpointed before the evaluation met the frame: nothing is lost
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "run" / "results.json").exists()
    write_frame(frame, 5)  # the user repairs the file; the run finishes from its checkpoint
    calls = []
    result = run(cfg, show_progress=False, on_epoch_end=calls.append)
    assert result["status"] == "finished" and calls == []  # no epoch trained again


@pytest.mark.slow
def test_command_line_reports_a_bad_frame_from_a_worker_in_one_line(tmp_path):
    root = prid_tree(tmp_path / "prid")
    frame = root / "prid_2011" / "multi_shot" / "cam_a" / "person_0001" / "4.png"
    break_image(frame, "zero")
    from test_faults_runs import tiny_run

    cfg = tiny_run(tmp_path / "run", data={"dataset": "prid2011", "root": str(root), "num_workers": 2, "seq_len": 8},
                   train={"epochs": 1, "P": 2, "K": 2})
    path = tmp_path / "bad_frame.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "fgra_core.train", "--config", str(path), "--no-progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(frame) in errors[0] and "is empty (0 bytes)" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- empty tracklets


@pytest.mark.parametrize("dataset", ["ilidsvid", "prid2011"])
@pytest.mark.parametrize("content", ["nothing", "not images"])
def test_empty_tracklet_folder(tmp_path, dataset, content):
    if dataset == "ilidsvid":
        root = make_ilids(tmp_path / "ilids", n_persons=4)
        folder = root / "i-LIDS-VID" / "sequences" / "cam2" / "person003"
    else:
        root = prid_tree(tmp_path / "prid")
        folder = root / "prid_2011" / "multi_shot" / "cam_b" / "person_0003"
    shutil.rmtree(folder)
    folder.mkdir()
    if content == "not images":
        (folder / "Thumbs.db").write_bytes(b"\0" * 10)
        (folder / "notes.txt").write_text("frames go here")
    raises_clear(lambda: build_dataset(dataset, root), "empty tracklet", str(folder), "holds no image files")


def test_empty_mars_track_row(tmp_path):
    root = make_mars(tmp_path / "MARS")
    path = root / INFO / "tracks_test_info.mat"
    scipy.io.savemat(path, {"track_test_info": np.array([[1, 2, 3, 1], [5, 4, 3, 2]], np.int32)})
    raises_clear(lambda: load_mars(root), "empty tracklet at row 2", str(path), "end >= start")


# ----------------------------------------------------------------------------- splits


def test_split_file_naming_unknown_identities(tmp_path):
    root = prid_tree(tmp_path / "prid")
    path = root / "splits_prid2011.json"
    path.write_text(json.dumps([{"train": ["person_0001", "person_0042"], "test": ["person_0005", "person_0099"]}]))
    text = raises_clear(lambda: load_prid2011(root), str(path), "names unknown identities", "person_0042",
                        "expected person folders present in both cameras")
    assert "person_0099" in text and "(2 in all)" in text

    root = make_ilids(tmp_path / "ilids", n_persons=4)
    path = tmp_path / "my_ilids_splits.json"
    path.write_text(json.dumps({"splits": [{"train": ["person001"], "test": ["person777"]}]}))
    raises_clear(lambda: load_ilidsvid(root, split_file=path), str(path), "person777")
    # the official .mat form: a 1-based index past the person folders
    folder = root / "train-test people splits"
    folder.mkdir()
    mat = folder / "train_test_splits_ilidsvid.mat"
    scipy.io.savemat(mat, {"ls_set": np.array([[1, 2, 3, 9]] * 10, np.float64)})
    raises_clear(lambda: load_ilidsvid(root), str(mat), "ls_set names person 9", "holds 4 person folders")


@pytest.mark.parametrize("content, fragment", [("[{", "is not valid JSON"), (b"\xff\xfe\x00", "is not valid JSON"),
                                               ('{"train": 1}', "has the wrong structure"), ("[]", "has the wrong structure")])
def test_unreadable_split_file(tmp_path, content, fragment):
    root = prid_tree(tmp_path / "prid")
    path = root / "splits_prid2011.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    raises_clear(lambda: load_prid2011(root), str(path), fragment, '{"train": [...], "test": [...]}')


def test_split_id_out_of_range(tmp_path):
    root = prid_tree(tmp_path / "prid")
    raises_clear(lambda: load_prid2011(root, split_id=3), "split_id 3 out of range",
                 str(root / "splits_prid2011.json"), "holds 1 splits")


def test_split_file_given_but_missing(tmp_path):
    root = make_ilids(tmp_path / "ilids", n_persons=4)
    raises_clear(lambda: load_ilidsvid(root, split_file=tmp_path / "nope.json"), str(tmp_path / "nope.json"), "missing")


# ----------------------------------------------------------------------------- camera folders


@pytest.mark.parametrize("dataset, cam", [("prid2011", "cam_a"), ("prid2011", "cam_b"),
                                          ("ilidsvid", "cam1"), ("ilidsvid", "cam2")])
def test_tree_with_a_camera_folder_missing(tmp_path, dataset, cam):
    if dataset == "prid2011":
        root = prid_tree(tmp_path / "prid")
        folder = root / "prid_2011" / "multi_shot" / cam
    else:
        root = make_ilids(tmp_path / "ilids", n_persons=4)
        folder = root / "i-LIDS-VID" / "sequences" / cam
    shutil.rmtree(folder)
    raises_clear(lambda: build_dataset(dataset, root), f"camera folder {folder} is missing", "expected <root>/")


def test_camera_folder_without_person_folders(tmp_path):
    root = prid_tree(tmp_path / "prid")
    folder = root / "prid_2011" / "multi_shot" / "cam_b"
    shutil.rmtree(folder)
    folder.mkdir()
    raises_clear(lambda: load_prid2011(root), str(folder), "holds no person_* folders")


def test_a_bad_dataset_stops_a_run_before_any_training(tmp_path, monkeypatch):
    from test_faults_runs import tiny_run

    from fgra_core.engine import finetune as trainer

    root = prid_tree(tmp_path / "prid")
    shutil.rmtree(root / "prid_2011" / "multi_shot" / "cam_a")
    monkeypatch.setattr(trainer, "train_one_epoch", lambda *a, **k: pytest.fail("training started"))
    cfg = tiny_run(tmp_path / "run", data={"dataset": "prid2011", "root": str(root)}, train={"P": 2, "K": 2})
    raises_clear(lambda: run(cfg, show_progress=False), "cam_a is missing")
    assert not (tmp_path / "run" / "checkpoints").exists()
