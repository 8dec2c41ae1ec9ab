"""The calibration check: a second run's estimates against the first run's intervals."""
import pandas as pd

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
