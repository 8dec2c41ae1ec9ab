"""Calibration of the claims' intervals: the same study computed twice, the second time as another
machine would (another thread count: another floating-point order, hence other trunks and heads).

For every claim of the first run's ``claims.csv``, is the second run's estimate inside the first
run's 95% interval, and is the verdict the same? An interval that holds every source of variance
holds the second estimate for most claims, but not for 95% of them: the second estimate has its
own error. For two independent runs of a plan over n trunks whose t interval is exact (normal
per-trunk effects), the second estimate lies inside the first interval with probability
``P(|T_{n-1}| < t_{0.975, n-1} / sqrt(2))``: 0.879 at n = 5, 0.834 for many trunks
(:func:`expected_inside`). Runs that share the data and seeds agree more than independent ones.
``python -m fgra_core.analysis.calibration FIRST/claims.csv SECOND/claims.csv [--out calibration.md]``.
"""
from __future__ import annotations

import pandas as pd

from fgra_core.analysis.claims import read_claims_csv

KEYS = ["dataset", "regime", "id"]


def compare(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """One row per claim in both tables: the first run's estimate and interval, the second run's
    estimate, whether it falls inside, and the two verdicts (rank-1)."""
    a = first[KEYS + ["claim", "rank1_diff", "rank1_low", "rank1_high", "rank1_verdict"]
              + (["trunks"] if "trunks" in first else [])]
    b = second[KEYS + ["rank1_diff", "rank1_low", "rank1_high", "rank1_verdict"]]
    t = a.merge(b, on=KEYS, suffixes=("_first", "_second"), how="inner")
    t["inside"] = (t["rank1_diff_second"] >= t["rank1_low_first"]) & (t["rank1_diff_second"] <= t["rank1_high_first"])
    t["same_verdict"] = t["rank1_verdict_first"] == t["rank1_verdict_second"]
    return t


def expected_inside(units: int | None, confidence: float = 0.95) -> float:
    """The probability that an independent second run's estimate falls inside the first run's exact
    t interval over ``units`` top-level units (``None``: a normal interval with a known error)."""
    from scipy.stats import norm
    from scipy.stats import t as student_t

    if units is None:
        return float(2 * norm.cdf(norm.ppf(0.5 + confidence / 2) / 2 ** 0.5) - 1)
    df = units - 1
    return float(2 * student_t.cdf(student_t.ppf(0.5 + confidence / 2, df) / 2 ** 0.5, df) - 1)


def summary_line(t: pd.DataFrame) -> str:
    n = len(t)
    line = (f"{int(t['inside'].sum())} of {n} claims' second estimates fall inside the first run's 95% interval; "
            f"{int(t['same_verdict'].sum())} of {n} verdicts are the same")
    if "trunks" in t and n:
        units = pd.to_numeric(t["trunks"], errors="coerce").fillna(1).astype(int)
        if units.min() >= 2:
            # each claim's own probability, over its own number of trunks, summed
            expected = sum(expected_inside(int(u)) for u in units)
            counts = {int(u): int((units == u).sum()) for u in sorted(units.unique(), reverse=True)}
            if len(counts) == 1:
                (u,) = counts
                over, probs = f" over {u} trunks", f"{expected_inside(u):.2f}"
            else:
                over = ""
                probs = ", ".join(f"{expected_inside(u):.2f} over {u} trunks ({k} claim{'s' if k != 1 else ''})"
                                  for u, k in counts.items())
            line += (f" (exact intervals{over} would hold an independent second run's estimate with probability "
                     f"{probs}: {expected:.1f} of {n})")
    return line


def markdown(t: pd.DataFrame, note: str = "") -> str:
    rows = [{"claim": f"{r['id']} {r['claim']}",
             "first: Δ [95% CI]": f"{r['rank1_diff_first']:+.1f} [{r['rank1_low_first']:+.1f}, {r['rank1_high_first']:+.1f}]",
             "second: Δ": f"{r['rank1_diff_second']:+.1f}", "inside": "yes" if r["inside"] else "**no**",
             "verdicts": f"{r['rank1_verdict_first']} / {r['rank1_verdict_second']}"} for _, r in t.iterrows()]
    body = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) if rows else "_no claim in both tables_"
    return (note + "\n\n" if note else "") + f"**{summary_line(t)}.**\n\n" + body + "\n"


def main(argv: list[str] | None = None) -> int:
    from fgra_core.utils.cli import run_cli

    return run_cli(lambda: _main(argv), interrupted="interrupted")


def _main(argv: list[str] | None) -> int:
    import argparse

    from fgra_core.utils.cli import emit

    parser = argparse.ArgumentParser(prog="python -m fgra_core.analysis.calibration",
                                     description="the second run of a study against the first run's intervals")
    parser.add_argument("first", help="claims.csv of the first run")
    parser.add_argument("second", help="claims.csv of the second run")
    parser.add_argument("--note", default="", help="a line that says how the two runs differ")
    parser.add_argument("--out", default=None, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    t = compare(read_claims_csv(args.first), read_claims_csv(args.second))
    md = "## Calibration: the study run twice\n\n" + markdown(t, args.note)
    emit(md, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
