"""The torch device a run asked for, checked against this machine.

``device`` is ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. A name
of another form, CUDA on a machine without it, or a GPU index the machine does not have is a
:class:`~fgra_core.utils.errors.ConfigError` naming the setting -- before any data is read.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fgra_core.utils.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str, where: str = "device") -> None:
    """The form of a device name (no CUDA query): ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise ConfigError(f"{where}: expected 'auto', 'cpu', 'cuda' or 'cuda:N' (N a GPU index), got {name!r}")


def resolve_device(name: str, where: str = "device") -> torch.device:
    import torch

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
