"""The trunk level of the bootstrap and the minimum detectable effect, against cases worked by hand."""
import itertools
from math import comb
from statistics import NormalDist

import numpy as np
import pytest

from fgra_core.analysis.stats import (
    POWER,
    Interval,
    StatsError,
    Term,
    bootstrap_distribution,
    interval,
    minimum_detectable_effect,
)

Z975, Z80, Z90 = (NormalDist().inv_cdf(p) for p in (0.975, 0.8, 0.9))


def _freq(dist, values):
    return {v: float(np.mean(np.isclose(dist, v))) for v in values}


def _multinomial_outcomes(n, k):
    """Every count vector of n draws over k equally likely cells, with its probability."""
    for c in itertools.product(range(n + 1), repeat=k):
        if sum(c) == n:
            p, left = 1.0, n
            for ci in c:
                p *= comb(left, ci)
                left -= ci
            yield np.array(c, dtype=float), p / k ** n


def _exact_three_level(x, groups):
    """The exact distribution (values, probabilities) of the three-level mean of one query, x: [S]."""
    T, values, probs = len(groups), [], []
    for k, pk in _multinomial_outcomes(T, T):
        per_trunk = [list(_multinomial_outcomes(int(k[t]) * len(rows), len(rows))) for t, rows in enumerate(groups)]
        for combo in itertools.product(*per_trunk):
            cs = np.zeros(len(x))
            p = pk
            for rows, (c, pc) in zip(groups, combo):
                cs[rows] = c
                p *= pc
            values.append(cs @ x / cs.sum())
            probs.append(p)
    return np.array(values), np.array(probs)


# ---- trunk level -------------------------------------------------------------------------------

def test_two_trunks_one_seed_each_by_hand():
    # scores a = 2 and b = 8: a resample draws the trunks (2,0), (1,1) or (0,2) with probabilities
    # 1/4, 1/2, 1/4, and each trunk's single seed k_t times, so its mean is a, (a+b)/2 or b
    a, b = 2.0, 8.0
    terms = [Term(1.0, np.array([[a], [b]]))]
    dist = bootstrap_distribution(terms, n_resamples=200_000, seed=11, trunks=["t0", "t1"])
    f = _freq(dist, (a, (a + b) / 2, b))
    assert f[a] == pytest.approx(0.25, abs=0.005) and f[(a + b) / 2] == pytest.approx(0.5, abs=0.005)
    assert f[b] == pytest.approx(0.25, abs=0.005) and sum(f.values()) == pytest.approx(1.0)
    assert np.quantile(dist, [0.025, 0.5, 0.975]).tolist() == [a, (a + b) / 2, b]
    iv = interval(terms, n_resamples=200_000, seed=11, trunks=["t0", "t1"])
    assert (iv.estimate, iv.low, iv.high, iv.trunks, iv.seeds) == (5.0, a, b, 2, 2)
    # exact std of the distribution: values -3, 0, 3 around 5 with weights 1/4, 1/2, 1/4 -> sqrt(4.5)
    assert iv.se == pytest.approx(np.sqrt(4.5), rel=0.01)


