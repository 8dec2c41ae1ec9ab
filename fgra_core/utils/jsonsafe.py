"""Values made safe for a JSON record: NumPy scalars as Python numbers, small arrays as lists
(large ones as their shape), paths as strings, anything else as its ``str``."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else f"array{list(obj.shape)}"
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
