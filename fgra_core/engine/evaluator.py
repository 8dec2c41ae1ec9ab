"""Evaluate a model on a dataset's query/gallery under the configured protocol."""
from __future__ import annotations

import torch

from fgra_core.config.schema import RunConfig, resolve_protocol
from fgra_core.data.loaders import load_frames
from fgra_core.data.transforms import ClipTransform
from fgra_core.engine.part_alignment import model_alignment
from fgra_core.eval.features import extract_features
from fgra_core.eval.rank import evaluate_features


def evaluate_model(model, data, cfg: RunConfig, device, *, show_progress: bool = True) -> dict:
    """Features of every query and gallery tracklet (the paper's clip protocol), cosine distance,
    CMC and mAP. Returns ``{"metrics": {...}, "protocol", "ap_form", "reranked", "eval_stats"}``."""
    ds = data.dataset
    transform = ClipTransform(cfg.data.height, cfg.data.width, train=False)
    common = dict(seq_len=cfg.data.seq_len, stride=cfg.eval.stride, transform=transform, device=device,
                  frame_budget=cfg.eval.frame_budget, load_frames=lambda t: load_frames(t, data.cache),
                  show_progress=show_progress, amp=bool(cfg.train.amp and device.type == "cuda"),
                  return_stats=True)
    was_training = model.training
    model.eval()
    qf, q_stats = extract_features(model, ds.query, **common)
    gf, g_stats = extract_features(model, ds.gallery, **common)
    weights = aggregation_weights(model, ds.query, data, transform, cfg.data.seq_len, device)
    alignment = model_alignment(model, data, transform, cfg, device)
    model.train(was_training)

    protocol = resolve_protocol(cfg)
    res = evaluate_features(
        qf, gf, [t.pid for t in ds.query], [t.pid for t in ds.gallery],
        [t.camid for t in ds.query], [t.camid for t in ds.gallery],
        protocol=protocol, ap_form=cfg.eval.ap_form, rerank=cfg.eval.rerank, max_rank=cfg.eval.max_rank)
    record = res.as_dict(percent=True)
    return {"metrics": record, "protocol": record["protocol"], "ap_form": record["ap_form"],
            "reranked": cfg.eval.rerank, "eval_stats": {"query": _plain(q_stats), "gallery": _plain(g_stats)},
            "per_query": res.per_query(), "weights": weights, "alignment": alignment}


@torch.no_grad()
def aggregation_weights(model, tracklets, data, transform, seq_len: int, device, limit: int = 64) -> dict:
    """Temporal-weight entropy and spatial-weight spread of a trained model on the first test clip of
    up to ``limit`` tracklets (see :func:`fgra_core.models.fgra.weight_statistics`)."""
    from fgra_core.data.sampling import test_clips
    from fgra_core.models.fgra import weight_statistics

    outs = []
    for t in list(tracklets)[:limit]:
        clip = test_clips(len(t), seq_len)[0]
        frames = transform(load_frames(t, data.cache, indices=clip)).to(device)
        fmaps = model.backbone_features(frames)
        outs.append(model.head(fmaps.unsqueeze(0), return_weights=True))
    return weight_statistics(outs)


def _plain(stats) -> dict:
    if stats is None:
        return {}
    if isinstance(stats, dict):
        return {k: v for k, v in stats.items() if isinstance(v, (int, float, str, bool))}
    from dataclasses import asdict, is_dataclass

    return _plain(asdict(stats)) if is_dataclass(stats) else {}
