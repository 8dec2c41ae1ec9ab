"""Flat notebook parameters -> a validated :class:`~fgra_core.config.schema.RunConfig`.

The ``train_evaluate`` notebook (and the study runner, which fills it through papermill) speaks
in flat, JSON-safe parameters::

    config = "quick_synthetic"          # base YAML: a file, or a name in fgra_core/config/configs/
    overrides = {"data.synthetic.misalignment": 0.5}   # any setting, dotted
    dataset = None; variant = 3; seq_len = None; ...   # shortcuts for the common settings
    run_dir = "results/runs/my-run"

``None`` means "keep the base configuration's value". :func:`build_config` rejects unknown
parameter names (papermill itself only warns about them), values that do not survive a JSON
round trip (tuples, ``pathlib.Path``, NumPy scalars), a shortcut that contradicts
``overrides``, and then lets :func:`fgra_core.config.schema.load_config` check every value.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from fgra_core.config.packaged import resolve_config_source
from fgra_core.config.packaged import suggest as _suggest
from fgra_core.config.schema import RunConfig, load_config
from fgra_core.engine.run_ids import HASH_NEUTRAL, settings_hash  # noqa: F401 - re-exported
from fgra_core.engine.run_record import LOCATION_KEYS  # noqa: F401 - re-exported
from fgra_core.utils.errors import ConfigError

# shortcut parameter -> dotted setting of RunConfig
SHORTCUTS: dict[str, str] = {
    "run_dir": "run_dir",
    "device": "device",
    "dataset": "data.dataset",
    "data_root": "data.root",
    "split_id": "data.split_id",
    "split_file": "data.split_file",
    "seq_len": "data.seq_len",
    "height": "data.height",
    "width": "data.width",
    "num_workers": "data.num_workers",
    "misalignment": "data.synthetic.misalignment",
    "variant": "model.variant",
    "backbone": "model.backbone",
    "weights": "model.weights",
    "num_regions": "model.num_regions",
    "epochs": "train.epochs",
    "P": "train.P",
    "K": "train.K",
    "iters_per_epoch": "train.iters_per_epoch",
    "seed": "train.seed",
    "lr": "optim.lr",
    "step_size": "optim.step_size",
    "protocol": "eval.protocol",
    "ap_form": "eval.ap_form",
}

# parameters of the notebook that are not settings of the run
NOTEBOOK_ONLY: dict[str, Any] = {
    "config": None,          # base YAML (path or name in fgra_core/config/configs/); None: the package defaults
    "overrides": None,       # {"dotted.key": value}
    "show_progress": True,   # per-run tqdm bars
    "num_threads": 0,        # torch CPU threads (0: leave torch's default)
    "response_maps": 2,      # how many tracklets get response-map figures in the run folder
    "smoke": False,          # tiny figures, for CI
}

KNOWN = frozenset(SHORTCUTS) | frozenset(NOTEBOOK_ONLY)

# settings that say where things are, not what is computed (LOCATION_KEYS), and the settings left out
# of the hash at their earlier value (HASH_NEUTRAL): see fgra_core.engine.run_ids


def check_json_safe(value: Any, where: str = "value") -> None:
    """Raise ``ConfigError`` unless ``value`` is made of None, bool, int, float (finite), str,
    lists and dicts with string keys -- what papermill stores without loss."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int) and type(value) is int:
        return
    if isinstance(value, float) and type(value) is float:
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {value!r} is not a finite number (not JSON-safe)")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json_safe(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where}: key {key!r} is not a string (not JSON-safe)")
            check_json_safe(item, f"{where}.{key}")
        return
    hint = ""
    if isinstance(value, tuple):
        hint = "; use a list"
    elif isinstance(value, Path):
        hint = "; use str(path)"
    elif type(value).__module__.startswith("numpy"):
        hint = "; use int(...) / float(...)"
    raise ConfigError(f"{where}: {value!r} of type {type(value).__name__} is not JSON-safe{hint}")


def check_names(params: dict) -> None:
    unknown = sorted(k for k in params if k not in KNOWN)
    if unknown:
        parts = [f"{k!r}{_suggest(k, KNOWN)}" for k in unknown]
        raise ConfigError(f"unknown notebook parameter(s): {', '.join(parts)}; "
                          f"valid parameters: {', '.join(sorted(KNOWN, key=str.lower))}")


def to_overrides(params: dict) -> dict:
    """The flat dotted overrides that ``params`` ask for (shortcuts merged into ``overrides``)."""
    check_names(params)
    for key, value in params.items():
        check_json_safe(value, key)
    overrides = dict(params.get("overrides") or {})
    if not isinstance(params.get("overrides") or {}, dict):
        raise ConfigError(f"overrides: expected a mapping of dotted settings, got {params['overrides']!r}")
    for name, dotted in SHORTCUTS.items():
        value = params.get(name)
        if value is None:
            continue
        if dotted in overrides and overrides[dotted] != value:
            raise ConfigError(f"parameter {name}={value!r} contradicts overrides[{dotted!r}]={overrides[dotted]!r}")
        overrides[dotted] = value
    return overrides


def build_config(params: dict) -> RunConfig:
    """Validate notebook parameters and return the run's configuration."""
    overrides = to_overrides(params)
    source = resolve_config_source(params.get("config"))
    return load_config(source, overrides)


def notebook_parameters(namespace: dict, before: Iterable[str]) -> dict:
    """The parameters a notebook received: names defined in ``namespace`` (its globals) since
    ``before`` (a snapshot taken above the parameters cell), minus IPython's own names."""
    skip = set(before) | {"In", "Out", "get_ipython", "exit", "quit", "open"}
    return {k: v for k, v in namespace.items()
            if k not in skip and not k.startswith("_") and not callable(v) and not _is_module(v)}


def _is_module(value: Any) -> bool:
    import types

    return isinstance(value, types.ModuleType)


def expect_parameters(namespace: dict, before: Iterable[str], allowed: Iterable[str]) -> dict:
    """The parameters a notebook received (see :func:`notebook_parameters`); an unknown name is an
    error (``ConfigError``), with the closest valid name when there is one."""
    params = notebook_parameters(namespace, before)
    allowed = set(allowed)
    unknown = sorted(set(params) - allowed)
    if unknown:
        parts = [f"{k!r}{_suggest(k, allowed)}" for k in unknown]
        raise ConfigError(f"unknown notebook parameter(s): {', '.join(parts)}; "
                          f"valid parameters: {', '.join(sorted(allowed, key=str.lower))}")
    for key, value in params.items():
        check_json_safe(value, key)
    return params
