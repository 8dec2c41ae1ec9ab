"""CMC and mAP for video re-ID, for each evaluation protocol: a fast version and a brute-force reference.

Protocols (``protocol=``), all sharing one matching rule per query:

* junk: gallery entries with pid ``-1`` are ignored (never ranked);
* ignored: gallery entries with the query's pid AND the query's camera are ignored;
* positives: gallery entries with the query's pid in another camera;
* negatives: every other gallery entry, distractors (pid ``0`` on MARS) included;
* a query with no positive is skipped: it enters neither CMC nor mAP, and is counted in
  ``RankResult.num_skipped`` (140 queries on full MARS under ``gallery-minus-query``).

Ranks are counted among the non-ignored entries only (ignored entries are removed from the
ranking, they do not push positives down).

``"gallery-minus-query"``
    The gallery is the test tracklets that are not queries (``VideoDataset.gallery``), as in
    torchreid and Video-Person-ReID. Plain AP by default.
``"official"``
    The MARS evaluation kit (``test_mars.m``): the gallery is every test tracklet, the queries
    included. Pass the gallery built by :func:`build_protocol_gallery` (it appends the queries
    after ``VideoDataset.gallery``); each query's own entry then has its pid and camera and is
    ignored by the rule above. The kit's AP is the trapezoid form (``ap_form="trapezoid"``, the
    default for this protocol); the plain AP is reported beside it.
``"cross-camera"``
    iLIDS-VID / PRID-2011: camera-1 queries against the camera-2 gallery. Same rule; with
    disjoint cameras nothing is ignored. Average over splits with :func:`summarise_splits`.

The distance matrix must cover exactly the protocol's gallery: its columns are the entries of
``g_pids`` / ``g_camids`` in order. :func:`evaluate_features` does the whole chain (gallery of
the protocol, distances, optional re-ranking, metrics) from features.

AP forms (``ap_form=``), for a query with ``n`` positives found at ranks ``r_1 < ... < r_n``
(1-based, among non-ignored entries):

* ``"plain"``: ``AP = (1/n) * sum_k k / r_k`` (torchreid, AP3D and most public code);
* ``"trapezoid"``: the kit's ``ap += (recall - old_recall) * (old_precision + precision) / 2``
  with ``old_precision`` starting at 1: ``AP = (1/n) * sum_k (p(r_k - 1) + k / r_k) / 2`` where
  ``p(r_k - 1) = (k - 1) / (r_k - 1)`` is the precision one place above the k-th positive
  (1 when ``r_k = 1``). It is never above the plain AP.

Ties: the ranking is the stable sort of each row, i.e. entries at equal distance are ordered by
their column index (``np.argsort(kind="stable")``, MATLAB's ``sort``). The fast version reproduces
this order exactly, so its CMC is identical to the reference's and its APs agree to rounding,
on tie-heavy inputs too. With :func:`build_protocol_gallery` the queries sit after the gallery
(the kit keeps them at their place among the test tracklets): this changes results only when a
query's entry ties with another entry at the same distance.

CMC and APs are fractions in [0, 1]; :meth:`RankResult.as_dict` gives percentages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from fgra_core.errors import ConfigError, FGRAError

PROTOCOLS = ("gallery-minus-query", "official", "cross-camera")
AP_FORMS = ("plain", "trapezoid")
DEFAULT_AP_FORM = {"gallery-minus-query": "plain", "official": "trapezoid", "cross-camera": "plain"}
JUNK_PID = -1


@dataclass
class RankResult:
    """Metrics of one evaluation, with the protocol and AP form that produced them."""

    cmc: np.ndarray                 # [max_rank] float64: fraction of valid queries matched within rank r+1
    rank: dict[int, float]          # {1: cmc[0], 5: cmc[4], ...} for the requested ranks
    mAP: float                      # mean AP in the form named by ``ap_form``
    mAP_plain: float                # mean plain AP (always computed)
    mAP_trapezoid: float            # mean trapezoid AP (always computed; the kit's number for "official")
    num_queries: int                # queries given
    num_valid: int                  # queries with at least one positive (enter CMC and mAP)
    num_skipped: int                # queries without any positive
    protocol: str
    ap_form: str
    max_rank: int
    skipped_queries: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # per query (in query order), for paired statistics across runs; ``evaluate_rank`` fills them:
    first_rank: np.ndarray | None = None   # rank (1-based) of the first true match; 0 for a skipped query
    ap: np.ndarray | None = None           # AP in ``ap_form``; NaN for a skipped query

    def per_query(self) -> dict[str, list]:
        """JSON-friendly per-query outcomes: ``first_rank`` (0 = skipped) and ``ap`` (``None`` = skipped)."""
        if self.first_rank is None or self.ap is None:
            raise FGRAError("this RankResult carries no per-query outcomes (use evaluate_rank)")
        return {"first_rank": [int(v) for v in self.first_rank],
                "ap": [None if not np.isfinite(v) else float(v) for v in self.ap]}

    def as_dict(self, percent: bool = True) -> dict[str, Any]:
        """JSON-friendly summary (percentages by default)."""
        s = 100.0 if percent else 1.0
        return {
            "protocol": self.protocol,
            "ap_form": self.ap_form,
            "mAP": self.mAP * s,
            "mAP_plain": self.mAP_plain * s,
            "mAP_trapezoid": self.mAP_trapezoid * s,
            **{f"rank{r}": v * s for r, v in self.rank.items()},
            "num_queries": self.num_queries,
            "num_valid": self.num_valid,
            "num_skipped": self.num_skipped,
            "percent": percent,
        }


# --------------------------------------------------------------------------- input checks


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check(distmat, q_pids, g_pids, q_camids, g_camids, protocol, ap_form, max_rank, ranks):
    if protocol not in PROTOCOLS:
        raise ConfigError(f"evaluation protocol {protocol!r} is unknown; expected one of {PROTOCOLS}")
    if ap_form is None:
        ap_form = DEFAULT_AP_FORM[protocol]
    if ap_form not in AP_FORMS:
        raise ConfigError(f"ap_form {ap_form!r} is unknown; expected one of {AP_FORMS}")
    d = _as_numpy(distmat)
    if d.ndim != 2:
        raise FGRAError(f"distmat must be 2-D [num_query, num_gallery], got shape {d.shape}")
    if d.dtype not in (np.float32, np.float64):
        d = d.astype(np.float64)  # exact for integers and float16
    arrays = [_as_numpy(a).astype(np.int64).ravel() for a in (q_pids, g_pids, q_camids, g_camids)]
    qp, gp, qc, gc = arrays
    nq, ng = d.shape
    for name, arr, n in (("q_pids", qp, nq), ("g_pids", gp, ng), ("q_camids", qc, nq), ("g_camids", gc, ng)):
        if arr.shape[0] != n:
            raise FGRAError(f"{name} has {arr.shape[0]} entries but distmat is {nq} x {ng}")
    if d.size and np.isnan(d.min()):  # min propagates NaN
        raise FGRAError("distmat contains NaN; distances must be comparable")
    max_rank = int(max_rank)
    if max_rank < 1:
        raise ConfigError(f"max_rank must be >= 1, got {max_rank}")
    ranks = tuple(int(r) for r in ranks)
    bad = [r for r in ranks if not 1 <= r <= max_rank]
    if bad:
        raise ConfigError(f"ranks {bad} are outside 1..max_rank={max_rank}")
    return d, qp, gp, qc, gc, ap_form, max_rank, ranks


def _result(cmc_sum, ap_plain, ap_trap, nq, skipped, protocol, ap_form, max_rank, ranks) -> RankResult:
    num_valid = nq - len(skipped)
    if num_valid == 0:
        raise FGRAError(f"no query has a valid match under protocol {protocol!r}: nothing to evaluate")
    cmc = cmc_sum / num_valid
    m_plain = float(np.mean(ap_plain))
    m_trap = float(np.mean(ap_trap))
    return RankResult(
        cmc=cmc,
        rank={r: float(cmc[r - 1]) for r in ranks},
        mAP=m_plain if ap_form == "plain" else m_trap,
        mAP_plain=m_plain,
        mAP_trapezoid=m_trap,
        num_queries=nq,
        num_valid=num_valid,
        num_skipped=len(skipped),
        protocol=protocol,
        ap_form=ap_form,
        max_rank=max_rank,
        skipped_queries=np.asarray(skipped, dtype=np.int64),
    )


# --------------------------------------------------------------------------- reference


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
    d, qp, gp, qc, gc, ap_form, max_rank, ranks = _check(
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
    return _result(cmc_sum, ap_plain, ap_trap, nq, skipped, protocol, ap_form, max_rank, ranks)


# --------------------------------------------------------------------------- fast

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
    d, qp, gp, qc, gc, ap_form, max_rank, ranks = _check(
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
    res = _result(cmc_sum, ap_plain[has_pos], ap_trap[has_pos], nq, skipped, protocol, ap_form, max_rank, ranks)
    res.first_rank = first
    res.ap = np.where(has_pos, ap_plain if ap_form == "plain" else ap_trap, np.nan)
    return res


# --------------------------------------------------------------------------- protocols and splits


def build_protocol_gallery(protocol: str, q_feats, g_feats, q_pids, g_pids, q_camids, g_camids):
    """Gallery features and labels of a protocol, from the query and the disjoint gallery sets.

    ``"official"`` appends the queries after the gallery (every test tracklet is in the gallery);
    the other protocols return the gallery unchanged. Returns ``(g_feats, g_pids, g_camids)``;
    features keep their type (torch tensor or numpy array), labels are numpy int64.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"evaluation protocol {protocol!r} is unknown; expected one of {PROTOCOLS}")
    gp = _as_numpy(g_pids).astype(np.int64).ravel()
    gc = _as_numpy(g_camids).astype(np.int64).ravel()
    if protocol != "official":
        return g_feats, gp, gc
    qp = _as_numpy(q_pids).astype(np.int64).ravel()
    qc = _as_numpy(q_camids).astype(np.int64).ravel()
    if hasattr(g_feats, "detach"):
        import torch

        feats = torch.cat([g_feats, q_feats.to(g_feats.device, g_feats.dtype)], dim=0)
    else:
        feats = np.concatenate([np.asarray(g_feats), np.asarray(q_feats)], axis=0)
    return feats, np.concatenate([gp, qp]), np.concatenate([gc, qc])


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


