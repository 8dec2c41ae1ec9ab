"""Fault suite, user input: every mistake is one line naming the file or setting and what was
expected, before any training -- settings, devices, seeds, synthetic-set knobs, over-long paths,
foreign checkpoints, duplicate YAML keys, whole study plans, Ctrl-C; pixels are what is on disk;
the metrics grid survives float32 distances spanning ~1e-39.

See docs/reliability.md ("User input" and "Pixels") for the table of faults and what the user gets.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision
import yaml
from PIL import Image
from test_data_readers import make_mars, make_prid, write_frame
from test_faults_config import no_training, run_fails  # noqa: F401 - a fixture, used by name
from test_faults_runs import tiny_run

from fgra_core import study as st
from fgra_core.config.schema import load_config, parse_assignments
from fgra_core.config.yaml_strict import DuplicateKeyError, safe_load
from fgra_core.data import load_mars, load_prid2011
from fgra_core.data.frames import FrameCache, list_frames, read_image, to_rgb8
from fgra_core.eval import evaluate_rank, evaluate_rank_reference
from fgra_core.study import plan as study_plan_mod
from fgra_core.study import runner as study_runner
from fgra_core.train import run
from fgra_core.utils import cli as cli_errors
from fgra_core.utils.devices import resolve_device
from fgra_core.utils.errors import ConfigError, DatasetError, FGRAError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def cli(module: str, *args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The process failed with status 2 and printed exactly one line, ``error: ...``, on stderr."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (proc.returncode, proc.stderr)
    return lines[0]


# =========================================================================== rule: settings


@pytest.mark.parametrize("settings, message", [
    ({"optim": {"lr": float("inf")}}, "optim.lr must be a finite number, got inf"),
    ({"optim": {"lr": float("nan")}}, "optim.lr must be a finite number, got nan"),
    ({"loss": {"triplet_margin": float("-inf")}}, "loss.triplet_margin must be a finite number, got -inf"),
    ({"data": {"synthetic": {"misalignment": float("nan")}}}, "data.synthetic.misalignment must be a finite number, got nan"),
    ({"train": {"seed": -1}}, "train.seed must be in 0..4294967295 (the seeds NumPy and torch accept), got -1"),
    ({"train": {"seed": 2**32}}, "train.seed must be in 0..4294967295 (the seeds NumPy and torch accept), got 4294967296"),
    ({"data": {"synthetic": {"seed": -5}}}, "data.synthetic.seed must be in 0..4294967295 (the seeds NumPy and torch accept), got -5"),
    ({"device": "gpu"}, "device: expected 'auto', 'cpu', 'cuda' or 'cuda:N' (N a GPU index), got 'gpu'"),
    ({"device": "cuda:x"}, "device: expected 'auto', 'cpu', 'cuda' or 'cuda:N' (N a GPU index), got 'cuda:x'"),
    ({"data": {"synthetic": {"num_train_ids": 1300}}},
     "data.synthetic.num_train_ids + num_test_ids = 1306, but the synthetic set can draw at most 1296 distinct people "
     "(6 styles for each of 4 body parts)"),
    ({"data": {"synthetic": {"tracklets_per_id": 0}}}, "data.synthetic.tracklets_per_id must be at least 1, got 0"),
    ({"data": {"synthetic": {"occlusion_p": 1.5}}}, "data.synthetic.occlusion_p is a probability, got 1.5"),
    ({"data": {"synthetic": {"noise_std": -1.0}}}, "data.synthetic.noise_std must be >= 0, got -1.0"),
    ({"data": {"synthetic": {"clutter": -0.5}}}, "data.synthetic.clutter must be >= 0, got -0.5"),
    ({"data": {"synthetic": {"height": 4}}}, "data.synthetic.height x width must be at least 16x8, got 4x32"),
    ({"data": {"synthetic": {"max_frames": 10**6}}}, "data.synthetic.max_frames must be at most 10000, got 1000000"),
    ({"data": {"height": 100000}},
     "data.height x data.width must be at most 4096x4096 (person crops are a few hundred pixels), got 100000x32"),
])
def test_impossible_settings_are_one_clear_error_before_training(tmp_path, no_training, settings, message):
    assert run_fails(tmp_path, ConfigError, **settings) == message


def test_a_gpu_index_the_machine_lacks(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda:7")
    assert str(info.value) == "device 'cuda:7' was asked for but this machine has 2 CUDA device(s) (cuda:0..cuda:1)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="^device 'cuda:0' was asked for but CUDA is not available on this machine$"):
        resolve_device("cuda:0")


def test_over_long_paths(tmp_path, no_training):
    long_name = "x" * 300
    with pytest.raises(ConfigError) as info:
        run(tiny_run(tmp_path / long_name), show_progress=False)
    assert str(info.value) == ("run_dir: the name xxxxxxxxxxxxxxxxxxxxxxxx... is 300 bytes long; this file system allows at "
                    "most 255 bytes per file or folder name")
    deep = tmp_path.joinpath(*["d" * 200] * 21)  # every name fits, the whole path does not
    text = run_fails(tmp_path, ConfigError, data={"cache_dir": str(deep)})
    assert text.startswith("data.cache_dir: the path ") and "bytes per path" in text
    text = run_fails(tmp_path, ConfigError, model={"weights": str(tmp_path / (long_name + ".pth"))})
    assert text.startswith("model.weights: the name xxx")


def test_a_foreign_checkpoint_in_the_run_folder_is_named(tmp_path, no_training):
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    with pytest.raises(FGRAError) as info:
        run(tiny_run(tmp_path / "run"), show_progress=False)
    text = str(info.value)
    assert text.startswith(f"checkpoint {ckpt} was not written by fgra_core training (found a dict with keys "
                           "['conv1.weight', 'bn1.weight', 'bn1.bias', 'bn1.running_mean'] ..., without epoch, model,")
    assert text.endswith("-- delete it, or set resume: false, to start this run over")
    torch.save([1, 2, 3], ckpt)
    with pytest.raises(FGRAError, match=r"\(found a list; expected a dict with epoch, model, optimizer"):
        run(tiny_run(tmp_path / "run"), show_progress=False)


def test_duplicate_keys_are_refused_in_run_configs_and_overrides(tmp_path, no_training):
    assert safe_load("a: 1\nb: {c: 2}\n") == {"a": 1, "b": {"c": 2}}
    with pytest.raises(DuplicateKeyError):
        safe_load("a: 1\na: 1\n")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_run(tmp_path / "run")) + "optim:\n  lr: 0.001\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = [i for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.startswith("optim:")]
    assert str(info.value) == (f"config file {path}: key 'optim' appears twice in one mapping (lines {lines[0]} and "
                               f"{lines[1]}); expected each key once")
    with pytest.raises(ConfigError, match=r"--set 'optim=\{lr: 1, lr: 2\}': the value is not valid YAML \(key 'lr' appears twice"):
        parse_assignments(["optim={lr: 1, lr: 2}"])
    with pytest.raises(ConfigError, match=r"^--set optim.lr is given twice; expected each setting once$"):
        parse_assignments(["optim.lr=0.1", "optim.lr=0.2"])


def test_error_lines_join_multi_line_messages():
    assert cli_errors.error_line(ConfigError("plan p: missing dataset folder(s):\n  mars: none\n  prid2011: none")) == \
        "error: plan p: missing dataset folder(s): mars: none; prid2011: none"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["inf lr", "duplicate key", "foreign checkpoint"])
def test_train_command_line_gives_one_error_line(tmp_path, case):
    cfg = tiny_run(tmp_path / "run")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sets: list[str] = []
    if case == "inf lr":
        sets, expected = ["optim.lr=.inf"], f"error: {path}: optim.lr must be a finite number, got inf"
    elif case == "duplicate key":
        path.write_text(path.read_text() + "device: cpu\n")
        expected = f"error: config file {path}: key 'device' appears twice in one mapping"
    else:
        ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
        ckpt.parent.mkdir(parents=True)
        torch.save({"state_dict": {}, "epoch": 3}, ckpt)
        expected = f"error: checkpoint {ckpt} was not written by fgra_core training (found a dict with keys"
    args = ["--config", str(path), "--no-progress"] + [a for s in sets for a in ("--set", s)]
    line = one_error_line(cli("fgra_core.train", *args))
    assert line.startswith(expected), line
    assert not (tmp_path / "run" / "results.json").exists()
    if case != "foreign checkpoint":
        assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_during_training_is_one_line_and_status_130(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_run(tmp_path / "run", train={"epochs": 200})))
    # A process started with SIGINT ignored keeps it ignored, and Python then never raises
    # KeyboardInterrupt: a background job of a non-interactive shell (`bash .ci/run &`) inherits it
    # so. The child gets the default disposition back, as a run started from a terminal has it.
    proc = subprocess.Popen([sys.executable, "-m", "fgra_core.train", "--config", str(path), "--no-progress"],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        metrics = tmp_path / "run" / "metrics.jsonl"
        deadline = time.time() + 240
        while time.time() < deadline and not (metrics.is_file() and metrics.read_text().count("\n") >= 1):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:     # a failed assertion leaves no training process behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == [cli_errors.RESUME_TRAIN]
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_ctrl_c_during_a_study_is_one_line_and_status_130(tmp_path, monkeypatch, capsys):
    def interrupted(spec, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(study_runner, "papermill_run", interrupted)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(study_plan()))
    assert st.main(["--plan", str(plan), "--project-dir", str(tmp_path), "--no-progress", "--no-aggregates"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [cli_errors.RESUME_STUDY]
    assert not list(tmp_path.rglob("status.json"))  # an interruption is not a failed run


# =========================================================================== rule: study plans


def study_plan(**extra) -> dict:
    plan = {
        "name": "inputs",
        "config": "quick_synthetic",
        "base": {"device": "cpu", "train.epochs": 1},
        "datasets": {"synthetic": {"splits": [0]}},
        "groups": {"ablation": {"vary": {"model.variant": [3, 8]}}},
        "aggregates": [],
    }
    plan.update(extra)
    return plan


def prid_plan_tree(tmp_path: Path, splits=1) -> Path:
    root = make_prid(tmp_path / "prid", {(cam, p): 4 for cam in "ab" for p in range(1, 7)})
    ids = [f"person_{p:04d}" for p in range(1, 7)]
    (root / "splits_prid2011.json").write_text(json.dumps([{"train": ids[:3], "test": ids[3:]}] * splits))
    return root


class Runs:
    """A run function that only counts: no plan below may reach a run."""

    def __init__(self):
        self.calls = []

    def __call__(self, spec):
        self.calls.append(spec.run_id)


def make_study(tmp_path, plan, **kw) -> st.Study:
    return st.Study(st.load_plan(plan), project_dir=tmp_path, run_fn=Runs(), show_progress=False,
                    aggregate_fn=lambda *a: None, **kw)


@pytest.mark.parametrize("plan, error, message", [
    (study_plan(datasets={"market1501": {"splits": [0]}}), ConfigError,
     "plan inputs (<dict>): unknown dataset(s) 'market1501' under datasets; expected names among synthetic, mars, "
     "ilidsvid, prid2011"),
    (study_plan(groups={"ablaton": {"vary": {"model.variant": [3]}}}), ConfigError,
     "plan inputs (<dict>): group 'ablaton' is not a group the aggregate notebooks know; did you mean 'ablation'? "
     "(known: ablation, seq_len, num_regions, misalignment, jitter, table1, readings, trunk; other names are kept as they are but feed no table)"),
    (study_plan(aggregates=["ablation", "sweep"]), ConfigError,
     "plan inputs (<dict>): unknown aggregate notebook(s) 'sweep'; expected names among "),
    (study_plan(datasets={"synthetic": {"splits": "3-1"}}), st.StudyError,
     "plan <dict>: datasets.synthetic: splits range '3-1' is reversed; expected 'A-B' with A <= B"),
    (study_plan(datasets={"synthetic": {"splits": []}}), st.StudyError,
     "plan <dict>: datasets.synthetic: splits must be an integer, a list of integers or a range 'A-B', got []"),
    (study_plan(name="quick"), ConfigError,
     "plan <dict>: the name 'quick' is the name of the packaged plan quick.yaml, whose tables are kept in "
     "results/quick/; give your plan another name (its name: key, e.g. my-quick) so that it writes into its own "
     "results folder"),
    (study_plan(name="mars_mini"), ConfigError, "plan <dict>: the name 'mars_mini' is the name of the packaged plan mars_mini.yaml"),
    (study_plan(name="runs"), ConfigError,
     "plan <dict>: the name 'runs' is reserved (results/runs/ holds the run folders); give the plan another name "
     "(its name: key)"),
])
def test_plan_names_are_checked_before_anything_runs(tmp_path, plan, error, message):
    with pytest.raises(error) as info:
        make_study(tmp_path, plan, notebooks_dir=REPO / "notebooks")
    assert str(info.value).startswith(message), str(info.value)
    assert not (tmp_path / "results").exists()


def test_packaged_plans_and_custom_group_names_pass(tmp_path):
    assert len(st.Study("smoke", project_dir=tmp_path, show_progress=False).runs) >= 4
    make_study(tmp_path, study_plan(groups={"my_sweep": {"vary": {"model.variant": [3]}}}))


def test_a_plan_file_with_a_duplicate_key_is_refused(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("name: dup\nconfig: quick_synthetic\ndatasets: {synthetic: {splits: [0]}}\n"
                    "groups:\n  ablation: {vary: {model.variant: [3]}}\n  ablation: {vary: {model.variant: [8]}}\n")
    with pytest.raises(st.StudyError) as info:
        st.load_plan(path)
    assert str(info.value) == (f"plan {path}: key 'ablation' appears twice in one mapping (lines 5 and 6); "
                               "expected each key once")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_study_checks_device_and_threads_once_before_the_first_run(tmp_path):
    with pytest.raises(ConfigError) as info:
        make_study(tmp_path, study_plan(), extra={"device": "cuda"})
    assert str(info.value) == "device 'cuda' was asked for but CUDA is not available on this machine"
    with pytest.raises(ConfigError) as info:
        make_study(tmp_path, study_plan(), num_threads=-2)
    assert str(info.value) == "--threads must be an integer >= 0 (0: torch's default), got -2"
    with pytest.raises(st.StudyError, match=r"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        make_study(tmp_path, study_plan(), extra={"device": "gpu"})
    assert not (tmp_path / "results").exists()


def test_a_study_reads_each_data_root_once_before_the_first_run(tmp_path, monkeypatch):
    root = prid_plan_tree(tmp_path, splits=2)
    reads = []
    real = study_plan_mod._build_dataset
    monkeypatch.setattr(study_runner, "_build_dataset", lambda name, r, **o: reads.append((name, r, o)) or real(name, r, **o))
    plan = study_plan(datasets={"prid2011": {"splits": [0, 1]}}, base={"device": "cpu"})
    study = make_study(tmp_path, plan, data_roots={"prid2011": str(root)})
    assert len(study.runs) == 4 and reads == [("prid2011", str(root), {"split_id": 0, "split_file": None})]
    # a split the split file does not hold
    plan = study_plan(datasets={"prid2011": {"splits": [0, 1, 2, 3]}})
    with pytest.raises(ConfigError) as info:
        make_study(tmp_path, plan, data_roots={"prid2011": str(root)})
    assert str(info.value) == (f"dataset prid2011: the plan asks for split(s) [2, 3] but {root / 'splits_prid2011.json'} "
                               "holds 2 split(s) (0..1)")
    # a broken layout: stops before the first run, once
    for f in (root / "prid_2011" / "multi_shot" / "cam_b").rglob("*.png"):
        f.unlink()
    for d in sorted((root / "prid_2011" / "multi_shot" / "cam_b").iterdir()):
        d.rmdir()
    reads.clear()
    runs = Runs()
    with pytest.raises(DatasetError) as info:
        st.Study(st.load_plan(study_plan(datasets={"prid2011": {"splits": [0, 1]}})), project_dir=tmp_path,
                 run_fn=runs, data_roots={"prid2011": str(root)}, show_progress=False)
    assert str(info.value).startswith("dataset prid2011 (checked before the first run): camera folder "
                                      f"{root / 'prid_2011' / 'multi_shot' / 'cam_b'} holds no person_* folders")
    assert len(reads) == 1 and runs.calls == []


@pytest.mark.slow
@pytest.mark.parametrize("case", ["named quick", "reversed splits", "duplicate key", "device", "threads", "symlink loop"])
def test_study_command_line_gives_one_error_line(tmp_path, case):
    plan = study_plan()
    args: list[str] = []
    if case == "named quick":
        plan["name"] = "quick"
    elif case == "reversed splits":
        plan["datasets"] = {"synthetic": {"splits": "2-0"}}
    elif case == "device":
        args = ["--set", "device=gpu"]
    elif case == "threads":
        args = ["--threads", "-1"]
    elif case == "symlink loop":
        root = prid_plan_tree(tmp_path)
        os.symlink("person_0009", root / "prid_2011" / "multi_shot" / "cam_a" / "person_0009")
        plan["datasets"] = {"prid2011": {"splits": [0]}}
        args = ["--data-root", f"prid2011={root}"]
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan) + ("aggregates: []\n" if case == "duplicate key" else ""))
    proc = cli("fgra_core.study", "--plan", str(path), "--project-dir", str(tmp_path), "--no-progress", *args)
    line = one_error_line(proc)
    expected = {
        "named quick": f"error: plan {path}: the name 'quick' is the name of the packaged plan quick.yaml",
        "reversed splits": f"error: plan {path}: datasets.synthetic: splits range '2-0' is reversed",
        "duplicate key": f"error: plan {path}: key 'aggregates' appears twice in one mapping",
        "device": "error: plan inputs, group ablation, dataset synthetic, split 0, model.variant=3: "
                  f"{REPO / 'fgra_core' / 'config' / 'configs' / 'quick_synthetic.yaml'}: device: expected "
                  "'auto', 'cpu', 'cuda' or 'cuda:N' (N a GPU index), got 'gpu'",
        "threads": "error: --threads must be an integer >= 0 (0: torch's default), got -1",
        "symlink loop": f"error: dataset prid2011 (checked before the first run): {tmp_path}/prid/prid_2011/multi_shot/"
                        "cam_a/person_0009 cannot be followed (Too many levels of symbolic links; a symlink loop?)",
    }[case]
    assert line.startswith(expected), line
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())


# =========================================================================== rule: pixels


def png16(path: Path, arr: np.ndarray) -> Path:
    """A 16-bit PNG written byte by byte (grayscale [H, W] or RGB [H, W, 3] of uint16)."""
    h, w = arr.shape[:2]
    color = 2 if arr.ndim == 3 else 0
    raw = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def test_sixteen_bit_frames_decode_to_their_8_bit_values(tmp_path):
    values = np.arange(16, dtype=np.int64) * 17                 # 0, 17, ..., 255
    gray = png16(tmp_path / "gray16.png", np.tile(values * 257, (4, 1)).astype(np.uint16))
    assert Image.open(gray).mode.startswith("I")                 # PIL's own convert("RGB") makes this all 255
    img = read_image(gray)
    assert img.dtype == np.uint8 and img.shape == (4, 16, 3)
    np.testing.assert_array_equal(img[0, :, 0], values)
    np.testing.assert_array_equal(img[..., 0], img[..., 2])
    # in-between 16-bit values round to the nearest 8-bit one
    np.testing.assert_array_equal(read_image(png16(tmp_path / "mid.png", np.array([[128, 129, 65535 - 128]], np.uint16)))[0, :, 0],
                                  [0, 1, 255])
    rgb = np.zeros((2, 3, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10 * 257, 200 * 257, 65535
    np.testing.assert_array_equal(read_image(png16(tmp_path / "rgb16.png", rgb))[1, 2], [10, 200, 255])
    # through the frame cache (on disk) and at another size
    cache = FrameCache(cache_dir=tmp_path / "cache", size=(8, 32))
    frames = cache.get((str(gray),))
    assert frames.shape == (1, 8, 32, 3) and frames.max() == 255 and frames.min() == 0 and 100 < frames.mean() < 155


@pytest.mark.parametrize("mode", ["F", "LAB", "HSV"])
def test_image_modes_without_an_exact_conversion_are_refused(mode):
    with pytest.raises(DatasetError) as info:
        to_rgb8(Image.new(mode, (4, 4)), "/data/x.png")
    assert str(info.value) == (f"frame image /data/x.png has image mode {mode!r}, which has no exact RGB conversion; "
                               "expected an 8- or 16-bit RGB or grayscale JPEG/PNG file")


@pytest.mark.parametrize("mode, pixel", [("L", [90, 90, 90]), ("P", [200, 10, 30]), ("RGBA", [200, 10, 30]),
                                          ("LA", [90, 90, 90]), ("CMYK", None), ("1", [255, 255, 255])])
def test_eight_bit_modes_convert(tmp_path, mode, pixel):
    if mode in ("L", "LA"):
        img = Image.new(mode, (4, 4), 90 if mode == "L" else (90, 255))
    elif mode == "P":
        img = Image.new("P", (4, 4), 1)
        img.putpalette([0, 0, 0, 200, 10, 30] + [0] * 762)
    else:
        img = (Image.new("RGB", (4, 4), (200, 10, 30)) if mode != "1" else Image.new("L", (4, 4), 255)).convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path)
    out = read_image(path)
    assert out.shape == (4, 4, 3)
    if pixel is not None:
        np.testing.assert_array_equal(out[0, 0], pixel)


@pytest.mark.parametrize("on_disk", [True, False])
def test_replaced_images_are_decoded_again(tmp_path, on_disk):
    frames = []
    for i in range(3):
        frames.append(str(tmp_path / "t" / f"{i}.png"))
        write_frame(Path(frames[-1]), 10 + i)
    kw = {"cache_dir": tmp_path / "cache"} if on_disk else {}
    assert FrameCache(**kw).get(tuple(frames))[:, 0, 0, 0].tolist() == [10, 11, 12]
    # the same paths, new pixels (same file size; the modification time moves on)
    write_frame(Path(frames[1]), 99)
    st_ = os.stat(frames[1])
    os.utime(frames[1], ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    cache = FrameCache(**kw)
    assert cache.get(tuple(frames))[:, 0, 0, 0].tolist() == [10, 99, 12]
    # a larger file at the same path and the same modification time
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 4, 3), dtype=np.uint8)).save(frames[2])
    os.utime(frames[2], ns=(st_.st_atime_ns, os.stat(frames[0]).st_mtime_ns))
    assert not np.all(FrameCache(**kw).get(tuple(frames))[2] == 12)
    # unchanged files: served from the cache without decoding
    again = FrameCache(**kw)
    again.get(tuple(frames))
    assert again.decoded == (0 if on_disk else 3)


def test_hidden_files_are_not_frames(tmp_path):
    folder = tmp_path / "person_0001"
    for i in (1, 2):
        write_frame(folder / f"{i:04d}.png", i)
    (folder / "._0001.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble metadata, not an image")
    write_frame(folder / ".0003.png", 3)
    assert [Path(p).name for p in list_frames(folder)] == ["0001.png", "0002.png"]


def test_symlink_loops_are_named(tmp_path):
    root = prid_plan_tree(tmp_path)
    person = root / "prid_2011" / "multi_shot" / "cam_a" / "person_0001"
    os.symlink("0099.png", person / "0099.png")                       # a frame that points at itself
    with pytest.raises(DatasetError) as info:
        load_prid2011(root)
    assert str(info.value) == (f"frame {person / '0099.png'} cannot be followed (Too many levels of symbolic links; "
                               "a symlink loop?); expected an image file")
    (person / "0099.png").unlink()
    os.symlink("missing.png", person / "0098.png")                    # a frame that points nowhere
    with pytest.raises(DatasetError, match=r"0098.png is a symlink to 'missing.png', which is not an image file$"):
        load_prid2011(root)
    (person / "0098.png").unlink()
    cam = person.parent
    os.symlink("person_0042", cam / "person_0042")                      # a person folder that is a loop
    with pytest.raises(DatasetError) as info:
        load_prid2011(root)
    assert str(info.value) == (f"{cam / 'person_0042'} cannot be followed (Too many levels of symbolic links; a "
                               "symlink loop?); expected a folder of image files")


def test_two_folders_of_one_identity_are_an_error(tmp_path):
    root = prid_plan_tree(tmp_path)
    cam_a = root / "prid_2011" / "multi_shot" / "cam_a"
    write_frame(cam_a / "person_001" / "1.png", 1)
    with pytest.raises(DatasetError) as info:
        load_prid2011(root)
    assert str(info.value) == ("person folders cam_a/person_0001 and cam_a/person_001 both name identity 1; expected "
                               "one folder name per identity (rename or remove one)")
    (cam_a / "person_001" / "1.png").unlink()
    (cam_a / "person_001").rmdir()
    write_frame(root / "prid_2011" / "multi_shot" / "cam_b" / "person_02" / "1.png", 1)   # across cameras
    with pytest.raises(DatasetError, match="person folders cam_a/person_0002 and cam_b/person_02 both name identity 2"):
        load_prid2011(root)


def test_duplicate_ids_in_a_split_file_are_an_error(tmp_path):
    root = prid_plan_tree(tmp_path)
    ids = [f"person_{p:04d}" for p in range(1, 7)]
    split_file = root / "splits_prid2011.json"
    split_file.write_text(json.dumps([{"train": ids[:3] + [ids[0]], "test": ids[3:]}]))
    with pytest.raises(DatasetError) as info:
        load_prid2011(root)
    assert str(info.value) == (f"split 0 of {split_file} lists identities ['person_0001'] more than once in train; "
                               "expected each identity once")


def test_mars_info_stored_as_matlab_double(tmp_path):
    root = make_mars(tmp_path / "MARS")
    reference = load_mars(root)
    info = root / "info"
    for f, k in (("tracks_train_info.mat", "track_train_info"), ("tracks_test_info.mat", "track_test_info"),
                 ("query_IDX.mat", "query_IDX")):
        rows = scipy.io.loadmat(info / f)[k]
        scipy.io.savemat(info / f, {k: rows.astype(np.float64)})   # MATLAB's default class
        assert scipy.io.loadmat(info / f)[k].dtype == np.float64
    ds = load_mars(root)
    for a, b in zip(reference.train + reference.query + reference.gallery, ds.train + ds.query + ds.gallery):
        assert (a.frames, a.pid, a.camid, a.name) == (b.frames, b.pid, b.camid, b.name)
    rows = scipy.io.loadmat(info / "tracks_test_info.mat")["track_test_info"]
    rows[1, 1] = 4.5
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": rows})
    with pytest.raises(DatasetError) as info_:
        load_mars(root)
    assert str(info_.value).startswith(f"{info / 'tracks_test_info.mat'} (key track_test_info) holds a value that is "
                                       "not a whole number (4.5, 1 in all); expected integer indices")
    rows[1, 1] = 5.0
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": rows})
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array(["a"])})
    with pytest.raises(DatasetError, match=r"query_IDX.mat \(key query_IDX\) holds <U1 values; expected a numeric array"):
        load_mars(root)


# =========================================================================== rule: metrics grid


@pytest.mark.parametrize("span", [1e-39, 1e-40, 3e-38])
def test_metrics_grid_with_float32_distances_spanning_almost_nothing(span):
    rng = np.random.default_rng(3)
    nq, ng = 12, 60
    qp, gp = rng.integers(1, 6, nq), rng.integers(1, 6, ng)
    qc, gc = np.zeros(nq, int), np.ones(ng, int)
    d = (rng.random((nq, ng)) * span).astype(np.float32)   # subnormal float32 distances
    assert 0 < float(d.max()) - float(d.min()) < 4e-38
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the scale's overflow in the cast was a RuntimeWarning, then garbage cells
        fast = evaluate_rank(d, qp, gp, qc, gc, protocol="cross-camera")
    ref = evaluate_rank_reference(d, qp, gp, qc, gc, protocol="cross-camera")
    np.testing.assert_array_equal(fast.cmc, ref.cmc)
    assert abs(fast.mAP - ref.mAP) < 1e-12 and fast.num_valid == ref.num_valid > 0
