"""The state of a run folder as the study sees it: finished or not, and the record of a failure
(``status.json``: the error in one line and the tail of its traceback).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import traceback
from pathlib import Path

from fgra_core.study.plan import RunSpec
from fgra_core.utils.io import atomic_write_json

TRACEBACK_TAIL = 40
HELD = "held by another process"  # execute_one's answer for a run another process holds


# --------------------------------------------------------------------------- run states


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(run_dir: str | os.PathLike) -> bool:
    result = read_json(Path(run_dir) / "results.json")
    return bool(result) and result.get("status") == "finished"


def now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_TAIL) -> list[str]:
    """The last ``lines`` lines of an exception's traceback (papermill's cell traceback when the
    notebook raised), without terminal colours."""
    tb = getattr(exc, "traceback", None)   # PapermillExecutionError: the kernel's traceback lines
    if tb:
        text = "\n".join(_ANSI.sub("", str(t)) for t in tb)
    else:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    out = [ln for ln in text.splitlines() if ln.strip()]
    return out[-lines:]


def error_summary(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {_ANSI.sub('', str(evalue))}"
    return f"{type(exc).__name__}: {exc}"


def record_failure(run_dir: Path, spec: RunSpec, exc: BaseException, seconds: float) -> dict:
    previous = read_json(run_dir / "status.json") or {}
    status = {
        "status": "failed",
        "run_id": spec.run_id,
        "error": error_summary(exc),
        "traceback_tail": traceback_tail(exc),
        "failed_at": now(),
        "seconds": round(seconds, 1),
        "attempts": int(previous.get("attempts", 0)) + 1,
        "groups": spec.groups,
        "params": spec.params,
    }
    atomic_write_json(run_dir / "status.json", status)
    return status
