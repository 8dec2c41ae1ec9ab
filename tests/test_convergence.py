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
