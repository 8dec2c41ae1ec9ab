"""Results of finished runs as pandas tables: Table 2 (ablation), Table 1 (ours beside the
paper), the Fig.-4 sweeps and the misalignment comparison; CSV + Markdown written atomically.

The results store is ``results/runs/*/results.json`` (written by :func:`fgra_core.train.run`);
a study manifest (``results/<plan>/manifest.json``, written by :mod:`fgra_core.study`) says
which runs belong to which group of the plan. Numbers are percentages; over several splits the
mean is reported, with the standard deviation and the number of splits beside it.
"""
from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Iterable

import pandas as pd

from fgra_core.engine.run_ids import recorded_run_id

METRICS = ("rank1", "rank5", "rank10", "rank20", "mAP")
LABELS = {"rank1": "rank-1", "rank5": "rank-5", "rank10": "rank-10", "rank20": "rank-20", "mAP": "mAP"}
DATASET_NAMES = {"mars": "MARS", "ilidsvid": "iLIDS-VID", "prid2011": "PRID-2011", "synthetic": "synthetic"}
DASH = "—"
# runs on generated identity splits (a dataset's own split file absent) cannot be set beside published numbers
NOT_COMPARABLE = "generated splits: not comparable with published numbers"
MARK = "†"


def not_comparable(dataset: str, split_source: str) -> bool:
    """Whether rows of ``dataset`` come from generated splits of a dataset that has published
    numbers (the synthetic set is always generated, and has none)."""
    return dataset != "synthetic" and "generated" in str(split_source or "")


def variant_name(index: int) -> str:
    """``"8. GB+RAM+TAS+CR+SA"``: a Table-2 row as the paper prints it."""
    try:
        from fgra_core.models.fgra import VARIANTS

        if int(index) == 0:
            return "0. trunk, untrained"
        return f"{index}. {VARIANTS[int(index)].name}"
    except Exception:  # the model package is not importable: the number alone
        return f"{index}."


# --------------------------------------------------------------------------- collecting


def load_manifest(path: str | os.PathLike | None) -> dict | None:
    if not path:
        return None
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


# readings of ambiguous passages (config key, default): a run's non-default ones name it in tables
READINGS = (("model.tas_source", "sigmoid"), ("model.spatial_weights", "attention"), ("model.centers", "mean"),
            ("model.template_conv", "shared"))


def reading_of(cfg: dict) -> str:
    """``"tas_source=bn"``: the run's non-default readings ("" for the default reading)."""
    out = []
    for key, default in READINGS:
        section, name = key.split(".")
        value = (cfg.get(section) or {}).get(name, default)
        if value != default:
            out.append(f"{name}={value}")
    return ", ".join(out)


def _convergence(result: dict) -> dict:
    """The run's convergence measure, recomputed from its loss record with the current definition
    (``fgra_core/engine/convergence.py``): per step in the head regime, per epoch otherwise."""
    from fgra_core.engine.convergence import convergence

    curve = result.get("loss_curve")
    if not curve:
        curve = [h.get("total") for h in result.get("history") or [] if h.get("total") is not None]
    return convergence(curve) if curve else (result.get("convergence") or {})


def _row(result: dict, run_id: str) -> dict:
    cfg = result.get("config") or {}
    data = cfg.get("data") or {}
    metrics = result.get("metrics") or {}
    conv = _convergence(result)
    weights = result.get("weights") or {}
    row = {
        "run_id": run_id,
        "dataset": result.get("dataset", data.get("dataset")),
        "split_id": result.get("split_id", data.get("split_id")),
        "variant": result.get("variant"),
        "backbone": result.get("backbone"),
        "seq_len": result.get("seq_len"),
        "num_regions": result.get("num_regions"),
        "epochs": result.get("epochs"),
        "seed": result.get("seed"),
        "misalignment": (data.get("synthetic") or {}).get("misalignment") if data.get("dataset") == "synthetic" else math.nan,
        "jitter": _knob(data, "jitter"),
        "box_offset": _knob(data, "box_offset"),
        "height": data.get("height"),
        "width": data.get("width"),
        "weights": (cfg.get("model") or {}).get("weights"),
        "data": Path(str(data.get("root"))).name if data.get("root") else "",
        "protocol": result.get("protocol", metrics.get("protocol")),
        "ap_form": result.get("ap_form", metrics.get("ap_form")),
        "num_queries": metrics.get("num_queries"),
        "num_valid": metrics.get("num_valid"),
        "train_time_s": result.get("train_time_s"),
        "eval_time_s": result.get("eval_time_s"),
        "device": result.get("device"),
        "run_dir": result.get("run_dir"),
        "regime": result.get("regime") or (cfg.get("train") or {}).get("regime") or "finetune",
        "reading": reading_of(cfg),
        "steps": result.get("steps") or sum(int(h.get("steps", 0)) for h in result.get("history") or []),
        "loss_change": conv.get("relative_change"),
        "levelled_off": conv.get("levelled_off"),
        "temporal_entropy": weights.get("temporal_entropy"),
        "spatial_weight_range": weights.get("spatial_weight_range"),
        "split_source": (result.get("dataset_info") or {}).get("split_source", ""),
        **{f"pc_{k}": _nan((result.get("alignment") or {}).get(k)) for k in ALIGNMENT_KEYS},
    }
    for m in METRICS:
        value = metrics.get(m)
        row[m] = float(value) if value is not None else math.nan
    return row


