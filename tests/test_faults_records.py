"""Fault suite, run records: a finished record is immutable, a run's identity includes its split
(and not its folders), one writer per run folder and per study, divergence stops at once,
distributed runs with too few batches are refused, written files are shareable strict JSON.

The races are real: two processes on one run folder, two study processes on one project folder.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_data_readers import make_prid
from test_faults_runs import sha256_tree, study_plan, temp_files, tiny_run

from fgra_core import study as st
from fgra_core.config.schema import merge
from fgra_core.engine import run_record
from fgra_core.train import main as train_main
from fgra_core.train import run
from fgra_core.utils import io as fio
from fgra_core.utils.errors import ConfigError, DatasetError, RunLockedError, TrainingDivergedError
from fgra_core.utils.locks import hold_run, holder

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 300


def epochs_of(run_dir: Path) -> list[int]:
    return [json.loads(x)["epoch"] for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def child_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH")]))}


def wait_for(path: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the child ended early (rc {proc.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"the child did not reach {path.name} in {WAIT_S} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch tiny run (the record the refusal tests try to change)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    cfg = tiny_run(run_dir, train={"epochs": 2})
    result = run(cfg, show_progress=False)
    assert result["status"] == "finished"
    return cfg, run_dir, result


# --------------------------------------------------------------------------- rule 1: finished records


@pytest.mark.parametrize("change, shown", [
    ({"train": {"epochs": 1}}, "train.epochs: 2 -> 1"),
    ({"train": {"epochs": 4}}, "train.epochs: 2 -> 4"),
    ({"optim": {"lr": 0.001}}, "optim.lr: 0.0003 -> 0.001"),
    ({"eval": {"rerank": True}}, "eval.rerank: False -> True"),
    ({"data": {"split_file": "/elsewhere/other_splits.json"}}, "data.split_file: None -> 'other_splits.json'"),
])
def test_a_request_differing_from_a_finished_run_is_refused_and_the_record_stays_byte_identical(
        finished, change, shown):
    cfg, run_dir, _ = finished
    before = sha256_tree(run_dir)
    with pytest.raises(ConfigError) as info:
        run(merge(cfg, change), show_progress=False)
    text = str(info.value)
    assert text == (f"run folder {run_dir} holds a finished run (results.json) with other settings ({shown}); "
                    "a finished run is never rewritten -- give this request another run_dir (a new run folder), "
                    "or ask for the finished run's own settings to get its results")
    assert sha256_tree(run_dir) == before  # every file, config.yaml and the lock file included


def test_resume_false_over_a_finished_run_is_refused_and_the_same_request_gets_the_record(finished, capsys):
    cfg, run_dir, result = finished
    before = sha256_tree(run_dir)
    with pytest.raises(ConfigError, match=r"resume: false would train it again over its record.*a new run folder"):
        run({**cfg, "resume": False}, show_progress=False)
    # the same request, from a moved device or other worker count, gets the record as it is
    again = run({**cfg, "data": {**cfg["data"], "num_workers": 1}}, show_progress=False)
    assert again == json.loads((run_dir / "results.json").read_text()) and again["metrics"] == result["metrics"]
    # the command line: one line, exit 2
    path = run_dir.parent / "fewer.yaml"
    path.write_text(yaml.safe_dump(tiny_run(run_dir, train={"epochs": 1})))
    assert train_main(["--config", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: run folder {run_dir} holds a finished run")
    assert "train.epochs: 2 -> 1" in err[0]
    path.unlink()
    assert sha256_tree(run_dir) == before


def test_an_interrupted_run_refuses_fewer_epochs_than_it_holds_and_other_settings_without_writing(tmp_path):
    run_dir = tmp_path / "run"
    cfg = tiny_run(run_dir)
    run(cfg, show_progress=False, stop_after_epochs=2)
    before = sha256_tree(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    with pytest.raises(ConfigError) as info:
        run(tiny_run(run_dir, train={"epochs": 1}), show_progress=False)
    assert str(info.value) == (f"{last} already holds 2 epochs but train.epochs=1 was asked for; set train.epochs=2 "
                               "or more to finish this run, or give this request another run_dir (a new run folder)")
    with pytest.raises(ConfigError, match=r"other settings \(loss.triplet_margin: 0.5 -> 0.3\)"):
        run(tiny_run(run_dir, loss={"triplet_margin": 0.3}), show_progress=False)
    assert sha256_tree(run_dir) == before  # config.yaml was rewritten before the refusal, once


def prid_generated(root: Path, persons=(1, 2, 3, 4, 5, 6, 7, 8), frames: int = 24) -> Path:
    """A PRID-2011 tree without a split file (the splits are generated): ``persons`` in both cameras."""
    make_prid(root, {(cam, p): frames for cam in "ab" for p in persons})
    return root


def prid_run(run_dir: Path, root: Path, **extra) -> dict:
    return merge(tiny_run(run_dir, data={"dataset": "prid2011", "root": str(root)}, train={"P": 2, "K": 2}), extra)


@pytest.mark.slow
def test_moved_project_and_data_folders_resume(tmp_path):
    """Project (with its run folder) and data folder moved between two calls: the run resumes."""
    project, data = tmp_path / "project", tmp_path / "data"
    prid_generated(data / "prid")
    first = run(prid_run(project / "runs" / "r", data / "prid"), show_progress=False, stop_after_epochs=1)
    assert first["status"] == "interrupted"
    shutil.move(str(project), str(tmp_path / "moved-project"))
    shutil.move(str(data), str(tmp_path / "moved-data"))
    run_dir, root = tmp_path / "moved-project" / "runs" / "r", tmp_path / "moved-data" / "prid"
    epochs = []
    done = run(prid_run(run_dir, root), show_progress=False, on_epoch_end=lambda r: epochs.append(r["epoch"]))
    assert done["status"] == "finished" and epochs == [2, 3]
    assert done["history"][0] == first["history"][0] and epochs_of(run_dir) == [1, 2, 3]
    ids = done["split_identities"]
    assert ids["query"] == ids["gallery"] and len(ids["train"]) == 4 and not set(ids["train"]) & set(ids["query"])
    # asked again from its new place, the finished record comes back as it is
    before = sha256_tree(run_dir)
    assert run(prid_run(run_dir, root), show_progress=False) == done
    assert sha256_tree(run_dir) == before


def test_a_data_folder_changing_between_runs_stops_with_the_identities_named(tmp_path):
    """A generated split file is written once; a person added to (or removed from) the data folder
    stops the run, naming who, and the split file is not rewritten."""
    from fgra_core.data.registry import build_dataset

    root = prid_generated(tmp_path / "prid", persons=range(1, 9))
    ds = build_dataset("prid2011", str(root), split_id=0)
    split_file = Path(ds.info["split_path"])
    assert split_file.parent == root and ds.info["split_source"] == "generated"
    content = split_file.read_bytes()
    make_prid(root, {(cam, 9): 24 for cam in "ab"})  # a download that finished: one person more
    with pytest.raises(DatasetError) as info:
        build_dataset("prid2011", str(root), split_id=0)
    assert str(info.value) == (
        f"the data folder no longer matches its generated split file {split_file}: identities removed [] (0), "
        "added ['person_0009'] (1); the file is never rewritten -- restore the data folder, or delete the file to "
        "generate new splits (runs on them are new runs)")
    assert split_file.read_bytes() == content
    for cam in "ab":
        shutil.rmtree(root / "prid_2011" / "multi_shot" / f"cam_{cam}" / "person_0009")
        shutil.rmtree(root / "prid_2011" / "multi_shot" / f"cam_{cam}" / "person_0003")
    with pytest.raises(DatasetError, match=r"identities removed \['person_0003'\] \(1\), added \[\] \(0\)"):
        build_dataset("prid2011", str(root), split_id=0)
    assert split_file.read_bytes() == content


@pytest.mark.slow
def test_a_split_that_changed_under_an_interrupted_run_stops_it_naming_the_identities(tmp_path):
    """A split file edited between two calls of an interrupted run: the run stops, naming the
    identities that moved, before anything is written."""
    root = prid_generated(tmp_path / "prid")
    ids = [f"person_{p:04d}" for p in range(1, 9)]
    split_file = tmp_path / "my_splits.json"
    split_file.write_text(json.dumps([{"train": ids[:4], "test": ids[4:]}]))
    cfg = prid_run(tmp_path / "run", root, data={"split_file": str(split_file)})
    run(cfg, show_progress=False, stop_after_epochs=1)
    before = sha256_tree(tmp_path / "run")
    split_file.write_text(json.dumps([{"train": ids[:3] + ids[4:5], "test": ids[3:4] + ids[5:]}]))
    with pytest.raises(DatasetError) as info:
        run(cfg, show_progress=False)
    assert str(info.value) == (
        f"the data no longer gives the split {tmp_path / 'run' / 'checkpoints' / 'last.pt'} was trained on "
        "(train: removed [4] (1), added [5] (1); query: removed [5] (1), added [4] (1); "
        "gallery: removed [5] (1), added [4] (1)); restore the data folder to go on with this run, or give this "
        "request another run_dir (a new run folder)")
    assert sha256_tree(tmp_path / "run") == before


def test_run_identity_leaves_out_folders_and_keeps_split_file_names():
    from fgra_core.config.schema import load_config

    a = load_config(tiny_run("/a/run", data={"root": "/a/data", "split_file": "/a/data/s.json", "num_workers": 3}))
    b = load_config(tiny_run("/b/run", device="cuda", data={"root": "/b/d", "split_file": "/b/d/s.json"}))
    assert run_record.run_identity(a) == run_record.run_identity(b)
    assert run_record.run_identity(a)["data.split_file"] == "s.json" and "run_dir" not in run_record.run_identity(a)
    assert run_record.split_changes({"train": [1, 2], "query": [3], "gallery": [3]},
                                    {"train": [1, 2], "query": [3], "gallery": [3]}) == []


# --------------------------------------------------------------------------- rule 2: one writer

RACER = textwrap.dedent('''
    """Train the run of argv[1]; after epoch 1 write argv[2] and wait for argv[3] to exist."""
    import json, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from fgra_core.train import run

    cfg = json.loads(Path(sys.argv[1]).read_text())
    reached, go = Path(sys.argv[2]), Path(sys.argv[3])

    def pause(record):
        if record["epoch"] == 1:
            reached.write_text("1")
            while not go.exists():
                time.sleep(0.05)

    print(json.dumps(run(cfg, show_progress=False, on_epoch_end=pause)["metrics"]))
''')


@pytest.mark.slow
def test_two_processes_racing_on_one_run_folder(tmp_path):
    """The second process is told in one line which process holds the run; it deletes nothing (not
    even a temporary file of the first), and the first finishes with every epoch once."""
    run_dir = tmp_path / "run"
    cfg = tiny_run(run_dir)
    (tmp_path / "run.json").write_text(json.dumps(cfg))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "racer.py").write_text(RACER)
    reached, go, log = tmp_path / "reached", tmp_path / "go", tmp_path / "first.log"
    with open(log, "w") as fh:
        first = subprocess.Popen([sys.executable, str(tmp_path / "racer.py"), str(tmp_path / "run.json"),
                                  str(reached), str(go)], cwd=REPO, env=child_env(), stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for(reached, first, log)
        # the first process in the middle of a checkpoint write would have this temporary file
        partial = run_dir / "checkpoints" / ".last.pt.inflight.tmp"
        partial.write_bytes(b"half a checkpoint")
        assert holder(run_dir) == f"process {first.pid} on host {socket.gethostname()} (since " + \
            json.loads((run_dir / ".lock").read_text())["since"] + ")"
        second = subprocess.run([sys.executable, "-m", "fgra_core.train", "--config", str(tmp_path / "run.yaml"),
                                 "--no-progress"], cwd=REPO, env=child_env(), capture_output=True, text=True,
                                timeout=WAIT_S)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"error: run folder {run_dir} is in use by process {first.pid} on host {socket.gethostname()} (since ")
        assert lines[0].endswith(f"(lock file {run_dir / '.lock'}); wait for it to end, or give this request "
                                 "another run_dir")
        assert partial.read_bytes() == b"half a checkpoint"
        partial.unlink()
        go.write_text("go")
        assert first.wait(timeout=WAIT_S) == 0, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert epochs_of(run_dir) == [1, 2, 3] and run_record.read_finished(run_dir) is not None
    assert holder(run_dir) is None and (run_dir / ".lock").read_bytes() == b""


def test_a_run_folder_held_in_this_process_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    with hold_run(run_dir):
        with pytest.raises(RunLockedError) as info:
            run(tiny_run(run_dir), show_progress=False)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"run folder {run_dir} is in use by process {os.getpid()} on host "
                                                f"{socket.gethostname()} (since ")
    assert {p.name for p in run_dir.iterdir()} == {".lock"}  # nothing else written


STUDY_RACER = textwrap.dedent('''
    """Run the study plan of argv[1] in project folder argv[2]; every epoch trained is logged to argv[3]."""
    import json, os, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from fgra_core import study as st
    from fgra_core.study.notebook_params import build_config
    from fgra_core.train import run

    log = Path(sys.argv[3])

    def run_fn(spec):
        def note(record):
            with open(log, "a") as fh:
                fh.write(json.dumps({"pid": os.getpid(), "run": spec.run_id, "epoch": record["epoch"]}) + "\\n")
        run(build_config(spec.params), show_progress=False, on_epoch_end=note)

    plan = st.load_plan(json.loads(Path(sys.argv[1]).read_text()))
    study = st.Study(plan, project_dir=sys.argv[2], run_fn=run_fn, show_progress=False,
                     aggregate_fn=lambda *a: None, notebooks_dir=Path(sys.argv[2]) / "none")
    report = study.run(aggregates=False)
    print(json.dumps({"finished": report.finished, "skipped": report.skipped, "failed": report.failed}))
''')


@pytest.mark.slow
def test_two_studies_started_at_once_on_one_folder_compute_each_run_once(tmp_path):
    plan = study_plan(variants=(3, 6, 8))
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "racer.py").write_text(STUDY_RACER)
    project, log = tmp_path / "project", tmp_path / "epochs.log"
    procs = []
    for i in range(2):
        out = open(tmp_path / f"study{i}.log", "w")
        procs.append((subprocess.Popen([sys.executable, str(tmp_path / "racer.py"), str(tmp_path / "plan.json"),
                                        str(project), str(log)], cwd=REPO, env=child_env(), stdout=out,
                                       stderr=subprocess.STDOUT, text=True), out))
    reports = []
    try:
        for proc, out in procs:
            assert proc.wait(timeout=WAIT_S) == 0, Path(out.name).read_text()[-3000:]
            out.close()
            reports.append(json.loads(Path(out.name).read_text().strip().splitlines()[-1]))
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    trained = [json.loads(x) for x in log.read_text().splitlines()]
    run_ids = [s.run_id for s in st.Study(st.load_plan(plan), project_dir=project, run_fn=lambda s: None).runs]
    assert len(run_ids) == 3
    assert sorted((t["run"], t["epoch"]) for t in trained) == sorted((r, 1) for r in run_ids)  # each once
    for rep in reports:
        assert not rep["failed"] and sorted(rep["finished"] + rep["skipped"]) == sorted(run_ids)
    runs_dir = project / "results" / "runs"
    for r in run_ids:
        assert epochs_of(runs_dir / r) == [1] and st.is_finished(runs_dir / r)
    manifest = json.loads((runs_dir / "_study" / "faults" / "manifest.json").read_text())
    assert [m["state"] for m in manifest["runs"]] == ["finished"] * 3


def test_a_study_waits_for_a_run_held_elsewhere_and_does_not_record_it_as_failed(tmp_path):
    """A run another process holds is neither computed again nor marked failed: the study waits
    for it and takes what its holder left."""
    import threading

    plan = study_plan(variants=(3,))
    calls = []
    study = st.Study(st.load_plan(plan), project_dir=tmp_path, run_fn=lambda s: calls.append(s.run_id),
                     show_progress=False, aggregate_fn=lambda *a: None, notebooks_dir=tmp_path / "none")
    spec = study.runs[0]
    rd = study.run_dir(spec)
    result = {"status": "finished", "config": {}, "metrics": {}}
    lock = hold_run(rd)
    lock.__enter__()

    def finish_elsewhere():
        time.sleep(1.0)
        fio.atomic_write_json(rd / "results.json", result)
        lock.__exit__(None, None, None)

    t = threading.Thread(target=finish_elsewhere)
    t.start()
    report = study.run(aggregates=False)
    t.join()
    assert calls == [] and report.skipped == [spec.run_id] and not report.failed
    assert not (rd / "status.json").exists()


# --------------------------------------------------------------------------- rule 3: divergence


class NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize("what", ["loss", "gradient"])
def test_divergence_at_a_chosen_step_stops_training_there_keeping_the_last_finite_checkpoint(
        tmp_path, monkeypatch, what):
    """Step 1 of epoch 2 (the 3rd step) gets a NaN loss, or a finite loss with NaN gradients."""
    from fgra_core.models.losses import FGRALoss

    real = FGRALoss.forward
    calls = {"n": 0}

    def forward(self, out, pids):
        loss, parts = real(self, out, pids)
        calls["n"] += 1
        if calls["n"] == 3:
            loss = loss * float("nan") if what == "loss" else NanGrad.apply(loss)
        return loss, parts

    monkeypatch.setattr(FGRALoss, "forward", forward)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as info:
        run(tiny_run(run_dir), show_progress=False)
    text = str(info.value)
    last = run_dir / "checkpoints" / "last.pt"
    assert "\n" not in text and text.startswith("training diverged at epoch 2, step 1: ")
    assert text.endswith(f" (run {run_dir}); {last} keeps epoch 1, the last finite one; lower optim.lr or check the data")
    terms = dict(t.split("=") for t in text.split(": ", 1)[1].split(" (run")[0].split(", "))
    assert set(terms) >= {"loss", "gradient norm"} and len(terms) >= 3
    assert (terms["loss"] == "nan") == (what == "loss") and terms["gradient norm"] == "nan"
    assert calls["n"] == 3  # no step after it
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert epochs_of(run_dir) == [1] and not (run_dir / "results.json").exists()


def test_divergence_at_the_first_steps_leaves_no_checkpoint(tmp_path, monkeypatch):
    """A huge learning rate: the first step's update is not finite, the second step stops."""
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"^training diverged at epoch 1, step 2: .*loss=nan.*; "
                                                    r"no checkpoint was written; lower optim\.lr"):
        run(tiny_run(run_dir, optim={"lr": 1e30, "center_lr": 1e30}), show_progress=False)
    assert not (run_dir / "checkpoints" / "last.pt").exists()


