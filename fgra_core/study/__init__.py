"""The study: plans (``plans/*.yaml``) expanded to runs, each executed through papermill,
idempotent and resumable; ``python -m fgra_core.study --plan NAME``.

``plan`` (a plan's keys, its datasets and groups) -> ``expand`` (its runs) -> ``runner``
(:class:`Study`: the runs through an executor, then the aggregate notebooks) with ``execute``
(papermill, torchrun, units of runs), ``state`` (a run folder as the study sees it), ``cli``
(the command line), ``estimate``, ``executors``, ``plan_checks``, ``notebook_params`` and
``batch`` beside them.

May import: every other room (it is the top of the house).
"""
from fgra_core.study.cli import main
from fgra_core.study.execute import torchrun_then, units_of
from fgra_core.study.expand import expand_plan, run_id_for
from fgra_core.study.plan import AGGREGATE_DIR, Plan, RunSpec, StudyError, dataset_roots, load_plan, plan_path
from fgra_core.study.runner import Study, StudyReport
from fgra_core.study.state import is_finished

__all__ = ["AGGREGATE_DIR", "Plan", "RunSpec", "Study", "StudyError", "StudyReport", "dataset_roots", "expand_plan",
           "is_finished", "load_plan", "main", "plan_path", "run_id_for", "torchrun_then", "units_of"]
