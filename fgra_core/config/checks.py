"""Value checks of a run configuration that no single field's type expresses.

:func:`check_values` is called by :func:`fgra_core.config.validate` after the cross-field
checks. Each failure is a :class:`~fgra_core.utils.errors.ConfigError` naming the setting, the value
and what was expected:

* every number setting is finite (``optim.lr: .inf`` or ``.nan`` would train on NaN);
* seeds are in ``0 .. 2**32 - 1``, the range NumPy's global seeding accepts (torch accepts it too);
* ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether the machine has that device
  is checked when the run starts: :func:`fgra_core.utils.devices.resolve_device`);
* the synthetic set's knobs describe a set that can be drawn;
* paths (``run_dir``, ``data.root``, ``data.cache_dir``, ``data.split_file``, a weights file)
  fit the file system's limits on the length of one name and of a whole path.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from fgra_core.utils.devices import check_device_name
from fgra_core.utils.errors import ConfigError

SEED_MAX = 2**32 - 1
# the synthetic set draws each identity as one combination of 6 styles for each of 4 body parts
SYNTHETIC_MAX_IDS = 6**4
SYNTHETIC_MAX_FRAMES = 10_000
MAX_FRAME_SIDE = 4096
NAME_MAX = 255
PATH_MAX = 4096
# the longest name the package writes inside a run folder: checkpoints/.last.pt.<random>.tmp
RUN_DIR_RESERVE = 64


def _floats(obj: Any, prefix: str = ""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _floats(value, name + ".")
        elif isinstance(value, float):
            yield name, value


def check_values(cfg) -> None:
    """Raise ``ConfigError`` for the first impossible value of ``cfg`` (a ``RunConfig``)."""
    for name, value in _floats(cfg):
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    for name, seed in (("train.seed", cfg.train.seed), ("data.synthetic.seed", cfg.data.synthetic.seed)):
        if not 0 <= seed <= SEED_MAX:
            raise ConfigError(f"{name} must be in 0..{SEED_MAX} (the seeds NumPy and torch accept), got {seed}")
    check_device_name(cfg.device)
    if cfg.data.height > MAX_FRAME_SIDE or cfg.data.width > MAX_FRAME_SIDE:
        raise ConfigError(f"data.height x data.width must be at most {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE} "
                          f"(person crops are a few hundred pixels), got {cfg.data.height}x{cfg.data.width}")
    if cfg.data.dataset == "synthetic":
        check_synthetic(cfg.data.synthetic)
    paths = {"run_dir": cfg.run_dir, "data.root": cfg.data.root, "data.cache_dir": cfg.data.cache_dir,
             "data.split_file": cfg.data.split_file}
    if cfg.model.weights.lower() not in ("none", "imagenet"):
        paths["model.weights"] = cfg.model.weights
    for name, value in paths.items():
        if value is not None:
            check_path_length(value, name, reserve=RUN_DIR_RESERVE if name in ("run_dir", "data.cache_dir") else 0)


def check_synthetic(s) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(f"data.synthetic.{msg}")

    need(s.tracklets_per_id >= 1, f"tracklets_per_id must be at least 1, got {s.tracklets_per_id}")
    total = s.num_train_ids + s.num_test_ids
    need(total <= SYNTHETIC_MAX_IDS, f"num_train_ids + num_test_ids = {total}, but the synthetic set can draw at most "
                                     f"{SYNTHETIC_MAX_IDS} distinct people (6 styles for each of 4 body parts)")
    need(s.max_frames <= SYNTHETIC_MAX_FRAMES, f"max_frames must be at most {SYNTHETIC_MAX_FRAMES}, got {s.max_frames}")
    need(s.height >= 16 and s.width >= 8, f"height x width must be at least 16x8, got {s.height}x{s.width}")
    need(s.height <= MAX_FRAME_SIDE and s.width <= MAX_FRAME_SIDE,
         f"height x width must be at most {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE}, got {s.height}x{s.width}")
    need(0.0 <= s.occlusion_p <= 1.0, f"occlusion_p is a probability, got {s.occlusion_p}")
    for knob in ("clutter", "camera_shift", "noise_std"):
        value = getattr(s, knob)
        need(value >= 0, f"{knob} must be >= 0, got {value}")


def _limit(path: Path, key: str, default: int) -> int:
    """``os.pathconf`` of the nearest existing folder above ``path`` (``default`` if unknown)."""
    probe = path
    while True:
        try:
            if probe.exists():
                return int(os.pathconf(probe, key))
        except (OSError, ValueError):
            return default
        if probe.parent == probe:
            return default
        probe = probe.parent


def check_path_length(value: str | os.PathLike, name: str, reserve: int = 0) -> None:
    """Refuse a path with a component longer than the file system's name limit, or a whole
    path (plus ``reserve`` characters for what is written inside it) longer than its path limit."""
    path = Path(os.path.abspath(os.fspath(value)))
    name_max = _limit(path, "PC_NAME_MAX", NAME_MAX)
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise ConfigError(f"{name}: the name {part[:24]}... is {len(os.fsencode(part))} bytes long; this file "
                              f"system allows at most {name_max} bytes per file or folder name")
    path_max = _limit(path, "PC_PATH_MAX", PATH_MAX)
    total = len(os.fsencode(str(path))) + reserve
    if total > path_max:
        raise ConfigError(f"{name}: the path {str(path)[:40]}... is {len(os.fsencode(str(path)))} bytes long"
                          f"{f' (plus {reserve} for the files inside it)' if reserve else ''}; this file system "
                          f"allows at most {path_max} bytes per path")
