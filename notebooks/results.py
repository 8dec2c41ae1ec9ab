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
# # Results first: what the study found, without training anything
#
# This notebook shows the results committed with the repository (`results/<plan>/`,
# `figures/<plan>/`) in seconds: the claims table, Table 2 with its spread over seeds, the Fig.-4
# sweeps, the part-consistency of the response maps against the ground-truth parts, rows 3 and 4
# against the within-clip box errors, the readings and the Fig.-5 response maps. Nothing is
# trained or evaluated here. `make study` regenerates every file it shows (under 30 minutes on a
# 2-core laptop); `notebooks/tour.ipynb` walks through the pieces, and
# `notebooks/response_maps.ipynb` opens the interactive region explorer.
#
# How to read the numbers: rank-1 and mAP are percentages; "±" is the standard deviation over
# the seeds (population form, ddof = 0); the claims table gives 95% bootstrap intervals that resample the
# trunks (one per seed) with their heads, and the queries; error bars in the figures are the seeds' standard deviation unless the caption says
# otherwise.

# %%
from IPython.display import Image, Markdown, display

from fgra_core.analysis import showcase
from fgra_core.study.notebook_params import expect_parameters
from fgra_core.utils.project import project_root

_before = set(globals())

# %% tags=["parameters"]
plan = "quick"        # whose committed results: quick (synthetic) or mars-mini
project_dir = ""      # the project folder (empty: $FGRA_PROJECT, else the folder above notebooks/)

# %%
expect_parameters(globals(), _before, ["plan", "project_dir"])
root = project_root(project_dir or None)
print(f"results of plan {plan!r} under {root}")
for section in showcase.sections(root, plan):
    display(Markdown(f"## {section.title}\n\n{section.about}."))
    if section.empty:
        print(showcase.missing_note(section, plan))
        continue
    for table in section.tables:
        display(Markdown(table.read_text()))
    for figure in section.figures:
        display(Image(filename=str(figure)))