def summarise_splits(results: Sequence[RankResult], *, ddof: int = 0, percent: bool = True) -> dict[str, Any]:
    """Mean and standard deviation (``ddof`` as in ``np.std``) of each metric over splits.

    Returns ``{"num_splits", "protocol", "ap_form", "percent", "mAP": {"mean", "std"},
    "mAP_plain": ..., "mAP_trapezoid": ..., "rank1": ..., ..., "cmc_mean": [...]}``.
    All results must share protocol, AP form and ranks.
    """
    results = list(results)
    if not results:
        raise FGRAError("summarise_splits needs at least one RankResult")
    first = results[0]
    for r in results[1:]:
        if (r.protocol, r.ap_form, tuple(r.rank), r.max_rank) != (
            first.protocol,
            first.ap_form,
            tuple(first.rank),
            first.max_rank,
        ):
            raise FGRAError(
                "summarise_splits: results differ in protocol, AP form or ranks "
                f"({r.protocol}/{r.ap_form}/{tuple(r.rank)} vs {first.protocol}/{first.ap_form}/{tuple(first.rank)})"
            )
    s = 100.0 if percent else 1.0
    out: dict[str, Any] = {
        "num_splits": len(results),
        "protocol": first.protocol,
        "ap_form": first.ap_form,
        "percent": percent,
    }

    def stat(values):
        v = np.asarray(values, dtype=np.float64) * s
        return {"mean": float(v.mean()), "std": float(v.std(ddof=ddof)) if len(v) > ddof else float("nan")}

    out["mAP"] = stat([r.mAP for r in results])
    out["mAP_plain"] = stat([r.mAP_plain for r in results])
    out["mAP_trapezoid"] = stat([r.mAP_trapezoid for r in results])
    for k in first.rank:
        out[f"rank{k}"] = stat([r.rank[k] for r in results])
    out["cmc_mean"] = (np.mean([r.cmc for r in results], axis=0) * s).tolist()
    out["num_skipped"] = [r.num_skipped for r in results]
    return out
