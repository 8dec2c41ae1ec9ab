"""A plan expanded into runs: datasets x splits x each group's settings x seeds, one
:class:`~fgra_core.study.plan.RunSpec` per distinct run (a run in several groups is one run), with
its id (:func:`run_id_for`) and its notebook parameters.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

from fgra_core.engine.run_ids import run_id_for
from fgra_core.study.notebook_params import build_config, check_json_safe, settings_hash
from fgra_core.study.plan import TRUNK_GROUP, TRUNK_WEIGHTS, Plan, RunSpec, StudyError
from fgra_core.utils.errors import ConfigError


def expand_plan(plan: Plan, *, runs_dir: str | os.PathLike = "results/runs", roots: dict[str, str | None] | None = None,
                extra: dict | None = None, show_progress: bool = True, num_threads: int = 0,
                response_maps: int = 1, smoke: bool = False,
                project_dir: str | os.PathLike | None = None) -> list[RunSpec]:
    """All runs of a plan, deduplicated: runs whose settings are the same (see
    :func:`~fgra_core.study.notebook_params.settings_hash`) are one run that belongs to several groups.

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

    trunk_weights: dict = {}    # seed (None: every seed) -> the trunk file its runs load
    if plan.trunk:
        tset = dict(plan.trunk.get("set") or {})
        tconfig = plan.trunk.get("config") or plan.config
        per_seed = bool(plan.trunk.get("per_seed"))
        for tseed in (plan.seeds if per_seed else [None]):
            settings = dict(tset) if tseed is None else {**tset, "train.seed": tseed}
            add(settings, tconfig, TRUNK_GROUP, str(tset.get("data.dataset", "synthetic")),
                int(tset.get("data.split_id", 0)), f"plan {plan.name}, trunk" + ("" if tseed is None else f" of seed {tseed}"))
            trunk_weights[tseed] = _trunk_file(by_hash[order[-1]], project_dir)
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
                        if not trunk_weights:
                            raise StudyError(f"plan {plan.name}, group {gname}: model.weights 'trunk' needs the "
                                             "plan's trunk: section (the run that trains it)")
                        key = seed if seed in trunk_weights else None
                        if key not in trunk_weights:
                            raise StudyError(f"plan {plan.name}, group {gname}: seed {seed} has no trunk of its own "
                                             f"(the trunks are trained for seeds {sorted(k for k in trunk_weights)}); "
                                             "give the group the plan's seeds")
                        settings["model.weights"] = trunk_weights[key]
                    config = dspec["config"] or plan.config
                    where = f"plan {plan.name}, group {gname}, dataset {ds}, split {split}" + (
                        "".join(f", {k}={v!r}" for k, v in zip(keys, combo))) + (
                        f", seed {seed}" if seed is not None else "")
                    add(settings, config, gname, ds, split, where)
    return [by_hash[d] for d in order]


def _trunk_file(spec: RunSpec, project_dir) -> str:
    """The trunk file a trunk run exports, relative to the project when it lies inside it (a moved
    project keeps its run ids)."""
    trunk_path = Path(spec.params["run_dir"]) / "trunk.pt"
    if project_dir is not None and trunk_path.is_absolute():
        try:
            trunk_path = trunk_path.relative_to(Path(project_dir).resolve())
        except ValueError:
            pass
    return str(trunk_path)
