"""The t interval of the claims table (few trunks): its critical values, a hand-worked case, its
coverage against the percentile interval's, and the minimum detectable effect that goes with it."""
import math

import numpy as np
import pytest

from fgra_core.analysis.stats import (
    STUDY_METHOD,
    StatsError,
    Term,
    bootstrap_distribution,
    critical_value,
    interval,
    minimum_detectable_effect,
)

T975_4, T80_4 = 2.7764451051977934, 0.9409645772351816      # Student t quantiles, 4 degrees of freedom (tables: 2.776, 0.941)


def test_critical_values_by_hand():
    assert critical_value(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert critical_value(0.975, 5) == pytest.approx(math.sqrt(5 / 4) * T975_4, abs=1e-9)
    assert critical_value(0.975, 5) == pytest.approx(3.1041, abs=1e-4)
    assert critical_value(0.8, 5) == pytest.approx(math.sqrt(5 / 4) * T80_4, abs=1e-9)
    # many units: back to the normal quantile
    assert critical_value(0.975, 100_000) == pytest.approx(critical_value(0.975), abs=1e-4)
    with pytest.raises(StatsError, match="at least 2 top-level units"):
        critical_value(0.975, 1)


def test_t_interval_of_a_hand_worked_case():
    # 5 seeds, one query: scores 0, 1, 2, 3, 4 -> estimate 2; the bootstrap se of a mean of 5 draws is
    # sqrt(var_plugin / 5) = sqrt(2 / 5); the interval reaches sqrt(5/4) t_{0.975,4} se each side
    x = np.arange(5.0)[:, None]
    iv = interval([Term(1.0, x)], n_resamples=200_000, method="t")
    se = math.sqrt(2.0 / 5.0)
    assert iv.se == pytest.approx(se, rel=0.01)
    assert (iv.method, iv.units, iv.trunks) == ("t", 5, None)
    assert iv.estimate == 2.0 and iv.low + iv.high == pytest.approx(4.0)
    # = the classical t interval: mean -/+ t s / sqrt(n), s the sample sd (ddof=1) = sqrt(2.5)
    assert iv.half_width == pytest.approx(T975_4 * math.sqrt(2.5) / math.sqrt(5), rel=0.01)
    assert iv.half_width == pytest.approx(iv.se * critical_value(0.975, 5))


def test_t_interval_counts_trunks_not_seeds():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 30))
    trunks = ["a", "a", "b", "b", "c", "c"]
    iv = interval([Term(1.0, x)], n_resamples=4000, method="t", trunks=trunks)
    assert (iv.units, iv.trunks, iv.seeds) == (3, 3, 6)
    dist = bootstrap_distribution([Term(1.0, x)], 4000, trunks=trunks)
    assert iv.se == pytest.approx(dist.std(ddof=1))
    assert iv.half_width == pytest.approx(critical_value(0.975, 3) * iv.se)


def test_coverage_of_five_units_t_against_percentile():
    # normal per-seed effects around 0, 5 seeds: the percentile interval misses far more than 5%
    rng = np.random.default_rng(5)
    hit = {"percentile": 0, "t": 0}
    reps = 300
    for r in range(reps):
        x = rng.normal(0.0, 1.0, size=(5, 1))
        for m in hit:
            iv = interval([Term(1.0, x)], n_resamples=2000, method=m, seed=r)
            hit[m] += iv.low < 0.0 < iv.high
    assert hit["percentile"] / reps < 0.86          # about 0.80
    assert 0.92 <= hit["t"] / reps <= 0.98          # 0.95 (binomial sd of 300 reps: 0.013)


def test_mde_of_a_t_interval():
    assert minimum_detectable_effect(1.0, units=5) == pytest.approx(math.sqrt(5 / 4) * (T975_4 + T80_4), abs=1e-9)
    assert minimum_detectable_effect(1.0, units=5) == pytest.approx(4.156, abs=1e-3)
    assert minimum_detectable_effect(2.0, units=5) == pytest.approx(2 * minimum_detectable_effect(1.0, units=5))
    iv = interval([Term(1.0, np.arange(5.0)[:, None])], n_resamples=2000, method="t")
    assert iv.mde() == minimum_detectable_effect(iv.se, units=5)


def test_the_study_uses_the_t_interval_and_unknown_methods_are_refused():
    assert STUDY_METHOD == "t"
    with pytest.raises(StatsError, match="method 'bca'; expected one of percentile, t"):
        interval([Term(1.0, np.ones((3, 2)))], method="bca")
