"""Fault suite, runs: a training process killed with SIGKILL mid-epoch and mid-checkpoint-write,
a full disk during checkpoint / results / table writes, and the study runner with failing runs.

Whatever happens, ``last.pt`` is always a complete checkpoint, a resumed run ends with the same
metrics as an uninterrupted one, and no finished results file changes (sha256 compared).

The kills are real: a child process (``DRIVER`` below) trains the tiny synthetic run with a
hook that stops it at the chosen moment and signals the test, which then sends SIGKILL. The
full disk is simulated by replacing ``os`` inside :mod:`fgra_core.utils.io` with a proxy whose write,
fsync or replace fails with ``ENOSPC``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fgra_core import study as st
from fgra_core.config.schema import merge
from fgra_core.train import run
from fgra_core.utils import io as fio
from fgra_core.utils.errors import DatasetError, FGRAError, StorageError

REPO = Path(__file__).resolve().parents[1]
KILL_TIMEOUT_S = 300


def tiny_run(run_dir, **extra) -> dict:
    """A run that trains in seconds on CPU: 6 synthetic identities, 64 x 32 frames, ResNet-18
    from random weights, 2 iterations per epoch, 3 epochs."""
    cfg = {
        "run_dir": str(run_dir),
        "device": "cpu",
        "data": {"dataset": "synthetic", "seq_len": 3, "height": 64, "width": 32, "num_workers": 0,
                 "synthetic": {"num_train_ids": 6, "num_test_ids": 6, "min_frames": 6, "max_frames": 9,
                               "height": 64, "width": 32}},
        "model": {"variant": 8, "backbone": "resnet18", "weights": "none", "num_regions": 2},
        "train": {"epochs": 3, "P": 3, "K": 2, "iters_per_epoch": 2},
        "optim": {"step_size": 2},
    }
    return merge(cfg, extra)


def sha256_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def temp_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).rglob(f"*{fio.TEMP_SUFFIX}"))


def checkpoint_epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted tiny run (one torch thread, as in the child processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(tiny_run(tmp_path_factory.mktemp("reference") / "run"), show_progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture()
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same_run(result: dict, reference: dict) -> None:
    assert result["status"] == "finished"
    assert result["history"] == reference["history"]
    assert result["metrics"] == reference["metrics"]


# --------------------------------------------------------------------------- SIGKILL

DRIVER = textwrap.dedent('''
    """Train the run of argv[1] and stop at the moment argv[2] names: write argv[3], then wait
    for the test to send SIGKILL."""
    import json, os, sys, time
    import torch
    torch.set_num_threads(1)
    cfg = json.loads(open(sys.argv[1]).read())
    mode, marker = sys.argv[2], sys.argv[3]
    from fgra_core.utils import io as fio
    from fgra_core.engine import finetune as trainer
    from fgra_core.engine.run import run as run_engine

    def hold(note):
        with open(marker + ".part", "w") as fh:
            fh.write(note)
        os.replace(marker + ".part", marker)
        time.sleep(600)

    if mode == "mid-epoch":  # after the first optimiser step of the second epoch
        real_epoch = trainer.train_one_epoch

        class Held:
            def __init__(self, loader):
                self.loader = loader
            def __len__(self):
                return len(self.loader)
            def __iter__(self):
                for step, batch in enumerate(self.loader):
                    if step == 1:
                        hold("epoch 2, step 2")
                    yield batch

        def train_one_epoch(model, criterion, loader, *args, epoch, **kwargs):
            return real_epoch(model, criterion, Held(loader) if epoch == 1 else loader, *args, epoch=epoch, **kwargs)

        trainer.train_one_epoch = train_one_epoch
    elif mode == "mid-write":  # half of the second checkpoint's bytes are in the temporary file
        real_os, real_tempfile = fio.os, fio.tempfile
        state = {"writes": 0, "armed": False}

        class Tempfile:
            def __getattr__(self, name):
                return getattr(real_tempfile, name)
            def mkstemp(self, *args, **kwargs):
                if kwargs.get("prefix", "").startswith(".last.pt."):
                    state["writes"] += 1
                    state["armed"] = state["writes"] == 2
                return real_tempfile.mkstemp(*args, **kwargs)

        class HalfWriter:
            def __init__(self, fh):
                self.fh = fh
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                self.fh.close()
            def __getattr__(self, name):
                return getattr(self.fh, name)
            def write(self, data):
                self.fh.write(data[: len(data) // 2])
                self.fh.flush()
                real_os.fsync(self.fh.fileno())
                hold(json.dumps({"size": len(data), "written": len(data) // 2}))

        class Os:
            def __getattr__(self, name):
                return getattr(real_os, name)
            def fdopen(self, fd, *args, **kwargs):
                fh = real_os.fdopen(fd, *args, **kwargs)
                if state["armed"]:
                    state["armed"] = False
                    return HalfWriter(fh)
                return fh

        fio.os, fio.tempfile = Os(), Tempfile()
    result = run_engine(cfg, show_progress=False)
    print("ended", result["status"])
''')


def train_and_kill(tmp_path: Path, cfg: dict, mode: str) -> str:
    """Start the driver, wait for it to reach the moment ``mode`` names, SIGKILL it; return its note."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    cfg_path = tmp_path / "run.json"
    cfg_path.write_text(json.dumps(cfg))
    marker = tmp_path / f"{mode}.reached"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",  # the package under test first
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log = open(tmp_path / f"{mode}.log", "w")  # a file, not a pipe: a full pipe would stall the child
    proc = subprocess.Popen([sys.executable, str(driver), str(cfg_path), mode, str(marker)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + KILL_TIMEOUT_S
    try:
        while not marker.exists():
            if proc.poll() is not None:
                log.close()
                pytest.fail(f"the training process ended before {mode} (rc {proc.returncode}):\n"
                            + (tmp_path / f"{mode}.log").read_text()[-3000:])
            if time.monotonic() > deadline:
                pytest.fail(f"the training process did not reach {mode} in {KILL_TIMEOUT_S} s")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    return marker.read_text()


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_the_last_checkpoint_with_the_same_metrics(tmp_path, reference, one_thread):
    run_dir = tmp_path / "run"
    cfg = tiny_run(run_dir)
    train_and_kill(tmp_path, cfg, "mid-epoch")
    last = run_dir / "checkpoints" / "last.pt"
    assert checkpoint_epoch(last) == 1  # epoch 2 was under way: the last complete checkpoint is epoch 1
    assert [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1]
    assert not (run_dir / "results.json").exists()

    epochs = []
    resumed = run(cfg, show_progress=False, on_epoch_end=lambda r: epochs.append(r["epoch"]))
    assert epochs == [2, 3]  # epoch 1 is not trained again
    assert_same_run(resumed, reference)
    assert [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads((run_dir / "results.json").read_text())["metrics"] == reference["metrics"]
    assert not temp_files(run_dir)


@pytest.mark.slow
def test_sigkill_mid_checkpoint_write_never_leaves_a_half_written_checkpoint(tmp_path, reference, one_thread):
    run_dir = tmp_path / "run"
    cfg = tiny_run(run_dir)
    note = json.loads(train_and_kill(tmp_path, cfg, "mid-write"))
    ckpt_dir = run_dir / "checkpoints"
    # the kill hit while half of epoch 2's checkpoint was on disk -- in the temporary file only
    partial = temp_files(ckpt_dir)
    assert len(partial) == 1 and partial[0].name.startswith(".last.pt.")
    assert partial[0].stat().st_size == note["written"] < note["size"]
    with pytest.raises(Exception):
        torch.load(partial[0], map_location="cpu", weights_only=False)
    assert checkpoint_epoch(ckpt_dir / "last.pt") == 1  # the complete previous checkpoint
    assert {p.name for p in ckpt_dir.iterdir()} == {"last.pt", partial[0].name}

    resumed = run(cfg, show_progress=False)
    assert_same_run(resumed, reference)
    assert not temp_files(run_dir), "the leftover temporary file is removed when the run resumes"
    assert checkpoint_epoch(ckpt_dir / "last.pt") == 3


def test_corrupt_last_checkpoint_is_named_with_the_way_out(tmp_path, one_thread):
    cfg = tiny_run(tmp_path / "run", train={"epochs": 2})
    run(cfg, show_progress=False, stop_after_epochs=1)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # e.g. a copy cut short outside this package
    with pytest.raises(FGRAError) as info:
        run(cfg, show_progress=False)
    text = str(info.value)
    assert str(last) in text and "could not be read" in text and "resume: false" in text
    assert run({**cfg, "resume": False}, show_progress=False)["status"] == "finished"


# --------------------------------------------------------------------------- full disk


class FullDisk:
    """A stand-in for ``os`` inside :mod:`fgra_core.utils.io`: the chosen step fails with ENOSPC for
    files whose name contains ``target`` (``write``: after half of the bytes reached the file)."""

    def __init__(self, step: str, target: str = ""):
        self.step, self.target, self.hits = step, target, 0
        self._names: dict[int, str] = {}

    def __getattr__(self, name):
        return getattr(os, name)

    def _fail(self, what: str):
        self.hits += 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), what)

    def _hit(self, name: str) -> bool:
        return self.target in os.path.basename(name)

    def fdopen(self, fd, *args, **kwargs):
        target = os.readlink(f"/proc/self/fd/{fd}")
        fh = os.fdopen(fd, *args, **kwargs)
        if self.step in ("write", "fsync") and self._hit(target):
            disk = self

            class Half:
                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    fh.close()

                def __getattr__(self, name):
                    return getattr(fh, name)

                def write(self, data):
                    if disk.step == "write":
                        fh.write(data[: len(data) // 2])
                        fh.flush()
                        disk._fail(target)
                    return fh.write(data)

                def fileno(self):
                    return fh.fileno()

            self._names[fh.fileno()] = target
            return Half()
        return fh

    def fsync(self, fd):
        if self.step == "fsync" and fd in self._names:
            self._fail(self._names[fd])
        return os.fsync(fd)

    def replace(self, src, dst):
        if self.step == "replace" and self._hit(os.fspath(dst)):
            self._fail(os.fspath(dst))
        return os.replace(src, dst)

    def write(self, fd, data):  # append_jsonl
        if self.step == "append" and self._hit(os.readlink(f"/proc/self/fd/{fd}")):
            os.write(fd, bytes(data)[: len(data) // 2])
            self._fail(os.readlink(f"/proc/self/fd/{fd}"))
        return os.write(fd, data)


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the full-disk stand-in reads /proc/self/fd")


def assert_storage_error(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, StorageError) and isinstance(exc, FGRAError) and isinstance(exc, OSError)
    assert exc.errno == errno.ENOSPC
    text = str(exc)
    assert f"could not write {path}" in text or f"could not append to {path}" in text, text
    assert "No space left on device" in text and "unchanged" in text, text


@needs_proc
@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
def test_full_disk_during_a_results_write_keeps_the_previous_file(tmp_path, monkeypatch, step):
    path = tmp_path / "results.json"
    fio.atomic_write_json(path, {"status": "finished", "metrics": {"rank1": 81.5}})
    before = sha256(path)
    disk = FullDisk(step, "results.json")
    monkeypatch.setattr(fio, "os", disk)
    with pytest.raises(StorageError) as info:
        fio.atomic_write_json(path, {"status": "finished", "metrics": {"rank1": 12.0}, "pad": "x" * 100_000})
    assert disk.hits == 1
    assert_storage_error(info.value, path)
    assert sha256(path) == before and not temp_files(tmp_path)
    # a file that did not exist before does not appear
    with pytest.raises(StorageError):
        fio.atomic_write_json(tmp_path / "new_results.json", {"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@needs_proc
def test_full_disk_during_a_metrics_append_keeps_whole_lines(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    fio.append_jsonl(path, {"epoch": 1, "total": 3.5})
    before = path.read_bytes()
    monkeypatch.setattr(fio, "os", FullDisk("append", "metrics.jsonl"))
    with pytest.raises(StorageError) as info:
        fio.append_jsonl(path, {"epoch": 2, "total": 3.0, "pad": "y" * 1000})
    assert_storage_error(info.value, path)
    assert path.read_bytes() == before  # the half line was cut off again


@needs_proc
def test_full_disk_during_a_checkpoint_write_then_resume(tmp_path, monkeypatch, reference, one_thread):
    run_dir = tmp_path / "run"
    cfg = tiny_run(run_dir)
    disk = FullDisk("write", "last.pt")
    real_save = fio.atomic_torch_save
    saves = []

    def save(obj, path):  # the disk fills up during the second checkpoint
        saves.append(path)
        if len(saves) == 2:
            monkeypatch.setattr(fio, "os", disk)
        try:
            return real_save(obj, path)
        finally:
            monkeypatch.setattr(fio, "os", os)

    from fgra_core.engine import checkpoint as ckpt_lib

    monkeypatch.setattr(ckpt_lib, "atomic_torch_save", save)
    with pytest.raises(StorageError) as info:
        run(cfg, show_progress=False)
    last = run_dir / "checkpoints" / "last.pt"
    assert_storage_error(info.value, last)
    assert disk.hits == 1 and checkpoint_epoch(last) == 1 and not temp_files(run_dir)
    monkeypatch.setattr(ckpt_lib, "atomic_torch_save", real_save)  # space freed
    assert_same_run(run(cfg, show_progress=False), reference)


@needs_proc
@pytest.mark.slow
def test_full_disk_during_the_results_write_of_a_rerun(tmp_path, monkeypatch, capsys):
    """A run started over (resume: false) over an interrupted one: the disk fills up when its
    results.json is written; the command line says why (exit 2), no results file appears, and
    the complete last checkpoint lets the run finish without training again. (Over a finished
    run, resume: false is refused before anything is written: tests/test_faults_records.py.)"""
    import yaml

    from fgra_core import train as train_cli

    run_dir = tmp_path / "run"
    run(tiny_run(run_dir, train={"epochs": 2}), show_progress=False, stop_after_epochs=1)
    results = run_dir / "results.json"
    cfg_path = tmp_path / "again.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_run(run_dir, resume=False, train={"epochs": 1, "seed": 5})))
    monkeypatch.setattr(fio, "os", FullDisk("write", "results.json"))
    assert train_cli.main(["--config", str(cfg_path), "--no-progress"]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: could not write {results} (No space left on device)")
    assert not results.exists() and not temp_files(run_dir)
    assert checkpoint_epoch(run_dir / "checkpoints" / "last.pt") == 1
    monkeypatch.undo()
    epochs = []
    done = run(tiny_run(run_dir, train={"epochs": 1, "seed": 5}), show_progress=False,
               on_epoch_end=lambda r: epochs.append(r))
    assert done["status"] == "finished" and epochs == [] and done["seed"] == 5


@needs_proc
def test_full_disk_during_a_table_write_keeps_the_previous_tables(tmp_path, monkeypatch):
    import pandas as pd

    from fgra_core.analysis import render

    stem = tmp_path / "results" / "table2"
    written = render.write_table(pd.DataFrame({"variant": [1, 8], "rank1": [70.0, 88.0]}), stem, "| old |", title="T")
    before = {p.name: sha256(p) for p in written}
    monkeypatch.setattr(fio, "os", FullDisk("fsync", "table2"))
    with pytest.raises(StorageError):
        render.write_table(pd.DataFrame({"variant": [1, 8], "rank1": [1.0, 2.0]}), stem, "| new |", title="T")
    assert {p.name: sha256(p) for p in written} == before and not temp_files(tmp_path)


# --------------------------------------------------------------------------- study runner


def study_plan(name="faults", datasets=None, variants=(3, 8)) -> dict:
    return {
        "name": name,
        "config": "quick_synthetic",
        "base": {"device": "cpu", "data.num_workers": 0, "data.seq_len": 3, "data.height": 64, "data.width": 32,
                 "data.synthetic.num_train_ids": 6, "data.synthetic.num_test_ids": 6,
                 "data.synthetic.min_frames": 6, "data.synthetic.max_frames": 9,
                 "data.synthetic.height": 64, "data.synthetic.width": 32, "model.backbone": "resnet18",
                 "model.weights": "none", "model.num_regions": 2, "train.epochs": 1, "train.P": 2, "train.K": 2,
                 "train.iters_per_epoch": 2},
        "datasets": datasets or {"synthetic": {"splits": [0]}},
        "groups": {"ablation": {"vary": {"model.variant": list(variants)}}},
        "aggregates": [],
    }


def real_run(spec: st.RunSpec) -> None:
    """Train and evaluate one run of the study in this process (what the train_evaluate notebook does)."""
    from fgra_core.study.notebook_params import build_config

    run(build_config(spec.params), show_progress=False)


def make_study(tmp_path, plan, run_fn, **kw) -> st.Study:
    return st.Study(st.load_plan(plan), project_dir=tmp_path, run_fn=run_fn, show_progress=False,
                    aggregate_fn=lambda name, params, out: None, notebooks_dir=tmp_path / "no-notebooks", **kw)


def test_study_failed_runs_are_recorded_the_others_finish_and_a_rerun_completes_only_those(tmp_path):
    """Fast form, with a run function that raises for some runs (no training)."""
    plan = study_plan(variants=(1, 2, 3, 8))
    specs = st.expand_plan(st.load_plan(plan))
    broken = {specs[1].run_id: DatasetError("frame image /data/x/4.png is empty (0 bytes)"),
              specs[2].run_id: RuntimeError("CUDA error: an illegal memory access")}
    calls = []

    def flaky(spec):
        calls.append(spec.run_id)
        run_dir = Path(spec.params["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        if spec.run_id in broken:
            raise broken[spec.run_id]
        fio.atomic_write_json(run_dir / "results.json", {"status": "finished", "run_id": spec.run_id})
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(os.urandom(64))

    study = make_study(tmp_path, plan, flaky)
    report = study.run(aggregates=False)
    assert calls == [s.run_id for s in specs]
    assert set(report.failed) == set(broken) and len(report.finished) == 2 and not report.ok
    for run_id, exc in broken.items():
        status = json.loads((study.runs_dir / run_id / "status.json").read_text())
        assert status["status"] == "failed" and status["error"] == f"{type(exc).__name__}: {exc}"
        assert status["attempts"] == 1 and any(str(exc) in line for line in status["traceback_tail"])
    assert "FAILED" in report.summary() and "empty (0 bytes)" in report.summary()
    states = {r["run_id"]: r["state"] for r in json.loads(study.manifest_path.read_text())["runs"]}
    assert sorted(states.values()) == ["failed", "failed", "finished", "finished"]

    finished = {r: sha256_tree(study.runs_dir / r) for r in report.finished}
    # the first rerun still fails on one of them: attempts are counted, the rest is untouched
    del broken[specs[2].run_id]
    calls.clear()
    report2 = make_study(tmp_path, plan, flaky).run(aggregates=False)
    assert sorted(calls) == sorted([specs[1].run_id, specs[2].run_id])
    assert report2.finished == [specs[2].run_id] and list(report2.failed) == [specs[1].run_id]
    assert json.loads((study.runs_dir / specs[1].run_id / "status.json").read_text())["attempts"] == 2
    broken.clear()
    calls.clear()
    report3 = make_study(tmp_path, plan, flaky).run(aggregates=False)
    assert calls == [specs[1].run_id] and report3.ok
    assert {r: sha256_tree(study.runs_dir / r) for r in finished} == finished


@pytest.mark.slow
def test_study_with_real_runs_a_broken_dataset_fails_alone_and_a_rerun_completes_it(tmp_path):
    """Real training: the PRID-2011 runs meet a truncated frame (after training, in the evaluation),
    the synthetic runs finish; once the frame is repaired a rerun computes only the PRID runs
    (from their checkpoints) and no file of a finished run changes."""
    from test_data_readers import write_frame
    from test_faults_data import break_image, prid_tree

    root = prid_tree(tmp_path / "prid")
    frame = root / "prid_2011" / "multi_shot" / "cam_b" / "person_0006" / "3.png"
    break_image(frame, "truncated")
    plan = study_plan(datasets={"synthetic": {"splits": [0]}, "prid2011": {"splits": [0]}})
    roots = {"prid2011": str(root)}
    study = make_study(tmp_path, plan, real_run, data_roots=roots)
    report = study.run(aggregates=False)
    prid = [s.run_id for s in study.runs if s.dataset == "prid2011"]
    synthetic = [s.run_id for s in study.runs if s.dataset == "synthetic"]
    assert sorted(report.failed) == sorted(prid) and sorted(report.finished) == sorted(synthetic)
    for run_id in prid:
        status = json.loads((study.runs_dir / run_id / "status.json").read_text())
        assert status["error"].startswith("DatasetError: frame image") and str(frame) in status["error"]
        assert (study.runs_dir / run_id / "checkpoints" / "last.pt").is_file()
    finished = {r: sha256_tree(study.runs_dir / r) for r in synthetic}

    write_frame(frame, 3)  # repaired
    calls = []

    def counting(spec):
        calls.append(spec.run_id)
        real_run(spec)

    report2 = make_study(tmp_path, plan, counting, data_roots=roots).run(aggregates=False)
    assert sorted(calls) == sorted(prid) and report2.ok and sorted(report2.skipped) == sorted(synthetic)
    assert {r: sha256_tree(study.runs_dir / r) for r in synthetic} == finished
    for run_id in prid:
        assert st.is_finished(study.runs_dir / run_id)
        history = json.loads((study.runs_dir / run_id / "results.json").read_text())["history"]
        assert [h["epoch"] for h in history] == [1]


@needs_proc
def test_study_full_disk_during_a_results_write(tmp_path, monkeypatch):
    """The disk is full when the second run writes its results.json: that run is recorded as
    failed with the storage error, the first run's results are intact, a rerun completes it."""
    plan = study_plan(variants=(3, 8))
    state = {"n": 0}

    def run_fn(spec):
        state["n"] += 1
        run_dir = Path(spec.params["run_dir"])
        if state["n"] == 2:
            monkeypatch.setattr(fio, "os", FullDisk("write", "results.json"))
        try:
            fio.atomic_write_json(run_dir / "results.json", {"status": "finished", "run_id": spec.run_id,
                                                             "pad": "z" * 50_000})
        finally:
            monkeypatch.setattr(fio, "os", os)

    study = make_study(tmp_path, plan, run_fn)
    report = study.run(aggregates=False)
    first, second = (s.run_id for s in study.runs)
    assert report.finished == [first] and list(report.failed) == [second]
    assert report.failed[second].startswith("StorageError: could not write") and "No space left" in report.failed[second]
    assert not (study.runs_dir / second / "results.json").exists() and not temp_files(study.runs_dir)
    kept = sha256_tree(study.runs_dir / first)
    report2 = make_study(tmp_path, plan, run_fn).run(aggregates=False)
    assert report2.finished == [second] and report2.skipped == [first]
    assert sha256_tree(study.runs_dir / first) == kept


@needs_proc
def test_study_command_line_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    """The disk is full when the study writes its manifest: one error line, exit status 2, and
    the finished run of an earlier study is untouched."""
    import yaml

    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(study_plan(name="disk", variants=(8,))))
    spec = st.expand_plan(st.load_plan(str(plan_path)), runs_dir=tmp_path / "results" / "runs")[0]
    run_dir = Path(spec.params["run_dir"])
    fio.atomic_write_json(run_dir / "results.json", {"status": "finished", "run_id": spec.run_id})
    kept = sha256_tree(run_dir)
    monkeypatch.setattr(fio, "os", FullDisk("write", "manifest.json"))
    code = st.main(["--plan", str(plan_path), "--project-dir", str(tmp_path), "--no-aggregates", "--no-progress"])
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith("error: could not write") and "manifest.json (No space left on device)" in errors[0]
    assert sha256_tree(run_dir) == kept and not temp_files(tmp_path)
