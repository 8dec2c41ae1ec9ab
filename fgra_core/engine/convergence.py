"""Whether a run trained long enough: the relative change of its total loss over the last steps.

``convergence(losses)`` fits a least-squares line through the last ``fraction`` (10%) of the loss
values (at least 2) and reports the change that line predicts across that window, relative to the
window's mean loss. A run has *levelled off* when the magnitude is at most ``tolerance`` (5%).
The values are per step in the head regime and per epoch in the fine-tune regime (what each
records); a noisy but flat curve has a slope near 0, a still-falling one a clearly negative slope.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

FRACTION = 0.10
TOLERANCE = 0.05


def convergence(losses: Sequence[float], fraction: float = FRACTION, tolerance: float = TOLERANCE) -> dict:
    """``{"relative_change", "window", "levelled_off", "tolerance"}`` of a loss curve.

    ``relative_change`` is ``slope * (window - 1) / mean`` over the last ``ceil(fraction * len)``
    values (at least 2); ``None`` (and ``levelled_off`` ``None``) when there are fewer than 2 finite
    values or the window's mean is 0.
    """
    vals = np.asarray([v for v in losses if v is not None], dtype=np.float64)
    n = len(vals)
    out = {"relative_change": None, "window": 0, "levelled_off": None, "tolerance": tolerance}
    if n < 2:
        return out
    w = max(2, math.ceil(fraction * n))
    y = vals[-w:]
    if not np.all(np.isfinite(y)):
        out["window"] = w
        out["levelled_off"] = False
        return out
    mean = float(y.mean())
    if mean == 0:
        out["window"] = w
        return out
    x = np.arange(w, dtype=np.float64)
    slope = float(np.polyfit(x, y, 1)[0])
    rel = slope * (w - 1) / abs(mean)
    out.update(relative_change=rel, window=w, levelled_off=bool(abs(rel) <= tolerance))
    return out
