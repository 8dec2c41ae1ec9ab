"""The training loop: the paper's recipe, resumable, seeded, single- or multi-process."""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import RunConfig, dump_config, flatten, load_config, to_dict
from ..errors import ConfigError, StorageError
from ..io import append_jsonl, atomic_write_json, atomic_write_text, remove_stale_temps
from ..precision import amp_dtype
from . import checkpoint as ckpt_lib
from .builders import build_criterion, build_data, build_model, build_optimizer, build_train_loader_for
from .distributed import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from .evaluator import evaluate_model

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available on this machine")
    return dev


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _amp_setup(cfg: RunConfig, device: torch.device):
    use_amp = bool(cfg.train.amp and device.type == "cuda")
    dtype = amp_dtype(device) if use_amp else torch.float16  # the same type at test time (fgra_core/precision.py)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dtype == torch.float16)
    return use_amp, dtype, scaler


def train_one_epoch(model, criterion, loader, optimizer, scaler, device, *, epoch: int, use_amp: bool,
                    amp_dtype, channels_last: bool, iters: int | None, show_progress: bool,
                    dinfo: DistInfo) -> dict:
    model.train()
    criterion.train()
    sums: dict[str, float] = {}
    n = 0
    total = iters if iters is not None else len(loader)
    bar = tqdm(total=total, desc=f"epoch {epoch + 1}", leave=False, disable=not show_progress or not dinfo.is_main)
    for step, (clips, pids, _cams) in enumerate(loader):
        if iters is not None and step >= iters:
            break
        clips = clips.to(device, non_blocking=True)
        pids = pids.to(device, non_blocking=True)
        if channels_last:
            b, t = clips.shape[:2]
            clips = clips.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (b, t))
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
            out = model(clips)
            loss, parts = criterion(out, pids)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        n += 1
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    bar.close()
    stats = {key: all_reduce_mean(value / max(n, 1), dinfo) for key, value in sums.items()}
    stats["steps"] = n
    return stats


def run(config=None, *, overrides: dict | None = None, show_progress: bool = True,
        stop_after_epochs: int | None = None, on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train (or resume) and evaluate one run; return its results record.

    ``config`` is a YAML path, a dict or a :class:`RunConfig`. The run folder receives
    ``config.yaml``, ``metrics.jsonl`` (one line per epoch), ``checkpoints/last.pt`` (every
    epoch, atomic) and ``results.json``. ``stop_after_epochs`` ends the call early after that
    many epochs of this call (a controlled interruption, for tests and notebooks).
    """
    cfg = load_config(config, overrides)
    device = resolve_device(cfg.device)
    dinfo = init_distributed(device.type)
    if dinfo.enabled and device.type == "cuda":
        device = torch.device("cuda", dinfo.local_rank)
    try:
        return _run(cfg, device, dinfo, show_progress, stop_after_epochs, on_epoch_end)
    finally:
        cleanup(dinfo)


def _run(cfg: RunConfig, device, dinfo: DistInfo, show_progress, stop_after_epochs, on_epoch_end) -> dict:
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    run_dir = Path(cfg.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    done = _finished_result(run_dir, cfg) if cfg.resume else None
    if done is not None:
        return done  # a finished run is never recomputed nor rewritten (not even its config.yaml)
    if dinfo.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"run folder {run_dir} cannot be created ({exc.strerror or exc}); "
                               "expected a writable location for run_dir", errno=exc.errno, path=str(run_dir)) from exc
        # temporary files of writes cut short by a kill (the files themselves are never half-written)
        remove_stale_temps(run_dir, ("config.yaml", METRICS_FILE, RESULTS_FILE))
        remove_stale_temps(ckpt_dir, (ckpt_lib.LAST,))
        atomic_write_text(run_dir / "config.yaml", _yaml(cfg))

    data = build_data(cfg)
    model = build_model(cfg, data.dataset.num_train_pids).to(device)
    if cfg.train.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(cfg, data.dataset.num_train_pids, model).to(device)
    optimizer = build_optimizer(cfg, model, criterion)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma)
    use_amp, amp_dtype, scaler = _amp_setup(cfg, device)

    start_epoch, history = 0, []
    last = ckpt_lib.find_last(ckpt_dir) if cfg.resume else None
    if last is not None:
        state = ckpt_lib.load_checkpoint(last, map_location=device)
        _check_compatible(state.get("config", {}), cfg, last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if state.get("extra", {}).get("criterion"):
            criterion.load_state_dict(state["extra"]["criterion"])
        ckpt_lib.set_rng_state(state["rng"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
    if dinfo.is_main:
        # The metrics log always agrees with the checkpoint it continues from.
        atomic_write_text(run_dir / METRICS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))

    train_model = model
    if dinfo.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    loader = build_train_loader_for(cfg, data, dinfo)

    t0 = time.time()
    epochs_done_here = 0
    epoch_bar = tqdm(range(start_epoch, cfg.train.epochs), desc="training", initial=start_epoch,
                     total=cfg.train.epochs, disable=not show_progress or not dinfo.is_main)
    for epoch in epoch_bar:
        _set_epoch(loader, epoch)
        stats = train_one_epoch(
            train_model, criterion, loader, optimizer, scaler, device, epoch=epoch, use_amp=use_amp,
            amp_dtype=amp_dtype, channels_last=cfg.train.channels_last and device.type == "cuda",
            iters=cfg.train.iters_per_epoch, show_progress=show_progress, dinfo=dinfo)
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **stats}
        scheduler.step()
        due = cfg.train.eval_every and (epoch + 1) % cfg.train.eval_every == 0 and epoch + 1 < cfg.train.epochs
        if due:
            if dinfo.is_main:
                res = evaluate_model(model, data, cfg, device, show_progress=show_progress)
                record.update({f"eval_{k}": v for k, v in res["metrics"].items()})
            barrier(dinfo)
        history.append(record)
        if dinfo.is_main:
            ckpt_lib.save_checkpoint(ckpt_dir, epoch=epoch + 1, model=model, optimizer=optimizer,
                                     scheduler=scheduler, scaler=scaler, history=history, config=to_dict(cfg),
                                     extra={"criterion": criterion.state_dict()})
            append_jsonl(run_dir / METRICS_FILE, record)
        barrier(dinfo)
        if on_epoch_end is not None:
            on_epoch_end(record)
        epochs_done_here += 1
        if stop_after_epochs is not None and epochs_done_here >= stop_after_epochs and epoch + 1 < cfg.train.epochs:
            return {"status": "interrupted", "epoch": epoch + 1, "history": history}
    train_time = time.time() - t0

    result: dict = {"status": "finished"}
    if dinfo.is_main:
        t1 = time.time()
        res = evaluate_model(model, data, cfg, device, show_progress=show_progress)
        result = {
            "status": "finished",
            "run_dir": str(run_dir),
            "dataset": cfg.data.dataset,
            "split_id": cfg.data.split_id,
            "variant": cfg.model.variant,
            "backbone": cfg.model.backbone,
            "seq_len": cfg.data.seq_len,
            "num_regions": cfg.model.num_regions,
            "epochs": cfg.train.epochs,
            "seed": cfg.train.seed,
            **res,
            "train_time_s": round(train_time, 3),
            "eval_time_s": round(time.time() - t1, 3),
            "device": str(device),
            "world_size": dinfo.world_size,
            "torch_version": torch.__version__,
            "dataset_info": _json_safe(data.dataset.info),
            "history": history,
            "config": to_dict(cfg),
        }
        atomic_write_json(run_dir / RESULTS_FILE, result)
    barrier(dinfo)
    return result


# Settings that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"resume", "device", "train.epochs", "train.eval_every", "data.num_workers", "data.cache_dir", "data.cache_memory_gb"}


def _check_compatible(saved: dict, cfg: RunConfig, where: Path) -> None:
    a, b = flatten(_with_defaults(saved)), flatten(to_dict(cfg))
    diff = sorted(k for k in set(a) | set(b)
                  if k not in _RESUMABLE_CHANGES and not k.startswith("eval.") and a.get(k) != b.get(k))
    if diff:
        shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff[:6])
        raise ConfigError(f"{where} was written by a run with other settings ({shown}); "
                          "use another run_dir, or set resume: false to start over")


def _with_defaults(saved: dict) -> dict:
    """A saved config with the settings added since it was written filled in at their defaults."""
    try:
        return to_dict(load_config(saved))
    except Exception:  # noqa: BLE001 - a record of removed settings simply does not match
        return saved


def _finished_result(run_dir: Path, cfg: RunConfig) -> dict | None:
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if result.get("status") != "finished":
        return None
    ignore = {"resume", "device", "data.num_workers", "data.cache_dir", "data.cache_memory_gb"}
    a, b = flatten(_with_defaults(result.get("config", {}))), flatten(to_dict(cfg))
    if {k: v for k, v in a.items() if k not in ignore} != {k: v for k, v in b.items() if k not in ignore}:
        return None
    return result


def _set_epoch(loader, epoch: int) -> None:
    for obj in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def _yaml(cfg: RunConfig) -> str:
    return dump_config(cfg)


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else f"array{list(obj.shape)}"
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