ALIGNMENT_KEYS = ("gam", "stripe", "uniform", "aligned", "headroom", "range", "entropy")   # of eval.alignment   # pc_<key> columns


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _knob(data: dict, name: str) -> float:
    """A synthetic knob's effective value (``jitter`` / ``box_offset``: None means ``misalignment``)."""
    if data.get("dataset") != "synthetic":
        return math.nan
    syn = data.get("synthetic") or {}
    value = syn.get(name)
    return float(syn.get("misalignment", 1.0) if value is None else value)


def collect_results(runs_dir: str | os.PathLike, manifest: dict | str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per finished run under ``runs_dir``. With a manifest, only that study's runs, with
    a ``groups`` column (the plan's groups each run belongs to). A record counts once, in its own
    run's folder: a folder whose record's stored config gives another run id (a copy), or that
    links to a file already counted, adds no row. What was not read is not silent: ``df.attrs``
    holds ``runs_dir``, ``runs_dir_exists`` and ``unreadable`` (the records that could not be
    parsed), and :func:`collection_note` says it in one line."""
    if manifest is not None and not isinstance(manifest, dict):
        manifest = load_manifest(manifest)
    membership = None
    if manifest:
        membership = {r["run_id"]: list(r.get("groups", [])) for r in manifest.get("runs", [])}
    rows = []
    unreadable: list[str] = []
    seen: set[Path] = set()
    for path in sorted(Path(runs_dir).glob("*/results.json")):
        run_id = path.parent.name
        if membership is not None and run_id not in membership:
            continue
        real = path.resolve()
        if real in seen:        # a folder linked to another one: one record, counted once
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            unreadable.append(str(path))
            continue
        if not isinstance(result, dict):
            unreadable.append(str(path))
            continue
        if result.get("status") != "finished":
            continue
        recorded = recorded_run_id(result)
        if recorded is not None and recorded != run_id:   # another run's record: it counts in its own folder only
            continue
        seen.add(real)
        row = _row(result, run_id)
        row["groups"] = membership.get(run_id, []) if membership is not None else []
        rows.append(row)
    cols = ["run_id", "dataset", "split_id", "variant", "backbone", "seq_len", "num_regions", "epochs", "seed",
            "misalignment", "jitter", "box_offset", "height", "width", "weights", "data", "protocol", "ap_form", "num_queries", "num_valid",
            "train_time_s", "eval_time_s", "device", "run_dir", "regime", "reading", "steps", "loss_change",
            "levelled_off", "temporal_entropy", "spatial_weight_range", "split_source",
            *(f"pc_{k}" for k in ALIGNMENT_KEYS), *METRICS, "groups"]
    df = pd.DataFrame(rows, columns=cols)
    df.attrs.update(runs_dir=str(runs_dir), runs_dir_exists=Path(runs_dir).is_dir(), unreadable=unreadable)
    return df


MAKE_RUNS = "run `make study` (or `python -m fgra_core.study --plan quick`)"


def collection_note(df: pd.DataFrame) -> str:
    """One line on what :func:`collect_results` found: the number of finished runs, or why there
    are none and the command that makes them, and the records it could not read."""
    runs_dir = df.attrs.get("runs_dir", "?")
    if not df.attrs.get("runs_dir_exists", True):
        text = f"no finished runs: {runs_dir} does not exist; {MAKE_RUNS}"
    elif df.empty:
        text = f"no finished runs in {runs_dir}; {MAKE_RUNS}"
    else:
        text = f"{len(df)} finished run(s) in {runs_dir}"
    bad = df.attrs.get("unreadable") or []
    if bad:
        text += f"; {len(bad)} record(s) could not be read: " + ", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
    return text


def belongs(groups, group: str) -> bool:
    """Whether a run of the plan groups ``groups`` belongs to ``group``: a group named ``NAME_anything``
    (e.g. ``ablation_finetune``) feeds the tables of ``NAME`` too."""
    return any(g == group or g.startswith(group + "_") for g in groups)


def in_group(df: pd.DataFrame, group: str) -> pd.DataFrame:
    """Rows of ``group`` (see :func:`belongs`); when no row carries group labels (no manifest), every row."""
    if df.empty or not df["groups"].map(bool).any():
        return df
    return df[df["groups"].map(lambda g: belongs(g, group))]


PAPER_CSV = "paper_reported.csv"   # package data of fgra_core.analysis: the paper's Tables 1-2 and Fig. 4


def paper_csv_path() -> Path:
    """The paper's numbers shipped with the package (``fgra_core/analysis/paper_reported.csv``)."""
    return Path(str(resources.files("fgra_core.analysis") / PAPER_CSV))


def load_paper(csv: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's numbers (long format: table, dataset, method, variant, metric, value);
    ``None``: the copy shipped with the package."""
    return pd.read_csv(paper_csv_path() if csv is None else csv)


def _aggregate(df: pd.DataFrame, keys: list[str], metrics: Iterable[str] = METRICS) -> pd.DataFrame:
    metrics = list(metrics)
    if df.empty:
        return pd.DataFrame(columns=[*keys, *metrics, *(f"{m}_std" for m in metrics), "splits", "protocol"])
    g = df.groupby(keys, dropna=False, sort=True)
    out = g[metrics].mean()
    std = g[metrics].std(ddof=0).add_suffix("_std")
    out = out.join(std)
    out["splits"] = g["split_id"].nunique()
    out["seeds"] = g["seed"].nunique() if "seed" in df.columns else 1
    out["runs"] = g.size()
    if "levelled_off" in df.columns:   # runs whose loss had not levelled off (engine/convergence.py)
        out["not_levelled"] = g["levelled_off"].agg(lambda s: int(sum(v is False for v in s)))
        out["max_loss_change"] = g["loss_change"].agg(lambda s: max((abs(v) for v in s if v is not None and not (isinstance(v, float) and math.isnan(v))), default=math.nan))
    for col in ("temporal_entropy", "spatial_weight_range", "steps"):
        if col in df.columns:
            out[col] = g[col].agg(lambda s: float(pd.to_numeric(s, errors="coerce").mean()))
    out["queries"] = g["num_valid"].mean() if "num_valid" in df.columns else math.nan
    out["protocol"] = g["protocol"].agg(lambda s: "/".join(sorted({str(x) for x in s})))
    if "data" in df.columns and "data" not in keys:
        out["data"] = g["data"].agg(lambda s: "/".join(sorted({str(x) for x in s if x})))
    if "split_source" in df.columns:
        out["split_source"] = g["split_source"].agg(lambda s: "/".join(sorted({str(x) for x in s if x})))
    return out.reset_index()


# --------------------------------------------------------------------------- Table 2


def table2(df: pd.DataFrame, paper: pd.DataFrame | None = None, group: str = "ablation") -> pd.DataFrame:
    """Per dataset and variant: our rank-1 / rank-5 / mAP (mean over splits), the paper's, and
    ours minus the paper's."""
    rows = in_group(df, group)
    out = _aggregate(rows, ["dataset", "data", "regime", "variant"], ("rank1", "rank5", "mAP"))
    out["method"] = out["variant"].map(lambda v: variant_name(int(v)))
    for m in ("rank1", "rank5", "mAP"):
        out[f"{m}_paper"] = math.nan
    if paper is not None and not out.empty:
        p = paper[paper["table"] == "table2"].pivot_table(index=["dataset", "variant"], columns="metric", values="value")
        for i, r in out.iterrows():
            key = (r["dataset"], int(r["variant"]))
            if key in p.index:
                for m in ("rank1", "rank5", "mAP"):
                    if m in p.columns:
                        out.at[i, f"{m}_paper"] = p.loc[key, m]
    for m in ("rank1", "rank5", "mAP"):
        out[f"{m}_diff"] = out[m] - out[f"{m}_paper"]
    if "split_source" not in out.columns:
        out["split_source"] = ""
    cols = ["dataset", "data", "regime", "variant", "method", "splits", "seeds", "runs", "queries", "protocol",
            "split_source"]
    for m in ("rank1", "rank5", "mAP"):
        cols += [m, f"{m}_std", f"{m}_paper", f"{m}_diff"]
    cols += [c for c in ("steps", "not_levelled", "max_loss_change", "temporal_entropy", "spatial_weight_range")
             if c in out.columns]
    return out[cols]


def readings_table(df: pd.DataFrame, group: str = "readings") -> pd.DataFrame:
    """Per dataset, regime, variant and reading: rank-1 / mAP (mean and std over seeds and splits),
    the temporal-weight entropy and the spatial-weight spread each reading produced."""
    rows = in_group(df, group)
    return _aggregate(rows, ["dataset", "data", "regime", "variant", "reading"], ("rank1", "mAP"))


def alignment_summary(t2: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: do the region-aligned rows (4-8) beat the unaligned rows (1-3)? Mean and best
    rank-1 / mAP of each block, and the direct comparison of row 4 (GB+RAM+AVG) with row 3 (GB+AVG)."""
    rows = []
    for ds, t in t2.groupby("dataset", sort=False):
        un, al = t[t["variant"] <= 3], t[t["variant"] >= 4]
        r3, r4, r8 = (t[t["variant"] == v] for v in (3, 4, 8))
        rows.append({
            "dataset": ds,
            "rank1_unaligned_mean": un["rank1"].mean(), "rank1_aligned_mean": al["rank1"].mean(),
            "rank1_unaligned_best": un["rank1"].max(), "rank1_aligned_best": al["rank1"].max(),
            "mAP_unaligned_mean": un["mAP"].mean(), "mAP_aligned_mean": al["mAP"].mean(),
            "rank1_v4_minus_v3": (r4["rank1"].iloc[0] - r3["rank1"].iloc[0]) if len(r3) and len(r4) else math.nan,
            "mAP_v4_minus_v3": (r4["mAP"].iloc[0] - r3["mAP"].iloc[0]) if len(r3) and len(r4) else math.nan,
            "rank1_v8_minus_v3": (r8["rank1"].iloc[0] - r3["rank1"].iloc[0]) if len(r3) and len(r8) else math.nan,
        })
    return pd.DataFrame(rows)


def alignment_verdict(summary: pd.DataFrame) -> list[str]:
    """Plain sentences on whether alignment helped, one per dataset (no spin: the numbers decide)."""
    lines = []
    for _, r in summary.iterrows():
        name = DATASET_NAMES.get(r["dataset"], r["dataset"])
        if any(math.isnan(r[k]) for k in ("rank1_aligned_mean", "rank1_unaligned_mean")):
            lines.append(f"{name}: not enough variants to compare aligned and unaligned rows.")
            continue
        mean_gap = r["rank1_aligned_mean"] - r["rank1_unaligned_mean"]
        best_gap = r["rank1_aligned_best"] - r["rank1_unaligned_best"]
        word = "beat" if mean_gap > 0 and best_gap > 0 else ("do not beat" if mean_gap <= 0 and best_gap <= 0 else "are mixed against")
        text = (f"{name}: the region-aligned rows 4-8 {word} the unaligned rows 1-3 "
                f"(mean rank-1 {r['rank1_aligned_mean']:.1f} vs {r['rank1_unaligned_mean']:.1f}, "
                f"best {r['rank1_aligned_best']:.1f} vs {r['rank1_unaligned_best']:.1f}; "
                f"mean mAP {r['mAP_aligned_mean']:.1f} vs {r['mAP_unaligned_mean']:.1f})")
        if not math.isnan(r["rank1_v4_minus_v3"]):
            text += f"; row 4 minus row 3 (RAM added): rank-1 {r['rank1_v4_minus_v3']:+.1f}, mAP {r['mAP_v4_minus_v3']:+.1f}"
        lines.append(text + ".")
    return lines


# --------------------------------------------------------------------------- Table 1


def table1(df: pd.DataFrame, paper: pd.DataFrame | None = None, group: str = "ablation", variant: int = 8) -> pd.DataFrame:
    """Per dataset, three rows: the paper's FGRA row, ours (the full model, mean over splits), and
    ours minus the paper's (only ours where the paper has no numbers); with the evaluation
    protocol, AP form and the run's recipe."""
    rows = df[df["variant"] == variant] if not df.empty else df
    if not df.empty and df["groups"].map(lambda g: "table1" in g).any():
        rows = in_group(rows, "table1")
    else:
        rows = in_group(rows, group)
    ours = _aggregate(rows, ["dataset"])
    recipe = {}
    for ds, sub in rows.groupby("dataset"):
        first = sub.iloc[0]
        recipe[ds] = {"ap_form": "/".join(sorted({str(x) for x in sub["ap_form"]})),
                      "recipe": (f"data {first['data']}, " if first.get("data") else "")
                                + f"{first['backbone']}, {first['height']}x{first['width']}, N={first['seq_len']}, "
                                f"N_s={first['num_regions']}, {first['epochs']} ep"}
    paper_rows = {}
    if paper is not None:
        p = paper[paper["table"] == "table1"]
        for ds, sub in p.groupby("dataset"):
            paper_rows[ds] = dict(zip(sub["metric"], sub["value"]))
    datasets = list(dict.fromkeys([*ours["dataset"].tolist()]))
    out = []
    for ds in datasets:
        o = ours[ours["dataset"] == ds].iloc[0]
        pr = paper_rows.get(ds, {})
        base = {"dataset": ds, "protocol": o["protocol"], "ap_form": recipe[ds]["ap_form"], "splits": int(o["splits"]),
                "split_source": o.get("split_source", "")}
        if pr:
            out.append({**base, "row": "paper (FGRA)", **{m: pr.get(m, math.nan) for m in METRICS},
                        "protocol": "not stated", "ap_form": "", "splits": math.nan,
                        "recipe": "ResNet-50 ImageNet, 256x128, N=6, N_s=4"})
        out.append({**base, "row": "ours", **{m: o[m] for m in METRICS}, "recipe": recipe[ds]["recipe"]})
        if pr:  # the paper has no numbers for the synthetic set
            out.append({**base, "row": "ours - paper", **{m: o[m] - pr.get(m, math.nan) for m in METRICS}, "recipe": ""})
    cols = ["dataset", "row", *METRICS, "protocol", "ap_form", "splits", "split_source", "recipe"]
    return pd.DataFrame(out, columns=cols)


# --------------------------------------------------------------------------- sweeps


def sweep_table(df: pd.DataFrame, group: str, x: str) -> pd.DataFrame:
    """Rank-1 and mAP against the swept setting ``x`` (``seq_len`` or ``num_regions``)."""
    rows = in_group(df, group)
    if not df.empty and not df["groups"].map(bool).any():
        rows = rows[rows["variant"] == 8]
    return _aggregate(rows, ["dataset", "regime", x], ("rank1", "mAP"))


def misalignment_variants(df: pd.DataFrame, group: str = "misalignment") -> tuple[int, int]:
    """The two variants a study compared against the misalignment knob (lowest, highest row)."""
    rows = in_group(df, group)
    vs = sorted({int(v) for v in rows["variant"].dropna()}) if not rows.empty else []
    return (vs[0], vs[-1]) if len(vs) >= 2 else (3, 8)


def misalignment_table(df: pd.DataFrame, group: str = "misalignment", variants: tuple[int, int] = (3, 8),
                       knob: str = "misalignment") -> pd.DataFrame:
    """Rank-1 and mAP against a synthetic knob (``misalignment``, or ``jitter``: the within-clip box
    errors), one column per variant, and the gap; the first column is the knob."""
    rows = in_group(df, group)
    rows = rows[rows["variant"].isin(variants) & rows[knob].notna()]
    agg = _aggregate(rows, [knob, "variant"], ("rank1", "mAP"))
    if agg.empty:
        return pd.DataFrame(columns=[knob])
    wide = agg.pivot_table(index=knob, columns="variant", values=["rank1", "mAP", "rank1_std", "mAP_std"])
    out = pd.DataFrame(index=wide.index)
    a, b = variants
    for m in ("rank1", "mAP"):
        for v in variants:
            out[f"{m}_v{v}"] = wide[(m, v)] if (m, v) in wide.columns else math.nan
        out[f"{m}_v{b}_minus_v{a}"] = out[f"{m}_v{b}"] - out[f"{m}_v{a}"]
    for m in ("rank1", "mAP"):   # the spread over seeds (ddof = 0), for error bars
        for v in variants:
            out[f"{m}_v{v}_std"] = wide[(f"{m}_std", v)] if (f"{m}_std", v) in wide.columns else math.nan
    return out.reset_index()
