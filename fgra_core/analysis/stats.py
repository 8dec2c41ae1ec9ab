"""Statistics of a study: bootstrap confidence intervals of paired differences, the probability of
improvement, and verdicts on claims.

A claim compares runs that differ in one thing and share everything else, seeds included
(Musgrave et al. 2020: identical settings for every compared method). Its statistic is a linear
combination of per-query scores, each a ``Term``: a coefficient and an array ``[S, Q]`` (S seeds in
the same order in every term, Q queries of one query set). ``A - B`` is two terms on one query
set; "the gain of A over B grows from knob 0 to knob 1" is four terms on two query sets.

**Interval** (Bouthillier et al. 2021; Agarwal et al. 2021): a two-way bootstrap. Each resample
draws S seeds with replacement (the same draw for every term: the seed pairing is kept) and, for
each query set, Q queries with replacement (the same draw for every term on that set: queries are
paired too); the statistic is recomputed, and the 2.5 and 97.5 percentiles of the resamples are
the 95% interval (percentile method). Drawing with replacement is a multinomial draw of counts, so
a resample's mean is ``c_s^T X c_q / (S Q)`` with count vectors ``c_s`` and ``c_q``; the counts come
from ``numpy.random.Generator.multinomial``.

**Probability of improvement**: the fraction of seeds whose own statistic (every term averaged
over the queries of that seed) is above 0, ties counting one half.

**Verdict** for a directional claim (``">"``): *supported* when the interval excludes 0 on the
paper's side, *contradicted* when it excludes 0 on the other side, else *inconclusive*. For an
equivalence claim (``"≈"``, within a margin m): *supported* when the interval lies inside (-m, m),
*contradicted* when it lies entirely outside [-m, m], else *inconclusive*. A compound claim (such
as "row 8 is the best") is supported when every part is, contradicted when any part is, else
inconclusive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fgra_core.utils.errors import FGRAError

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
N_RESAMPLES = 10_000
CONFIDENCE = 0.95


class StatsError(FGRAError):
    """Inputs that cannot carry a statistic (too few seeds, mismatched shapes)."""


@dataclass(frozen=True)
class Term:
    coef: float
    scores: np.ndarray      # [S, Q] per-seed, per-query scores (NaN: the query does not count)
    query_set: str = "q"    # terms on the same query set resample the same queries


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    prob_improvement: float
    seeds: int
    queries: int            # queries of the largest query set
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0


def _prepared(terms: Sequence[Term]) -> tuple[list[Term], int, dict[str, int]]:
    if not terms:
        raise StatsError("a claim needs at least one term")
    seeds = {np.asarray(t.scores).shape[0] for t in terms}
    if len(seeds) != 1:
        raise StatsError(f"every term needs the same seeds; got seed counts {sorted(seeds)}")
    S = seeds.pop()
    if S < 2:
        raise StatsError(f"an interval over seeds needs at least 2 seeds, got {S}")
    # a query counts when every term of its set has a finite score for every seed
    keep: dict[str, np.ndarray] = {}
    for t in terms:
        arr = np.asarray(t.scores, dtype=np.float64)
        if arr.ndim != 2:
            raise StatsError(f"scores must be [seeds, queries], got shape {arr.shape}")
        ok = np.isfinite(arr).all(axis=0)
        if t.query_set in keep:
            if keep[t.query_set].shape != ok.shape:
                raise StatsError(f"query set {t.query_set!r}: terms disagree on the number of queries")
            keep[t.query_set] &= ok
        else:
            keep[t.query_set] = ok
    out = [Term(t.coef, np.asarray(t.scores, dtype=np.float64)[:, keep[t.query_set]], t.query_set) for t in terms]
    sizes = {qs: int(k.sum()) for qs, k in keep.items()}
    if min(sizes.values()) < 1:
        raise StatsError("a query set has no query with a score in every run")
    return out, S, sizes


def point_estimate(terms: Sequence[Term]) -> float:
    terms, _, _ = _prepared(terms)
    return float(sum(t.coef * t.scores.mean() for t in terms))


def per_seed(terms: Sequence[Term]) -> np.ndarray:
    """The statistic of each seed alone (queries averaged): [S]."""
    terms, S, _ = _prepared(terms)
    return np.sum([t.coef * t.scores.mean(axis=1) for t in terms], axis=0)


def probability_of_improvement(terms: Sequence[Term]) -> float:
    s = per_seed(terms)
    return float(((s > 0).sum() + 0.5 * (s == 0).sum()) / len(s))


def bootstrap_distribution(terms: Sequence[Term], n_resamples: int = N_RESAMPLES, seed: int = 0,
                           chunk: int = 2000) -> np.ndarray:
    """The statistic over ``n_resamples`` two-way (seeds x queries) resamples: [n_resamples]."""
    terms, S, sizes = _prepared(terms)
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples, dtype=np.float64)
    for r0 in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - r0)
        cs = rng.multinomial(S, np.full(S, 1.0 / S), size=r).astype(np.float64)           # [r, S]
        cq = {qs: rng.multinomial(Q, np.full(Q, 1.0 / Q), size=r).astype(np.float64)       # [r, Q]
              for qs, Q in sorted(sizes.items())}
        total = np.zeros(r)
        for t in terms:
            Q = sizes[t.query_set]
            total += t.coef * np.einsum("rs,sq,rq->r", cs, t.scores, cq[t.query_set]) / (S * Q)
        out[r0:r0 + r] = total
    return out


def interval(terms: Sequence[Term], n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
             seed: int = 0) -> Interval:
    """Point estimate, percentile bootstrap interval and probability of improvement of a claim."""
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")
    prepared, S, sizes = _prepared(terms)
    dist = bootstrap_distribution(prepared, n_resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(dist, [alpha, 1.0 - alpha])
    return Interval(point_estimate(prepared), float(low), float(high), probability_of_improvement(prepared),
                    S, max(sizes.values()), confidence)


def verdict(low: float, high: float, direction: str = ">", margin: float = 0.0) -> str:
    """``supported`` / ``contradicted`` / ``inconclusive`` of one interval (see the module notes)."""
    if direction == ">":
        return SUPPORTED if low > 0 else CONTRADICTED if high < 0 else INCONCLUSIVE
    if direction == "<":
        return SUPPORTED if high < 0 else CONTRADICTED if low > 0 else INCONCLUSIVE
    if direction == "≈":
        if margin <= 0:
            raise StatsError(f"an equivalence claim needs a positive margin, got {margin}")
        if -margin < low and high < margin:
            return SUPPORTED
        if low > margin or high < -margin:
            return CONTRADICTED
        return INCONCLUSIVE
    raise StatsError(f"direction {direction!r}; expected '>', '<' or '≈'")


def combine(verdicts: Sequence[str]) -> str:
    """A compound claim: supported if every part is, contradicted if any part is."""
    verdicts = list(verdicts)
    if not verdicts:
        return INCONCLUSIVE
    if any(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE
