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
# # The paper's claims, measured
#
# Every claim of Table 2 and Fig. 4 (and one beyond the paper: the alignment gain grows with the
# misalignment knob) as a paired comparison of the study's runs over the same seeds and queries:
# the difference, its 95% bootstrap interval (two-way: seeds x queries, percentile), the
# probability of improvement (the fraction of seeds on which the claim held), and a verdict —
# **supported** (the interval excludes 0 on the paper's side), **contradicted** (it excludes 0 on
# the other side) or **inconclusive**. Rank-1 decides; mAP is shown beside it. The definitions
# are in `fgra_core/analysis/claims.py` and `fgra_core/analysis/stats.py`.
#
# Writes `claims.csv|md` to `results_dir` and the interval plot to `figures_dir`.

# %%
from pathlib import Path

from IPython.display import Markdown, display

from fgra_core.analysis import claims, figures, render, tables
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

# %%
ct = claims.claims_table(df, runs_dir, n_resamples=2000 if smoke else claims.N_RESAMPLES)
md = claims.claims_markdown(ct)
render.write_table(ct, results_path / "claims", md, title="The paper's claims: paired differences, 95% intervals, verdicts")
display(Markdown(md))

# %%
for (ds, regime), sub in ct.groupby(["dataset", "regime"], sort=False):
    f5 = sub["id"].str.startswith("F5.")
    name = tables.DATASET_NAMES.get(ds, ds)
    fig = figures.plot_claims(sub[~f5], title=f"Claims on {name} ({regime} regime): rank-1 difference, 95% interval "
                                              "(trunks x seeds x queries)")
    figures.save_figure(fig, figures_path / f"claims_{ds}_{regime}")
    if f5.any():   # Fig. 5 as a claim: in part-consistency points, on its own axis
        fig = figures.plot_claims(sub[f5], title=f"F5.a on {name} ({regime} regime): do the aligned regions follow "
                                                 "their body part better than the fixed stripe?",
                                  xlabel="part-consistency of the RAM maps - the fixed stripe's (points)")
        figures.save_figure(fig, figures_path / f"claims_f5_{ds}_{regime}")
