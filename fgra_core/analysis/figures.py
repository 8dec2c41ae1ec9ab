"""Figures of the study: the Fig.-4 sweeps, rank-1 against the misalignment knob (variant 3 vs
variant 8), learning curves, Table 2 as bars; :func:`save_figure` writes PNG + PDF atomically."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt
import pandas as pd

from fgra_core.analysis.tables import DATASET_NAMES, variant_name
from fgra_core.utils.io import atomic_write_bytes

DPI = 110


def save_figure(fig, stem: str | os.PathLike, *, dpi: int = DPI, formats: Iterable[str] = ("png", "pdf")) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` (each atomically: a reader never sees half a file;
    folders created); a ``stem`` that ends in one of the formats' suffixes loses it. The one
    figure writer of the package."""
    formats = tuple(formats)
    stem = Path(stem)
    if stem.suffix.lower() in {f".{f}" for f in formats}:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight",
                    metadata={"CreationDate": None} if fmt == "pdf" else {"Software": None})
        written.append(atomic_write_bytes(stem.with_name(f"{stem.name}.{fmt}"), buf.getvalue()))
    return written


MAX_PNG_BYTES = 300_000


def compact_pngs(folder: str | os.PathLike, max_bytes: int = MAX_PNG_BYTES) -> list[Path]:
    """Rewrite every PNG in ``folder`` larger than ``max_bytes`` with a 256-colour palette
    (atomically), so that committed figures stay small; returns the files rewritten. The PDFs
    beside them keep the full quality."""
    from PIL import Image

    rewritten = []
    for path in sorted(Path(folder).glob("*.png")):
        if path.stat().st_size <= max_bytes:
            continue
        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
        if len(buf.getvalue()) < path.stat().st_size:
            atomic_write_bytes(path, buf.getvalue())
            rewritten.append(path)
    return rewritten


SPREAD = "error bars: ± standard deviation over seeds (ddof = 0)"


def _errorbar(ax, x, y, err, label, fmt: str | None = None, **kw):
    """A line with ± ``err`` bars (the seeds' standard deviation); a plain line where there is
    no spread (one seed)."""
    err = [0.0 if (e is None or (isinstance(e, float) and math.isnan(e))) else e for e in err]
    if fmt:
        kw = {**kw, "fmt": fmt} if any(err) else kw
    if any(err):
        ax.errorbar(x, y, yerr=err, label=label, capsize=3, **kw)
    else:
        ax.plot(x, y, *((fmt,) if fmt else ()), label=label, **kw)


def plot_sweep(t: pd.DataFrame, x: str, xlabel: str, title: str | None = None):
    """Rank-1 and mAP against a swept setting, one line per dataset (the layout of Fig. 4)."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0), constrained_layout=True)
    for ax, m, label in zip(axes, ("rank1", "mAP"), ("rank-1 (%)", "mAP (%)")):
        keys = ["dataset", "regime"] if "regime" in t.columns and t["regime"].nunique() > 1 else ["dataset"]
        for key, sub in t.groupby(keys, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            name = DATASET_NAMES.get(key[0], key[0]) + (f" ({key[1]})" if len(key) > 1 else "")
            sub = sub.sort_values(x)
            _errorbar(ax, sub[x].astype(int).tolist(), sub[m].tolist(), sub[f"{m}_std"].tolist(),
                      name, marker="o")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        if not t.empty:
            ax.set_xticks(sorted({int(v) for v in t[x]}))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle((f"{title}\n" if title else "") + SPREAD, fontsize=9)
    return fig


KNOB_LABELS = {"misalignment": "misalignment knob (0 = same box in every frame)",
               "jitter": "jitter: per-frame box errors (0 = one box per tracklet)"}


def plot_misalignment(t: pd.DataFrame, variants: tuple[int, int] = (3, 8), title: str | None = None):
    """Rank-1 and mAP against a synthetic knob (the table's first column) for two variants."""
    knob = t.columns[0]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0), constrained_layout=True)
    for ax, m, label in zip(axes, ("rank1", "mAP"), ("rank-1 (%)", "mAP (%)")):
        for v, style in zip(variants, ("--s", "-o")):
            col = f"{m}_v{v}"
            if col in t.columns:
                err = t[f"{col}_std"].tolist() if f"{col}_std" in t.columns else [math.nan] * len(t)
                _errorbar(ax, t[knob].tolist(), t[col].tolist(), err, variant_name(v), fmt=style)
        ax.set_xlabel(KNOB_LABELS.get(knob, knob))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle((f"{title}\n" if title else "") + SPREAD, fontsize=9)
    return fig


PREFERRED_LOSSES = ("total", "loss", "ce", "triplet", "reg")


