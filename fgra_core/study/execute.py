"""Executing a study's work: one run (``train_evaluate`` through papermill), several head-regime
runs in one notebook (``train_evaluate_batch``), an aggregate notebook, a multi-GPU run through
``torchrun``; units of runs for the executors.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from fgra_core.study.notebook_params import build_config
from fgra_core.study.plan import RunSpec
from fgra_core.study.resources import BATCH_NOTEBOOK, RUN_NOTEBOOK
from fgra_core.study.state import HELD, is_finished, now, read_json, record_failure
from fgra_core.utils.errors import RunLockedError
from fgra_core.utils.io import atomic_write_json
from fgra_core.utils.locks import holder

# the kernel's own start-up log (e.g. ipykernel's note on unencrypted local TCP) is noise here;
# errors of the notebook's cells reach the runner through papermill
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


# --------------------------------------------------------------------------- execution

def execute_in(input_path: Path, output_path: Path, *, project_dir: Path, **kwargs) -> None:
    """``papermill.execute_notebook`` with the kernel started in ``project_dir``.

    papermill's own ``cwd=`` changes the working directory of the whole process for the length of
    the execution, and restores it on exit; with executions side by side (threads), one restoring
    it while another starts its kernel, that kernel starts in the wrong folder and the run's
    relative paths (a trunk file, the runs folder) name nothing. Here the process's working
    directory is never touched: the kernel is given its folder (nbclient's ``resources``)."""
    import papermill as pm

    pm.execute_notebook(str(input_path), str(output_path), kernel_name="python3", progress_bar=False,
                        extra_arguments=KERNEL_ARGS, resources={"metadata": {"path": str(project_dir)}},
                        **kwargs)


def papermill_run(spec: RunSpec, *, notebooks_dir: Path, project_dir: Path) -> None:
    """Execute ``train_evaluate`` for one run; the executed notebook and a log go to its folder."""
    run_dir = Path(spec.params["run_dir"])
    if not run_dir.is_absolute():
        run_dir = project_dir / run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "run.log", "a", encoding="utf-8") as log:
        log.write(f"--- {now()} run {spec.run_id}\n")
        log.flush()
        execute_in(notebooks_dir / f"{RUN_NOTEBOOK}.ipynb", run_dir / f"{RUN_NOTEBOOK}.ipynb",
                   project_dir=project_dir, parameters=spec.params, stdout_file=log, stderr_file=log)


def papermill_batch(specs: list[RunSpec], *, notebooks_dir: Path, project_dir: Path, num_threads: int = 0,
                    show_progress: bool = False) -> None:
    """Execute ``train_evaluate_batch`` for several runs; the executed notebook goes to the first run's
    folder, a log line to each run's ``run.log``."""
    dirs = []
    for spec in specs:
        run_dir = Path(spec.params["run_dir"])
        run_dir = run_dir if run_dir.is_absolute() else project_dir / run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "run.log", "a", encoding="utf-8") as log:
            log.write(f"--- {now()} run {spec.run_id} (in a batch of {len(specs)} with {specs[0].run_id})\n")
        dirs.append(run_dir)
    runs = [{"config": s.params["config"], "overrides": s.params["overrides"], "run_dir": s.params["run_dir"]}
            for s in specs]
    with open(dirs[0] / "batch.log", "a", encoding="utf-8") as log:
        execute_in(notebooks_dir / f"{BATCH_NOTEBOOK}.ipynb", dirs[0] / f"{BATCH_NOTEBOOK}.ipynb",
                   project_dir=project_dir, stdout_file=log, stderr_file=log,
                   parameters={"runs": runs, "show_progress": bool(show_progress), "num_threads": int(num_threads)})


def batch_key(spec: RunSpec) -> tuple | None:
    """Runs with the same key share their trunk feature cache (dataset, data settings, trunk, input
    size); ``None`` for runs that are not in the head regime (executed one per notebook)."""
    s = spec.settings
    cfg = build_config({"config": spec.params["config"], "overrides": s})
    if cfg.train.regime != "head":
        return None
    return (cfg.data.dataset, str(cfg.data.root), cfg.data.split_id, json.dumps(dataclasses_asdict(cfg.data.synthetic), sort_keys=True),
            cfg.model.backbone, cfg.model.weights, cfg.model.last_stride, cfg.data.height, cfg.data.width)


def dataclasses_asdict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)


