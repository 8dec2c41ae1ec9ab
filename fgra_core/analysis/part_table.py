"""The part-consistency table: how well each variant's response maps follow the ground-truth body
parts, at every ``jitter`` level of the synthetic set, beside the fixed stripe, a uniform map and a
perfect aligner (the headroom). Shares in [0, 1] (:mod:`fgra_core.eval.alignment`); mean ± standard
deviation over the runs (seeds, each with its own trunk when the plan trains one per seed).
"""
from __future__ import annotations

import math

import pandas as pd

from fgra_core.analysis.tables import belongs, variant_name

COLUMNS = (("pc_gam", "RAM maps"), ("pc_stripe", "fixed stripe"), ("pc_uniform", "uniform map"),
           ("pc_aligned", "perfect aligner"), ("pc_headroom", "headroom"), ("pc_range", "map max - min"),
           ("pc_entropy", "map entropy"))
GROUPS = ("ablation", "jitter")


def part_consistency_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, jitter, box_offset, variant) of the ``ablation`` and ``jitter`` groups
    with a measured part-consistency: the mean and std of every column of :data:`COLUMNS`."""
    keys = ["dataset", "jitter", "box_offset", "variant"]
    cols = [*keys, "runs", *(c for name, _ in COLUMNS for c in (name, f"{name}_std"))]
    if df.empty or "pc_stripe" not in df.columns:
        return pd.DataFrame(columns=cols)
    rows = df[df["groups"].map(lambda g: any(belongs(g, x) for x in GROUPS)) & df["pc_stripe"].notna()]
    rows = rows.drop_duplicates("run_id")
    if rows.empty:
        return pd.DataFrame(columns=cols)
    g = rows.groupby(keys, dropna=False, sort=True)
    names = [name for name, _ in COLUMNS]
    out = g[names].mean().join(g[names].std(ddof=0).add_suffix("_std"))
    out["runs"] = g.size()
    return out.reset_index()[cols]


def _cell(r, name: str) -> str:
    v = r[name]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.3f} ± {r[f'{name}_std']:.3f}"


def part_consistency_markdown(t: pd.DataFrame) -> str:
    if t.empty:
        return "_No run recorded its part-consistency (a set without ground-truth parts?)._\n"
    out = []
    for (ds, jit, off), sub in t.groupby(["dataset", "jitter", "box_offset"], sort=True, dropna=False):
        first = sub.iloc[0]
        out.append(f"**{ds}**, jitter {jit:g}, box_offset {off:g}: headroom {first['pc_headroom']:+.3f} "
                   f"(a perfect aligner {first['pc_aligned']:.3f} against the fixed stripe {first['pc_stripe']:.3f}; "
                   "rows 0-3 have no alignment mechanism: their regions are the fixed stripes)\n")
        body = [{"variant": variant_name(int(r["variant"])), "runs": int(r["runs"]),
                 **{label: _cell(r, name) for name, label in COLUMNS}} for _, r in sub.iterrows()]
        out.append(pd.DataFrame(body).to_markdown(index=False, disable_numparse=True) + "\n")
    return "\n".join(out)