# --------------------------------------------------------------------------- rule 4: distributed


@pytest.mark.slow
def test_two_rank_gloo_run_with_fewer_batches_than_ranks_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "ddp"
    cfg = tiny_run(run_dir, train={"epochs": 1}, data={"synthetic": {"num_train_ids": 3}})  # 1 batch, 2 ranks
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fgra_core.train", "--config", str(tmp_path / "ddp.yaml"), "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=WAIT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert errors == ["error: the training set gives 1 batch(es) of train.P x train.K = 3 x 2 per epoch "
                      "(3 identities) for 2 ranks: every rank needs at least one batch; use fewer processes "
                      "(torchrun --nproc_per_node) or a smaller train.P / train.K"], out[-3000:]
    assert "fgra_core/" not in out  # no traceback of the package from any rank
    assert {p.name for p in run_dir.iterdir()} == {".lock"}  # refused before anything was written


RANK_FAILS = textwrap.dedent('''
    """The command line, with rank 1 failing on a bad frame at its first step."""
    import os, sys
    from fgra_core.utils.errors import DatasetError
    from fgra_core.models.losses import FGRALoss

    real = FGRALoss.forward

    def forward(self, out, pids):
        if os.environ.get("RANK") == "1":
            raise DatasetError("frame image /data/x.png is empty (0 bytes); expected an RGB JPEG/PNG file")
        return real(self, out, pids)

    FGRALoss.forward = forward
    from fgra_core.train import main
    raise SystemExit(main(sys.argv[1:]))
''')


