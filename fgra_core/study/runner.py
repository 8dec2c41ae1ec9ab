"""The study runner: a plan (YAML) -> runs of ``notebooks/train_evaluate`` -> aggregate notebooks.

``python -m fgra_core.study --plan quick|paper|mars-mini|smoke|FILE`` expands the plan into runs
(datasets x splits x each group's settings), executes ``train_evaluate`` with papermill for every
run into ``results/runs/<run_id>/``, then executes the aggregate notebooks (``ablation``,
``sweeps``, ``paper_vs_ours``, ``response_maps``), which write ``results/<plan>/*.csv|md`` and
``figures/<plan>/*.png|pdf``. The manifest of the study (its runs and their groups) and the
executed aggregate notebooks are kept in ``results/runs/_study/<plan>/``.

Idempotent: a run whose ``results.json`` says ``finished`` is skipped; a failed run gets a
``status.json`` with the error and the tail of its traceback, and the study goes on; running the
study again completes what is missing and leaves finished runs untouched.

Plan format (see ``fgra_core/study/plans/*.yaml``)::

    name: quick
    config: quick_synthetic          # base run config (file, or name in fgra_core/config/configs/)
    base: {train.epochs: 8}          # dotted settings for every run
    datasets:
      synthetic: {splits: [0]}       # per dataset: splits, and optionally config, root, env, set
    groups:
      ablation: {vary: {model.variant: [1, 2, 3, 4, 5, 6, 7, 8]}}
      misalignment:                  # every combination of the listed values
        datasets: [synthetic]
        vary: {data.synthetic.misalignment: [0.0, 1.0], model.variant: [3, 8]}
    aggregates: [ablation, sweeps, paper_vs_ours, response_maps]

Group names tell the aggregate notebooks what a group is: ``ablation`` (Table 2, and Table 1
from its variant-8 runs), ``seq_len`` and ``num_regions`` (Fig. 4), ``misalignment``.

Dataset folders: ``--data-root NAME=PATH`` (repeatable), else the dataset's environment
variable (``env`` in the plan; by default ``FGRA_<NAME>_ROOT``: ``FGRA_MARS_ROOT``,
``FGRA_ILIDSVID_ROOT``, ``FGRA_PRID2011_ROOT``), else the plan's ``root``. Relative paths are relative to the project folder (``--project-dir``, the
current folder by default), in which every notebook runs.
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fgra_core.study import plan_checks, resources
from fgra_core.study.execute import (
    execute_one,
    execute_unit,
    papermill_aggregate,
    papermill_batch,
    papermill_run,
    units_of,
)
from fgra_core.study.expand import expand_plan
from fgra_core.study.folder_checks import check_run_folders
from fgra_core.study.notebook_params import build_config
from fgra_core.study.plan import (
    AGGREGATE_DIR,
    DEFAULT_AGGREGATES,
    PLANS_DIR,
    TRUNK_GROUP,
    Plan,
    RunSpec,
    _build_dataset,
    dataset_roots,
    load_plan,
)
from fgra_core.study.state import HELD, error_summary, is_finished, now, read_json, traceback_tail
from fgra_core.utils.io import atomic_write_json, check_writable_folder
from fgra_core.utils.locks import hold_manifest, holder, wait_for_run


@dataclass
class StudyReport:
    plan: str
    finished: list[str] = field(default_factory=list)   # computed in this call
    skipped: list[str] = field(default_factory=list)    # already finished before
    failed: dict[str, str] = field(default_factory=dict)
    aggregates: dict[str, str] = field(default_factory=dict)  # name -> "done" | "skipped: ..." | "failed: ..."
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not any(v.startswith("failed") for v in self.aggregates.values())

    def summary(self) -> str:
        lines = [f"study {self.plan}: {len(self.finished)} run(s) computed, {len(self.skipped)} already finished, "
                 f"{len(self.failed)} failed, {self.seconds:.0f} s"]
        for run_id, err in self.failed.items():
            lines.append(f"  FAILED {run_id}: {err}")
        for name, state in self.aggregates.items():
            lines.append(f"  {name}: {state}")
        return "\n".join(lines)


class Study:
    """Runs a plan. ``run_fn(spec)`` executes one run (default: papermill on ``train_evaluate``);
    ``aggregate_fn(name, params, out_path)`` executes one aggregate notebook."""

    def __init__(self, plan: Plan | str | os.PathLike, *, project_dir: str | os.PathLike = ".",
                 results_dir: str | os.PathLike | None = None, figures_dir: str | os.PathLike | None = None,
                 runs_dir: str | os.PathLike | None = None, notebooks_dir: str | os.PathLike | None = None,
                 paper_csv: str | os.PathLike | None = None, data_roots: dict[str, str] | None = None,
                 extra: dict | None = None, environ: dict | None = None, smoke: bool = False,
                 num_threads: int = 0, response_maps: int = 1, show_progress: bool = True,
                 jobs: int | None = None, run_fn: Callable[[RunSpec], Any] | None = None,
                 aggregate_fn: Callable[[str, dict, Path], Any] | None = None,
                 batch_fn: Callable[[list[RunSpec]], Any] | None = None, executor=None):
        self.plan = plan if isinstance(plan, Plan) else load_plan(plan)
        self.project_dir = Path(project_dir).resolve()
        p = self.project_dir
        self.results_root = Path(results_dir) if results_dir else p / "results"
        self.runs_dir = Path(runs_dir) if runs_dir else self.results_root / "runs"
        self.results_dir = self.results_root / self.plan.name
        self.figures_dir = (Path(figures_dir) if figures_dir else p / "figures") / self.plan.name
        self.notebooks_dir = Path(notebooks_dir) if notebooks_dir else resources.notebooks_dir()
        self.paper_csv = Path(paper_csv) if paper_csv else resources.paper_csv(p)
        self.show_progress = show_progress
        smoke = bool(smoke or self.plan.smoke)
        self.jobs = max(1, int(jobs if jobs is not None else self.plan.jobs))
        if self.jobs > 1 and not num_threads:
            # runs side by side share the cores: one run per core beats threads inside one run
            num_threads = max(1, (os.cpu_count() or 1) // self.jobs)
        plan_checks.check_plan(self.plan, plans_dir=PLANS_DIR, notebooks_dir=self.notebooks_dir,
                               default_aggregates=DEFAULT_AGGREGATES)
        roots = dataset_roots(self.plan, data_roots, environ, p)
        self.runs = expand_plan(self.plan, runs_dir=self._abs(self.runs_dir), roots=roots, extra=extra,
                                show_progress=show_progress, num_threads=num_threads,
                                response_maps=response_maps, smoke=smoke, project_dir=p)
        # devices, threads and data layouts: once for the whole plan, before the first run
        plan_checks.check_runs(self.runs, project_dir=p, num_threads=num_threads, build_config=build_config,
                               build_dataset=_build_dataset)
        check_run_folders(self.runs, self.run_dir)   # a finished record counts only in its own run's folder
        self.smoke = smoke
        self.num_threads = num_threads
        # partials of top-level functions: picklable, for the executors that run them in other processes
        self.run_fn = run_fn or functools.partial(papermill_run, notebooks_dir=self.notebooks_dir,
                                                  project_dir=self.project_dir)
        # several head-regime runs in one notebook execution, unless runs are executed by a given run_fn
        self.batch_fn = batch_fn or (None if run_fn else functools.partial(
            papermill_batch, notebooks_dir=self.notebooks_dir, project_dir=self.project_dir,
            num_threads=self.num_threads, show_progress=self.show_progress))
        self.executor = executor   # fgra_core.study.executors.Executor; None: LocalExecutor(jobs)
        self.aggregate_fn = aggregate_fn or (lambda name, params, out: papermill_aggregate(
            name, params, notebooks_dir=self.notebooks_dir, out_path=out, project_dir=self.project_dir))

    def _abs(self, path: Path) -> Path:
        return path if path.is_absolute() else self.project_dir / path

    @property
    def manifest_path(self) -> Path:
        """The study's record of its runs and their groups (beside the runs: it names local paths)."""
        return self._abs(self.runs_dir) / AGGREGATE_DIR / self.plan.name / "manifest.json"

    def run_dir(self, spec: RunSpec) -> Path:
        return self._abs(Path(spec.params["run_dir"]))

    def write_manifest(self, states: dict[str, str] | None = None) -> Path:
        states = states or {}
        data = {
            "plan": self.plan.name,
            "plan_source": self.plan.source,
            "description": self.plan.description,
            "written_at": now(),
            "runs_dir": str(self._abs(self.runs_dir)),
            "groups": {g: spec["title"] for g, spec in self.plan.groups.items()},
            "runs": [{**spec.to_json(), "state": states.get(spec.run_id, "pending")} for spec in self.runs],
        }
        with hold_manifest(self.manifest_path, wait=120):  # one writer at a time (studies on one folder)
            return atomic_write_json(self.manifest_path, data)

    def states(self) -> dict[str, str]:
        out = {}
        for spec in self.runs:
            rd = self.run_dir(spec)
            if is_finished(rd):
                out[spec.run_id] = "finished"
            elif holder(rd) is not None:
                out[spec.run_id] = "running"  # held by a process (this study's, or another's)
            else:
                st = read_json(rd / "status.json") or {}
                out[spec.run_id] = st.get("status", "pending")
        return out

    # ----------------------------------------------------------------- runs
    def _execute_one(self, spec: RunSpec) -> str | None:
        """Run one pending run; ``None`` when it finished, else the error (recorded in status.json)."""
        return execute_one(spec, run_fn=self.run_fn, project_dir=self.project_dir)

    def _execute_unit(self, unit: list[RunSpec]) -> list[tuple[RunSpec, str | None]]:
        return execute_unit(unit, run_fn=self.run_fn, batch_fn=self.batch_fn, project_dir=self.project_dir)

    def _execute_trunks(self, pending: list[RunSpec], done) -> list[RunSpec]:
        """The plan's trunk runs first (the other runs load their trunk), ``jobs`` side by side, then
        their trunk files."""
        from fgra_core.engine.trunk_export import export_trunk
        from fgra_core.study.executors import LocalExecutor

        trunks = [spec for spec in pending if TRUNK_GROUP in spec.groups]
        rest = [spec for spec in pending if TRUNK_GROUP not in spec.groups]
        if len(trunks) == 1:
            done(trunks[0], self._execute_one(trunks[0]))
        elif trunks:
            fn = functools.partial(execute_unit, run_fn=self.run_fn, batch_fn=self.batch_fn, project_dir=self.project_dir)
            for _, results in LocalExecutor(self.jobs).map(fn, [[spec] for spec in trunks]):
                for spec, error in results:
                    done(spec, error)
        for spec in self.runs:
            if TRUNK_GROUP in spec.groups and is_finished(self.run_dir(spec)):
                export_trunk(self.run_dir(spec))
        return rest

    def _trunk_key(self, spec: RunSpec) -> Path | None:
        """The run folder of the plan's trunk that a run loads (``None``: it loads none)."""
        if TRUNK_GROUP in spec.groups:
            return self.run_dir(spec).resolve()
        weights = spec.settings.get("model.weights")
        if not isinstance(weights, str) or not weights.endswith(".pt"):
            return None
        return self._abs(Path(weights)).parent.resolve()

    def _staged(self, pending: list[RunSpec], fn):
        """Trunk runs first, ``jobs`` side by side; the head units of each trunk are queued when it is
        done and its trunk file written (:func:`fgra_core.study.staged.map_staged`)."""
        from fgra_core.engine.trunk_export import export_trunk
        from fgra_core.study.staged import map_staged

        waiting = {spec.run_id for spec in pending}
        for spec in self.runs:   # trunks finished by an earlier call
            if TRUNK_GROUP in spec.groups and spec.run_id not in waiting and is_finished(self.run_dir(spec)):
                export_trunk(self.run_dir(spec))
        trunks = [[spec] for spec in pending if TRUNK_GROUP in spec.groups]
        followers: dict = {}
        for unit in units_of([s for s in pending if TRUNK_GROUP not in s.groups], self.plan.batch, self.jobs):
            followers.setdefault(self._trunk_key(unit[0]), []).append(unit)

        def exported(unit, _results) -> None:
            if is_finished(self.run_dir(unit[0])):
                export_trunk(self.run_dir(unit[0]))

        return map_staged(fn, trunks, followers, key=lambda unit: self._trunk_key(unit[0]), jobs=self.jobs,
                          on_first=exported)

    def execute_runs(self, report: StudyReport) -> None:
        """Every run that is not finished yet, ``jobs`` notebook executions at a time, under one progress bar."""
        from tqdm.auto import tqdm

        self.write_manifest(self.states())
        pending = []
        for spec in self.runs:
            if is_finished(self.run_dir(spec)):
                report.skipped.append(spec.run_id)
            else:
                pending.append(spec)
        bar = tqdm(total=len(self.runs), initial=len(report.skipped), desc=f"study {self.plan.name}", unit="run",
                   disable=not self.show_progress, dynamic_ncols=True)

        held: list[RunSpec] = []

        def done(spec: RunSpec, error: str | None) -> None:
            if error == HELD:
                held.append(spec)
                return
            if error is None:
                report.finished.append(spec.run_id)
            else:
                report.failed[spec.run_id] = error
                bar.write(f"run {spec.run_id} failed: {error} (details in {self.run_dir(spec) / 'status.json'})")
            bar.update(1)

        from fgra_core.study.executors import LocalExecutor

        fn = functools.partial(execute_unit, run_fn=self.run_fn, batch_fn=self.batch_fn, project_dir=self.project_dir)
        if self.executor is None and any(TRUNK_GROUP in spec.groups for spec in pending):
            work = self._staged(pending, fn)   # here: the heads of a trunk start as soon as it is done
        else:
            pending = self._execute_trunks(pending, done)
            # local threads (each unit is its own kernel process; the threads only wait), one unit per
            # GPU, or Slurm jobs: the executor gets a picklable top-level function of one unit
            work = (self.executor or LocalExecutor(self.jobs)).map(fn, units_of(pending, self.plan.batch, self.jobs))
        for unit, results in work:
            bar.set_postfix_str(unit[0].run_id, refresh=True)
            for spec, error in results:
                done(spec, error)
        order = {spec.run_id: i for i, spec in enumerate(self.runs)}
        report.finished.sort(key=order.get)
        while held:  # runs another process was computing: wait for it, then take what it left
            spec = held.pop(0)
            bar.write(f"run {spec.run_id} is being computed by {holder(self.run_dir(spec)) or 'another process'}; "
                      "waiting for it")
            wait_for_run(self.run_dir(spec))
            if is_finished(self.run_dir(spec)):
                report.skipped.append(spec.run_id)
                bar.update(1)
            else:
                done(spec, self._execute_one(spec))
        bar.close()
        self.write_manifest(self.states())

    # ----------------------------------------------------------------- aggregates
    def response_maps_run(self) -> Path | None:
        """The run whose response maps the study shows: a finished full-model (variant 8) run,
        from the ablation group if there is one."""
        def rank(spec: RunSpec) -> tuple:
            return ("ablation" not in spec.groups, list(self.plan.datasets).index(spec.dataset), spec.split_id)

        cands = [s for s in self.runs if is_finished(self.run_dir(s))
                 and (read_json(self.run_dir(s) / "results.json") or {}).get("variant") == 8]
        return self.run_dir(min(cands, key=rank)) if cands else None

    def aggregate_params(self, name: str) -> dict | None:
        if name == "response_maps":
            run_dir = self.response_maps_run()
            if run_dir is None:
                return None
            return {"run_dir": str(run_dir), "figures_dir": str(self._abs(self.figures_dir)), "smoke": bool(self.smoke)}
        return {
            "manifest": str(self.manifest_path),
            "runs_dir": str(self._abs(self.runs_dir)),
            "results_dir": str(self._abs(self.results_dir)),
            "figures_dir": str(self._abs(self.figures_dir)),
            "paper_csv": str(self.paper_csv),
            "smoke": bool(self.smoke),
        }

    def _execute_aggregate(self, name: str) -> str:
        """One aggregate notebook: ``"done (...)"``, ``"skipped: ..."`` or ``"failed: ..."``."""
        nb = self.notebooks_dir / f"{name}.ipynb"
        if not nb.is_file():
            print(f"note: aggregate notebook {nb} does not exist; skipped")
            return f"skipped: {nb} does not exist"
        params = self.aggregate_params(name)
        if params is None:
            print(f"note: {name} skipped: no finished full-model (variant 8) run")
            return "skipped: no finished full-model (variant 8) run to show"
        out = self._abs(self.runs_dir) / AGGREGATE_DIR / self.plan.name / f"{name}.ipynb"
        t0 = time.time()
        try:
            self.aggregate_fn(name, params, out)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            print(f"aggregate {name} failed: {error_summary(exc)}\n" + "\n".join(traceback_tail(exc, 15)))
            return f"failed: {error_summary(exc)}"
        return f"done ({time.time() - t0:.0f} s, executed notebook {out})"

    def execute_aggregates(self, report: StudyReport, names: list[str] | None = None) -> None:
        names = self.plan.aggregates if names is None else names
        if names:   # every output folder writable, before the first notebook starts (one line, not a traceback each)
            for folder in (self._abs(self.results_dir), self._abs(self.figures_dir),
                           self._abs(self.runs_dir) / AGGREGATE_DIR / self.plan.name):
                check_writable_folder(folder, f"the aggregate notebooks of plan {self.plan.name}")
        from fgra_core.study.executors import LocalExecutor

        # the aggregate notebooks read the runs and write files of their own: `jobs` side by side
        outcomes = dict(LocalExecutor(self.jobs).map(self._execute_aggregate, list(names)))
        for name in names:
            report.aggregates[name] = outcomes[name]
        figures_dir = self._abs(self.figures_dir)
        if figures_dir.is_dir():
            from fgra_core.analysis.figures import compact_pngs

            compact_pngs(figures_dir)

    def run(self, *, aggregates: bool = True) -> StudyReport:
        t0 = time.time()
        report = StudyReport(plan=self.plan.name)
        self.execute_runs(report)
        if aggregates:
            self.execute_aggregates(report)
        report.seconds = time.time() - t0
        return report
