"""Checks of a whole study plan, done once before its first run.

A mistake that would make every run fail (a device the machine lacks, a negative thread count,
a data folder without the dataset's layout, a split the split file does not hold) stops the
study before anything runs, in one ``FGRAError`` naming the plan and the setting, instead of
failing every run one by one. :class:`fgra_core.study.Study` calls :func:`check_plan` before it
expands the plan and :func:`check_runs` after.

* :func:`check_plan`: dataset names, group names (a near miss of a name the aggregate notebooks
  know, such as ``ablaton``, is refused), aggregate names (packaged notebooks or notebooks
  present), and the plan's name: a plan other than a packaged one cannot take a packaged plan's
  name (its tables would overwrite the packaged plan's committed ``results/<name>/``), nor
  ``runs`` (the run folders' parent).
* :func:`check_runs`: every device named by the runs exists here, the thread count, and each
  data root's layout, read once per (dataset, root, split file) with every split id the plan
  asks of it.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Iterable

from fgra_core.config.schema import DATASETS
from fgra_core.utils.errors import ConfigError, FGRAError

# group names the aggregate notebooks read (notebooks/ablation.py, sweeps.py, claims.py; tables.table1)
KNOWN_GROUPS = ("ablation", "seq_len", "num_regions", "misalignment", "jitter", "table1", "readings", "trunk")
# names a plan cannot take: results/<name>/ is where its tables go, results/runs/ holds the runs
RESERVED_NAMES = ("runs",)


def _norm(name: str) -> str:
    return str(name).replace("-", "_").lower()


def check_plan(plan, *, plans_dir: Path, notebooks_dir: Path, default_aggregates: Iterable[str]) -> None:
    """Names of a plan (``fgra_core.study.Plan``): datasets, groups, aggregates, the plan itself."""
    where = f"plan {plan.name} ({plan.source})"
    unknown = [ds for ds in plan.datasets if ds not in DATASETS]
    if unknown:
        raise ConfigError(f"{where}: unknown dataset(s) {', '.join(map(repr, unknown))} under datasets; "
                          f"expected names among {', '.join(DATASETS)}")
    for gname in plan.groups:
        if gname in KNOWN_GROUPS or any(gname.startswith(k + "_") for k in KNOWN_GROUPS):  # NAME_x feeds NAME
            continue
        close = difflib.get_close_matches(gname, KNOWN_GROUPS, n=1, cutoff=0.75)
        if close:
            raise ConfigError(f"{where}: group {gname!r} is not a group the aggregate notebooks know; did you mean "
                              f"{close[0]!r}? (known: {', '.join(KNOWN_GROUPS)}; other names are kept as they are "
                              "but feed no table)")
    notebooks = {p.stem for p in Path(notebooks_dir).glob("*.ipynb")} if Path(notebooks_dir).is_dir() else set()
    valid = set(default_aggregates) | notebooks
    bad = [a for a in plan.aggregates if a not in valid]
    if bad:
        raise ConfigError(f"{where}: unknown aggregate notebook(s) {', '.join(map(repr, bad))}; expected names among "
                          f"{', '.join(sorted(valid))}")
    check_plan_name(plan, plans_dir)


def check_plan_name(plan, plans_dir: Path) -> None:
    """A plan's results go to ``results/<name>/``: only a packaged plan may use a packaged name."""
    packaged = {_norm(p.stem): p for p in Path(plans_dir).glob("*.yaml")}
    name = _norm(plan.name)
    if name in {_norm(n) for n in RESERVED_NAMES}:
        raise ConfigError(f"plan {plan.source}: the name {plan.name!r} is reserved (results/{plan.name}/ holds the "
                          "run folders); give the plan another name (its name: key)")
    own = packaged.get(name)
    if own is None:
        return
    source = plan.source
    try:
        same = source != "<dict>" and Path(source).resolve() == own.resolve()
    except OSError:
        same = False
    if not same:
        raise ConfigError(f"plan {source}: the name {plan.name!r} is the name of the packaged plan {own.name}, whose "
                          f"tables are kept in results/{plan.name}/; give your plan another name (its name: key, e.g. "
                          f"my-{plan.name}) so that it writes into its own results folder")


def check_runs(runs: list, *, project_dir: Path, num_threads: Any, build_config, build_dataset) -> None:
    """Devices, thread count and data layouts of a plan's runs (``fgra_core.study.RunSpec``)."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ConfigError(f"--threads must be an integer >= 0 (0: torch's default), got {num_threads!r}")
    from fgra_core.utils.devices import resolve_device

    configs = [(spec, build_config(spec.params)) for spec in runs]
    for device in sorted({cfg.device for _, cfg in configs}):
        resolve_device(device)
    groups: dict[tuple, list[int]] = {}
    for spec, cfg in configs:
        d = cfg.data
        if d.dataset == "synthetic":
            continue
        root = _abs(d.root, project_dir)
        split_file = _abs(d.split_file, project_dir) if d.split_file else None
        groups.setdefault((d.dataset, root, split_file), []).append(int(d.split_id))
    for (dataset, root, split_file), split_ids in groups.items():
        first = min(split_ids)
        try:
            ds = build_dataset(dataset, root, split_id=first, split_file=split_file)
        except FGRAError as exc:
            raise type(exc)(f"dataset {dataset} (checked before the first run): {exc}") from None
        available = int(ds.info.get("num_splits", 1))
        beyond = sorted({s for s in split_ids if s >= available})
        if beyond:
            source = ds.info.get("split_path") or root
            raise ConfigError(f"dataset {dataset}: the plan asks for split(s) {beyond} but {source} holds "
                              f"{available} split(s) (0..{available - 1})")


def _abs(path: str | None, project_dir: Path) -> str | None:
    if path is None:
        return None
    return str(path) if os.path.isabs(path) else str(Path(project_dir) / path)
