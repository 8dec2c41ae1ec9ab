"""A study plan (``plans/*.yaml`` or a file): its keys checked, its datasets' splits and seeds, its
groups; :class:`Plan` and :class:`RunSpec` (one run of a plan); the dataset folders a plan reads
(:func:`dataset_roots`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fgra_core.config import yaml_strict
from fgra_core.utils.errors import FGRAError

PLANS_DIR = Path(__file__).resolve().parent / "plans"
DEFAULT_AGGREGATES = ("ablation", "sweeps", "paper_vs_ours", "response_maps")
AGGREGATE_DIR = "_study"   # results/runs/_study/<plan>/: executed aggregate notebooks (no run id starts with _)


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
    trunk: dict | None = None        # a run trained first whose trunk the others use ("model.weights: trunk");
    #                                  with per_seed: true, one trunk per seed (seed s -> trunk s)
    batch: int = 1        # head-regime runs executed together in one notebook (train_evaluate_batch)


_PLAN_KEYS = {"name", "description", "config", "base", "datasets", "groups", "aggregates", "smoke", "jobs",
              "seeds", "trunk", "batch"}
_DATASET_KEYS = {"splits", "config", "root", "env", "set"}
_GROUP_KEYS = {"vary", "datasets", "splits", "set", "title", "seeds"}
_TRUNK_KEYS = {"config", "set", "per_seed"}
TRUNK_WEIGHTS = "trunk"   # model.weights value that names the plan's trained trunk
TRUNK_GROUP = "trunk"


def plan_path(plan: str | os.PathLike) -> Path:
    """A plan given as a file path, or as a name in ``fgra_core/study/plans/`` (``mars-mini`` and
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
        except UnicodeDecodeError as exc:
            raise StudyError(f"plan {path} is not a UTF-8 text file (byte {exc.start}: {exc.reason}); "
                             "expected a YAML plan") from None
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
    if trunk and not isinstance(trunk.get("per_seed", False), bool):
        raise StudyError(f"{where}: trunk.per_seed must be true or false, got {trunk['per_seed']!r}")
    if trunk and trunk.get("per_seed") and not data.get("seeds"):
        raise StudyError(f"{where}: trunk.per_seed needs the plan's seeds (seed s uses the trunk trained with seed s)")
    batch = data.get("batch", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise StudyError(f"{where}: batch must be a positive integer (runs per notebook execution), got {batch!r}")
    return Plan(name=str(name), config=data.get("config"), base=base, datasets=datasets, groups=groups,
                aggregates=aggregates, description=str(data.get("description", "")).strip(), source=source,
                smoke=bool(data.get("smoke", False)), jobs=check_jobs(data.get("jobs", 1), where),
                seeds=_seeds(data.get("seeds"), f"{where}: seeds"), trunk=trunk, batch=batch)


def check_jobs(value: Any, where: str) -> int:
    if value == "auto":
        return max(1, min(2, os.cpu_count() or 1))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise StudyError(f"{where}: jobs must be a positive integer or 'auto', got {value!r}")


ROOT_ENV = "FGRA_{}_ROOT"


def dataset_roots(plan: Plan, cli_roots: dict[str, str] | None = None, environ: dict | None = None,
                  project_dir: str | os.PathLike = ".", *, absent: list | None = None) -> dict[str, str | None]:
    """The data folder of every dataset of the plan; raise ``StudyError`` naming each one that is
    missing, with the ways to give it -- or, with a list as ``absent``, append the missing
    datasets' names to it and give them the root ``None`` (for listing a plan without its data)."""
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
    if missing and absent is not None:
        names = [m.split(":")[0].strip() for m in missing]
        absent.extend(names)
        roots.update({ds: None for ds in names})
    elif missing:
        raise StudyError(f"plan {plan.name}: missing dataset folder(s):\n" + "\n".join(missing))
    return roots


def _layout(ds: str) -> str:
    try:
        if ds == "mars":
            from fgra_core.data.datasets.mars import MARS_LAYOUT as text
        elif ds == "ilidsvid":
            from fgra_core.data.datasets.ilidsvid import ILIDS_LAYOUT as text
        elif ds == "prid2011":
            from fgra_core.data.datasets.prid2011 import PRID_LAYOUT as text
        else:
            return ""
        return str(text)
    except Exception:  # the readers' layout notes are a nicety; never hide the real message
        return ""


def _build_dataset(name: str, root, **options):
    from fgra_core.data.registry import build_dataset

    return build_dataset(name, root, **options)