def test_two_trunks_two_seeds_each_mean_and_variance_by_hand():
    # seeds x = [0, 2 | 6, 10], trunks t0 = {0, 1}, t1 = {2, 3}, one query; sum(c_s) = 2 (k_0 + k_1) = 4.
    # Trunk level: E[mean | k] = (k_0 m_0 + k_1 m_1) / 2 with trunk means m = (1, 8) and k_0 ~ Bin(2, 1/2):
    # Var = (m_0 - m_1)^2 Var(k_0) / 4 = 49 * 0.5 / 4 = 49/8.
    # Seed level: given k, trunk t's first count is Bin(2 k_t, 1/2), so Var(sum c x | k) = k_t d_t^2 / 2
    # with within-trunk differences d = (-2, -4); over k (E k_t = 1): (4 + 16) / 2 / 16 = 5/8.
    # Exact: mean 4.5, variance 49/8 + 5/8 = 6.75.
    x = np.array([0.0, 2.0, 6.0, 10.0])
    trunks = ["t0", "t0", "t1", "t1"]
    values, probs = _exact_three_level(x, [np.array([0, 1]), np.array([2, 3])])
    assert probs.sum() == pytest.approx(1.0)
    exact_mean = float(probs @ values)
    exact_var = float(probs @ (values - exact_mean) ** 2)
    assert exact_mean == pytest.approx(4.5) and exact_var == pytest.approx(6.75)

    terms = [Term(1.0, x[:, None])]
    dist = bootstrap_distribution(terms, n_resamples=200_000, seed=12, trunks=trunks)
    assert dist.mean() == pytest.approx(exact_mean, abs=0.03)
    assert dist.var() == pytest.approx(exact_var, rel=0.03)
    # the exact distribution's support and weights: every resampled mean is one of its values
    support = {round(v, 9): 0.0 for v in values}
    for v, p in zip(values, probs):
        support[round(v, 9)] += p
    f = _freq(dist, support)
    assert sum(f.values()) == pytest.approx(1.0)
    assert f == pytest.approx(support, abs=0.005)
    # the two-way bootstrap treats the 4 seeds as independent: variance (population var of x) / 4 = 59/16
    two_way = bootstrap_distribution(terms, n_resamples=200_000, seed=13)
    assert two_way.var() == pytest.approx(59 / 16, rel=0.03)


def test_one_seed_per_trunk_matches_the_two_way_bootstrap():
    rng = np.random.default_rng(5)
    a = rng.normal(1.0, 2.0, size=(6, 15))
    b = a + rng.normal(0.3, 1.0, size=(6, 15))
    terms = [Term(1.0, b), Term(-1.0, a)]
    two_way = bootstrap_distribution(terms, n_resamples=100_000, seed=21)
    by_trunk = bootstrap_distribution(terms, n_resamples=100_000, seed=22, trunks=list("fedcba"))
    sd = two_way.std(ddof=1)
    assert by_trunk.std(ddof=1) == pytest.approx(sd, rel=0.02)
    q = [0.025, 0.25, 0.5, 0.75, 0.975]
    np.testing.assert_allclose(np.quantile(by_trunk, q), np.quantile(two_way, q), atol=0.03 * sd)


def test_trunk_errors():
    terms = [Term(1.0, np.arange(8.0).reshape(4, 2))]
    with pytest.raises(StatsError, match="at least 2 trunks, got 1"):
        interval(terms, n_resamples=100, trunks=["t"] * 4)
    with pytest.raises(StatsError, match="at least 2 trunks"):
        bootstrap_distribution(terms, n_resamples=100, trunks=["t"] * 4)
    with pytest.raises(StatsError, match="one label per seed: got 3 labels for 4 seeds"):
        interval(terms, n_resamples=100, trunks=["a", "a", "b"])
    with pytest.raises(StatsError, match="one label per seed"):
        bootstrap_distribution(terms, n_resamples=100, trunks=["a", "b", "a", "b", "c"])


def test_without_trunks_the_numbers_are_those_of_the_two_way_code():
    # computed with the two-way code before the trunk level existed: same seed, same numbers
    x = np.arange(12, dtype=float).reshape(3, 4) ** 1.5 / 7.0
    y = np.array([[1.0, 0.5, 2.0], [0.0, 1.5, 1.0], [2.5, 0.0, 0.5]])
    terms = [Term(1.0, x), Term(-0.5, x[:, ::-1].copy()), Term(0.25, y, "r")]
    iv = interval(terms, n_resamples=3000, seed=7, trunks=None)
    assert (iv.estimate, iv.low, iv.high, iv.prob_improvement) == (
        1.316399900968248, 0.3249280717981311, 2.605087603387135, 1.0)
    assert (iv.seeds, iv.queries, iv.confidence, iv.trunks) == (3, 4, 0.95, None)
    assert iv.se == 0.5943106668085681
    dist = bootstrap_distribution(terms, n_resamples=3000, seed=7)
    assert dist[:5].tolist() == [0.9274979439925782, 1.5190010338047286, 1.2487734561554968,
                                 0.903842625308732, 1.3162079647659275]


