"""A run folder is what its name says: checked for every run of a plan before any run starts.

A folder holding a finished record counts as that run only if the run id recomputed from the
record's stored config (:func:`fgra_core.engine.run_ids.recorded_run_id`) is the folder's id. A
copy of another run's folder, or a link to it, gives the other run's id: the study stops before
any run with one line naming both ids. A record without a complete config (written by hand or
by another tool) cannot be checked and is taken as it is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from fgra_core.engine.run_ids import recorded_run_id
from fgra_core.study.plan import RunSpec, StudyError
from fgra_core.study.state import read_json


def check_run_folders(runs: Iterable[RunSpec], run_dir: Callable[[RunSpec], Path]) -> None:
    for spec in runs:
        folder = run_dir(spec)
        result = read_json(folder / "results.json")
        if not result or result.get("status") != "finished":
            continue
        recorded = recorded_run_id(result)
        if recorded is not None and recorded != spec.run_id:
            link = f" (a link to {folder.resolve()})" if folder.is_symlink() else ""
            raise StudyError(f"run folder {folder}{link} holds the finished record of run {recorded}, not of run "
                             f"{spec.run_id} (its name): its results.json was copied or linked from another run; "
                             "remove the folder (or put that run's own folder back) and start the study again")
