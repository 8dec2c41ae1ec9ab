"""The tables of :mod:`fgra_core.analysis.tables` as Markdown (mean ± standard deviation over
the runs, the context of each block: data, regime, protocol, splits x seeds, queries) and
:func:`write_table` (CSV at full precision + Markdown, each written atomically).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from fgra_core.analysis.tables import (
    DASH,
    DATASET_NAMES,
    LABELS,
    MARK,
    METRICS,
    NOT_COMPARABLE,
    not_comparable,
    variant_name,
)
from fgra_core.utils.io import atomic_write_text

STD_NOTE = "mean ± standard deviation over the runs (population form, ddof = 0)"


def _num(value, digits: int = 1, signed: bool = False) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else DASH
    if math.isnan(v):
        return DASH
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _with_std(mean, std, runs) -> str:
    """``"41.2 ± 1.3"``: mean ± standard deviation over the runs (seeds x splits) when there are several."""
    text = _num(mean)
    if text != DASH and runs and int(runs) > 1 and not math.isnan(float(std)):
        text += f" ± {float(std):.1f}"
    return text


def _levelled(r) -> str:
    if r.get("steps") == 0:
        return "(no training)"
    n = r.get("not_levelled")
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return DASH
    return "yes" if int(n) == 0 else f"**no** ({int(n)} of {int(r['runs'])})"


def _context(sub: pd.DataFrame) -> str:
    ds = sub["dataset"].iloc[0]
    data = sub["data"].iloc[0] if "data" in sub.columns else ""
    regime = sub["regime"].iloc[0] if "regime" in sub.columns else ""
    splits = int(sub["splits"].max())
    seeds = int(sub["seeds"].max()) if "seeds" in sub.columns else 1
    head = (f"**{DATASET_NAMES.get(ds, ds)}** ({f'data `{data}`, ' if data else ''}"
            f"{f'{regime} regime, ' if regime else ''}protocol {sub['protocol'].iloc[0]}, "
            f"{splits} split{'s' if splits > 1 else ''} x {seeds} seed{'s' if seeds > 1 else ''}")
    q = pd.to_numeric(sub["queries"], errors="coerce").mean()
    if q and not math.isnan(q):
        head += f", {q:.0f} queries: one query is {100 / q:.1f} points of rank-1"
    runs = pd.to_numeric(sub["runs"], errors="coerce").max() if "runs" in sub.columns else splits * seeds
    if runs and not math.isnan(runs) and int(runs) > 1:
        head += f"; {STD_NOTE}"
    return head


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True)


def table2_markdown(t2: pd.DataFrame) -> str:
    if t2.empty:
        return "_No finished ablation runs._\n"
    parts = []
    for _, t in t2.groupby(["dataset", "data", "regime"], sort=False, dropna=False):
        has_paper = t["rank1_paper"].notna().any()
        head = _context(t) + (")" if has_paper else "; the paper has no numbers for this set)")
        if not_comparable(t["dataset"].iloc[0], t["split_source"].iloc[0] if "split_source" in t.columns else ""):
            head += f" — **{NOT_COMPARABLE}**"
        rows = []
        for _, r in t.iterrows():
            row = {"variant": r["method"]}
            for m in ("rank1", "rank5", "mAP"):
                row[LABELS[m]] = _with_std(r[m], r[f"{m}_std"], r.get("runs", r["splits"]))
                if has_paper:
                    row[f"{LABELS[m]} paper"] = _num(r[f"{m}_paper"])
                    row[f"Δ {LABELS[m]}"] = _num(r[f"{m}_diff"], signed=True)
            if "temporal_entropy" in t.columns:
                row["temporal entropy"] = _num(r["temporal_entropy"], 3)
            if "steps" in t.columns:
                row["steps"] = _num(r["steps"], 0)
            if "not_levelled" in t.columns:
                row["levelled off"] = _levelled(r)
            rows.append(row)
        parts.append(head + "\n\n" + _md(pd.DataFrame(rows)) + "\n")
    return "\n".join(parts)


def table1_markdown(t1: pd.DataFrame) -> str:
    if t1.empty:
        return "_No finished full-model runs._\n"
    rows = []
    marked = False
    for _, r in t1.iterrows():
        signed = r["row"] == "ours - paper"
        label = r["row"]
        if r["row"] != "paper (FGRA)" and not_comparable(r["dataset"], r.get("split_source", "")):
            label, marked = f"{label} {MARK}", True
        row = {"dataset": DATASET_NAMES.get(r["dataset"], r["dataset"]), "row": label}
        for m in METRICS:
            row[LABELS[m]] = _num(r[m], signed=signed)
        row["protocol"] = r["protocol"] if r["row"] != "ours - paper" else ""
        row["AP"] = r["ap_form"] if r["row"] == "ours" else ""
        row["recipe"] = r["recipe"]
        rows.append(row)
    return (_md(pd.DataFrame(rows)) + "\n" + "\nours: the mean over the runs (splits x seeds).\n"
            + (f"\n{MARK} {NOT_COMPARABLE}.\n" if marked else ""))


def sweep_markdown(t: pd.DataFrame, x: str, label: str) -> str:
    if t.empty:
        return "_No finished sweep runs._\n"
    rows = []
    marked = False
    for _, r in t.iterrows():
        name = DATASET_NAMES.get(r["dataset"], r["dataset"])
        if not_comparable(r["dataset"], r.get("split_source", "")):
            name, marked = f"{name} {MARK}", True
        rows.append({"dataset": name,
                     **({"regime": r["regime"]} if "regime" in t.columns else {}), label: int(r[x]),
                     "rank-1": _with_std(r["rank1"], r["rank1_std"], r.get("runs", r["splits"])),
                     "mAP": _with_std(r["mAP"], r["mAP_std"], r.get("runs", r["splits"])),
                     "splits x seeds": f"{int(r['splits'])} x {int(r.get('seeds', 1))}",
                     **({"levelled off": _levelled(r)} if "not_levelled" in t.columns else {})})
    return (_md(pd.DataFrame(rows)) + "\n" + f"\nrank-1 and mAP: {STD_NOTE}.\n"
            + (f"\n{MARK} {NOT_COMPARABLE}.\n" if marked else ""))


def misalignment_markdown(t: pd.DataFrame, variants: tuple[int, int] = (3, 8)) -> str:
    knob = t.columns[0] if len(t.columns) else "misalignment"
    if t.empty or len(t.columns) == 1:
        return f"_No finished {knob} runs._\n"
    a, b = variants
    rows = []
    for _, r in t.iterrows():
        rows.append({
            knob: _num(r[knob], 2),
            f"rank-1 {variant_name(a)}": _num(r[f"rank1_v{a}"]), f"rank-1 {variant_name(b)}": _num(r[f"rank1_v{b}"]),
            f"Δ rank-1 ({b} - {a})": _num(r[f"rank1_v{b}_minus_v{a}"], signed=True),
            f"mAP {a}": _num(r[f"mAP_v{a}"]), f"mAP {b}": _num(r[f"mAP_v{b}"]),
            f"Δ mAP ({b} - {a})": _num(r[f"mAP_v{b}_minus_v{a}"], signed=True),
        })
    return (_md(pd.DataFrame(rows)) + "\n" + "\nMeans over the runs (seeds x splits); their standard deviations "
            f"(population form, ddof = 0) are in {knob}.csv and drawn as the figure's error bars.\n")


def readings_markdown(t: pd.DataFrame) -> str:
    if t.empty:
        return "_No finished runs of alternative readings._\n"
    parts = []
    for _, sub in t.groupby(["dataset", "data", "regime"], sort=False, dropna=False):
        rows = []
        for _, r in sub.iterrows():
            rows.append({"variant": variant_name(int(r["variant"])), "reading": r["reading"] or "default",
                         "rank-1": _with_std(r["rank1"], r["rank1_std"], r["runs"]),
                         "mAP": _with_std(r["mAP"], r["mAP_std"], r["runs"]),
                         "temporal entropy": _num(r.get("temporal_entropy"), 3),
                         "spatial weight range": _num(r.get("spatial_weight_range"), 3),
                         "levelled off": _levelled(r)})
        parts.append(_context(sub) + ")\n\n" + _md(pd.DataFrame(rows)) + "\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- writing


def write_table(frame: pd.DataFrame, stem: str | os.PathLike, markdown: str | None = None,
                title: str | None = None) -> list[Path]:
    """``<stem>.csv`` (full precision) and ``<stem>.md`` (formatted), each written atomically."""
    stem = Path(stem)
    written = [atomic_write_text(stem.with_name(f"{stem.name}.csv"), frame.to_csv(index=False))]
    if markdown is not None:
        text = (f"## {title}\n\n" if title else "") + markdown
        written.append(atomic_write_text(stem.with_name(f"{stem.name}.md"), text if text.endswith("\n") else text + "\n"))
    return written
