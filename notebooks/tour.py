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
# # A tour of FGRA: frame-guided region-aligned representations
#
# Video person re-identification matches short video tracks (*tracklets*) of pedestrians across
# cameras. A common recipe cuts every frame's feature map into horizontal stripes (head, torso,
# legs, ...) and averages each stripe over time. That assumes a body part stays in the same stripe
# in every frame -- but person detectors make two kinds of errors (the paper's Fig. 1): the box
# holds **too much background** (the person is smaller in it) and the body is **offset** in the
# box. Then the "torso stripe" of one frame holds legs in another, and averaging mixes them.
#
# FGRA (Chen et al., AAAI 2020) aligns the regions before averaging: the **first frame** of the
# clip is the reference, its stripes are the **templates**, and each template *finds* its region
# in every other frame. This notebook shows each step with pictures, on the synthetic
# misaligned pedestrians that ship with this project.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from fgra_core.data.registry import build_dataset
from fgra_core.data.datasets.synthetic import part_offsets
from fgra_core.study.notebook_params import expect_parameters

_before = set(globals())

# %% tags=["parameters"]
run_dir = "demo"     # a finished run folder (variant 4-8); "demo": the demo model (trained once, < 1 min); None: untrained
figures_dir = None   # save the tour's figures there (None: only show them)
smoke = False        # CI: smaller set

# %%
expect_parameters(globals(), _before, ["run_dir", "figures_dir", "smoke"])
n_test = 2 if smoke else 6
frames_per = 8 if smoke else 12


def draw_parts(ax, tracklet, t, stripes=4):
    """A frame with its ground-truth body parts (coloured bands) and fixed horizontal stripes (dashed)."""
    frame = tracklet.frames[t]
    H, W = frame.shape[:2]
    ax.imshow(frame)
    for (top, bottom), colour in zip(tracklet.parts[t], ("gold", "tab:red", "tab:blue", "tab:green")):
        ax.axhspan(top * H, bottom * H, xmin=0.0, xmax=0.08, color=colour, alpha=0.9)
    for k in range(1, stripes):
        ax.axhline(k * H / stripes, color="white", linestyle="--", linewidth=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


# %% [markdown]
# ## 1. The problem: misaligned boxes
# The same person, the same scene, drawn twice: with `misalignment=0` (the same box in every
# frame) and with `misalignment=1` (scale change and offset, as a detector would make). The
# coloured bands at the left edge are the ground-truth head, torso, legs and feet; the dashed lines
# are the four fixed stripes a part-based model pools.

# %%
sets = {m: build_dataset("synthetic", num_train_ids=2, num_test_ids=n_test, frames_per_tracklet=frames_per,
                         misalignment=m, seed=0) for m in (0.0, 1.0)}
show = min(6, frames_per)
fig, axes = plt.subplots(2, show, figsize=(1.3 * show, 5.4))
for row, m in enumerate(sets):
    tr = sets[m].query[0]
    for t in range(show):
        draw_parts(axes[row, t], tr, t)
        axes[row, t].set_title(f"frame {t}", fontsize=8)
    axes[row, 0].set_ylabel(f"misalignment {m:g}", fontsize=9)
fig.suptitle("One tracklet without and with detection errors", fontsize=10)
plt.show()

# %% [markdown]
# How far do the parts move inside the box? The standard deviation over frames of each part's
# centre, and its mean range (max − min), as fractions of the frame height. A stripe is 1/4 of the
# height: a range close to that means a part visits the neighbouring stripe.

# %%
rows = []
for m in (0.0, 0.5, 1.0, 1.5):
    ds = build_dataset("synthetic", num_train_ids=2, num_test_ids=n_test, frames_per_tracklet=frames_per,
                       misalignment=m, seed=0)
    rows.append({"misalignment": m, **part_offsets(ds)})
display(pd.DataFrame(rows).round(3))

# %% [markdown]
# ## 2. Templates and the guide alignment module (GAM)
# The backbone turns every frame n into a feature map **F**_n (C channels, h x w). The first frame's
# map is pooled into N_s horizontal stripes and a 1x1 convolution gives the N_s **template**
# vectors **F**_{t,i}. The GAM correlates each template with every frame, channel by channel
# (a depth-wise cross-correlation, Eq. 1): where the frame looks like the template's region, the
# response is high. The normalised response map weights the frame's features into the
# **region-aligned feature** **F**_{n,i}: region i of frame n, wherever it is in the box.
#
# Below, the reference frame with its N_s regions (left) and each region's response map on the
# sampled frames. With the demo model (the default: variant 8 fine-tuned for under a minute the
# first time, then kept in `results/runs/demo`) or a trained run of variants 4-8 these are trained
# maps, as in the paper's Fig. 5; with `run_dir = None` an untrained network shows the mechanics only.

# %%
from fgra_core.viz import response_maps as rm

bundle = rm.load_model(run_dir, device="cpu")
print("model:", bundle.label)
tracklet = sets[1.0].query[0]
data = rm.compute_response(bundle, tracklet, num_frames=4 if smoke else 6)
fig = rm.draw_fig5(data, title=f"Response maps of the aligned regions ({bundle.label})")
display(fig)
plt.close(fig)

# %% [markdown]
# ## 3. Aggregating over time and space
# * **Temporal alignment scores** (TAS, Eqs. 4-6): a frame whose region matches its template well
#   gets a higher weight when the region's features are averaged over time -- frames where the
#   region is occluded or out of the box count less. No extra parameters are needed.
# * **Spatial attention** (SA, Eqs. 7-8): a small convolution over the N_s region vectors weights the
#   regions before they are summed into the local feature.
# * **Consistency regularisation** (CR, Eq. 3): during training, the aligned features of region i
#   are pulled towards a centre c_i, so the same region means the same body part in every clip.
#
# The retrieval feature is the global branch's vector (temporal attention over whole frames)
# concatenated with the local branch's vector (Eq. 9).

# %%
fig = rm.draw_scores(data)
display(fig)
plt.close(fig)

# %% [markdown]
# ## 4. The eight variants of Table 2
# The paper's ablation adds one component at a time. Rows 1-3 pool fixed stripes; rows 4-8 use
# the region alignment mechanism (RAM).

# %%
from fgra_core.models.fgra import VARIANTS

display(pd.DataFrame([{
    "row": v.index, "name": v.name, "global branch": v.global_branch,
    "local": {"stripe": "fixed stripes", "ram": "aligned regions (RAM)", None: "-"}[v.local],
    "over time": {"avg": "average", "ta": "temporal attention", "tas": "alignment scores", None: "-"}[v.temporal],
    "CR": v.consistency, "SA": v.spatial_attention,
} for v in VARIANTS.values()]).set_index("row"))

# %% [markdown]
# ## 5. Where to go next
# * `results`: the committed results of the study (claims, Table 2, sweeps, Fig. 5), no training.
# * `train_evaluate`: train and evaluate one variant (any dataset, any setting).
# * `ablation`: Table 2, ours beside the paper, and whether alignment helps.
# * `sweeps`: Fig. 4 (sequence length, number of regions) and the misalignment knob.
# * `response_maps`: Fig. 5 for trained runs, and an interactive explorer.
# * `paper_vs_ours`: Table 1.
#
# `make study` runs them all on the synthetic set: about 20 minutes on a 2-core CPU (README).

# %%
if figures_dir:
    from pathlib import Path

    from fgra_core.analysis.figures import save_figure

    out = Path(figures_dir)
    save_figure(rm.draw_fig5(data), out / "tour_response_maps", formats=("png",))
    print("saved", out / "tour_response_maps.png")