@pytest.mark.parametrize("trunks", [None, ["a", "a", "b", "b", "c"]])
def test_interval_se_is_the_std_of_the_bootstrap_distribution(trunks):
    rng = np.random.default_rng(8)
    terms = [Term(1.0, rng.normal(size=(5, 12))), Term(-1.0, rng.normal(size=(5, 12)))]
    iv = interval(terms, n_resamples=4000, seed=3, trunks=trunks)
    dist = bootstrap_distribution(terms, n_resamples=4000, seed=3, trunks=trunks)
    assert iv.se == float(np.std(dist, ddof=1))
    assert [iv.low, iv.high] == pytest.approx(np.quantile(dist, [0.025, 0.975]).tolist(), rel=1e-12)
    assert iv.trunks == (None if trunks is None else 3)


def test_interval_constructed_positionally_keeps_working():
    iv = Interval(1.0, 0.0, 2.0, 0.5, 3, 4)
    assert (iv.confidence, iv.trunks, np.isnan(iv.se)) == (0.95, None, True)


# ---- minimum detectable effect -----------------------------------------------------------------

def test_mde_closed_form():
    assert POWER == 0.8
    assert minimum_detectable_effect(1.0) == pytest.approx(Z975 + Z80, abs=1e-12)
    assert minimum_detectable_effect(1.0) == pytest.approx(2.8016, abs=1e-4)
    assert minimum_detectable_effect(1.0, "<") == minimum_detectable_effect(1.0, ">")
    assert minimum_detectable_effect(1.0, "≈") == pytest.approx(Z975 + Z90, abs=1e-12)
    assert minimum_detectable_effect(1.0, "≈") == pytest.approx(3.2415, abs=1e-4)
    for se in (0.0, 0.37, 2.5, 40.0):
        for d in (">", "<", "≈"):
            assert minimum_detectable_effect(se, d) == pytest.approx(se * minimum_detectable_effect(1.0, d))
    # other confidence and power: 90% two-sided, power 0.5 -> z_0.95 + 0
    assert minimum_detectable_effect(2.0, confidence=0.9, power=0.5) == pytest.approx(2 * NormalDist().inv_cdf(0.95))


def test_mde_directional_by_simulation():
    # true effect = MDE, estimate ~ Normal(MDE, se): the 95% interval excludes 0 on the positive side
    # in a share `power` of the plans
    se = 1.7
    m = minimum_detectable_effect(se)
    est = np.random.default_rng(31).normal(m, se, size=200_000)
    assert np.mean(est - Z975 * se > 0) == pytest.approx(0.80, abs=0.01)
    est = np.random.default_rng(32).normal(-m, se, size=200_000)
    assert np.mean(est + Z975 * se < 0) == pytest.approx(0.80, abs=0.01)


def test_mde_equivalence_by_simulation():
    # true difference 0, margin m = MDE: the 95% interval lies inside (-m, m) in a share `power` of the plans
    se = 0.6
    m = minimum_detectable_effect(se, "≈")
    est = np.random.default_rng(33).normal(0.0, se, size=200_000)
    inside = (est - Z975 * se > -m) & (est + Z975 * se < m)
    assert np.mean(inside) == pytest.approx(0.80, abs=0.01)


def test_interval_mde_uses_its_se_and_confidence():
    rng = np.random.default_rng(9)
    terms = [Term(1.0, rng.normal(0.5, 1.0, size=(6, 10)))]
    iv = interval(terms, n_resamples=2000, confidence=0.9)
    assert iv.mde() == minimum_detectable_effect(iv.se, ">", 0.9)
    assert iv.mde("≈") == minimum_detectable_effect(iv.se, "≈", 0.9)
    assert iv.mde(power=0.9) == minimum_detectable_effect(iv.se, ">", 0.9, 0.9)


@pytest.mark.parametrize("kwargs, message", [
    (dict(se=-0.1), "se must be finite and >= 0"), (dict(se=float("nan")), "se must be finite"),
    (dict(se=float("inf")), "se must be finite"), (dict(se=1.0, power=0.0), "power must be in"),
    (dict(se=1.0, power=1.0), "power must be in"), (dict(se=1.0, confidence=1.0), "confidence must be in"),
    (dict(se=1.0, direction="!="), "direction"),
])
def test_mde_bad_inputs(kwargs, message):
    with pytest.raises(StatsError, match=message):
        minimum_detectable_effect(**kwargs)
