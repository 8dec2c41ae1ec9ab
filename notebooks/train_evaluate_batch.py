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
# # Train and evaluate several runs
#
# The study executes this notebook for a group of cheap runs (the frozen-trunk "head" regime:
# seconds per run once the trunk maps are cached), so that one kernel and one read of the cached
# maps serve them all. `runs` is a list of the `train_evaluate` notebook's parameters (`config`,
# `overrides`, `run_dir`); each run writes its own folder, and a failing run is recorded in its
# `status.json` while the others go on.

# %%
import pandas as pd
from IPython.display import display

from fgra_core.study.notebook_params import expect_parameters

_before = set(globals())

# %% tags=["parameters"]
runs = []                # [{"config": ..., "overrides": {...}, "run_dir": ...}, ...]
show_progress = True
num_threads = 0          # torch CPU threads (0: torch's default)

# %%
expect_parameters(globals(), _before, ["runs", "show_progress", "num_threads"])
import torch

from fgra_core.study.batch import run_batch

if num_threads:
    torch.set_num_threads(int(num_threads))
errors = run_batch(runs, show_progress=show_progress)

# %%
import json
from pathlib import Path

rows = []
for run_dir, error in errors.items():
    rec = json.loads((Path(run_dir) / "results.json").read_text()) if error is None else {}
    m = rec.get("metrics") or {}
    rows.append({"run": Path(run_dir).name, "rank-1": m.get("rank1"), "mAP": m.get("mAP"),
                 "steps": rec.get("steps"), "levelled off": (rec.get("convergence") or {}).get("levelled_off"),
                 "error": error or ""})
display(pd.DataFrame(rows).round(2))
failed = [r for r, e in errors.items() if e]
assert not failed, f"{len(failed)} run(s) failed: " + "; ".join(f"{r}: {errors[r]}" for r in failed)
