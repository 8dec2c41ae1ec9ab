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
# # Train and evaluate one run
#
# One FGRA run: train (or resume from `run_dir/checkpoints/last.pt`), evaluate under the
# dataset's protocol, save the results record (`run_dir/results.json`), the learning curves and
# a few response maps of the aligned regions.
#
# Every parameter below is optional. `config` names the base settings (a YAML file, or one of
# `fgra_core/config/configs/`: `quick_synthetic`, `mars_mini`, `paper_mars`, `paper_ilidsvid`,
# `paper_prid2011`); `overrides` sets anything else with dotted names
# (`{"data.synthetic.misalignment": 0.5}`); the other parameters are shortcuts for the common
# settings (`None` keeps the base value). A misspelled parameter is an error, and so is a value
# that is not JSON-safe (papermill stores parameters as JSON).
#
# The study runner (`python -m fgra_core.study`) executes this notebook once per run.

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from fgra_core.analysis import figures
from fgra_core.config.schema import dump_config
from fgra_core.study.notebook_params import build_config, notebook_parameters

_before = set(globals())

# %% tags=["parameters"]
config = "quick_synthetic"   # base settings: YAML path or a name in fgra_core/config/configs/
overrides = {}               # any setting, dotted: {"train.epochs": 3, "data.synthetic.misalignment": 0.5}
run_dir = None               # where the run lives (None: the base config's run_dir)
device = None                # "auto", "cpu", "cuda", "cuda:1"
dataset = None               # "synthetic", "mars", "ilidsvid", "prid2011"
data_root = None             # the dataset's folder (not needed for synthetic)
split_id = None
split_file = None
misalignment = None          # synthetic set only; 0: the same box in every frame
variant = None               # Table-2 row 1..8 (8: the full model)
seq_len = None               # N, frames per clip
num_regions = None           # N_s
backbone = None              # "resnet50", "resnet18", "mobilenet_v2"
weights = None               # "imagenet", "none", or a state-dict path
height = None
width = None
epochs = None
P = None                     # identities per batch
K = None                     # tracklets per identity
iters_per_epoch = None
lr = None
step_size = None
seed = None
num_workers = None
protocol = None              # "auto", "gallery-minus-query", "official", "cross-camera"
ap_form = None               # "plain" or "trapezoid"
show_progress = True         # per-epoch and evaluation bars
num_threads = 0              # torch CPU threads (0: torch's default)
response_maps = 2            # tracklets whose response maps are saved in the run folder (variants 4-8)
smoke = False                # CI: smaller figures

# %% [markdown]
# ## The run's settings
# The notebook's parameters, checked and merged into one typed configuration.

# %%
params = notebook_parameters(globals(), _before)
cfg = build_config(params)
run_path = Path(cfg.run_dir)
print(dump_config(cfg))

# %% [markdown]
# ## Train and evaluate
# A finished run with the same settings is returned as it is; an interrupted one resumes from its
# last checkpoint.

# %%
import torch

from fgra_core.train import run

if num_threads:
    torch.set_num_threads(int(num_threads))
result = run(cfg, show_progress=show_progress)
assert result.get("status") == "finished", f"the run did not finish: {result.get('status')}"
print(f"results: {run_path / 'results.json'}")

# %%
m = result["metrics"]
summary = pd.DataFrame([{
    "variant": result["variant"], "dataset": result["dataset"], "split": result["split_id"],
    "rank-1": m["rank1"], "rank-5": m["rank5"], "rank-10": m.get("rank10"), "rank-20": m.get("rank20"),
    "mAP": m["mAP"], "protocol": result.get("protocol"), "AP": result.get("ap_form"),
    "queries": m.get("num_valid"), "train s": result.get("train_time_s"), "eval s": result.get("eval_time_s"),
}])
display(summary.round(2))

# %% [markdown]
# ## Learning curves
# The loss terms per epoch (from `metrics.jsonl` / the results record).

# %%
hist = result.get("history") or []
if hist:
    fig = figures.plot_learning_curves({f"variant {result['variant']}": hist},
                                       title=f"{run_path.name}: training losses")
    figures.save_figure(fig, run_path / "learning_curves", formats=("png",))
else:
    print("no per-epoch history in the results record")

# %% [markdown]
# ## Response maps of the aligned regions (Fig. 5)
# For variants with the region alignment mechanism (4-8): each row is one region of the
# reference frame (boxed), and its response map on each sampled frame.

# %%
shown = []
if response_maps and int(result["variant"]) >= 4:
    try:
        from fgra_core.viz import response_maps as rm
    except ImportError as exc:
        print(f"response maps skipped: {exc}")
    else:
        bundle = rm.load_model(str(run_path), device="cpu")
        data_set = rm.dataset_for(bundle, smoke=smoke)
        sources = rm.sources_of(data_set, ("query",), limit=int(response_maps))
        for i, (label, source) in enumerate(sources.items()):
            data = rm.compute_response(bundle, source, num_frames=4 if smoke else 6)
            fig = rm.draw_fig5(data, title=f"{run_path.name}: {label}")
            figures.save_figure(fig, run_path / f"response_maps_{i}", formats=("png",))
            shown.append(label)
        print(f"response maps of {len(shown)} tracklet(s) saved in {run_path}")
else:
    print(f"variant {result['variant']} has no region alignment mechanism: no response maps")

# %%
display(Markdown(f"**Done**: `{run_path}` holds `results.json`, `metrics.jsonl`, `config.yaml`, "
                 f"`checkpoints/last.pt`, `learning_curves.png`"
                 + (f" and {len(shown)} response-map figure(s)." if shown else ".")))
