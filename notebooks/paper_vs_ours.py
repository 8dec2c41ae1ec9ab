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
# # Table 1: our full model beside the paper's FGRA row
#
# For every dataset of the study: the paper's FGRA row of Table 1 (from
# `results/paper_reported.csv`), ours (the full model, variant 8, mean over splits) and the
# difference, with the evaluation protocol we used. Writes `table1_paper_vs_ours.csv|md`.
#
# On the protocol: the paper does not say which MARS evaluation it used. Ours is named in the
# `protocol` column -- `gallery-minus-query` (torchreid's: gallery = test tracklets minus the
# queries, same identity in the same camera ignored, plain AP), `official` (the MARS kit: all
# test tracklets, AP optionally by the trapezoid rule) or `cross-camera` (iLIDS-VID, PRID-2011
# and the synthetic set: camera-1 queries against camera-2 gallery).

# %%
from pathlib import Path

from IPython.display import Markdown, display

from fgra_core.analysis import render, tables
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
results_path = Path(results_dir)
df = tables.collect_results(runs_dir, manifest)
paper = tables.load_paper(paper_csv)
print(tables.collection_note(df) + (f" (manifest {manifest})" if manifest else ""))

# %%
t1 = tables.table1(df, paper)
md = render.table1_markdown(t1)
render.write_table(t1, results_path / "table1_paper_vs_ours", md, title="Table 1: the full model, ours beside the paper")
display(Markdown(md))

# %% [markdown]
# The paper's Table 1 (FGRA row) for reference, as stored:

# %%
display(paper[paper["table"] == "table1"].pivot_table(index="dataset", columns="metric", values="value"))
