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

Plan format (see ``fgra_core/plans/*.yaml``)::

    name: quick
    config: quick_synthetic          # base run config (file, or name in fgra_core/configs/)
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

import argparse
import datetime as _dt
import functools
import itertools
import json
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .config import parse_assignments
from .errors import ConfigError, FGRAError, RunLockedError
from .io import atomic_write_json
from .locks import hold_manifest, holder, wait_for_run
from .notebook_params import build_config, check_json_safe, settings_hash
from . import plan_checks, yaml_strict

PACKAGE_DIR = Path(__file__).resolve().parent
PLANS_DIR = PACKAGE_DIR / "plans"
REPO_DIR = PACKAGE_DIR.parent
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
RUN_NOTEBOOK = "train_evaluate"
DEFAULT_AGGREGATES = ("ablation", "sweeps", "paper_vs_ours", "response_maps")
PAPER_CSV = "results/paper_reported.csv"
AGGREGATE_DIR = "_study"   # results/runs/_study/<plan>/: executed aggregate notebooks (no run id starts with _)
TRACEBACK_TAIL = 40
# the kernel's own start-up log (e.g. ipykernel's note on unencrypted local TCP) is noise here;
# errors of the notebook's cells reach the runner through papermill
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


HELD = "held by another process"  # _execute_one's answer for a run another process holds


class StudyError(FGRAError):
    """A plan that cannot be run (unknown keys, missing dataset folders, impossible settings)."""


# --------------------------------------------------------------------------- plans


@dataclass
class RunSpec:
    """One run of the study."""

    run_id: str
    params: dict                       # the train_evaluate notebook's parameters (JSON-safe)
    dataset: str
    split_id: int
    settings: dict                     # the resolved dotted settings the plan asked for
    groups: list[str] = field(default_factory=list)
    hash: str = ""

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "dataset": self.dataset, "split_id": self.split_id,
                "groups": list(self.groups), "hash": self.hash, "settings": self.settings, "params": self.params}


@dataclass
class Plan:
    name: str
    config: str | None
    base: dict
    datasets: dict[str, dict]
    groups: dict[str, dict]
    aggregates: list[str]
    description: str = ""
    source: str = ""
    smoke: bool = False   # notebooks draw fewer, smaller figures (CI)
    jobs: int = 1         # runs executed side by side (each a kernel process)
    seeds: list[int] | None = None   # every run once per seed (train.seed); None: the config's seed
    trunk: dict | None = None        # a run trained first whose trunk the others use ("model.weights: trunk")
    batch: int = 1        # head-regime runs executed together in one notebook (train_evaluate_batch)


_PLAN_KEYS = {"name", "description", "config", "base", "datasets", "groups", "aggregates", "smoke", "jobs",
              "seeds", "trunk", "batch"}
_DATASET_KEYS = {"splits", "config", "root", "env", "set"}
_GROUP_KEYS = {"vary", "datasets", "splits", "set", "title", "seeds"}
_TRUNK_KEYS = {"config", "set"}
TRUNK_WEIGHTS = "trunk"   # model.weights value that names the plan's trained trunk
TRUNK_GROUP = "trunk"


def plan_path(plan: str | os.PathLike) -> Path:
    """A plan given as a file path, or as a name in ``fgra_core/plans/`` (``mars-mini`` and
    ``mars_mini`` both work)."""
    path = Path(plan)
    if path.is_file():
        return path
    for name in {str(plan), str(plan).replace("-", "_"), str(plan).replace("_", "-")}:
        cand = PLANS_DIR / f"{name}.yaml"
        if cand.is_file():
            return cand
    names = sorted(p.stem for p in PLANS_DIR.glob("*.yaml"))
    raise StudyError(f"plan {plan!r} is neither a YAML file nor one of the packaged plans: {', '.join(names)}")


def _splits(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str) and re.fullmatch(r"\d+\s*-\s*\d+", value):
        a, b = (int(x) for x in value.split("-"))
        if b < a:
            raise StudyError(f"{where}: splits range {value!r} is reversed; expected 'A-B' with A <= B")
        return list(range(a, b + 1))
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        if len(set(value)) != len(value):
            raise StudyError(f"{where}: splits {value!r} name a split more than once")
        return list(value)
    raise StudyError(f"{where}: splits must be an integer, a list of integers or a range 'A-B', got {value!r}")


def _seeds(value: Any, where: str) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    ok = isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or len(set(value)) != len(value) or any(s < 0 for s in value):
        raise StudyError(f"{where}: seeds must be a list of distinct non-negative integers, got {value!r}")
    return list(value)


def _mapping(value: Any, where: str, keys: set[str] | None = None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StudyError(f"{where}: expected a mapping, got {value!r}")
    if keys is not None:
        unknown = sorted(set(value) - keys)
        if unknown:
            raise StudyError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(keys))}")
    return value


def load_plan(plan: str | os.PathLike | dict) -> Plan:
    """Read and check a plan (structure only; settings are checked by :func:`expand_plan`)."""
    if isinstance(plan, dict):
        data, source = plan, "<dict>"
    else:
        path = plan_path(plan)
        try:
            data = yaml_strict.safe_load(path.read_text()) or {}
        except yaml_strict.DuplicateKeyError as exc:
            raise StudyError(f"plan {path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise StudyError(f"plan {path} is not valid YAML: {yaml_strict.one_line(exc)}") from None
        source = str(path)
    where = f"plan {source}"
    data = _mapping(data, where, _PLAN_KEYS)
    name = data.get("name") or (Path(source).stem if source != "<dict>" else "plan")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(name)):
        raise StudyError(f"{where}: name {name!r} must be letters, digits, '-', '_' or '.'")
    base = _mapping(data.get("base"), f"{where}: base")
    datasets_raw = _mapping(data.get("datasets"), f"{where}: datasets")
    if not datasets_raw:
        raise StudyError(f"{where}: needs at least one entry under datasets")
    datasets = {}
    for ds, spec in datasets_raw.items():
        spec = _mapping(spec, f"{where}: datasets.{ds}", _DATASET_KEYS)
        datasets[str(ds)] = {
            "splits": _splits(spec.get("splits", 0), f"{where}: datasets.{ds}"),
            "config": spec.get("config"),
            "root": spec.get("root"),
            "env": spec.get("env") or ROOT_ENV.format(str(ds).upper()),
            "set": _mapping(spec.get("set"), f"{where}: datasets.{ds}.set"),
        }
    groups_raw = _mapping(data.get("groups"), f"{where}: groups")
    if not groups_raw:
        raise StudyError(f"{where}: needs at least one entry under groups")
    groups = {}
    for gname, spec in groups_raw.items():
        spec = _mapping(spec, f"{where}: groups.{gname}", _GROUP_KEYS)
        vary = _mapping(spec.get("vary"), f"{where}: groups.{gname}.vary")
        for key, values in vary.items():
            if not isinstance(values, list) or not values:
                raise StudyError(f"{where}: groups.{gname}.vary.{key} must be a non-empty list, got {values!r}")
        gds = spec.get("datasets")
        if gds is not None:
            if not isinstance(gds, list) or not all(d in datasets for d in gds):
                raise StudyError(f"{where}: groups.{gname}.datasets must list datasets of the plan "
                                 f"({', '.join(datasets)}), got {gds!r}")
        groups[str(gname)] = {
            "vary": vary,
            "datasets": list(gds) if gds is not None else list(datasets),
            "splits": _splits(spec["splits"], f"{where}: groups.{gname}") if "splits" in spec else None,
            "set": _mapping(spec.get("set"), f"{where}: groups.{gname}.set"),
            "title": spec.get("title", str(gname)),
            "seeds": _seeds(spec.get("seeds"), f"{where}: groups.{gname}.seeds"),
        }
    aggregates = data.get("aggregates", list(DEFAULT_AGGREGATES))
    if not isinstance(aggregates, list) or not all(isinstance(a, str) for a in aggregates):
        raise StudyError(f"{where}: aggregates must be a list of notebook names, got {aggregates!r}")
    trunk = _mapping(data.get("trunk"), f"{where}: trunk", _TRUNK_KEYS) or None
    batch = data.get("batch", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise StudyError(f"{where}: batch must be a positive integer (runs per notebook execution), got {batch!r}")
    return Plan(name=str(name), config=data.get("config"), base=base, datasets=datasets, groups=groups,
                aggregates=aggregates, description=str(data.get("description", "")).strip(), source=source,
                smoke=bool(data.get("smoke", False)), jobs=_jobs(data.get("jobs", 1), where),
                seeds=_seeds(data.get("seeds"), f"{where}: seeds"), trunk=trunk, batch=batch)


def _jobs(value: Any, where: str) -> int:
    if value == "auto":
        return max(1, min(2, os.cpu_count() or 1))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise StudyError(f"{where}: jobs must be a positive integer or 'auto', got {value!r}")


ROOT_ENV = "FGRA_{}_ROOT"


def dataset_roots(plan: Plan, cli_roots: dict[str, str] | None = None, environ: dict | None = None,
                  project_dir: str | os.PathLike = ".") -> dict[str, str | None]:
    """The data folder of every dataset of the plan; raise ``StudyError`` naming each one that is
    missing, with the ways to give it."""
    environ = os.environ if environ is None else environ
    cli_roots = dict(cli_roots or {})
    unknown = sorted(set(cli_roots) - set(plan.datasets))
    if unknown:
        raise StudyError(f"--data-root names dataset(s) {', '.join(unknown)} that plan {plan.name} does not use "
                         f"(its datasets: {', '.join(plan.datasets)})")
    roots: dict[str, str | None] = {}
    missing = []
    for ds, spec in plan.datasets.items():
        if ds == "synthetic":
            roots[ds] = None
            continue
        env = spec["env"]
        root = cli_roots.get(ds) or environ.get(env) or spec.get("root")
        how = f"give --data-root {ds}=/path/to/{ds} or set {env}"
        if not root:
            missing.append(f"  {ds}: no data folder given ({how})")
            continue
        full = Path(root) if Path(root).is_absolute() else Path(project_dir) / root
        if not full.is_dir():
            missing.append(f"  {ds}: data folder {root} does not exist ({how}); {_layout(ds)}")
            continue
        roots[ds] = str(root)
    if missing:
        raise StudyError(f"plan {plan.name}: missing dataset folder(s):\n" + "\n".join(missing))
    return roots


def _layout(ds: str) -> str:
    try:
        if ds == "mars":
            from .data.mars import MARS_LAYOUT as text
        elif ds == "ilidsvid":
            from .data.ilidsvid import ILIDS_LAYOUT as text
        elif ds == "prid2011":
            from .data.prid2011 import PRID_LAYOUT as text
        else:
            return ""
        return str(text)
    except Exception:  # the readers' layout notes are a nicety; never hide the real message
        return ""


def _build_dataset(name: str, root, **options):
    from .data.registry import build_dataset

    return build_dataset(name, root, **options)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return re.sub(r"[^A-Za-z0-9.]+", "", str(value))[:16] or "x"


def run_id_for(settings_cfg, digest: str) -> str:
    """Readable id of a run: dataset, split, variant, sequence length, regions (and the
    misalignment knob on the synthetic set), then the short settings hash."""
    c = settings_cfg
    parts = [c.data.dataset, f"s{c.data.split_id}", f"v{c.model.variant}", f"len{c.data.seq_len}",
             f"ns{c.model.num_regions}"]
    if c.data.dataset == "synthetic":
        parts.append(f"mis{_fmt(c.data.synthetic.misalignment)}")
    parts.append(f"r{c.train.seed}")
    if c.train.regime == "head":
        parts.append("head")
    return "-".join(parts) + f"-{digest}"


def expand_plan(plan: Plan, *, runs_dir: str | os.PathLike = "results/runs", roots: dict[str, str | None] | None = None,
                extra: dict | None = None, show_progress: bool = True, num_threads: int = 0,
                response_maps: int = 1, smoke: bool = False,
                project_dir: str | os.PathLike | None = None) -> list[RunSpec]:
    """All runs of a plan, deduplicated: runs whose settings are the same (see
    :func:`~fgra_core.notebook_params.settings_hash`) are one run that belongs to several groups.

    ``extra`` holds dotted settings for every run (the CLI's ``--set``); a key ``NAME:dotted``
    applies to dataset NAME only. Every run's settings are validated here, before anything runs.
    """
    roots = roots if roots is not None else {ds: plan.datasets[ds].get("root") for ds in plan.datasets}
    extra = dict(extra or {})
    check_json_safe(plan.base, "base")
    check_json_safe(extra, "--set")
    scoped: dict[str, dict] = {}
    for key in list(extra):
        if ":" in key:
            ds, dotted = key.split(":", 1)
            if ds not in plan.datasets:
                raise StudyError(f"--set {key}: plan {plan.name} has no dataset {ds!r}")
            scoped.setdefault(ds, {})[dotted] = extra.pop(key)
    by_hash: dict[str, RunSpec] = {}
    order: list[str] = []

    def add(settings: dict, config, gname: str, ds: str, split: int, where: str) -> None:
        try:
            check_json_safe(settings, "settings")
            cfg = build_config({"config": config, "overrides": settings})
        except ConfigError as exc:
            raise StudyError(f"{where}: {exc}") from None
        digest = settings_hash(cfg)
        if digest in by_hash:
            spec = by_hash[digest]
            if gname not in spec.groups:
                spec.groups.append(gname)
            return
        run_id = run_id_for(cfg, digest)
        params = {
            "config": config,
            "overrides": settings,
            "run_dir": str(Path(runs_dir) / run_id),
            "show_progress": bool(show_progress),
            "num_threads": int(num_threads),
            "response_maps": int(response_maps),
            "smoke": bool(smoke),
        }
        check_json_safe(params, "parameters")
        by_hash[digest] = RunSpec(run_id=run_id, params=params, dataset=ds, split_id=int(split),
                                  settings=settings, groups=[gname], hash=digest)
        order.append(digest)

    trunk_weights = None
    if plan.trunk:
        tset = dict(plan.trunk.get("set") or {})
        tconfig = plan.trunk.get("config") or plan.config
        add(tset, tconfig, TRUNK_GROUP, str(tset.get("data.dataset", "synthetic")), int(tset.get("data.split_id", 0)),
            f"plan {plan.name}, trunk")
        trunk_path = Path(by_hash[order[-1]].params["run_dir"]) / "trunk.pt"
        if project_dir is not None and trunk_path.is_absolute():
            try:   # relative to the project (the notebooks' working folder): a moved project keeps its run ids
                trunk_path = trunk_path.relative_to(Path(project_dir).resolve())
            except ValueError:
                pass
        trunk_weights = str(trunk_path)
    for gname, group in plan.groups.items():
        keys = list(group["vary"])
        combos = list(itertools.product(*(group["vary"][k] for k in keys))) if keys else [()]
        for ds in group["datasets"]:
            dspec = plan.datasets[ds]
            splits = group["splits"] if group["splits"] is not None else dspec["splits"]
            seeds = group["seeds"] or plan.seeds or [None]
            for split, combo, seed in itertools.product(splits, combos, seeds):
                if True:
                    settings: dict = {}
                    settings.update(plan.base)
                    settings.update(dspec["set"])
                    settings["data.dataset"] = ds
                    settings["data.split_id"] = split
                    if roots.get(ds) is not None:
                        settings["data.root"] = roots[ds]
                    settings.update(group["set"])
                    settings.update(dict(zip(keys, combo)))
                    settings.update(extra)
                    settings.update(scoped.get(ds, {}))
                    if seed is not None:
                        settings["train.seed"] = seed
                    if settings.get("model.weights") == TRUNK_WEIGHTS:
                        if trunk_weights is None:
                            raise StudyError(f"plan {plan.name}, group {gname}: model.weights 'trunk' needs the "
                                             "plan's trunk: section (the run that trains it)")
                        settings["model.weights"] = trunk_weights
                    config = dspec["config"] or plan.config
                    where = f"plan {plan.name}, group {gname}, dataset {ds}, split {split}" + (
                        "".join(f", {k}={v!r}" for k, v in zip(keys, combo))) + (
                        f", seed {seed}" if seed is not None else "")
                    add(settings, config, gname, ds, split, where)
    return [by_hash[d] for d in order]


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


def _now() -> str:
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
        "failed_at": _now(),
        "seconds": round(seconds, 1),
        "attempts": int(previous.get("attempts", 0)) + 1,
        "groups": spec.groups,
        "params": spec.params,
    }
    atomic_write_json(run_dir / "status.json", status)
    return status


# --------------------------------------------------------------------------- execution


def papermill_run(spec: RunSpec, *, notebooks_dir: Path, project_dir: Path) -> None:
    """Execute ``train_evaluate`` for one run; the executed notebook and a log go to its folder."""
    import papermill as pm

    run_dir = Path(spec.params["run_dir"])
    if not run_dir.is_absolute():
        run_dir = project_dir / run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "run.log", "a", encoding="utf-8") as log:
        log.write(f"--- {_now()} run {spec.run_id}\n")
        log.flush()
        pm.execute_notebook(
            str(notebooks_dir / f"{RUN_NOTEBOOK}.ipynb"), str(run_dir / f"{RUN_NOTEBOOK}.ipynb"),
            parameters=spec.params, kernel_name="python3", cwd=str(project_dir), progress_bar=False,
            stdout_file=log, stderr_file=log, extra_arguments=KERNEL_ARGS)


BATCH_NOTEBOOK = "train_evaluate_batch"


def papermill_batch(specs: list[RunSpec], *, notebooks_dir: Path, project_dir: Path, num_threads: int = 0,
                    show_progress: bool = False) -> None:
    """Execute ``train_evaluate_batch`` for several runs; the executed notebook goes to the first run's
    folder, a log line to each run's ``run.log``."""
    import papermill as pm

    dirs = []
    for spec in specs:
        run_dir = Path(spec.params["run_dir"])
        run_dir = run_dir if run_dir.is_absolute() else project_dir / run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "run.log", "a", encoding="utf-8") as log:
            log.write(f"--- {_now()} run {spec.run_id} (in a batch of {len(specs)} with {specs[0].run_id})\n")
        dirs.append(run_dir)
    runs = [{"config": s.params["config"], "overrides": s.params["overrides"], "run_dir": s.params["run_dir"]}
            for s in specs]
    with open(dirs[0] / "batch.log", "a", encoding="utf-8") as log:
        pm.execute_notebook(
            str(notebooks_dir / f"{BATCH_NOTEBOOK}.ipynb"), str(dirs[0] / f"{BATCH_NOTEBOOK}.ipynb"),
            parameters={"runs": runs, "show_progress": bool(show_progress), "num_threads": int(num_threads)},
            kernel_name="python3", cwd=str(project_dir), progress_bar=False, stdout_file=log, stderr_file=log,
            extra_arguments=KERNEL_ARGS)


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
    batched: list[list[RunSpec]] = []
    for specs in keyed.values():
        # split so that the jobs stay busy: about total/jobs runs per unit, at most `batch`
        size = max(1, min(batch, -(-total // max(1, jobs)), len(specs)))
        n = -(-len(specs) // size)
        size = -(-len(specs) // n)
        batched.extend(specs[i:i + size] for i in range(0, len(specs), size))
    return batched + units   # the cheap batches first: their results come in minutes


def papermill_aggregate(name: str, params: dict, *, notebooks_dir: Path, out_path: Path, project_dir: Path) -> None:
    import papermill as pm

    out_path.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(notebooks_dir / f"{name}.ipynb"), str(out_path), parameters=params,
                        kernel_name="python3", cwd=str(project_dir), progress_bar=False,
                        extra_arguments=KERNEL_ARGS)


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
                                           "finished_at": _now(), "seconds": round(time.time() - t0, 1),
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
            atomic_write_json(rd / "status.json", {"status": "finished", "run_id": spec.run_id, "finished_at": _now(),
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

    from .config import dump_config
    from .io import atomic_write_text

    cfg = build_config(spec.params)
    rd = Path(cfg.run_dir) if Path(cfg.run_dir).is_absolute() else Path(project_dir) / cfg.run_dir
    rd.mkdir(parents=True, exist_ok=True)
    launch = rd / "torchrun_config.yaml"
    atomic_write_text(launch, dump_config(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
           "-m", "fgra_core.train", "--config", str(launch), "--no-progress"]
    with open(rd / "run.log", "a", encoding="utf-8") as log:
        log.write(f"--- {_now()} {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=str(project_dir), stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun training of {spec.run_id} ended with status {proc.returncode} (log: {rd / 'run.log'})")
    run_fn(spec)


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
        self.notebooks_dir = Path(notebooks_dir) if notebooks_dir else NOTEBOOKS_DIR
        self.paper_csv = Path(paper_csv) if paper_csv else (
            p / PAPER_CSV if (p / PAPER_CSV).is_file() else REPO_DIR / PAPER_CSV)
        self.show_progress = show_progress
        smoke = bool(smoke or self.plan.smoke)
        self.jobs = max(1, int(jobs if jobs is not None else self.plan.jobs))
        if self.jobs > 1 and not num_threads:
            # runs side by side share the cores: one run per core beats threads inside one run
            num_threads = max(1, (os.cpu_count() or 1) // self.jobs)
        self.notebooks_dir = Path(notebooks_dir) if notebooks_dir else NOTEBOOKS_DIR
        plan_checks.check_plan(self.plan, plans_dir=PLANS_DIR, notebooks_dir=self.notebooks_dir,
                               default_aggregates=DEFAULT_AGGREGATES)
        roots = dataset_roots(self.plan, data_roots, environ, p)
        self.runs = expand_plan(self.plan, runs_dir=self._abs(self.runs_dir), roots=roots, extra=extra,
                                show_progress=show_progress, num_threads=num_threads,
                                response_maps=response_maps, smoke=smoke, project_dir=p)
        # devices, threads and data layouts: once for the whole plan, before the first run
        plan_checks.check_runs(self.runs, project_dir=p, num_threads=num_threads, build_config=build_config,
                               build_dataset=_build_dataset)
        self.smoke = smoke
        self.num_threads = num_threads
        # partials of top-level functions: picklable, for the executors that run them in other processes
        self.run_fn = run_fn or functools.partial(papermill_run, notebooks_dir=self.notebooks_dir,
                                                  project_dir=self.project_dir)
        # several head-regime runs in one notebook execution, unless runs are executed by a given run_fn
        self.batch_fn = batch_fn or (None if run_fn else functools.partial(
            papermill_batch, notebooks_dir=self.notebooks_dir, project_dir=self.project_dir,
            num_threads=self.num_threads, show_progress=self.show_progress))
        self.executor = executor   # fgra_core.executors.Executor; None: LocalExecutor(jobs)
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
            "written_at": _now(),
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
        """The plan's trunk run first (the other runs load its trunk), then its trunk file."""
        from .engine.trunk_export import export_trunk

        rest = []
        for spec in pending:
            if TRUNK_GROUP not in spec.groups:
                rest.append(spec)
                continue
            error = self._execute_one(spec)
            done(spec, error)
        for spec in self.runs:
            if TRUNK_GROUP in spec.groups and is_finished(self.run_dir(spec)):
                export_trunk(self.run_dir(spec))
        return rest

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

        from .executors import LocalExecutor

        pending = self._execute_trunks(pending, done)
        units = units_of(pending, self.plan.batch, self.jobs)
        # local threads (each unit is its own kernel process; the threads only wait), one unit per GPU,
        # or Slurm jobs: the executor gets a picklable top-level function of one unit
        executor = self.executor or LocalExecutor(self.jobs)
        fn = functools.partial(execute_unit, run_fn=self.run_fn, batch_fn=self.batch_fn, project_dir=self.project_dir)
        for unit, results in executor.map(fn, units):
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

    def execute_aggregates(self, report: StudyReport, names: list[str] | None = None) -> None:
        names = self.plan.aggregates if names is None else names
        for name in names:
            nb = self.notebooks_dir / f"{name}.ipynb"
            if not nb.is_file():
                report.aggregates[name] = f"skipped: {nb} does not exist"
                print(f"note: aggregate notebook {nb} does not exist; skipped")
                continue
            params = self.aggregate_params(name)
            if params is None:
                report.aggregates[name] = "skipped: no finished full-model (variant 8) run to show"
                print(f"note: {name} skipped: no finished full-model (variant 8) run")
                continue
            out = self._abs(self.runs_dir) / AGGREGATE_DIR / self.plan.name / f"{name}.ipynb"
            t0 = time.time()
            try:
                self.aggregate_fn(name, params, out)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                report.aggregates[name] = f"failed: {error_summary(exc)}"
                print(f"aggregate {name} failed: {error_summary(exc)}\n" + "\n".join(traceback_tail(exc, 15)))
                continue
            report.aggregates[name] = f"done ({time.time() - t0:.0f} s, executed notebook {out})"
        figures_dir = self._abs(self.figures_dir)
        if figures_dir.is_dir():
            from .figures import compact_pngs

            compact_pngs(figures_dir)

    def run(self, *, aggregates: bool = True) -> StudyReport:
        t0 = time.time()
        report = StudyReport(plan=self.plan.name)
        self.execute_runs(report)
        if aggregates:
            self.execute_aggregates(report)
        report.seconds = time.time() - t0
        return report


# --------------------------------------------------------------------------- CLI


def _int(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _parse_roots(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise StudyError(f"--data-root expects NAME=PATH (e.g. mars=/data/MARS), got {item!r}")
        name, path = item.split("=", 1)
        out[name.strip().lower()] = path.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgra_core.study", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="quick", help="quick, paper, mars-mini, smoke, or a plan YAML file")
    parser.add_argument("--data-root", action="append", default=[], metavar="NAME=PATH",
                        help="data folder of a dataset (mars, ilidsvid, prid2011); repeatable; "
                             "else FGRA_<NAME>_ROOT, else the plan's root")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run, e.g. --set device=cuda or --set prid2011:data.split_file=F")
    parser.add_argument("--project-dir", default=".", help="folder holding results/ and figures/ (default: .)")
    parser.add_argument("--jobs", default=None,
                        help="runs executed side by side: a number or 'auto' (default: the plan's jobs, else 1)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads per run (0: torch's default, or cores / jobs when jobs > 1)")
    parser.add_argument("--list", action="store_true", help="print the runs of the plan and their state, then stop")
    parser.add_argument("--no-aggregates", action="store_true", help="only the runs")
    parser.add_argument("--aggregates-only", action="store_true", help="only the aggregate notebooks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    cost = parser.add_argument_group("cost estimate (works without the datasets; nothing runs)")
    cost.add_argument("--estimate", action="store_true",
                      help="print runs, epochs, iterations, frames and GPU-hours per dataset and in total, then stop")
    cost.add_argument("--frames-per-s", type=float, default=None, metavar="X",
                      help="training frames/s of one GPU (default: the measured H100 rate, benchmarks/README.md)")
    cost.add_argument("--eval-frames-per-s", type=float, default=None, metavar="X",
                      help="evaluation frames/s of one GPU (default: the measured H100 rate)")
    disp = parser.add_argument_group("dispatch (docs: README 'Paper scale: cost and dispatch')")
    disp.add_argument("--executor", default="local", help="local (this machine, default) or slurm (through submitit)")
    disp.add_argument("--gpus", default=None, metavar="I,J,...",
                      help="local: one run per listed GPU at a time (e.g. --gpus 0,1,2,3); replaces --jobs")
    disp.add_argument("--partition", default=None, help="Slurm partition")
    disp.add_argument("--time", default=None, help="Slurm time limit per run: minutes or [D-]HH:MM[:SS] (default 24 h)")
    disp.add_argument("--gpus-per-run", type=int, default=None,
                      help="Slurm: GPUs per run (default 1; more: DistributedDataParallel through torchrun in the job)")
    disp.add_argument("--cpus-per-run", type=int, default=None, help="Slurm: CPUs per run (default 8)")
    disp.add_argument("--mem-gb", type=float, default=None, help="Slurm: memory per run in GB")
    disp.add_argument("--max-parallel", type=int, default=None,
                      help="Slurm: one job array with at most this many runs at once")
    disp.add_argument("--account", default=None, help="Slurm account")
    disp.add_argument("--qos", default=None, help="Slurm quality of service")
    disp.add_argument("--slurm-cluster", default="slurm", choices=SUBMITIT_CLUSTERS_CLI,
                      help="slurm (default); local or debug run the same jobs on this machine through submitit")
    args = parser.parse_args(argv)
    from .cli_errors import RESUME_STUDY, run_cli

    if args.estimate:
        return _estimate_main(args)
    return run_cli(lambda: _main(args), interrupted=RESUME_STUDY)


def _main(args) -> int:
    from .cli_errors import print_error
    from .executors import make_executor

    slurm_opts = {k: getattr(args, k) for k in ("partition", "time", "gpus_per_run", "cpus_per_run", "mem_gb",
                                                 "max_parallel", "account", "qos")}
    try:
        executor = make_executor(
            args.executor, jobs=1, gpus=args.gpus, slurm=slurm_opts, cluster=args.slurm_cluster,
            folder=Path(args.project_dir) / "results" / "runs" / AGGREGATE_DIR / "slurm",
            key=_unit_key, on_error=_job_failed)
        study = Study(args.plan, project_dir=args.project_dir, data_roots=_parse_roots(args.data_root),
                      extra=parse_assignments(args.overrides), num_threads=args.threads,
                      jobs=len(executor.gpus) if hasattr(executor, "gpus") else (  # --gpus: cores shared by the runs
                          None if args.jobs is None else _jobs(args.jobs if args.jobs == "auto" else _int(args.jobs), "--jobs")),
                      show_progress=not args.no_progress)
    except FGRAError as exc:
        return print_error(exc)
    if args.executor == "local" and args.gpus is None:
        executor = None   # the plan's / --jobs' side-by-side runs
    else:
        study.executor = executor
        gpus_per_run = getattr(getattr(executor, "options", None), "gpus_per_run", 1)
        if gpus_per_run > 1:
            study.run_fn = functools.partial(torchrun_then, nproc=gpus_per_run, project_dir=study.project_dir,
                                             run_fn=study.run_fn)
            study.batch_fn = None   # each run its own job through torchrun
    if args.list:
        states = study.states()
        print(f"plan {study.plan.name} ({study.plan.source}): {len(study.runs)} runs")
        for spec in study.runs:
            print(f"  {states[spec.run_id]:9s} {spec.run_id}  [{', '.join(spec.groups)}]")
        return 0
    report = StudyReport(plan=study.plan.name)
    t0 = time.time()
    if executor is not None and not args.aggregates_only:
        print(f"runs on: {executor.describe()}")
    try:
        if not args.aggregates_only:
            study.execute_runs(report)
        else:
            study.write_manifest(study.states())
        if not args.no_aggregates:
            study.execute_aggregates(report)
    except FGRAError as exc:  # e.g. a full disk while writing the manifest: finished runs stay as they are
        report.seconds = time.time() - t0
        print(report.summary())
        return print_error(exc)
    report.seconds = time.time() - t0
    print(report.summary())
    return 0 if report.ok else 1


SUBMITIT_CLUSTERS_CLI = ("slurm", "local", "debug")


def _unit_key(unit: list[RunSpec]) -> str:
    """A job's name: its run, or its first run and how many more."""
    return unit[0].run_id + (f"+{len(unit) - 1}" if len(unit) > 1 else "")


def _job_failed(unit: list[RunSpec], exc: BaseException) -> list[tuple[RunSpec, str]]:
    """A Slurm job that ended outside its runs (time limit, node failure): each run it had not
    finished is recorded like a failed run; the next start of the study submits it again (a
    fine-tune run resumes from its last checkpoint)."""
    return [(spec, None) if is_finished(Path(spec.params["run_dir"])) else
            (spec, record_failure(Path(spec.params["run_dir"]), spec, exc, 0.0)["error"]) for spec in unit]


def _estimate_main(args) -> int:
    """``--estimate``: the plan's runs and what they cost, from known dataset statistics (no data read)."""
    from .estimate import (
        MEASURED_EVAL_FPS, MEASURED_TRAIN_FPS, check_throughput, estimate_runs, format_estimate, run_configs,
    )

    try:
        train_fps = check_throughput(args.frames_per_s, "--frames-per-s")
        eval_fps = check_throughput(args.eval_frames_per_s, "--eval-frames-per-s")
        plan = load_plan(args.plan)
        cli_roots = _parse_roots(args.data_root)
        roots = {ds: cli_roots.get(ds) or spec.get("root") for ds, spec in plan.datasets.items()}
        extra = parse_assignments(args.overrides)
        runs = expand_plan(plan, roots=roots, extra=extra, show_progress=False)
        configs = run_configs((s.run_id, s.params) for s in runs)
        gpus = len(args.gpus.split(",")) if args.gpus else None
    except (FGRAError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        costs = estimate_runs(configs)
        alt_costs = estimate_runs(configs, epoch_mode="groups")
    except KeyError as exc:
        print(f"error: plan {plan.name}: {exc.args[0]}", file=sys.stderr)
        return 2
    different = any(a.iterations != b.iterations for a, b in zip(costs, alt_costs))
    print(format_estimate(plan.name, costs, train_fps=train_fps or MEASURED_TRAIN_FPS,
                          eval_fps=eval_fps or MEASURED_EVAL_FPS, measured=train_fps is None,
                          alt_costs=alt_costs if different else None,
                          alt_label="the every-group epoch (--set train.epoch_mode=groups)", gpus=gpus), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
