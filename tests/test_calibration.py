"""The calibration check: a second run's estimates against the first run's intervals."""
import numpy as np
import pandas as pd
import pytest

from fgra_core.analysis import calibration


def _table(rows):
    return pd.DataFrame([{"dataset": "synthetic", "regime": "head", "id": i, "claim": f"claim {i}", "rank1_diff": d,
                          "rank1_low": lo, "rank1_high": hi, "rank1_half_width": (hi - lo) / 2, "rank1_verdict": v} for i, d, lo, hi, v in rows])


def test_second_estimates_are_counted_inside_the_first_intervals(tmp_path):
    first = _table([("a", 1.0, -1.0, 3.0, "inconclusive"), ("b", 4.0, 2.0, 6.0, "supported"),
                    ("c", 0.0, -1.0, 1.0, "inconclusive")])
    second = _table([("a", 3.0, 1.0, 5.0, "supported"), ("b", 1.5, -0.5, 3.5, "inconclusive"),
                     ("c", -1.0, -2.0, 0.0, "inconclusive"), ("d", 0.0, -1.0, 1.0, "inconclusive")])
    t = calibration.compare(first, second)
    assert list(t["id"]) == ["a", "b", "c"]                     # d is in one table only
    assert list(t["inside"]) == [True, False, True]             # the ends of an interval count as inside
    assert list(t["same_verdict"]) == [False, False, True]
    assert calibration.summary_line(t).startswith("2 of 3 claims' second estimates fall inside")
    first.to_csv(tmp_path / "a.csv", index=False)
    second.to_csv(tmp_path / "b.csv", index=False)
    assert calibration.main([str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(tmp_path / "c.md")]) == 0
    md = (tmp_path / "c.md").read_text()
    assert "**2 of 3 claims'" in md and "| **no**" in md


def test_the_share_an_exact_interval_would_hold_by_hand():
    # many units: P(|Z| < 1.96 / sqrt 2) = 0.834; 5 units (t interval): P(|T_4| < 2.776 / sqrt 2) = 0.879
    assert calibration.expected_inside(None) == pytest.approx(0.8342, abs=1e-4)
    assert calibration.expected_inside(5) == pytest.approx(0.879, abs=1e-3)
    assert calibration.expected_inside(10_000) == pytest.approx(calibration.expected_inside(None), abs=1e-3)
    rng = np.random.default_rng(3)    # by simulation: two independent 5-unit t intervals
    x1, x2 = rng.normal(size=(2, 100_000, 5))
    half = 2.7764451 * x1.std(axis=1, ddof=1) / np.sqrt(5)
    inside = np.abs(x2.mean(axis=1) - x1.mean(axis=1)) <= half
    assert inside.mean() == pytest.approx(calibration.expected_inside(5), abs=0.005)


def test_the_summary_says_what_exact_intervals_would_hold():
    first = _table([("a", 1.0, -1.0, 3.0, "inconclusive"), ("b", 4.0, 2.0, 6.0, "supported")]).assign(trunks=5)
    second = _table([("a", 3.0, 1.0, 5.0, "supported"), ("b", 4.5, 2.0, 6.0, "supported")])
    line = calibration.summary_line(calibration.compare(first, second))
    assert line.startswith("2 of 2 claims'") and "over 5 trunks" in line and "probability 0.88: 1.8 of 2" in line


def test_claims_over_fewer_trunks_count_with_their_own_probability():
    # 3 trunks: P(|T_2| < 4.303 / sqrt 2) = 0.5 + ... by the closed form of the t_2 cdf,
    # F(t) = 1/2 + t / (2 sqrt(2 + t^2)): two-sided 2 t / (2 sqrt(2 + t^2)) at t = 3.0427 -> 0.9068
    t3 = 4.302653 / 2 ** 0.5
    assert calibration.expected_inside(3) == pytest.approx(t3 / (2 + t3 ** 2) ** 0.5, abs=1e-4)
    first = _table([("a", 1.0, -1.0, 3.0, "inconclusive"), ("b", 4.0, 2.0, 6.0, "supported"),
                    ("c", 0.0, -1.0, 1.0, "inconclusive")]).assign(trunks=[5, 5, 3])
    second = _table([("a", 1.0, -1.0, 3.0, "inconclusive"), ("b", 4.0, 2.0, 6.0, "supported"),
                     ("c", 0.0, -1.0, 1.0, "inconclusive")])
    line = calibration.summary_line(calibration.compare(first, second))
    expected = 2 * calibration.expected_inside(5) + calibration.expected_inside(3)
    assert f"{expected:.1f} of 3" in line and "0.88 over 5 trunks (2 claims), 0.91 over 3 trunks (1 claim)" in line