@pytest.mark.slow
def test_one_failing_rank_gives_one_error_line(tmp_path):
    """Rank 1 fails alone: its error is the one `error:` line; rank 0, whose collective broke, says
    so in one line instead of a traceback."""
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(tiny_run(tmp_path / "ddp", train={"epochs": 1})))
    (tmp_path / "driver.py").write_text(RANK_FAILS)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "driver.py"), "--config", str(tmp_path / "ddp.yaml"), "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=WAIT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert [ln for ln in out.splitlines() if ln.startswith("error:")] == [
        "error: frame image /data/x.png is empty (0 bytes); expected an RGB JPEG/PNG file"], out[-3000:]
    assert "rank 0 stopped: another rank of this run failed" in out and "fgra_core/" not in out


# --------------------------------------------------------------------------- rule 7: shareable files


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_users_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert fio.current_umask() == mask
        a = fio.atomic_write_json(tmp_path / "a.json", {"x": 1})
        b = fio.atomic_torch_save({"x": torch.zeros(2)}, tmp_path / "b.pt")
        fio.append_jsonl(tmp_path / "c.jsonl", {"x": 1})
    finally:
        os.umask(old)
    for path in (a, b, tmp_path / "c.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_metrics_are_strict_json(tmp_path, finished):
    fio.append_jsonl(tmp_path / "m.jsonl", {"loss": float("nan"), "eval": [float("inf"), -float("inf"), 1.5]})
    fio.atomic_write_json(tmp_path / "r.json", {"mAP": float("nan")})
    assert (tmp_path / "m.jsonl").read_text() == '{"eval": [null, null, 1.5], "loss": null}\n'

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    assert json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse) == {"mAP": None}
    _, run_dir, _ = finished
    for name in ("metrics.jsonl", "results.json"):
        for line in [(run_dir / name).read_text()] if name.endswith(".json") else \
                (run_dir / name).read_text().splitlines():
            json.loads(line, parse_constant=refuse)
    assert stat.S_IMODE((run_dir / "results.json").stat().st_mode) == 0o666 & ~fio.current_umask()
    assert not temp_files(run_dir) and math.isfinite(json.loads((run_dir / "results.json").read_text())["metrics"]["mAP"])
