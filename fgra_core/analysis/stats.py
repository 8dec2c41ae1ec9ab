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

**Trunk level.** Pass ``trunks`` (one label per seed row: the trunk file, e.g. a pretrained
backbone, that the seed's run used) when several seeds share a trunk; the resampling is then
hierarchical over three levels, trunks x seeds within trunk x queries. A resample draws the T
distinct trunks with replacement (counts ``k_t``), then for each trunk ``k_t * n_t`` of its ``n_t``
seeds with replacement (the sum of ``k_t`` independent draws of that trunk's seeds), giving seed
counts ``c_s``; queries are drawn as above and the mean is ``c_s^T X c_q / (sum(c_s) Q)``. Which
design to use:

- *seed s -> trunk s* (every seed trained its own trunk): the trunk's variance is already part of
  the seed-to-seed variance, and the two-way bootstrap covers it; passing one trunk per seed gives
  the same distribution as passing none.
- *several head seeds per trunk*: pass ``trunks``. The two-way bootstrap would treat seeds that
  share a trunk as independent and understate the interval; the three-level design counts the
  trunk-to-trunk variance once per trunk.
- *one trunk for every seed*: the trunk's variance is absent from the data, so the two-way interval
  speaks of that trunk only; an interval over trunks needs at least 2 of them (``StatsError``).

``Interval.se`` is the standard deviation (ddof=1) of the bootstrap distribution and
``Interval.trunks`` the number of distinct trunks (``None`` without ``trunks``).

**Few top-level units: the t interval** (``method="t"``). The percentile interval is too narrow
when the outermost level has few units n (the trunks, else the seeds): the bootstrap variance of a
mean is (n - 1)/n of the usual estimate (Hesterberg 2015, "What teachers should know about the
bootstrap", The American Statistician 69(4)), and its tails are normal where a t with n - 1 degrees
of freedom belongs. The t interval is ``estimate -/+ sqrt(n / (n - 1)) * t_{1 - alpha/2, n - 1} * se``
with ``se`` the bootstrap's standard error (the standard bootstrap interval of Efron & Tibshirani
1993, section 13.3, with the small-sample t quantile): for normal data it is the classical t
interval, 95% coverage at n = 5 where the percentile interval has about 80%
(``tests/test_stats_t.py``); at n = 5 it is 3.10 se from the estimate on each side. The expanded
percentile interval (the same factor, read as a level of the bootstrap distribution) was set aside:
a bootstrap distribution of 5 units has almost no mass 3.1 se out, so it stays short of 95%. The
study's claims use ``STUDY_METHOD = "t"``.

**Minimum detectable effect** (a power analysis from the bootstrap's standard error, normal
approximation, alpha = 1 - confidence, ``z_p`` the standard normal quantile; for a
t interval over n units ``z_p`` becomes ``sqrt(n / (n - 1)) * t_{p, n - 1}``: 4.156 se at n = 5). For ``">"``/``"<"``:
the smallest true difference that the plan calls supported with probability ``power``,
``MDE = (z_{1-alpha/2} + z_{power}) * se`` (2.8016 se at 95% and power 0.8). For ``"≈"``: the
smallest margin that the plan calls supported with probability ``power`` when the true difference
is 0, ``MDE = (z_{1-alpha/2} + z_{(1+power)/2}) * se`` (3.2415 se at 95% and power 0.8).

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

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Hashable, Sequence

import numpy as np

from fgra_core.utils.errors import FGRAError

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
N_RESAMPLES = 10_000
CONFIDENCE = 0.95
POWER = 0.8
METHODS = ("percentile", "t")
STUDY_METHOD = "t"            # the claims table's intervals (see the module notes)


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
    trunks: int | None = None   # distinct trunks of a three-level interval (None: two-way)
    se: float = float("nan")    # standard deviation (ddof=1) of the bootstrap distribution
    method: str = "percentile"  # or "t" (see the module notes)
    units: int | None = None    # top-level units of a t interval (trunks, else seeds)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def mde(self, direction: str = ">", power: float = POWER) -> float:
        """The minimum detectable effect of this interval's plan (see the module notes)."""
        return minimum_detectable_effect(self.se, direction, self.confidence, power, units=self.units)


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


def _trunk_groups(trunks: Sequence[Hashable], S: int) -> list[np.ndarray]:
    """The seed rows of each distinct trunk, in order of first appearance."""
    trunks = list(trunks)
    if len(trunks) != S:
        raise StatsError(f"trunks needs one label per seed: got {len(trunks)} labels for {S} seeds")
    rows: dict[Hashable, list[int]] = {}
    for s, label in enumerate(trunks):
        rows.setdefault(label, []).append(s)
    if len(rows) < 2:
        raise StatsError(f"an interval over trunks needs at least 2 trunks, got {len(rows)}")
    return [np.asarray(r) for r in rows.values()]


def _trunk_counts(rng: np.random.Generator, groups: list[np.ndarray], r: int, S: int) -> np.ndarray:
    """Seed counts [r, S] of r three-level resamples: trunks, then k_t * n_t seeds of each trunk."""
    T = len(groups)
    k = rng.multinomial(T, np.full(T, 1.0 / T), size=r)                                    # [r, T]
    cs = np.zeros((r, S))
    for t, rows in enumerate(groups):
        n = len(rows)
        cs[:, rows] = rng.multinomial(k[:, t] * n, np.full(n, 1.0 / n))                   # [r, n]
    return cs


def bootstrap_distribution(terms: Sequence[Term], n_resamples: int = N_RESAMPLES, seed: int = 0,
                           chunk: int = 2000, trunks: Sequence[Hashable] | None = None) -> np.ndarray:
    """The statistic over ``n_resamples`` two-way (seeds x queries) resamples, or three-level
    (trunks x seeds x queries) ones when ``trunks`` labels the seeds: [n_resamples]."""
    terms, S, sizes = _prepared(terms)
    groups = None if trunks is None else _trunk_groups(trunks, S)
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples, dtype=np.float64)
    for r0 in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - r0)
        if groups is None:
            cs = rng.multinomial(S, np.full(S, 1.0 / S), size=r).astype(np.float64)       # [r, S]
            n_seeds = S
        else:
            cs = _trunk_counts(rng, groups, r, S)
            n_seeds = cs.sum(axis=1)                                                       # [r]
        cq = {qs: rng.multinomial(Q, np.full(Q, 1.0 / Q), size=r).astype(np.float64)       # [r, Q]
              for qs, Q in sorted(sizes.items())}
        total = np.zeros(r)
        for t in terms:
            Q = sizes[t.query_set]
            total += t.coef * np.einsum("rs,sq,rq->r", cs, t.scores, cq[t.query_set]) / (n_seeds * Q)
        out[r0:r0 + r] = total
    return out


