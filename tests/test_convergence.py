import numpy as np
import pytest

from fgra_core.engine.convergence import convergence


def test_flat_tail_has_levelled_off_and_a_falling_one_has_not():
    flat = [10.0 - i for i in range(9)] + [1.0] * 91           # last 10 values all 1.0
    c = convergence(flat)
    assert c["window"] == 10 and c["relative_change"] == pytest.approx(0.0, abs=1e-12) and c["levelled_off"]
    falling = list(np.linspace(2.0, 1.0, 100))                 # last 10: 1.0909.. down to 1.0
    c = convergence(falling)
    # slope -1/99 per step over 10 values: change 9/99, relative to the window mean 1.04545..
    assert c["relative_change"] == pytest.approx(-(9 / 99) / np.mean(falling[-10:]))
    assert not c["levelled_off"]


def test_too_short_or_non_finite():
    assert convergence([1.0])["levelled_off"] is None
    assert convergence([1.0, float("nan")])["levelled_off"] is False


def test_a_loss_near_zero_is_measured_against_its_starting_level():
    # from 4.0 down to a noisy 0.01-0.03: relative to itself the tail swings by 100%, relative to
    # 20% of the starting level (0.8) it is flat
    tail = [0.01, 0.03] * 50
    c = convergence([4.0] * 100 + tail)
    assert c["levelled_off"] and abs(c["relative_change"]) < 0.05
    # a tail still falling by 0.3 across the window against a scale of 0.8: 0.375 > 0.05
    c = convergence([4.0] * 100 + list(np.linspace(1.0, 0.7, 100)))
    assert not c["levelled_off"]


def test_noise_it_cannot_resolve_does_not_count_as_still_falling_but_a_clear_fall_does():
    rng = np.random.default_rng(0)
    # flat curves with per-step noise of half their level: the fit over 48 steps is uncertain by more
    # than 5%, and a flat curve passes at least 95% of the time (1.96 standard errors)
    runs = [convergence(list(1.0 + 0.5 * rng.standard_normal(480))) for _ in range(400)]
    assert np.median([c["relative_se"] for c in runs]) > 0.05
    assert np.mean([c["levelled_off"] for c in runs]) >= 0.95
    falling = list(np.linspace(3.0, 1.0, 480) + 0.05 * rng.standard_normal(480))
    c = convergence(falling)
    # the last 48 steps fall by about 0.2 against a level near 1.1: far more than 5% plus the noise
    assert c["relative_change"] < -0.1 and not c["levelled_off"]
    # an exact straight line has no residual: the point estimate alone decides
    c = convergence(list(np.linspace(2.0, 1.0, 100)))
    assert c["relative_se"] == pytest.approx(0.0, abs=1e-12) and not c["levelled_off"]
