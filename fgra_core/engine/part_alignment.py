"""Part-consistency of a run's response maps, measured against the ground-truth body parts.

On a set whose tracklets carry ``parts`` (the synthetic set), every run records, on the first test
clip of every query tracklet (the clip's first frame is the reference frame), the share of each
region's response-map mass that lies on the body part its reference stripe covers
(:mod:`fgra_core.eval.alignment`), beside the fixed stripe (no alignment), a uniform map and a
perfect aligner computed from the parts alone, and how peaked the maps are. A variant without the
region alignment mechanism (rows 0-3) records the baselines only. The per-query values go into the
run's record so that a claim about alignment is resampled over seeds and queries like any other.
"""
from __future__ import annotations

import numpy as np
import torch

from fgra_core.data.loaders import load_frames
from fgra_core.data.sampling import test_clips
from fgra_core.eval.alignment import clip_alignment, summarise

CLIP_BATCH = 128


def has_parts(ds) -> bool:
    return bool(ds.query) and all(getattr(t, "parts", None) is not None for t in ds.query)


def _record(ds, first: list[list[int]], num_regions: int, maps_of) -> dict:
    clips = []
    n = len(ds.query)
    for b0 in range(0, n, CLIP_BATCH):
        idx = np.arange(b0, min(n, b0 + CLIP_BATCH))
        maps = maps_of(idx)
        for j, i in enumerate(idx):
            parts = np.asarray(ds.query[i].parts, dtype=np.float64)[first[i]]
            clips.append(clip_alignment(parts, num_regions, None if maps is None else maps[j]))
    return summarise(clips)


def _regions(model, cfg) -> int:
    return int(getattr(model, "num_regions", None) or cfg.model.num_regions)


@torch.no_grad()
def head_alignment(model, feats, ds, cfg, device) -> dict | None:
    """The record of a head-regime run (maps from the cached trunk maps); ``None`` on a set without parts."""
    if not has_parts(ds):
        return None
    first = [test_clips(int(feats.lengths["query"][i]), cfg.data.seq_len)[0] for i in range(len(ds.query))]
    ram = model.variant.local == "ram"

    def maps_of(idx):
        if not ram:
            return None
        frames = np.asarray([first[i] for i in idx])
        out = model.head(feats.gather("query", idx, frames).to(device), return_maps=True)
        return out.maps.float().cpu().numpy()

    return _record(ds, first, _regions(model, cfg), maps_of)


@torch.no_grad()
def model_alignment(model, data, transform, cfg, device) -> dict | None:
    """The record of a fine-tune run (the whole model on each clip's frames); ``None`` without parts."""
    ds = data.dataset
    if not has_parts(ds):
        return None
    first = [test_clips(len(t), cfg.data.seq_len)[0] for t in ds.query]
    ram = model.variant.local == "ram"

    def maps_of(idx):
        if not ram:
            return None
        out = []
        for i in idx:
            frames = transform(load_frames(ds.query[i], data.cache, indices=first[i])).to(device)
            fmaps = model.backbone_features(frames)
            out.append(model.head(fmaps.unsqueeze(0), return_maps=True).maps[0].float().cpu().numpy())
        return out

    return _record(ds, first, _regions(model, cfg), maps_of)
