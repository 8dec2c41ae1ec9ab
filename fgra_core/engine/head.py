"""The frozen-trunk ("head") regime: train and evaluate a variant's head on cached trunk maps.

``train.regime: head`` replaces the paper's end-to-end fine-tuning by a cheaper, sharper
experiment: the trunk (``model.backbone`` / ``model.weights``) is frozen in eval mode, the feature
map of every frame is computed once (:mod:`fgra_core.engine.trunk_cache`) and shared by every variant,
seed and reading, and only the head -- global branch, region alignment, aggregation, reductions,
classifier (and learned centres) -- trains, for thousands of steps in seconds to minutes on a CPU.

A training clip is drawn as in the fine-tune regime (P x K identity batches, ``data.seq_len``
frames by ``data.sample_mode``, one draw per clip) and takes the mirrored view with probability
``data.flip`` (one draw per clip, so every frame of a clip is mirrored or none). Cropping and
random erasing are image operations that a cache of maps cannot apply: the regime has none
(docs/reproduction_notes.md lists every difference from the paper). Test clips, their features
and the protocol are those of the fine-tune regime.

The run folder gets ``config.yaml``, ``metrics.jsonl`` (one line per epoch), ``results.json``
(with the per-step loss curve and its convergence measure). A head run is not checkpointed: it
takes seconds, and an interrupted one starts over. A finished run is returned as it is.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fgra_core.config.schema import RunConfig, dump_config, resolve_protocol, to_dict
from fgra_core.data.loaders import load_frames
from fgra_core.data.samplers import RandomIdentitySampler
from fgra_core.data.sampling import test_clips, train_indices
from fgra_core.engine import run_record
from fgra_core.engine.builders import build_criterion, build_data, build_model, build_optimizer
from fgra_core.engine.convergence import convergence
from fgra_core.engine.part_alignment import head_alignment
from fgra_core.engine.trunk_cache import TrunkFeatures, load_or_build
from fgra_core.eval.rank import evaluate_features
from fgra_core.models.backbones import split_last_stage
from fgra_core.models.fgra import weight_statistics
from fgra_core.utils.errors import TrainingDivergedError
from fgra_core.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text, json_line, remove_stale_temps
from fgra_core.utils.jsonsafe import json_safe
from fgra_core.utils.locks import hold_run
from fgra_core.utils.seeding import seed_everything

METRICS_FILE = run_record.METRICS_FILE
RESULTS_FILE = run_record.RESULTS_FILE
CLIP_BATCH = 256


DivergenceError = TrainingDivergedError   # a non-finite loss: training stopped at that step


def run(cfg: RunConfig, device: torch.device, *, show_progress: bool = True) -> dict:
    """The head regime under the same record rules and lock as a fine-tune run: a finished record
    is returned as it is, else the run folder is held and the head trained and evaluated."""
    run_dir = Path(cfg.run_dir)
    done = run_record.check_request(run_dir, cfg)
    if done is not None:
        return done
    run_record.make_run_dir(run_dir)
    with hold_run(run_dir):
        done = run_record.check_request(run_dir, cfg)  # finished while this process waited for the lock
        if done is not None:
            return done
        remove_stale_temps(run_dir, ("config.yaml", METRICS_FILE, RESULTS_FILE))
        return run_head(cfg, device, show_progress=show_progress)


def run_head(cfg: RunConfig, device: torch.device, *, show_progress: bool = True) -> dict:
    """Train (unless the variant has nothing to train) and evaluate one head-regime run. The caller
    (:func:`run`) holds the run folder's lock and has applied the record rules."""

    run_dir = Path(cfg.run_dir)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    data = build_data(cfg)
    ds = data.dataset
    split = run_record.split_identities(ds)
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    model = build_model(cfg, ds.num_train_pids)
    trunk, stage = model.backbone, None
    if cfg.train.adapt == "layer4":        # the cache holds layer-3 maps; layer4 trains with the head
        trunk, stage = split_last_stage(trunk)
    t_cache = time.time()
    feats = load_or_build(ds, trunk, cfg.data.height, cfg.data.width, cache_dir=cfg.data.feature_cache_dir,
                          load_frames=lambda t: load_frames(t, data.cache),
                          trunk_name=f"{cfg.model.backbone}/ls{cfg.model.last_stride}" + ("/layer3" if stage else ""),
                          device=device, show_progress=show_progress)
    cache_time = time.time() - t_cache
    model.backbone = torch.nn.Identity()   # frozen and no longer needed: the maps are cached
    if stage is not None:
        model.adapt_stage = stage          # saved with the head (adapt_stage.*), trained by its optimiser
    model.to(device)
    criterion = build_criterion(cfg, ds.num_train_pids, model).to(device)

    t0 = time.time()
    history: list[dict] = []
    losses: list[float] = []
    if model.variant.trained:
        history, losses = _train(cfg, model, criterion, feats, ds, device, show_progress)
    train_time = time.time() - t0
    t1 = time.time()
    model.eval()
    res = evaluate_head(model, feats, ds, cfg, device)
    atomic_write_text(run_dir / METRICS_FILE, "".join(json_line(r) for r in history))
    if model.variant.trained:   # the head only (the trunk is model.weights): for response maps and the explorer
        head_state = {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")}
        atomic_torch_save({"model": head_state, "regime": "head", "epoch": cfg.train.epochs, "config": to_dict(cfg),
                           "history": history}, run_dir / "checkpoints" / "last.pt")
    result = {
        **run_record.result_header(cfg),
        **res,
        "steps": len(losses),
        "convergence": convergence(losses),
        "loss_curve": [round(v, 5) for v in losses],
        "feature_cache": {"key": feats.key[:20], "frames": int(feats.maps.shape[0]), "seconds": round(cache_time, 3)},
        "train_time_s": round(train_time, 3),
        "eval_time_s": round(time.time() - t1, 3),
        "device": str(device),
        "world_size": 1,
        "torch_version": torch.__version__,
        "dataset_info": json_safe(ds.info),
        "split_identities": split,
        "history": history,
        "config": to_dict(cfg),
    }
    atomic_write_json(run_dir / RESULTS_FILE, result)
    return result


def _train(cfg: RunConfig, model, criterion, feats: TrunkFeatures, ds, device, show_progress) -> tuple[list, list]:
    d, t = cfg.data, cfg.train
    for p in model.parameters():
        p.requires_grad_(True)
    optimizer = build_optimizer(cfg, model, criterion)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma)
    pids = [tr.pid for tr in ds.train]
    lengths = feats.lengths["train"]
    sampler = RandomIdentitySampler(pids, P=t.P, K=t.K, seed=t.seed)
    labels_all = torch.as_tensor(pids, dtype=torch.long)
    model.train()
    criterion.train()
    history, losses = [], []
    bar = tqdm(range(t.epochs), desc="head training", leave=False, disable=not show_progress)
    for epoch in bar:
        sampler.set_epoch(epoch)
        batches = sampler.all_batches(epoch)
        if t.iters_per_epoch is not None:
            batches = batches[:t.iters_per_epoch]
        sums: dict[str, float] = {}
        for step, batch in enumerate(batches):
            idx = np.asarray(batch, dtype=np.int64)
            rng = np.random.default_rng([t.seed, epoch, step])
            frames = np.stack([train_indices(int(lengths[i]), d.seq_len, d.sample_mode, rng) for i in idx])
            view = (rng.random(len(idx)) < d.flip).astype(np.int64)
            x = feats.gather("train", idx, frames, view).to(device)
            y = labels_all[idx].to(device)
            out = model.head(x)
            loss, parts = criterion(out, y)
            value = float(loss.detach())
            if not math.isfinite(value):
                terms = ", ".join(f"{k}={float(v):.4g}" for k, v in parts.items())
                raise DivergenceError(f"{cfg.run_dir}: the loss is not finite at epoch {epoch + 1}, step {step + 1} "
                                      f"({terms}); lower optim.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(value)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        n = max(1, len(batches))
        rec = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "steps": len(batches),
               **{k: v / n for k, v in sums.items()}}
        history.append(rec)
        scheduler.step()
        if show_progress:
            bar.set_postfix(loss=f"{rec.get('total', float('nan')):.3f}")
    bar.close()
    return history, losses