def units_of(pending: list[RunSpec], batch: int, jobs: int) -> list[list[RunSpec]]:
    """The notebook executions of the pending runs: head-regime runs sharing a feature cache in groups
    of at most ``batch`` (at least ``jobs`` groups when there are enough runs), every other run alone."""
    if batch <= 1:
        return [[s] for s in pending]
    keyed: dict[tuple, list[RunSpec]] = {}
    units: list[list[RunSpec]] = []
    for spec in pending:
        key = batch_key(spec)
        if key is None:
            units.append([spec])
        else:
            keyed.setdefault(key, []).append(spec)
    total = sum(len(v) for v in keyed.values())
    per_key: list[list[list[RunSpec]]] = []
    for specs in keyed.values():
        # split so that the jobs stay busy: about total/jobs runs per unit, at most `batch`
        size = max(1, min(batch, -(-total // max(1, jobs)), len(specs)))
        n = -(-len(specs) // size)
        size = -(-len(specs) // n)
        per_key.append([specs[i:i + size] for i in range(0, len(specs), size)])
    # round robin over the keys: units side by side build different feature caches instead of one
    # waiting for the other's (a cache is built once, under a lock)
    batched = [u for i in range(max((len(k) for k in per_key), default=0)) for k in per_key if i < len(k) for u in [k[i]]]
    return batched + units   # the cheap batches first: their results come in minutes


def papermill_aggregate(name: str, params: dict, *, notebooks_dir: Path, out_path: Path, project_dir: Path) -> None:

    out_path.parent.mkdir(parents=True, exist_ok=True)
    execute_in(notebooks_dir / f"{name}.ipynb", out_path, project_dir=project_dir, parameters=params)


def execute_one(spec: RunSpec, *, run_fn: Callable[[RunSpec], Any], project_dir: str | os.PathLike) -> str | None:
    """Run one pending run with ``run_fn``; ``None`` when it finished, else the error (recorded in
    its status.json). Top-level, so that executors can run it in other processes or Slurm jobs."""
    rd = Path(spec.params["run_dir"])
    rd = rd if rd.is_absolute() else Path(project_dir) / rd
    t0 = time.time()
    if holder(rd) is not None:
        return HELD  # another process (another study) is computing it
    try:
        run_fn(spec)
        if not is_finished(rd):
            raise RuntimeError(f"the run ended without a finished results.json in {rd}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failed run is recorded and the study goes on
        if isinstance(exc, RunLockedError) or getattr(exc, "ename", None) == RunLockedError.__name__:
            return HELD  # its holder records it, not this study
        return record_failure(rd, spec, exc, time.time() - t0)["error"]
    atomic_write_json(rd / "status.json", {"status": "finished", "run_id": spec.run_id,
                                           "finished_at": now(), "seconds": round(time.time() - t0, 1),
                                           "groups": spec.groups, "params": spec.params})
    return None


def execute_unit(unit: list[RunSpec], *, run_fn: Callable[[RunSpec], Any],
                 batch_fn: Callable[[list[RunSpec]], Any] | None, project_dir: str | os.PathLike
                 ) -> list[tuple[RunSpec, str | None]]:
    """One notebook execution: a single run (:func:`execute_one`), or several head-regime runs together
    through ``batch_fn``; ``[(spec, None | error)]``. Top-level, so that executors can run it elsewhere."""
    if len(unit) == 1 or batch_fn is None:
        return [(spec, execute_one(spec, run_fn=run_fn, project_dir=project_dir)) for spec in unit]

    def run_dir(spec: RunSpec) -> Path:
        rd = Path(spec.params["run_dir"])
        return rd if rd.is_absolute() else Path(project_dir) / rd

    t0 = time.time()
    exc: BaseException | None = None
    try:
        batch_fn(unit)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # the runs' own status files say which failed
        exc = e
    out = []
    for spec in unit:
        rd = run_dir(spec)
        if is_finished(rd):
            atomic_write_json(rd / "status.json", {"status": "finished", "run_id": spec.run_id, "finished_at": now(),
                                                   "seconds": round((time.time() - t0) / len(unit), 1),
                                                   "groups": spec.groups, "params": spec.params})
            out.append((spec, None))
            continue
        st = read_json(rd / "status.json") or {}
        if "RunLockedError" in str(st.get("error", "")) or holder(rd) is not None:
            out.append((spec, HELD))   # another process is computing it
        elif st.get("status") == "failed" and st.get("error"):
            out.append((spec, st["error"]))
        else:
            err = exc or RuntimeError(f"the run ended without a finished results.json in {rd}")
            out.append((spec, record_failure(rd, spec, err, time.time() - t0)["error"]))
    return out


def torchrun_then(spec: RunSpec, *, nproc: int, project_dir: str | os.PathLike, run_fn: Callable[[RunSpec], Any]) -> None:
    """A multi-GPU run: train it with ``torchrun --nproc_per_node nproc`` (DistributedDataParallel),
    then ``run_fn`` (the notebook), which finds the run finished (the same settings and run folder),
    neither trains nor evaluates it again, and draws the run's figures from its records."""
    import subprocess

    from fgra_core.config.schema import dump_config
    from fgra_core.utils.io import atomic_write_text

    cfg = build_config(spec.params)
    rd = Path(cfg.run_dir) if Path(cfg.run_dir).is_absolute() else Path(project_dir) / cfg.run_dir
    rd.mkdir(parents=True, exist_ok=True)
    launch = rd / "torchrun_config.yaml"
    atomic_write_text(launch, dump_config(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
           "-m", "fgra_core.train", "--config", str(launch), "--no-progress"]
    with open(rd / "run.log", "a", encoding="utf-8") as log:
        log.write(f"--- {now()} {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=str(project_dir), stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun training of {spec.run_id} ended with status {proc.returncode} (log: {rd / 'run.log'})")
    run_fn(spec)
