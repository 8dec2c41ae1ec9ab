"""Executors of a study: local threads, one run per GPU (a mocked device list), Slurm through
submitit (its local executor: real pickling, real job processes, no Slurm), and the one-line
errors of bad dispatch options."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from test_study import fake_result, tiny_plan

from fgra_core import study as st
from fgra_core.study import executors as ex
from fgra_core.utils.errors import FGRAError


# top-level functions: the process-based executors pickle them
def where_am_i(item):
    time.sleep(0.2)
    return os.environ.get("CUDA_VISIBLE_DEVICES"), os.getpid(), item * 10


def fake_run(spec):
    """A run as the engine records it, without training (picklable: submitit ships it to a job)."""
    run_dir = Path(spec.params["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps({**fake_result(spec.params), "job_pid": os.getpid(),
                                                      "job_id": os.environ.get("SUBMITIT_JOB_ID")}))


# --------------------------------------------------------------------------- local and per-GPU


def test_local_executor_runs_every_item():
    assert sorted(r for _, r in ex.LocalExecutor(1).map(lambda x: x * x, [1, 2, 3])) == [1, 4, 9]
    got = dict(ex.LocalExecutor(3).map(lambda x: x + 1, range(6)))
    assert got == {i: i + 1 for i in range(6)}


def test_gpu_list_against_a_mocked_device_count(monkeypatch):
    assert ex.parse_gpus("0,1,3", device_count=4) == [0, 1, 3]
    monkeypatch.setattr(ex, "cuda_device_count", lambda: 2)
    assert ex.parse_gpus("1,0") == [1, 0]
    with pytest.raises(ex.ExecutorError) as err:
        ex.parse_gpus("0,2,5")
    assert str(err.value) == ("--gpus 0,2,5: GPU 2, 5 does not exist on this machine "
                              "(torch.cuda.device_count() = 2: indices 0..1)")
    for bad in ("0,,1", "a", "0,0", "-1"):
        with pytest.raises(ex.ExecutorError, match="--gpus"):
            ex.parse_gpus(bad)
    monkeypatch.setattr(ex, "cuda_device_count", lambda: 0)
    with pytest.raises(ex.ExecutorError, match=r"no CUDA GPU is visible"):
        ex.parse_gpus("0")


def test_one_run_per_gpu_each_in_its_own_process(monkeypatch):
    monkeypatch.setattr(ex, "cuda_device_count", lambda: 8)
    executor = ex.make_executor("local", gpus="3,5")
    assert isinstance(executor, ex.GpuExecutor) and executor.gpus == [3, 5]
    got = ex.run_items(executor, where_am_i, [1, 2, 3, 4, 5])
    assert sorted(item for item, _ in got) == [1, 2, 3, 4, 5]
    assert all(res[2] == item * 10 for item, res in got)
    devices = {res[0] for _, res in got}
    assert devices == {"3", "5"}                                  # each worker sees its GPU alone
    pids = {}
    for _, (dev, pid, _) in got:
        pids.setdefault(dev, set()).add(pid)
    assert all(len(p) == 1 for p in pids.values())                # one worker process per GPU
    assert pids["3"] != pids["5"] and os.getpid() not in pids["3"] | pids["5"]
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != "3"          # this process is not pinned


# --------------------------------------------------------------------------- Slurm via submitit


def test_slurm_options_become_submitit_parameters(monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr(ex.shutil, "which", lambda name: f"/usr/bin/{name}")   # a machine with Slurm
    e = ex.make_executor("slurm", slurm={"partition": "gpu", "time": "2-00:00:00", "gpus_per_run": 4,
                                         "max_parallel": 16, "account": "re-id"}, folder="/tmp/unused", key=str)
    assert e.key is str and e.options.max_parallel == 16 and e.options.gpus_per_run == 4
    p = e.options.parameters()
    assert p["slurm_partition"] == "gpu" and p["timeout_min"] == 2 * 24 * 60
    assert p["gpus_per_node"] == 4 and p["tasks_per_node"] == 1 and p["slurm_array_parallelism"] == 16
    assert p["slurm_additional_parameters"] == {"account": "re-id"}
    assert ex.parse_time("90") == 90 and ex.parse_time("01:30:00") == 90 and ex.parse_time("1-02") == 26 * 60
    assert ex.parse_time("00:10") == 10
    with pytest.raises(ex.ExecutorError, match="--time expects"):
        ex.parse_time("soon")


@pytest.mark.slow
def test_submitit_local_executor_runs_the_study_and_a_resubmission_only_sends_what_is_missing(tmp_path):
    pytest.importorskip("submitit")
    import cloudpickle

    for module in (__name__, "test_study"):   # the job processes cannot import the test files: ship them
        cloudpickle.register_pickle_by_value(sys.modules[module])
    folder = tmp_path / "jobs"
    submitted = []

    def study(runner):
        executor = ex.SubmititExecutor(folder, ex.SlurmOptions(time_min=5, gpus_per_run=0, cpus_per_run=1,
                                                               max_parallel=2), cluster="local", poll_s=0.1,
                                       on_submit=lambda unit, job: submitted.append((unit[0].run_id, job)))
        return st.Study(st.load_plan(tiny_plan()), project_dir=tmp_path, run_fn=runner, show_progress=False,
                        aggregate_fn=lambda *a: None, notebooks_dir=tmp_path / "none", executor=executor)

    first = study(fake_run)
    victim = first.runs[2]
    report = first.run(aggregates=False)
    assert report.ok and sorted(report.finished) == sorted(s.run_id for s in first.runs)
    assert len(submitted) == len(first.runs)
    for spec in first.runs:
        rec = json.loads((first.run_dir(spec) / "results.json").read_text())
        assert rec["job_pid"] != os.getpid()          # ran in a job process, after submitit's pickling
        assert json.loads((first.run_dir(spec) / "status.json").read_text())["status"] == "finished"
    assert len(list(folder.glob("*_submitted.pkl"))) == len(first.runs)

    # one run lost (deleted): a resubmission sends only that one
    (first.run_dir(victim) / "results.json").unlink()
    submitted.clear()
    report2 = study(fake_run).run(aggregates=False)
    assert [s for s, _ in submitted] == [victim.run_id]
    assert report2.finished == [victim.run_id] and len(report2.skipped) == len(first.runs) - 1


class FakeJob:
    def __init__(self, job_id, fn=None, item=None, result=None):
        self.job_id, self.fn, self.item, self._result = job_id, fn, item, result

    def done(self):
        return True

    def result(self):
        return self.fn(self.item) if self.fn else self._result


class FakeAutoExecutor:
    def __init__(self, log):
        self.log = log

    def map_array(self, fn, items):
        self.log.extend(items)
        return [FakeJob(f"9_{i}", fn, item) for i, item in enumerate(items)]


def test_jobs_still_out_are_waited_for_not_submitted_again(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    e = ex.SubmititExecutor(tmp_path, cluster="slurm", key=str, poll_s=0.01,
                            on_error=lambda item, exc: f"{item} failed: {exc}")
    e._record({"a": "111", "b": "222", "d": "444"})
    states = {"111": "RUNNING", "222": "COMPLETED", "444": "PENDING"}
    monkeypatch.setattr(e, "_job_state", lambda job_id: states[job_id])
    monkeypatch.setattr(e, "_attach", lambda job_id: FakeJob(job_id, result=f"from job {job_id}"))
    submitted = []
    monkeypatch.setattr(e, "executor", lambda: FakeAutoExecutor(submitted))

    def upper(item):
        if item == "c":
            raise RuntimeError("node failure")
        return item.upper()

    got = dict(e.map(upper, ["a", "b", "c", "d"]))
    assert submitted == ["b", "c"]                 # a and d are still out on the cluster
    assert got == {"a": "from job 111", "d": "from job 444", "b": "B", "c": "c failed: node failure"}
    assert e._ledger() == {"a": "111", "b": "9_0", "c": "9_1", "d": "444"}


def test_multi_gpu_runs_train_through_torchrun_then_run_the_notebook(tmp_path, monkeypatch):
    import subprocess

    spec = st.expand_plan(st.load_plan(tiny_plan()), runs_dir=tmp_path / "runs", show_progress=False)[0]
    calls = []

    def fake_torchrun(cmd, cwd, stdout, stderr):
        calls.append(("torchrun", cmd, cwd))
        fake_run(spec)                       # what the ranks leave behind: a finished run
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_torchrun)
    st.torchrun_then(spec, nproc=4, project_dir=tmp_path, run_fn=lambda s: calls.append(("notebook", s.run_id)))
    (_, cmd, cwd), notebook = calls
    launch = tmp_path / "runs" / spec.run_id / "torchrun_config.yaml"
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m", "fgra_core.train",
                       "--config", str(launch), "--no-progress"]
    assert cwd == str(tmp_path) and notebook == ("notebook", spec.run_id)
    from fgra_core.config.schema import load_config
    from fgra_core.study.notebook_params import build_config, settings_hash

    assert settings_hash(load_config(launch)) == spec.hash == settings_hash(build_config(spec.params))

    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 3))
    with pytest.raises(RuntimeError, match="ended with status 3"):
        st.torchrun_then(spec, nproc=2, project_dir=tmp_path, run_fn=lambda s: None)


# --------------------------------------------------------------------------- bad input


def one_line_error(capsys, argv, tmp_path) -> str:
    rc = st.main(["--plan", "quick", "--project-dir", str(tmp_path), "--no-progress", *argv])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not (tmp_path / "results").exists()          # nothing submitted, nothing written
    return lines[0]


def test_unknown_executor(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:   # a closed set: argparse's choices refuse it before anything runs
        st.main(["--plan", "smoke", "--project-dir", str(tmp_path), "--executor", "pbs"])
    assert exit_.value.code == 2
    assert "argument --executor: invalid choice: 'pbs' (choose from local, slurm)" in \
        capsys.readouterr().err.replace("'local', 'slurm'", "local, slurm")
    with pytest.raises(FGRAError, match="--executor 'pbs' is not one of local, slurm"):   # the Python API
        ex.make_executor("pbs")


def test_gpu_that_does_not_exist(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "cuda_device_count", lambda: 2)
    assert one_line_error(capsys, ["--gpus", "0,1,2"], tmp_path) == (
        "error: --gpus 0,1,2: GPU 2 does not exist on this machine (torch.cuda.device_count() = 2: indices 0..1)")


def test_slurm_options_without_submitit(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)   # import submitit -> ImportError
    msg = one_line_error(capsys, ["--executor", "slurm", "--partition", "gpu"], tmp_path)
    assert msg == ("error: --executor slurm --partition needs the submitit package, which is not installed "
                   "(pip install 'fgra-repro[slurm]', or pip install submitit)")
    msg = one_line_error(capsys, ["--time", "10:00:00"], tmp_path)
    assert msg.startswith("error: --time needs the submitit package")


def test_slurm_option_without_the_slurm_executor(capsys, tmp_path):
    pytest.importorskip("submitit")
    assert one_line_error(capsys, ["--max-parallel", "4"], tmp_path) == \
        "error: --max-parallel: Slurm option(s) given without --executor slurm"
    assert one_line_error(capsys, ["--executor", "slurm", "--gpus", "0"], tmp_path) == \
        "error: --gpus picks GPUs of this machine; with --executor slurm use --gpus-per-run"
