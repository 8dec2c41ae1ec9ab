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
# # Region response maps (the paper's Fig. 5)
#
# FGRA cuts the **reference frame** (the first sampled frame) into $N_s$ horizontal regions. Each
# region's pooled feature is a template; the guide alignment module correlates it, channel by
# channel, with the feature map of every sampled frame (Eq. 1), normalises and squashes the result
# into a similarity map and pools the frame's features with it (Eq. 2). The **response map** shown
# here is that similarity map averaged over channels: where, in each frame, the model finds the
# region it was shown in the reference frame. The **temporal alignment scores** (Eqs. 4-6) weight
# the frames of each region, the **spatial weights** (Eqs. 7-8) weight the regions.
#
# Parameters: `run_dir` is a finished run folder of the full model (variant 8). The default,
# `"demo"`, is the demo model: variant 8 fine-tuned for under a minute on a small synthetic set,
# trained the first time and kept in `results/runs/demo` (an empty string gives the untrained
# default model). `figures_dir` is where the figures are written (empty: shown only), `smoke`
# makes everything tiny.

# %%
import math
from pathlib import Path

from IPython.display import Image, Markdown, display

from fgra_core.viz import response_maps as rm
from fgra_core.utils.errors import ConfigError
from fgra_core.viz.widgets import ResponseExplorer

_names_before_parameters = set(globals())

# %% tags=["parameters"]
run_dir: str = "demo"      # a finished run folder of the full variant ("demo": the demo model; empty: untrained)
figures_dir: str = ""      # where the PNG + PDF figures go (empty: shown only)
smoke: bool = False        # tiny input, seconds
num_tracklets: int = 3     # query tracklets drawn as Fig.-5 figures
num_frames: int = 8        # frames sampled per tracklet (the first is the reference frame)
device: str = "cpu"        # cpu, cuda or auto
explorer: bool = True      # build the interactive explorer at the end

# %%
# papermill only warns about unknown parameters: refuse them, and check the types
_PARAMETERS = {"run_dir": str, "figures_dir": str, "smoke": bool, "num_tracklets": int, "num_frames": int,
               "device": str, "explorer": bool}
_unknown = sorted(k for k in set(globals()) - _names_before_parameters - set(_PARAMETERS) if not k.startswith("_"))
if _unknown:
    raise ConfigError(f"unknown notebook parameter(s) {_unknown}; valid: {sorted(_PARAMETERS)}")
for _name, _type in _PARAMETERS.items():
    _value = globals()[_name]
    if _value is None and _type is str:
        globals()[_name] = ""
    elif not isinstance(_value, _type) or (_type is int and isinstance(_value, bool)):
        raise ConfigError(f"notebook parameter {_name}={_value!r}: expected {_type.__name__}")
if not 1 <= num_tracklets or not 2 <= num_frames <= 64:
    raise ConfigError(f"need num_tracklets >= 1 and 2 <= num_frames <= 64, got {num_tracklets}, {num_frames}")
if smoke:
    num_tracklets, num_frames = 1, 4

# %% [markdown]
# ## The model and the sequences

# %%
bundle = rm.load_model(run_dir or None, device)
dataset = rm.dataset_for(bundle, smoke=smoke)
cache = rm.FeatureCache(bundle)
out_dir = Path(figures_dir) if figures_dir else None
display(Markdown(f"**model**: {bundle.label} &middot; input {bundle.height}x{bundle.width} &middot; "
                 f"N_s = {bundle.num_regions} &middot; **data**: {dataset.name}, "
                 f"{min(num_tracklets, len(dataset.query))} query tracklet(s), {num_frames} sampled frames each"))

# %% [markdown]
# ## Fig. 5: each region's response over the sampled frames
#
# Row $r$: the reference frame with region $r$ boxed in red, then region $r$'s response map on every
# sampled frame (one colour range per row; `t` is the frame's position in the tracklet, `s` its
# temporal alignment score for that region). A model that aligns well lights up the same body part
# in every frame of a row, wherever the detector put it.

# %%
written = []


def show(fig, stem):
    """Display a figure, and write it as PNG + PDF when figures_dir is set (one rendering for both)."""
    if out_dir is None:
        display(Image(rm.figure_to_png(fig)))
        return
    files = rm.save_figure(fig, out_dir / stem, dpi=rm.FIG_DPI)
    written.extend(files)
    display(Image(filename=str(files[0])))


results = []
for k, source in enumerate(rm.sources_of(dataset, ("query",), limit=num_tracklets).values()):
    data = rm.compute_response(bundle, source, num_frames, cache=cache)
    results.append(data)
    suffix = "" if k == 0 else f"_{k}"
    show(rm.draw_fig5(data), f"fig5_response_maps{suffix}")
    show(rm.draw_scores(data), f"fig5_alignment_scores{suffix}")

# %% [markdown]
# ## Numbers behind the figures
#
# For the first tracklet: the peak of each region's response in each frame (feature-map row), and
# the temporal alignment scores. With a model that aligns, each region's peak row follows its body
# part; the temporal scores sum to 1 over the frames of a region.

# %%
data = results[0]
rows = ["| region | " + " | ".join(f"t={int(i)}" for i in data.indices) + " |",
        "|---|" + "---|" * data.num_frames]
for r in range(data.num_regions):
    cells = []
    for n in range(data.num_frames):
        m = data.maps[n, r]
        row = int(m.argmax()) // m.shape[1]
        cells.append(f"row {row}, s={data.temporal_scores[n, r]:.3f}")
    rows.append(f"| {r} | " + " | ".join(cells) + " |")
display(Markdown("\n".join(rows)))
assert all(math.isclose(float(data.temporal_scores[:, r].sum()), 1.0, rel_tol=1e-4) for r in range(data.num_regions))
print(f"backbone passes: {cache.backbone_calls} for {cache.frames_computed} frames")
if written:
    print("written:\n" + "\n".join(str(p) for p in written))

# %% [markdown]
# ## The explorer
#
# Pick a tracklet (or upload frames, or name a folder of frames), a model, the number of sampled
# frames, a frame and a region. The backbone runs once per frame; moving through frames and regions
# only redraws. Other runs beside `run_dir` with a checkpoint of a variant 4-8 appear in the model menu.

# %%
if explorer:
    runs_root = str(Path(bundle.run_dir).parent) if bundle.run_dir else None
    view = ResponseExplorer(dataset, model=bundle, runs_root=runs_root, num_frames=min(num_frames, 16),
                            device=device, max_sources=4 if smoke else 200, cache=cache)
    display(view.widget)
