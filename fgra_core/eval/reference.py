"""The brute-force reference of CMC and mAP: one query at a time, a stable sort of its row, the
protocol's matching rule applied literally (:mod:`fgra_core.eval.protocols`). Slow and obvious;
the fast version (:mod:`fgra_core.eval.rank`) is tested against it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fgra_core.eval.protocols import JUNK_PID, RankResult, check_inputs, make_result


def evaluate_rank_reference(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    *,
    protocol: str = "gallery-minus-query",
    ap_form: str | None = None,
    max_rank: int = 20,
    ranks: Sequence[int] = (1, 5, 10, 20),
) -> RankResult:
    """Brute-force reference: per query, a full stable argsort of the row and explicit loops.

    Same arguments and result as :func:`evaluate_rank`; kept obviously correct to test it against.
    """
    d, qp, gp, qc, gc, ap_form, max_rank, ranks = check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, protocol, ap_form, max_rank, ranks
    )
    nq = d.shape[0]
    cmc_sum = np.zeros(max_rank, dtype=np.float64)
    ap_plain: list[float] = []
    ap_trap: list[float] = []
    skipped: list[int] = []
    for i in range(nq):
        order = np.argsort(d[i], kind="stable")
        junk = gp[order] == JUNK_PID
        ignored = (gp[order] == qp[i]) & (gc[order] == qc[i])
        keep = ~(junk | ignored)
        matches = (gp[order] == qp[i])[keep]  # over the non-ignored entries, best first
        hit_ranks = np.flatnonzero(matches) + 1  # 1-based ranks of the positives
        if hit_ranks.size == 0:
            skipped.append(i)
            continue
        # CMC: matched from the first positive's rank on
        first = int(hit_ranks[0])
        for r in range(first, max_rank + 1):
            cmc_sum[r - 1] += 1.0
        # AP, both forms, one positive at a time
        n = hit_ranks.size
        plain = 0.0
        trap = 0.0
        for k, r in enumerate(hit_ranks.tolist(), start=1):
            precision = k / r
            old_precision = 1.0 if r == 1 else (k - 1) / (r - 1)
            plain += precision
            trap += (old_precision + precision) / 2.0
        ap_plain.append(plain / n)
        ap_trap.append(trap / n)
    return make_result(cmc_sum, ap_plain, ap_trap, nq, skipped, protocol, ap_form, max_rank, ranks)


# --------------------------------------------------------------------------- fast
