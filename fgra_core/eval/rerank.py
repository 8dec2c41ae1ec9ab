"""k-reciprocal re-ranking (Zhong et al., CVPR 2017). Optional; off by default in evaluation.

The paper reports its numbers without re-ranking. Memory is O((Nq + Ng)^2): about 0.5 GB
(float32) for MARS with the queries in the gallery.
"""
from __future__ import annotations

import numpy as np

from fgra_core.utils.errors import ConfigError, FGRAError


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def re_ranking(q_g_dist, q_q_dist, g_g_dist, *, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked query x gallery distances [Nq, Ng] (float32, smaller = more similar).

    ``final = (1 - lambda) * jaccard + lambda * original``, where the original distances are
    squared and normalised per column, and the Jaccard distance compares the (k2-expanded)
    k1-reciprocal neighbour sets.
    """
    if k1 < 1 or k2 < 1 or not 0.0 <= lambda_value <= 1.0:
        raise ConfigError(f"re-ranking needs k1 >= 1, k2 >= 1, 0 <= lambda <= 1; got {k1}, {k2}, {lambda_value}")
    qg, qq, gg = _np(q_g_dist), _np(q_q_dist), _np(g_g_dist)
    nq, ng = qg.shape
    if qq.shape != (nq, nq) or gg.shape != (ng, ng):
        raise FGRAError(
            f"re-ranking: q_q_dist must be {nq}x{nq} and g_g_dist {ng}x{ng}; got {qq.shape} and {gg.shape}"
        )
    original = np.concatenate(
        [np.concatenate([qq, qg], axis=1), np.concatenate([qg.T, gg], axis=1)], axis=0
    )
    original = np.power(original, 2).astype(np.float32)
    col_max = np.max(original, axis=0)
    col_max[col_max == 0] = 1.0
    original = np.transpose(original / col_max)
    n = nq + ng
    V = np.zeros_like(original, dtype=np.float32)
    initial_rank = np.argsort(original, axis=1, kind="stable").astype(np.int32)
    half = int(np.around(k1 / 2.0))

    for i in range(n):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        k_recip = forward[np.where(backward == i)[0]]
        expansion = k_recip
        for cand in k_recip:
            c_forward = initial_rank[cand, : half + 1]
            c_backward = initial_rank[c_forward, : half + 1]
            c_recip = c_forward[np.where(c_backward == cand)[0]]
            if len(np.intersect1d(c_recip, k_recip)) > 2.0 / 3.0 * len(c_recip):
                expansion = np.append(expansion, c_recip)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion])
        V[i, expansion] = weight / np.sum(weight)

    original = original[:nq]
    if k2 != 1:
        V_qe = np.zeros_like(V)
        for i in range(n):
            V_qe[i] = np.mean(V[initial_rank[i, :k2]], axis=0)
        V = V_qe
    del initial_rank
    inv_index = [np.where(V[:, j] != 0)[0] for j in range(n)]

    jaccard = np.zeros_like(original, dtype=np.float32)
    for i in range(nq):
        temp_min = np.zeros(n, dtype=np.float32)
        nonzero = np.where(V[i] != 0)[0]
        for j in nonzero:
            rows = inv_index[j]
            temp_min[rows] += np.minimum(V[i, j], V[rows, j])
        jaccard[i] = 1.0 - temp_min / (2.0 - temp_min)

    final = jaccard * (1.0 - lambda_value) + original * lambda_value
    return final[:, nq:]
