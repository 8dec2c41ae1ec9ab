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
# # Fig. 4: sequence length and number of regions; the synthetic knobs
#
# Rank-1 and mAP of the full model against the sequence length N and against the number of
# regions N_s (the paper's Fig. 4, there on iLIDS-VID and PRID-2011), and -- on the synthetic
# set, where the amount of misalignment is a setting -- rank-1 against the `jitter` knob (or the
# older `misalignment` knob) for two variants the plan compares (e.g. row 3, GB+AVG: stripes without alignment, and row 4, the same
# network with the region alignment mechanism). Mean ± std over seeds.
#
# Writes `sweep_seq_len`, `sweep_num_regions` and `jitter` or `misalignment` (`.csv` + `.md`) to
# `results_dir` and the matching figures (`.png` + `.pdf`) to `figures_dir`.

# %%
from pathlib import Path

from IPython.display import Markdown, display

from fgra_core.analysis import figures, render, tables
from fgra_core.study.notebook_params import expect_parameters
from fgra_core.utils.project import project_path, project_root

_before = set(globals())

# %% tags=["parameters"]
manifest = None                        # results/<plan>/manifest.json (None: every finished run in runs_dir)
runs_dir = "results/runs"              # relative paths: under the project folder, wherever this runs
results_dir = "results/adhoc"
figures_dir = "figures/adhoc"
paper_csv = None             # numbers of the paper (None: the copy shipped with fgra_core)
smoke = False

# %%
expect_parameters(globals(), _before, ["manifest", "runs_dir", "results_dir", "figures_dir", "paper_csv", "smoke"])
root = project_root()   # $FGRA_PROJECT, else the folder above notebooks/ that holds results/
runs_dir, results_dir, figures_dir = (project_path(p, root) for p in (runs_dir, results_dir, figures_dir))
manifest, paper_csv = project_path(manifest, root), project_path(paper_csv, root)
results_path, figures_path = Path(results_dir), Path(figures_dir)
df = tables.collect_results(runs_dir, manifest)
print(tables.collection_note(df) + (f" (manifest {manifest})" if manifest else ""))

# %% [markdown]
# ## Sequence length N and number of regions N_s

# %%
for group, x, label in (("seq_len", "seq_len", "sequence length N"), ("num_regions", "num_regions", "regions N_s")):
    t = tables.sweep_table(df, group, x)
    if t.empty:
        print(f"no finished runs in group {group}")
        continue
    md = render.sweep_markdown(t, x, label)
    render.write_table(t, results_path / f"sweep_{group}", md, title=f"Fig. 4: rank-1 and mAP against the {label}")
    display(Markdown(f"**{label}**\n\n" + md))
    fig = figures.plot_sweep(t, x, label, title=f"Full model: rank-1 and mAP against the {label}")
    figures.save_figure(fig, figures_path / f"sweep_{group}")

# %% [markdown]
# ## Rank-1 against the synthetic knobs: two variants
# `jitter` scales the box errors drawn per frame inside a tracklet (what FGRA's alignment claims to
# fix: scale change and offset of the body inside the box, Fig. 1), with `box_offset` (errors per
# tracklet) held fixed; the older `misalignment` knob scales both at once. 0 gives the same box in
# every frame of a tracklet, with the same people and scenes.

# %%
shown = False
for group, knob in (("jitter", "jitter"), ("misalignment", "misalignment")):
    rows = tables.in_group(df, group) if not df.empty and df["groups"].map(bool).any() else df.iloc[0:0]
    have = {int(v) for v in rows["variant"].dropna()} if not rows.empty else set()
    variants = (3, 4) if {3, 4} <= have else tables.misalignment_variants(df, group)
    mt = tables.misalignment_table(df, group=group, variants=variants, knob=knob)
    if len(mt.columns) <= 1:
        continue
    names = " vs ".join(tables.variant_name(v) for v in variants)
    md = render.misalignment_markdown(mt, variants=variants)
    render.write_table(mt, results_path / group, md, title=f"Rank-1 and mAP against the {knob} knob: {names}")
    display(Markdown(md))
    fig = figures.plot_misalignment(mt, variants=variants, title=f"Synthetic set: {names}")
    figures.save_figure(fig, figures_path / group)
    shown = True
if not shown:
    print("no finished runs in group jitter or misalignment (synthetic set only)")
