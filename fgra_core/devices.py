"""The torch device a run asked for, checked against this machine.

``device`` is ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. A name
of another form, CUDA on a machine without it, or a GPU index the machine does not have is a
:class:`~fgra_core.errors.ConfigError` naming the setting -- before any data is read.
"""
from __future__ import annotations

import torch

from .config_checks import check_device_name
from .errors import ConfigError


def resolve_device(name: str, where: str = "device") -> torch.device:
    check_device_name(name, where)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"{where} {name!r} was asked for but this machine has {count} CUDA device(s) "
                              f"(cuda:0..cuda:{count - 1})")
    return dev