def _t_quantile(p: float, df: int) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(p, df))


def critical_value(p: float, units: int | None = None) -> float:
    """``z_p``, or ``sqrt(n / (n - 1)) * t_{p, n - 1}`` for ``units`` n (the t interval's)."""
    if units is None:
        return NormalDist().inv_cdf(p)
    if units < 2:
        raise StatsError(f"a t interval needs at least 2 top-level units, got {units}")
    return math.sqrt(units / (units - 1)) * _t_quantile(p, units - 1)


def interval(terms: Sequence[Term], n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
             seed: int = 0, trunks: Sequence[Hashable] | None = None, method: str = "percentile") -> Interval:
    """Point estimate, bootstrap interval (``method``: ``"percentile"`` or ``"t"``) and
    probability of improvement of a claim; three-level (trunks x seeds x queries) when ``trunks``
    labels the seeds."""
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")
    if method not in METHODS:
        raise StatsError(f"method {method!r}; expected one of {', '.join(METHODS)}")
    prepared, S, sizes = _prepared(terms)
    n_trunks = None if trunks is None else len(_trunk_groups(trunks, S))
    dist = bootstrap_distribution(prepared, n_resamples, seed, trunks=trunks)
    alpha = (1.0 - confidence) / 2.0
    se = float(dist.std(ddof=1)) if len(dist) > 1 else float("nan")
    estimate = point_estimate(prepared)
    units = None
    if method == "t":
        units = n_trunks or S
        reach = critical_value(1.0 - alpha, units) * se
        low, high = estimate - reach, estimate + reach
    else:
        low, high = np.quantile(dist, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), probability_of_improvement(prepared),
                    S, max(sizes.values()), confidence, n_trunks, se, method, units)


def minimum_detectable_effect(se: float, direction: str = ">", confidence: float = CONFIDENCE,
                              power: float = POWER, units: int | None = None) -> float:
    """The smallest effect (``">"``/``"<"``) or margin (``"≈"``) that a plan with standard error
    ``se`` calls supported with probability ``power`` (normal approximation, or the
    t interval's quantiles over ``units`` top-level units; see the module notes)."""
    if not (np.isfinite(se) and se >= 0):
        raise StatsError(f"se must be finite and >= 0, got {se}")
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")
    if not 0 < power < 1:
        raise StatsError(f"power must be in (0, 1), got {power}")
    def z(p: float) -> float:
        return critical_value(p, units)

    if direction in (">", "<"):
        return (z(1.0 - (1.0 - confidence) / 2.0) + z(power)) * se
    if direction == "≈":
        return (z(1.0 - (1.0 - confidence) / 2.0) + z((1.0 + power) / 2.0)) * se
    raise StatsError(f"direction {direction!r}; expected '>', '<' or '≈'")


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
