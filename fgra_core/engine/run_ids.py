"""A run's id from its settings, and the id a finished record says it belongs to.

:func:`settings_hash` hashes every setting that decides a run's numbers (the location settings of
:data:`~fgra_core.engine.run_record.LOCATION_KEYS` left out, and the settings of
:data:`HASH_NEUTRAL` at the value every earlier run had); :func:`run_id_for` makes the readable
run id of a study from it. :func:`recorded_run_id` recomputes that id from the config a finished
``results.json`` stores, so a run folder can be checked to hold the run its name says: a copy of,
or a link to, another run's folder gives that other run's id.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fgra_core.config.schema import RunConfig, flatten, load_config
from fgra_core.engine.run_record import LOCATION_KEYS

# settings added after runs were first recorded, with the value every earlier run had: at that value
# they are left out of a run's identity, so that adding them keeps the ids of finished runs
HASH_NEUTRAL: dict[str, Any] = {"train.epoch_mode": "groups", "data.augment_on": "auto",
                                "data.synthetic.jitter": None, "data.synthetic.box_offset": None,
                                "train.adapt": "none"}


def settings_hash(cfg: RunConfig | dict, length: int = 8) -> str:
    """Short hash of everything that decides a run's numbers (location settings left out)."""
    flat = {k: v for k, v in flatten(cfg).items()
            if k not in LOCATION_KEYS and not (k in HASH_NEUTRAL and v == HASH_NEUTRAL[k])}
    blob = json.dumps(flat, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:length]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return re.sub(r"[^A-Za-z0-9.]+", "", str(value))[:16] or "x"


def run_id_for(settings_cfg, digest: str) -> str:
    """Readable id of a run: dataset, split, variant, sequence length, regions (and the
    misalignment knob on the synthetic set, with its jitter and box_offset when either is set),
    then the short settings hash."""
    c = settings_cfg
    parts = [c.data.dataset, f"s{c.data.split_id}", f"v{c.model.variant}", f"len{c.data.seq_len}",
             f"ns{c.model.num_regions}"]
    if c.data.dataset == "synthetic":
        s = c.data.synthetic
        parts.append(f"mis{_fmt(s.misalignment)}")
        if s.jitter is not None or s.box_offset is not None:  # the knobs apart; None = misalignment
            jitter = s.misalignment if s.jitter is None else s.jitter
            offset = s.misalignment if s.box_offset is None else s.box_offset
            parts.append(f"jit{_fmt(float(jitter))}-off{_fmt(float(offset))}")
    parts.append(f"r{c.train.seed}")
    if c.train.regime == "head":
        parts.append("head")
    return "-".join(parts) + f"-{digest}"


_REQUIRED: frozenset[str] | None = None


def _required_keys() -> frozenset[str]:
    global _REQUIRED
    if _REQUIRED is None:
        _REQUIRED = frozenset(flatten(load_config({}))) - set(HASH_NEUTRAL)
    return _REQUIRED


def recorded_run_id(result: dict) -> str | None:
    """The run id that the config stored in a finished record gives; ``None`` when the record holds
    no complete run config (a summary written by hand or by an older tool: it cannot be checked)."""
    config = result.get("config") if isinstance(result, dict) else None
    if not isinstance(config, dict):
        return None
    try:
        if not _required_keys() <= set(flatten(config)):
            return None
        cfg = load_config(config)
    except Exception:  # noqa: BLE001 - a config this version cannot read cannot be checked
        return None
    return run_id_for(cfg, settings_hash(cfg))