def loss_keys(histories: dict[str, list[dict]]) -> list[str]:
    """The loss terms logged in the per-epoch history: the usual ones first (total, ce, triplet,
    reg), then any other numeric key but epoch, lr, steps and eval_*."""
    keys: list[str] = []
    for hist in histories.values():
        for rec in hist:
            for k, v in rec.items():
                if k in ("epoch", "lr", "steps") or k.startswith("eval_") or isinstance(v, bool) \
                        or not isinstance(v, (int, float)):
                    continue
                if k not in keys:
                    keys.append(k)
    first = [k for k in PREFERRED_LOSSES if k in keys]
    return first + [k for k in keys if k not in first]


def plot_learning_curves(histories: dict[str, list[dict]], keys: list[str] | None = None, title: str | None = None,
                         max_panels: int = 4):
    """One panel per loss term, one line per run (label -> history of per-epoch records)."""
    keys = (keys or loss_keys(histories))[:max_panels] or ["loss"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), constrained_layout=True, squeeze=False)
    from matplotlib.ticker import MaxNLocator

    for ax, key in zip(axes[0], keys):
        values = []
        for label, hist in histories.items():
            pts = [(r["epoch"], r[key]) for r in hist if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=label)
                values += [v for _, v in pts]
        if values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")   # e.g. the consistency term: zero-ish for some variants, large for others
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="outside right upper")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_table2(t2: pd.DataFrame, dataset: str | None = None, title: str | None = None):
    """Rank-1 and mAP per Table-2 variant: ours as bars (± the seeds' standard deviation), the
    paper's as markers where it has them; the title says which of the two the figure holds."""
    t = t2 if dataset is None else t2[t2["dataset"] == dataset]
    has_paper = bool(t["rank1_paper"].notna().any()) if "rank1_paper" in t.columns else False
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.2), constrained_layout=True)
    for ax, m, label in zip(axes, ("rank1", "mAP"), ("rank-1 (%)", "mAP (%)")):
        x = t["variant"].astype(int).tolist()
        colors = ["#9aa5b1" if v <= 3 else "#3b7dd8" for v in x]
        err = t[f"{m}_std"].fillna(0.0).tolist() if f"{m}_std" in t.columns else None
        ax.bar(x, t[m], color=colors, label="ours", yerr=err, capsize=3, ecolor="#333333")
        if t[f"{m}_paper"].notna().any():
            ax.plot(x, t[f"{m}_paper"], "k_", markersize=14, mew=2, label="paper")
        ax.set_xticks(x)
        ax.set_xlabel("variant (grey: fixed stripes, blue: aligned regions)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    if has_paper:
        axes[0].legend(fontsize=8)
    what = ("ours (bars), the paper (black); " if has_paper else "bars: ours; ") + SPREAD
    fig.suptitle((f"{title}\n" if title else "") + what, fontsize=9)
    return fig


VERDICT_COLOURS = {"supported": "#1b7837", "contradicted": "#b2182b", "inconclusive": "#777777",
                   "not exercised": "#8073ac"}


def plot_claims(t: pd.DataFrame, score: str = "rank1", title: str | None = None, xlabel: str | None = None):
    """Each claim's deciding difference with its 95% interval, coloured by verdict. An
    equivalence claim ("≈") is decided by its margin, not by 0: the ±margin is drawn on its row
    (a shaded band), and it is supported when the interval lies inside the band."""
    from fgra_core.analysis.claims import EQUIVALENCE_MARGINS

    t = t.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(t) + 1.6), constrained_layout=True)
    y = list(range(len(t)))
    has_margin = False
    for yi, (_, r) in zip(y, t.iterrows()):
        margin = EQUIVALENCE_MARGINS.get(str(r["id"]))
        if margin:
            has_margin = True
            ax.fill_between([-margin, margin], yi - 0.32, yi + 0.32, color="#1b7837", alpha=0.12, lw=0)
            ax.plot([-margin, -margin], [yi - 0.32, yi + 0.32], color="#1b7837", lw=1, alpha=0.6)
            ax.plot([margin, margin], [yi - 0.32, yi + 0.32], color="#1b7837", lw=1, alpha=0.6)
        colour = VERDICT_COLOURS.get(r[f"{score}_verdict"], "#777777")
        ax.plot([r[f"{score}_low"], r[f"{score}_high"]], [yi, yi], "-", color=colour, lw=2.5)
        ax.plot([r[f"{score}_diff"]], [yi], "o", color=colour)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['id']} {r[f'{score}_part']}" for _, r in t.iterrows()], fontsize=8)
    ax.set_xlabel(xlabel or f"difference in {'rank-1' if score == 'rank1' else score} (points)")
    ax.grid(axis="x", alpha=0.3)
    shown = set(t[f"{score}_verdict"])
    handles = [plt.Line2D([], [], color=c, lw=2.5, label=v) for v, c in VERDICT_COLOURS.items()
               if v in shown or v != "not exercised"]
    if has_margin:
        from matplotlib.patches import Patch

        handles.append(Patch(color="#1b7837", alpha=0.2, label="equivalence margin (≈ claims)"))
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncols=3)   # below the axes: it hides no interval
    if title:
        ax.set_title(title, fontsize=9)
    return fig
