"""Bootstrap intervals, probability of improvement and verdicts against cases worked by hand."""
import numpy as np
import pytest

from fgra_core.analysis.stats import (
    CONTRADICTED,
    INCONCLUSIVE,
    SUPPORTED,
    StatsError,
    Term,
    bootstrap_distribution,
    combine,
    interval,
    per_seed,
    point_estimate,
    probability_of_improvement,
    verdict,
)


def _freq(dist, values):
    return {v: float(np.mean(np.isclose(dist, v))) for v in values}


def test_two_seeds_one_query_resample_distribution_by_hand():
    # per-seed differences 0 and 10: a resample draws the seeds (2,0), (1,1) or (0,2) with
    # probabilities 1/4, 1/2, 1/4, so its mean is 0, 5 or 10 with those probabilities
    terms = [Term(1.0, np.array([[0.0], [10.0]]))]
    dist = bootstrap_distribution(terms, n_resamples=20000, seed=1)
    f = _freq(dist, (0.0, 5.0, 10.0))
    assert f[0.0] == pytest.approx(0.25, abs=0.015) and f[5.0] == pytest.approx(0.5, abs=0.015)
    assert f[10.0] == pytest.approx(0.25, abs=0.015) and sum(f.values()) == pytest.approx(1.0)
    iv = interval(terms, n_resamples=20000)
    assert (iv.estimate, iv.low, iv.high, iv.half_width) == (5.0, 0.0, 10.0, 5.0)
    # seed 0 ties (0.5), seed 1 improves (1): (0.5 + 1) / 2
    assert iv.prob_improvement == 0.75


def test_crossed_seeds_and_queries_by_hand():
    # X = [[0, 0], [0, 4]]: a resample's mean is c_s1 * c_q1 * 4 / 4 = c_s1 * c_q1 with c_s1, c_q1
    # independent and each 0, 1, 2 with probabilities 1/4, 1/2, 1/4 -> P(0) = 1 - 3/4 * 3/4 = 7/16,
    # P(1) = 1/4, P(2) = 2 * (1/2 * 1/4) = 1/4, P(4) = 1/16
    terms = [Term(1.0, np.array([[0.0, 0.0], [0.0, 4.0]]))]
    f = _freq(bootstrap_distribution(terms, n_resamples=40000, seed=2), (0.0, 1.0, 2.0, 4.0))
    assert f == pytest.approx({0.0: 7 / 16, 1.0: 1 / 4, 2.0: 1 / 4, 4.0: 1 / 16}, abs=0.012)
    assert point_estimate(terms) == 1.0


def test_paired_terms_resample_the_same_seeds_and_queries():
    # A and B equal up to a constant 3 on every (seed, query): every resample of A - B is exactly 3
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 40)) * 30
    iv = interval([Term(1.0, a + 3.0), Term(-1.0, a)], n_resamples=500)
    assert iv.low == pytest.approx(3.0) and iv.high == pytest.approx(3.0) and iv.prob_improvement == 1.0


def test_one_query_many_seeds_matches_scipy_percentile_bootstrap():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    d = rng.normal(2.0, 5.0, size=60)
    ours = interval([Term(1.0, d[:, None])], n_resamples=40000, seed=4)
    ref = scipy_stats.bootstrap((d,), np.mean, method="percentile", n_resamples=40000, rng=5).confidence_interval
    sd = d.std() / np.sqrt(len(d))
    assert ours.low == pytest.approx(ref.low, abs=0.05 * sd) and ours.high == pytest.approx(ref.high, abs=0.05 * sd)


def test_nan_queries_are_left_out_of_every_term_of_their_set():
    a = np.array([[1.0, np.nan, 3.0], [1.0, 5.0, 3.0]])
    b = np.zeros((2, 3))
    assert point_estimate([Term(1.0, a), Term(-1.0, b)]) == 2.0   # query 1 dropped for both
    assert per_seed([Term(1.0, a), Term(-1.0, b)]).tolist() == [2.0, 2.0]


def test_probability_of_improvement_counts_seeds():
    t = [Term(1.0, np.array([[1.0], [-1.0], [2.0], [0.0]]))]
    assert probability_of_improvement(t) == (2 + 0.5) / 4


@pytest.mark.parametrize("low, high, direction, margin, expected", [
    (0.5, 3.0, ">", 0, SUPPORTED), (-3.0, -0.1, ">", 0, CONTRADICTED), (-1.0, 2.0, ">", 0, INCONCLUSIVE),
    (0.0, 2.0, ">", 0, INCONCLUSIVE),            # touching 0 does not exclude it
    (-3.0, -0.1, "<", 0, SUPPORTED), (-1.5, 1.5, "≈", 2, SUPPORTED), (2.5, 4.0, "≈", 2, CONTRADICTED),
    (-4.0, -2.1, "≈", 2, CONTRADICTED), (1.0, 3.0, "≈", 2, INCONCLUSIVE),
])
def test_verdicts(low, high, direction, margin, expected):
    assert verdict(low, high, direction, margin) == expected


def test_compound_verdicts():
    assert combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([SUPPORTED, CONTRADICTED, INCONCLUSIVE]) == CONTRADICTED
    assert combine([]) == INCONCLUSIVE


def test_bad_inputs_are_clear_errors():
    with pytest.raises(StatsError, match="at least 2 seeds, got 1"):
        interval([Term(1.0, np.ones((1, 5)))])
    with pytest.raises(StatsError, match="same seeds"):
        interval([Term(1.0, np.ones((2, 5))), Term(-1.0, np.ones((3, 5)))])
    with pytest.raises(StatsError, match="positive margin"):
        verdict(0.0, 1.0, "≈", 0.0)
