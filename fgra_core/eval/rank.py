"""CMC and mAP, fast: blocks of queries ranked at once, with the reference's stable tie order
(:mod:`fgra_core.eval.reference`), so the CMC is identical and the APs agree to rounding;
:func:`evaluate_features` runs the whole chain from features (the protocol's gallery, distances,
optional re-ranking, metrics).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fgra_core.eval.protocols import (
    JUNK_PID,
    RankResult,
    build_protocol_gallery,
    check_inputs,
    make_result,
)
from fgra_core.utils.errors import ConfigError

_BLOCK_ROWS = 256
_CELL_FILL = 8


def _pid_pairs(qp_block, col_order, uniq, starts, ends):
    """(row, column) pairs of a block of queries with the gallery entries of the same pid.

    Row-major, columns ascending; the junk pid matches nothing.
    """
    if uniq.shape[0] == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    w = np.minimum(np.searchsorted(uniq, qp_block), uniq.shape[0] - 1)
    found = (uniq[w] == qp_block) & (qp_block != JUNK_PID)
    sizes = np.where(found, ends[w] - starts[w], 0)
    rows = np.repeat(np.arange(qp_block.shape[0]), sizes)
    within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    cols = col_order[np.repeat(starts[w], sizes) + within]
    return rows, cols


class _Grid:
    """A uniform grid over the distance range ``[lo, hi]``: ``cell(x) = trunc((x - shift) * scale)``.

    The cell is non-decreasing in ``x`` (the same floating operations for every input), so an
    entry in a lower cell than a threshold is strictly closer than it and one in a higher cell
    strictly farther; only entries sharing a cell with a threshold need an exact comparison.
    The shift is 0 (one pass less) unless the scaled distances would be too large for integers.
    """

    def __init__(self, lo, hi, n_cells: int, dtype, clip: bool):
        self.dtype = np.dtype(dtype)
        self.lo, self.hi = self.dtype.type(lo), self.dtype.type(hi)
        self.clip = clip
        span = float(hi) - float(lo)
        scale = (max(n_cells - 1, 1) / span) if span > 0 else 0.0
        with np.errstate(over="ignore"):
            cast = self.dtype.type(scale)  # float32 distances spanning ~1e-39 overflow here, not before
        if not (np.isfinite(scale) and np.isfinite(cast)):
            scale, cast = 0.0, self.dtype.type(0.0)  # one cell: every entry is compared exactly
        self.scale = cast
        self.shift = None
        if max(abs(float(lo)), abs(float(hi))) * scale > 2.0**40:
            self.shift = self.lo
        ends = self.cells(np.array([lo, hi], dtype=self.dtype))
        self.first = int(ends[0])
        self.n = int(ends[1]) - self.first + 1

    def cells(self, x: np.ndarray, out_float: np.ndarray | None = None, out: np.ndarray | None = None):
        """``trunc((x - shift) * scale)`` as intp (``x`` of the grid's dtype); callers subtract ``first``."""
        if self.clip:  # non-finite distances: +-inf go to the end cells
            y = np.clip(x, self.lo, self.hi, out=out_float)
            if self.shift is not None:
                y -= self.shift
        elif self.shift is not None:
            y = np.subtract(x, self.shift, out=out_float)
        else:
            y = np.multiply(x, self.scale, out=out_float)
            return self._to_int(y, out)
        y *= self.scale
        return self._to_int(y, out)

    @staticmethod
    def _to_int(y, out):
        if out is None:
            return y.astype(np.intp)
        out[...] = y
        return out


def _block_positive_ranks(d, junk_cols, same_r, same_j, is_pos, grid, work):
    """1-based ranks of every positive of a block of queries, in the stable order of each row.

    ``d``: [B, G] distances; ``junk_cols``: columns never ranked; ``same_r, same_j``: the
    (row, column) pairs with the query's pid; ``is_pos``: which of them are positives (the
    others are ignored). Every other entry is a negative.

    Positive k of a row (0-based, in (distance, column) order, distance ``t_k``) has rank
    ``k + 1 + #negatives before it``; a negative j is before it when ``d_j < t_k``, or
    ``d_j == t_k`` and ``j < column_k``. No row is sorted: the entries are counted per cell of a
    uniform grid of the distance range (one ``np.bincount`` per block), which gives the negatives
    in lower cells than each positive; the few negatives sharing a cell with a positive are then
    compared exactly.

    Returns ``(rows, k, ranks, counts)``: for each positive its row, its index k within the row
    and its rank, flat in (row, k) order; ``counts[r]``: number of positives of row r.
    """
    B, G = d.shape
    C = grid.n
    pr, pj = same_r[is_pos], same_j[is_pos]
    pv = d[pr, pj]
    order = np.lexsort((pj, pv, pr))  # (row, distance, column)
    pr, pj, pv = pr[order], pj[order], pv[order]
    n_pos = pr.shape[0]
    counts = np.bincount(pr, minlength=B)
    off = np.cumsum(counts) - counts
    f = np.arange(n_pos)
    k = f - off[pr]

    # every entry's cell, offset by its row: row * C + cell; entries that are not negatives
    # (positives, ignored, junk) go to one extra cell at the end
    excluded = B * C
    cell = grid.cells(d, out_float=work["y"][:B], out=work["cell"][:B])
    cell += (np.arange(B) * C - grid.first)[:, None]
    cell[same_r, same_j] = excluded
    if junk_cols.size:
        cell[:, junk_cols] = excluded
    per_cell = np.bincount(cell.ravel(), minlength=excluded + 1)[:excluded]
    lower = np.cumsum(per_cell.reshape(B, C), axis=1).ravel()
    lower -= per_cell  # negatives in lower cells of the same row

    tcell = grid.cells(pv) + (pr * C - grid.first)  # nondecreasing along f
    before = lower[tcell]

    # negatives sharing a cell with a positive
    mark = np.zeros(excluded + 1, dtype=bool)
    mark[tcell] = True
    shared = work["shared"][:B]
    mark.take(cell, out=shared)
    flat = np.flatnonzero(shared)
    if flat.size:
        sr, sj = np.divmod(flat, G)
        sv = d[sr, sj]
        sc = cell[sr, sj]
        first = np.searchsorted(tcell, sc, side="left")  # the positives of that cell: [first, end)
        end = np.searchsorted(tcell, sc, side="right")
        nh = end - first
        lt = np.zeros(flat.shape[0], dtype=np.intp)  # positives of the cell strictly closer
        le = np.zeros(flat.shape[0], dtype=np.intp)  # ... closer or at the same distance
        for m in range(int(nh.max())):
            live = m < nh
            tv = pv[np.minimum(first + m, n_pos - 1)]
            lt += live & (tv < sv)
            le += live & (tv <= sv)
        # the negative comes before the positives from `start` to the end of the cell
        start = first + le
        tied = le > lt
        if tied.any():  # at equal distance the smaller column comes first
            new_group = np.ones(n_pos, dtype=bool)
            new_group[1:] = (pr[1:] != pr[:-1]) | (pv[1:] != pv[:-1])
            group_start = np.maximum.accumulate(np.where(new_group, f, 0))
            key_p = group_start.astype(np.int64) * (G + 1) + pj  # increasing along f
            key_j = (first[tied] + lt[tied]).astype(np.int64) * (G + 1) + sj[tied]
            start[tied] = np.searchsorted(key_p, key_j, side="left")
        diff = np.bincount(start, minlength=n_pos + 1) - np.bincount(end, minlength=n_pos + 1)
        before = before + np.cumsum(diff[:n_pos])
    return pr, k, k + 1 + before, counts


def evaluate_rank(
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
    """CMC and mAP of a query x gallery distance matrix (smaller = more similar).

    Parameters
    ----------
    distmat : array or tensor [num_query, num_gallery]
        Distances to the protocol's gallery (see the module notes, and
        :func:`build_protocol_gallery` for ``"official"``).
    q_pids, g_pids, q_camids, g_camids : integer arrays
        Identities (``-1`` junk, ``0`` distractor on MARS) and cameras.
    protocol : "gallery-minus-query" | "official" | "cross-camera"
    ap_form : "plain" | "trapezoid" | None
        Which AP goes into ``RankResult.mAP``; ``None`` picks "trapezoid" for "official" and
        "plain" otherwise. Both forms are always in the result.
    max_rank : length of the CMC curve.
    ranks : CMC points reported in ``RankResult.rank``.

    Gives exactly the reference's CMC and (to rounding) its APs, stable order on ties, but never
    sorts a row: only each query's positives are sorted and the rank of each is counted (see
    ``_block_positive_ranks``), a block of queries at a time.
    """
    d, qp, gp, qc, gc, ap_form, max_rank, ranks = check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, protocol, ap_form, max_rank, ranks
    )
    nq, ng = d.shape
    junk_cols = np.flatnonzero(gp == JUNK_PID)
    col_order = np.argsort(gp, kind="stable")  # columns grouped by pid, ascending within a pid
    uniq, starts = np.unique(gp[col_order], return_index=True)
    ends = np.append(starts[1:], ng).astype(np.intp)

    lo = hi = 0.0
    clip = False
    if d.size:
        lo, hi = d.min(), d.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            clip = True
            finite = d[np.isfinite(d)]
            lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    # about _CELL_FILL entries per cell
    grid = _Grid(lo, hi, max(16, ng // _CELL_FILL), d.dtype, clip)
    rows = min(nq, _BLOCK_ROWS)
    work = {
        "y": np.empty((rows, ng), dtype=grid.dtype),
        "cell": np.empty((rows, ng), dtype=np.intp),
        "shared": np.empty((rows, ng), dtype=bool),
    }

    cmc_first = np.zeros(max_rank + 1, dtype=np.int64)
    ap_plain = np.zeros(nq, dtype=np.float64)
    ap_trap = np.zeros(nq, dtype=np.float64)
    has_pos = np.zeros(nq, dtype=bool)
    first = np.zeros(nq, dtype=np.int64)
    for b0 in range(0, nq, _BLOCK_ROWS):
        b1 = min(nq, b0 + _BLOCK_ROWS)
        n_rows = b1 - b0
        same_r, same_j = _pid_pairs(qp[b0:b1], col_order, uniq, starts, ends)
        is_pos = gc[same_j] != qc[b0 + same_r]
        if not is_pos.any():
            continue
        pr, k, r, counts = _block_positive_ranks(d[b0:b1], junk_cols, same_r, same_j, is_pos, grid, work)
        has_pos[b0:b1] = counts > 0
        # CMC from each row's first positive
        np.add.at(cmc_first, np.minimum(r[k == 0], max_rank + 1) - 1, 1)
        first[b0 + pr[k == 0]] = r[k == 0]
        # AP: positives are in (row, k) order, so bincount sums each row in the reference's order
        kf = (k + 1).astype(np.float64)
        rf = r.astype(np.float64)
        precision = kf / rf
        old_precision = np.ones_like(precision)
        above = r > 1
        old_precision[above] = (kf[above] - 1.0) / (rf[above] - 1.0)
        n = np.maximum(counts, 1).astype(np.float64)
        ap_plain[b0:b1] = np.bincount(pr, weights=precision, minlength=n_rows) / n
        ap_trap[b0:b1] = np.bincount(pr, weights=(old_precision + precision) / 2.0, minlength=n_rows) / n
    skipped = np.flatnonzero(~has_pos)
    cmc_sum = np.cumsum(cmc_first[:max_rank]).astype(np.float64)
    res = make_result(cmc_sum, ap_plain[has_pos], ap_trap[has_pos], nq, skipped, protocol, ap_form, max_rank, ranks)
    res.first_rank = first
    res.ap = np.where(has_pos, ap_plain if ap_form == "plain" else ap_trap, np.nan)
    return res


# --------------------------------------------------------------------------- protocols and splits


def evaluate_features(
    q_feats,
    g_feats,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    *,
    protocol: str = "gallery-minus-query",
    ap_form: str | None = None,
    metric: str = "cosine",
    rerank: bool = False,
    rerank_params: dict | None = None,
    max_rank: int = 20,
    ranks: Sequence[int] = (1, 5, 10, 20),
) -> RankResult:
    """Protocol gallery, distances (``"cosine"`` as in the paper, or ``"euclidean"``), optional
    k-reciprocal re-ranking (off by default, as in the paper), then :func:`evaluate_rank`.

    ``g_feats`` etc. are the disjoint gallery (``VideoDataset.gallery``); "official" adds the queries.
    """
    from fgra_core.eval.distance import cosine_distance, euclidean_distance

    if metric not in ("cosine", "euclidean"):
        raise ConfigError(f"distance metric {metric!r} is unknown; expected 'cosine' or 'euclidean'")
    dist = cosine_distance if metric == "cosine" else euclidean_distance
    g_all, gp, gc = build_protocol_gallery(protocol, q_feats, g_feats, q_pids, g_pids, q_camids, g_camids)
    qg = dist(q_feats, g_all)
    if rerank:
        from fgra_core.eval.rerank import re_ranking

        qg = re_ranking(qg, dist(q_feats, q_feats), dist(g_all, g_all), **(rerank_params or {}))
    return evaluate_rank(
        qg, q_pids, gp, q_camids, gc, protocol=protocol, ap_form=ap_form, max_rank=max_rank, ranks=ranks
    )
