"""The study's figures show their spread: error bars where there are several seeds, what the bars
are in the title, the paper only where it has numbers, and the margins of the equivalence claims."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from fgra_core.analysis import figures  # noqa: E402


def _errorbars(fig) -> int:
    return sum(isinstance(c, ErrorbarContainer) for ax in fig.axes for c in ax.containers)


def _title(fig) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def test_misalignment_figure_has_error_bars_from_the_seeds():
    t = pd.DataFrame({"misalignment": [0.0, 1.0], "rank1_v3": [50.0, 20.0], "rank1_v4": [48.0, 18.0],
                      "mAP_v3": [60.0, 30.0], "mAP_v4": [58.0, 28.0], "rank1_v3_std": [1.0, 2.0],
                      "rank1_v4_std": [1.0, 1.5], "mAP_v3_std": [0.5, 0.5], "mAP_v4_std": [math.nan, math.nan]})
    fig = figures.plot_misalignment(t, variants=(3, 4), title="knob")
    assert _errorbars(fig) == 3            # mAP of variant 4 has no spread: a plain line
    assert figures.SPREAD in _title(fig)


def test_table2_bars_carry_the_spread_and_name_the_paper_only_when_it_has_numbers():
    t2 = pd.DataFrame({"dataset": ["synthetic"] * 2, "variant": [3, 4], "rank1": [20.0, 18.0], "rank1_std": [1.0, 2.0],
                       "mAP": [30.0, 29.0], "mAP_std": [0.5, 0.7], "rank1_paper": [math.nan] * 2,
                       "mAP_paper": [math.nan] * 2})
    fig = figures.plot_table2(t2, "synthetic", title="Table 2 on synthetic")
    assert _errorbars(fig) == 2 and "paper" not in _title(fig).lower() and figures.SPREAD in _title(fig)
    t2["rank1_paper"], t2["mAP_paper"] = [81.7, 84.6], [74.7, 79.0]
    assert "the paper (black)" in _title(figures.plot_table2(t2, "synthetic"))


def test_sweep_error_bars_and_the_claims_figure_margins():
    t = pd.DataFrame({"dataset": ["synthetic"] * 3, "seq_len": [2, 4, 6], "rank1": [15.0, 16.0, 14.8],
                      "rank1_std": [0.5, 1.2, 1.0], "mAP": [30.0, 31.0, 30.0], "mAP_std": [0.6, 1.3, 1.0]})
    assert _errorbars(figures.plot_sweep(t, "seq_len", "sequence length N")) == 2
    claims = pd.DataFrame({"id": ["T2.c", "T2.e"], "rank1_part": ["4 - 3", "6 - 5"], "rank1_diff": [-2.0, 0.0],
                           "rank1_low": [-5.2, -1.5], "rank1_high": [1.1, 1.6],
                           "rank1_verdict": ["inconclusive", "supported"]})
    fig = figures.plot_claims(claims)
    bands = [c for c in fig.axes[0].collections if c.get_alpha() and c.get_alpha() < 0.5]
    assert len(bands) == 1                               # the ±2 band of T2.e only
    (x0, _), (x1, _) = bands[0].get_paths()[0].get_extents().get_points()
    assert (round(x0, 6), round(x1, 6)) == (-2.0, 2.0)
    assert "equivalence margin (≈ claims)" in [t.get_text() for t in fig.legends[0].get_texts()]   # below the axes
