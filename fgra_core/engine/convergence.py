"""Whether a run trained long enough: the relative change of its total loss over the last steps.

``convergence(losses)`` fits a least-squares line through the last ``fraction`` (10%) of the loss
values (at least 2) and reports the change that line predicts across that window, relative to the
window's mean loss -- or to ``floor`` (20%) of the first window's mean loss when that is larger,
because a loss near 0 (a memorised training set) makes any change "large" relative to itself. A
run has *levelled off* when the magnitude is at most ``tolerance`` (5%) -- its loss changes by at
most 5% of its current level, or by at most 1% (5% of 20%) of its starting level -- up to the
noise of the estimate: the mini-batch loss of a step varies by about half its value from batch to
batch, so a line through tens of steps is uncertain by several percent. ``relative_se`` is the
standard error of the fitted change (from the residuals of the fit), and the run counts as
levelled off when ``|relative_change| - 1.96 relative_se <= tolerance``: a change of more than
5% that the noise cannot explain means it was still learning (or diverging).
The values are per step in the head regime and per epoch in the fine-tune regime (what each
records); a noisy but flat curve has a slope near 0, a still-falling one a clearly negative slope.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

FRACTION = 0.10
TOLERANCE = 0.05
FLOOR = 0.20
Z95 = 1.96


def convergence(losses: Sequence[float], fraction: float = FRACTION, tolerance: float = TOLERANCE,
                floor: float = FLOOR) -> dict:
    """``{"relative_change", "window", "levelled_off", "tolerance"}`` of a loss curve.

    ``relative_change`` is ``slope * (window - 1) / max(|mean|, floor * |first mean|)`` over the last
    ``ceil(fraction * len)`` values (at least 2; ``first mean``: the same number of values at the
    start); ``None`` (and ``levelled_off`` ``None``) when there are fewer than 2 finite values or
    the scale is 0.
    """
    vals = np.asarray([v for v in losses if v is not None], dtype=np.float64)
    n = len(vals)
    out = {"relative_change": None, "relative_se": None, "window": 0, "levelled_off": None, "tolerance": tolerance}
    if n < 2:
        return out
    w = max(2, math.ceil(fraction * n))
    y = vals[-w:]
    if not np.all(np.isfinite(y)):
        out["window"] = w
        out["levelled_off"] = False
        return out
    first = vals[:w]
    scale = max(abs(float(y.mean())), floor * abs(float(first[np.isfinite(first)].mean())) if np.isfinite(first).any() else 0.0)
    if scale == 0:
        out["window"] = w
        return out
    x = np.arange(w, dtype=np.float64)
    slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
    rel = slope * (w - 1) / scale
    se = 0.0
    if w > 2:
        resid = y - (slope * x + intercept)
        se_slope = math.sqrt(float(resid @ resid) / (w - 2)) / math.sqrt(float(((x - x.mean()) ** 2).sum()))
        se = se_slope * (w - 1) / scale
    out.update(relative_change=rel, relative_se=se, window=w,
               levelled_off=bool(abs(rel) - Z95 * se <= tolerance))
    return out
