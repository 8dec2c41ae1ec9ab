"""Several runs in one process: how the study executes a group of cheap runs (the head regime).

A head-regime run takes seconds once the trunk maps are cached, so starting a notebook kernel per
run would cost more than the run. ``run_batch(runs)`` trains and evaluates each run of a list (the
``train_evaluate`` notebook's parameters, as the study builds them) in turn, in this process, so
that the cached maps are read once; a run that fails gets ``status.json`` with its error and the
next run goes on. ``notebooks/train_evaluate_batch`` executes it through papermill.
"""
from __future__ import annotations

import datetime as _dt
import traceback
from pathlib import Path

from fgra_core.utils.io import atomic_write_json

TRACEBACK_TAIL = 40


def run_batch(runs: list[dict], *, show_progress: bool = True) -> dict[str, str | None]:
    """``{run_dir: None | error}`` for every run of ``runs`` (finished runs are returned as they are)."""
    from tqdm.auto import tqdm

    from fgra_core.study.notebook_params import build_config
    from fgra_core.train import run

    errors: dict[str, str | None] = {}
    for params in tqdm(runs, desc="runs", unit="run", disable=not show_progress):
        run_dir = str(params.get("run_dir"))
        try:
            cfg = build_config({k: v for k, v in params.items() if k in ("config", "overrides", "run_dir")})
            run(cfg, show_progress=False)
            errors[run_dir] = None
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # recorded; the other runs go on
            errors[run_dir] = f"{type(exc).__name__}: {exc}"
            if type(exc).__name__ == "RunLockedError":
                continue   # another process is computing it and writes its status
            tail = [ln for ln in traceback.format_exc().splitlines() if ln.strip()][-TRACEBACK_TAIL:]
            atomic_write_json(Path(run_dir) / "status.json", {
                "status": "failed", "error": errors[run_dir], "traceback_tail": tail,
                "failed_at": _dt.datetime.now().isoformat(timespec="seconds"), "params": params})
    return errors
