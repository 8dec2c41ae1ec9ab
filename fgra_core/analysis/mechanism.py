"""Alignment measured against the ground truth: claim F5.a and the mechanism check of the claims
about the region alignment mechanism (RAM), its scores (TAS), its consistency term and N_s.

**F5.a** (Fig. 5, "the regions are aligned"): the aligned regions follow their body part better
than the fixed stripe does. Its parts are ``PC(v) - PC(stripe)`` for every row v = 4-8 (the rows
with the mechanism), in part-consistency points (the share of a region's response-map mass on the
body part its reference stripe covers, x 100; :mod:`fgra_core.eval.alignment`), paired over seeds
and queries like an accuracy difference. It is evaluated at the study's default setting (the
``ablation`` group) and at every level of the ``jitter`` group.

**Mechanism check.** A claim about a RAM, TAS, consistency-term or N_s component says something
about alignment only when (a) the set has something to align: the **headroom**, the part-
consistency a perfect aligner would gain over the fixed stripe, is at least :data:`HEADROOM_MIN`
points; and (b) the mechanism was exercised: the part-consistency of the compared run(s) with the
mechanism is above the stripe's (the interval of ``PC - PC(stripe)`` excludes 0 from above). When
either fails the claim's verdict is **not exercised**: its accuracy difference is then not evidence
about alignment either way. The check is shown beside the verdict.
"""
from __future__ import annotations

import numpy as np

HEADROOM_MIN = 10.0          # points of part-consistency (0.10 as a share)
NOT_EXERCISED = "not exercised"
PC_SCORES = {"gam": "pc_gam", "stripe": "pc_stripe", "aligned": "pc_aligned"}   # per-query scores in a run's record
RAM_VARIANTS = (4, 5, 6, 7, 8)

# the claims whose mechanism is checked: id -> how to find the runs with the mechanism among its terms
MECHANISM_CLAIMS = {
    "T2.c": "the region alignment mechanism (RAM)",
    "T2.e": "the alignment scores (TAS)",
    "T2.f": "the consistency term of the alignment",
    "F4.d": "the number of aligned regions N_s",
    "X.a": "the region alignment mechanism (RAM)",
}


def checked_selectors(claim) -> list[dict]:
    """The run settings whose alignment the check of ``claim`` measures: every term of the claim
    with a RAM variant (rows 4-8); for N_s, the settings with N_s >= 2; for X.a (the gain grows with
    jitter), the highest level only (at jitter 0 there is nothing to align, by construction)."""
    if claim.id not in MECHANISM_CLAIMS:
        return []
    sels = []
    for part in claim.parts:
        for _, sel in part.terms:
            v = sel.get("variant")
            if v is not None and int(v) not in RAM_VARIANTS:
                continue
            if "num_regions" in sel and int(sel["num_regions"]) < 2:
                continue
            if sel not in sels:
                sels.append(dict(sel))
    if claim.id == "X.a":
        knob = next(k for k in ("jitter", "misalignment") if any(k in s for s in sels))
        top = max(float(s[knob]) for s in sels)
        sels = [s for s in sels if float(s[knob]) == top]
    return sels


def check_text(diff: float, low: float, high: float, headroom: float) -> str:
    return f"PC - stripe {diff:+.1f} [{low:+.1f}, {high:+.1f}]; headroom {headroom:+.1f}"


def passes(low: float, headroom: float) -> bool:
    return bool(np.isfinite(low) and low > 0 and np.isfinite(headroom) and headroom >= HEADROOM_MIN)
