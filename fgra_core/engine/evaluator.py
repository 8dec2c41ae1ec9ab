"""Evaluate a model on a dataset's query/gallery under the configured protocol."""
from __future__ import annotations

import torch

from ..config import RunConfig, resolve_protocol
from ..data.loaders import load_frames
from ..data.transforms import ClipTransform
from ..eval.distance import cosine_distance
from ..eval.features import extract_features
from ..eval.metrics import evaluate_rank
from ..eval.rerank import re_ranking


def evaluate_model(model, data, cfg: RunConfig, device, *, show_progress: bool = True) -> dict:
    """Features of every query and gallery tracklet (paper's clip protocol), cosine distance,
    CMC and mAP. Returns ``{"metrics": {...}, "protocol": ..., "ap_form": ..., counts}``."""
    ds = data.dataset
    transform = ClipTransform(cfg.data.height, cfg.data.width, train=False)

    def loader(tracklet):
        return load_frames(tracklet, data.cache)

    common = dict(seq_len=cfg.data.seq_len, stride=cfg.eval.stride, transform=transform, device=device,
                  frame_budget=cfg.eval.frame_budget, load_frames=loader, show_progress=show_progress)
    was_training = model.training
    model.eval()
    qf = extract_features(model, ds.query, **common)
    gf = extract_features(model, ds.gallery, **common)
    model.train(was_training)

    protocol = resolve_protocol(cfg)
    q_pids = [t.pid for t in ds.query]
    q_cams = [t.camid for t in ds.query]
    g_pids = [t.pid for t in ds.gallery]
    g_cams = [t.camid for t in ds.gallery]
    if protocol == "official":  # the MARS kit ranks against all test tracklets, queries included
        gf = torch.cat([gf, qf], 0)
        g_pids, g_cams = g_pids + q_pids, g_cams + q_cams
    distmat = cosine_distance(qf, gf)
    if cfg.eval.rerank:
        distmat = re_ranking(qf, gf)
    ap_form = "trapezoid" if protocol == "official" and cfg.eval.ap_form == "trapezoid" else cfg.eval.ap_form
    res = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, protocol=protocol, ap_form=ap_form,
                        max_rank=cfg.eval.max_rank)
    record = res.as_dict(percent=True)
    return {"metrics": record, "protocol": record["protocol"], "ap_form": record["ap_form"], "reranked": cfg.eval.rerank}