@torch.no_grad()
def clip_features(model, feats: TrunkFeatures, which: str, seq_len: int, stride: int | None, device,
                  clip_batch: int = CLIP_BATCH) -> torch.Tensor:
    """Tracklet features [T, D]: the mean of the head's features over the tracklet's test clips."""
    lengths = feats.lengths[which]
    owner, frames = [], []
    for i, n in enumerate(lengths):
        for c in test_clips(int(n), seq_len, stride):
            owner.append(i)
            frames.append(c)
    owner_a = np.asarray(owner, dtype=np.int64)
    frames_a = np.asarray(frames, dtype=np.int64)
    out = None
    for s in range(0, len(owner_a), clip_batch):
        x = feats.gather(which, owner_a[s:s + clip_batch], frames_a[s:s + clip_batch]).to(device)
        f = model.head(x).features.float().cpu()
        if out is None:
            out = torch.zeros(len(lengths), f.shape[1], dtype=torch.float64)
        out.index_add_(0, torch.from_numpy(owner_a[s:s + clip_batch]), f.double())
    counts = torch.bincount(torch.from_numpy(owner_a), minlength=len(lengths)).clamp_min(1)
    return (out / counts[:, None]).float()


@torch.no_grad()
def evaluate_head(model, feats: TrunkFeatures, ds, cfg: RunConfig, device) -> dict:
    qf = clip_features(model, feats, "query", cfg.data.seq_len, cfg.eval.stride, device)
    gf = clip_features(model, feats, "gallery", cfg.data.seq_len, cfg.eval.stride, device)
    res = evaluate_features(qf, gf, [t.pid for t in ds.query], [t.pid for t in ds.gallery],
                            [t.camid for t in ds.query], [t.camid for t in ds.gallery],
                            protocol=resolve_protocol(cfg), ap_form=cfg.eval.ap_form, rerank=cfg.eval.rerank,
                            max_rank=cfg.eval.max_rank)
    n = min(64, len(ds.query))
    first = np.asarray([test_clips(int(feats.lengths["query"][i]), cfg.data.seq_len)[0] for i in range(n)])
    outs = [model.head(feats.gather("query", np.arange(n), first).to(device), return_weights=True)] if n else []
    record = res.as_dict(percent=True)
    return {"metrics": record, "protocol": record["protocol"], "ap_form": record["ap_form"],
            "reranked": cfg.eval.rerank, "per_query": res.per_query(), "weights": weight_statistics(outs),
            "alignment": head_alignment(model, feats, ds, cfg, device)}
