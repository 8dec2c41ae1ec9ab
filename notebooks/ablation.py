# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Table 2: the eight variants, ours beside the paper
#
# Reads the finished runs of a study (its manifest says which runs form the `ablation` group)
# and writes `table2_ablation.csv|md` and `alignment_summary.csv|md` to `results_dir`, and the
# bar charts and learning curves to `figures_dir`. Numbers are percentages; over several splits
# the mean (± standard deviation) is shown. Δ = ours − paper.
#
# The variants (the paper's Table 2): AVG = temporal average pooling of horizontal stripes,
# GB = global branch, RAM = region alignment mechanism (templates of the first frame + GAM),
# TA = temporal attention, TAS = temporal alignment scores, CR = consistency regularisation,
# SA = spatial attention.

# %%
import json
from pathlib import Path

from IPython.display import Markdown, display

from fgra_core.analysis import figures, part_table, render, tables
from fgra_core.study.notebook_params import expect_parameters
from fgra_core.utils.project import project_path, project_root

_before = set(globals())

# %% tags=["parameters"]
manifest = None                        # results/<plan>/manifest.json (None: every finished run in runs_dir)
runs_dir = "results/runs"              # relative paths: under the project folder, wherever this runs
results_dir = "results/adhoc"          # tables go here
figures_dir = "figures/adhoc"          # figures go here
paper_csv = None             # numbers of the paper (None: the copy shipped with fgra_core)
smoke = False

# %%
expect_parameters(globals(), _before, ["manifest", "runs_dir", "results_dir", "figures_dir", "paper_csv", "smoke"])
root = project_root()   # $FGRA_PROJECT, else the folder above notebooks/ that holds results/
runs_dir, results_dir, figures_dir = (project_path(p, root) for p in (runs_dir, results_dir, figures_dir))
manifest, paper_csv = project_path(manifest, root), project_path(paper_csv, root)
results_path, figures_path = Path(results_dir), Path(figures_dir)
df = tables.collect_results(runs_dir, manifest)
paper = tables.load_paper(paper_csv)
print(tables.collection_note(df) + (f" (manifest {manifest})" if manifest else ""))

# %% [markdown]
# ## Table 2

# %%
t2 = tables.table2(df, paper)
md = render.table2_markdown(t2)
render.write_table(t2, results_path / "table2_ablation", md, title="Table 2: component analysis (ours beside the paper)")
display(Markdown(md))

# %% [markdown]
# ## Does region alignment help here?
# The region-aligned rows (4-8) against the unaligned rows (1-3), and row 4 − row 3 (the same
# network with and without RAM). Stated as measured, whichever way it goes.

# %%
summary = tables.alignment_summary(t2)
verdict = tables.alignment_verdict(summary)
render.write_table(summary, results_path / "alignment_summary", "\n".join(f"- {v}" for v in verdict) + "\n",
                   title="Region alignment: aligned rows (4-8) vs unaligned rows (1-3)")
display(Markdown("\n".join(f"- {v}" for v in verdict) or "_no ablation runs_"))

# %% [markdown]
# ## Do the regions follow the body parts? (Fig. 5 against the ground truth)
# On a set with ground-truth parts: the share of each region's response-map mass on the body part
# its reference stripe covers, for every variant at every `jitter` level, beside the fixed stripe,
# a uniform map and a perfect aligner (the headroom: what alignment could gain here).

# %%
pt = part_table.part_consistency_table(df)
md = part_table.part_consistency_markdown(pt)
render.write_table(pt, results_path / "part_consistency", md,
                   title="Part-consistency of the response maps against the ground-truth parts")
display(Markdown(md))

# %%
for ds in t2["dataset"].unique():
    fig = figures.plot_table2(t2, ds, title=f"Table 2 on {tables.DATASET_NAMES.get(ds, ds)}")
    figures.save_figure(fig, figures_path / f"table2_{ds}")

# %% [markdown]
# ## Readings of ambiguous passages
# Runs of the plan's `readings*` groups: the same row under another reading (the TAS score source,
# uniform spatial weights instead of spatial attention, the consistency centres, one template conv
# per region), with the temporal-weight entropy (1 = uniform over the N frames) and the spread of
# the spatial weights (max - min over the regions, 0 = uniform) that each reading produced.

# %%
rt = tables.readings_table(df)   # the groups readings and readings_*
if not rt.empty:
    md = render.readings_markdown(rt)
    render.write_table(rt, results_path / "readings", md, title="Readings: rank-1, mAP and what the weights did")
    display(Markdown(md))
else:
    print("no finished runs in a readings group")

# %% [markdown]
# ## Learning curves of the variants

# %%
ablation_runs = tables.in_group(df, "ablation")
for ds, sub in ablation_runs.groupby("dataset"):
    sub = sub[(sub["split_id"] == sub["split_id"].min()) & (sub["seed"] == sub["seed"].min())]
    sub = sub[sub["variant"] > 0].drop_duplicates("variant").sort_values("variant")
    histories = {}
    for _, row in sub.iterrows():
        record = json.loads((Path(runs_dir) / row["run_id"] / "results.json").read_text())
        histories[tables.variant_name(int(row["variant"]))] = record.get("history") or []
    fig = figures.plot_learning_curves(histories, title=f"Training losses per variant ({tables.DATASET_NAMES.get(ds, ds)}, split {int(sub['split_id'].min())}, seed {int(sub['seed'].min())}: one run each)")
    figures.save_figure(fig, figures_path / f"learning_curves_{ds}")

# %%
print("written:", sorted(str(p) for p in results_path.glob("table2_ablation.*")) + sorted(str(p) for p in figures_path.glob("*.png")))
