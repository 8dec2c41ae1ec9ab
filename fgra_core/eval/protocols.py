"""The evaluation protocols of video re-ID and what every evaluation shares: the protocol names,
the AP forms, the result record, input checks, the protocol's gallery and the summary over splits.
The fast metrics are in :mod:`fgra_core.eval.rank`, the brute-force reference in
:mod:`fgra_core.eval.reference`.

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

from fgra_core.utils.errors import ConfigError, FGRAError

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


def as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_inputs(distmat, q_pids, g_pids, q_camids, g_camids, protocol, ap_form, max_rank, ranks):
    if protocol not in PROTOCOLS:
        raise ConfigError(f"evaluation protocol {protocol!r} is unknown; expected one of {PROTOCOLS}")
    if ap_form is None:
        ap_form = DEFAULT_AP_FORM[protocol]
    if ap_form not in AP_FORMS:
        raise ConfigError(f"ap_form {ap_form!r} is unknown; expected one of {AP_FORMS}")
    d = as_numpy(distmat)
    if d.ndim != 2:
        raise FGRAError(f"distmat must be 2-D [num_query, num_gallery], got shape {d.shape}")
    if d.dtype not in (np.float32, np.float64):
        d = d.astype(np.float64)  # exact for integers and float16
    arrays = [as_numpy(a).astype(np.int64).ravel() for a in (q_pids, g_pids, q_camids, g_camids)]
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


def make_result(cmc_sum, ap_plain, ap_trap, nq, skipped, protocol, ap_form, max_rank, ranks) -> RankResult:
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


def build_protocol_gallery(protocol: str, q_feats, g_feats, q_pids, g_pids, q_camids, g_camids):
    """Gallery features and labels of a protocol, from the query and the disjoint gallery sets.

    ``"official"`` appends the queries after the gallery (every test tracklet is in the gallery);
    the other protocols return the gallery unchanged. Returns ``(g_feats, g_pids, g_camids)``;
    features keep their type (torch tensor or numpy array), labels are numpy int64.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"evaluation protocol {protocol!r} is unknown; expected one of {PROTOCOLS}")
    gp = as_numpy(g_pids).astype(np.int64).ravel()
    gc = as_numpy(g_camids).astype(np.int64).ravel()
    if protocol != "official":
        return g_feats, gp, gc
    qp = as_numpy(q_pids).astype(np.int64).ravel()
    qc = as_numpy(q_camids).astype(np.int64).ravel()
    if hasattr(g_feats, "detach"):
        import torch

        feats = torch.cat([g_feats, q_feats.to(g_feats.device, g_feats.dtype)], dim=0)
    else:
        feats = np.concatenate([np.asarray(g_feats), np.asarray(q_feats)], axis=0)
    return feats, np.concatenate([gp, qp]), np.concatenate([gc, qc])


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
