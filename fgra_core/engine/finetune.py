"""The training loop: the paper's recipe, resumable, seeded, single- or multi-process."""
from __future__ import annotations

import math
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from fgra_core.config.schema import RunConfig, dump_config, to_dict
from fgra_core.data.device_transforms import to_device_batch
from fgra_core.engine import checkpoint as ckpt_lib
from fgra_core.engine import run_record
from fgra_core.engine.builders import build_criterion, build_data, build_model, build_optimizer, build_train_loader_for
from fgra_core.engine.convergence import convergence
from fgra_core.engine.distributed import DistInfo, agree, all_reduce_mean, barrier, cleanup, init_distributed
from fgra_core.engine.evaluator import evaluate_model
from fgra_core.utils.errors import ConfigError, FGRAError, RunLockedError, TrainingDivergedError
from fgra_core.utils.io import append_jsonl, atomic_write_json, atomic_write_text, json_line, remove_stale_temps
from fgra_core.utils.jsonsafe import json_safe
from fgra_core.utils.locks import hold_run
from fgra_core.utils.precision import amp_dtype
from fgra_core.utils.seeding import seed_everything

METRICS_FILE = run_record.METRICS_FILE
RESULTS_FILE = run_record.RESULTS_FILE


def _amp_setup(cfg: RunConfig, device: torch.device):
    use_amp = bool(cfg.train.amp and device.type == "cuda")
    dtype = amp_dtype(device) if use_amp else torch.float16  # the same type at test time (fgra_core/utils/precision.py)
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
    for step, batch in enumerate(loader):
        if iters is not None and step >= iters:
            break
        # CPU-augmented clips, or uint8 frames + per-clip parameters augmented on the device
        clips, pids = to_device_batch(batch, device, getattr(loader, "device_transform", None), channels_last)
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
            out = model(clips)
            loss, parts = criterion(out, pids)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        # one host sync per step for the logged loss terms, the loss and the gradient norm; with a
        # float16 grad scaler non-finite gradients are its business (it skips that step)
        values = _step_values(loss, parts, optimizer, check_grads=not scaler.is_enabled())
        scaler.step(optimizer)
        scaler.update()
        _check_finite(values, parts, epoch=epoch, step=step)
        n += 1
        for key, value in zip(parts, values):
            sums[key] = sums.get(key, 0.0) + value
        bar.update(1)
        bar.set_postfix(loss=f"{values[len(parts)]:.3f}")
    bar.close()
    stats = {key: all_reduce_mean(value / max(n, 1), dinfo) for key, value in sums.items()}
    stats["steps"] = n
    return stats


def _step_values(loss, parts: dict, optimizer, check_grads: bool) -> list[float]:
    """``[*parts, loss, gradient norm]`` as floats, read from the device in one transfer."""
    terms = [torch.as_tensor(v, device=loss.device).detach().float().reshape(()) for v in parts.values()]
    terms.append(loss.detach().float().reshape(()))
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if check_grads and grads:
        terms.append(torch.nn.utils.get_total_norm(grads, foreach=True).float().to(terms[0].device))
    else:
        terms.append(torch.zeros((), device=terms[0].device))
    return torch.stack(terms).tolist()


def _check_finite(values: list[float], parts: dict, *, epoch: int, step: int) -> None:
    """Stop on a non-finite loss or gradient norm (the last two values); the logged terms before
    them are named in the message (some are diagnostics that may be NaN on their own)."""
    if all(math.isfinite(v) for v in values[len(parts):]):
        return
    names = [*parts, "loss", "gradient norm"]
    shown = ", ".join(f"{k}={v:.6g}" for k, v in zip(names, values))
    raise TrainingDivergedError(f"training diverged at epoch {epoch + 1}, step {step + 1}: {shown}")


def run(cfg: RunConfig, device: torch.device, *, show_progress: bool = True,
        stop_after_epochs: int | None = None, on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train (or resume) and evaluate one fine-tune run (``train.regime: finetune``); return its
    results record. The run folder receives ``config.yaml``, ``metrics.jsonl`` (one line per
    epoch), ``checkpoints/last.pt`` (every epoch, atomic) and ``results.json``.
    ``stop_after_epochs`` ends the call early after that many epochs of this call (a controlled
    interruption, for tests and notebooks). The entry point is :func:`fgra_core.engine.run.run`.
    """
    dinfo = init_distributed(device.type)
    if dinfo.enabled and device.type == "cuda":
        device = torch.device("cuda", dinfo.local_rank)
    try:
        return _run(cfg, device, dinfo, show_progress, stop_after_epochs, on_epoch_end)
    except FGRAError as exc:
        if dinfo.enabled and getattr(exc, "all_ranks", False):
            # every rank met it: rank 0 says why, once, before any rank exits (a launcher such as
            # torchrun stops the other ranks as soon as one exits)
            if dinfo.is_main:
                print(f"error: {exc}", file=sys.stderr, flush=True)
            exc.reported = True
            barrier(dinfo)
        raise
    finally:
        cleanup(dinfo)


def _run(cfg: RunConfig, device, dinfo: DistInfo, show_progress, stop_after_epochs, on_epoch_end) -> dict:
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    run_dir = Path(cfg.run_dir)
    # a finished record is immutable: returned as it is, or the request is refused, before any write
    done = run_record.check_request(run_dir, cfg)
    if done is not None:
        return done
    with ExitStack() as stack:
        held: Exception | None = None
        if dinfo.is_main:
            run_record.make_run_dir(run_dir)
            try:
                stack.enter_context(hold_run(run_dir))  # one writer per run folder, for the whole run
            except RunLockedError as exc:
                held = exc
        if not agree(held is None, dinfo):
            raise _all_ranks(held or RunLockedError(f"run folder {run_dir} is in use by another process"))
        done = run_record.check_request(run_dir, cfg)  # finished while this process waited for the lock
        if done is not None:
            return done
        return _train(cfg, device, dinfo, show_progress, stop_after_epochs, on_epoch_end)


def _all_ranks(exc: Exception) -> Exception:
    """Mark an error every rank raised alike (the command line prints it from rank 0 only)."""
    exc.all_ranks = True
    return exc


def _train(cfg: RunConfig, device, dinfo: DistInfo, show_progress, stop_after_epochs, on_epoch_end) -> dict:
    run_dir = Path(cfg.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    if dinfo.is_main:
        # temporary files of writes cut short by a kill (under the run's lock: never another writer's)
        remove_stale_temps(run_dir, ("config.yaml", METRICS_FILE, RESULTS_FILE))
        remove_stale_temps(ckpt_dir, (ckpt_lib.LAST,))

    data = build_data(cfg)
    split = run_record.split_identities(data.dataset)
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
        run_record.check_resume(state, cfg, last, split)
        ckpt_lib.restore(model, state["model"], last, "model")
        ckpt_lib.restore(optimizer, state["optimizer"], last, "optimizer")
        ckpt_lib.restore(scheduler, state["scheduler"], last, "scheduler")
        if state.get("scaler"):
            ckpt_lib.restore(scaler, state["scaler"], last, "scaler")
        if state.get("extra", {}).get("criterion"):
            ckpt_lib.restore(criterion, state["extra"]["criterion"], last, "criterion")
        ckpt_lib.set_rng_state(state["rng"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
    loader = build_train_loader_for(cfg, data, dinfo, device)
    _check_batches(loader, start_epoch, cfg, data, dinfo)
    if dinfo.is_main:
        # written once the request is known to fit the folder's checkpoint (a refusal writes nothing);
        # the metrics log always agrees with the checkpoint it continues from
        atomic_write_text(run_dir / "config.yaml", _yaml(cfg))
        atomic_write_text(run_dir / METRICS_FILE, "".join(json_line(r) for r in history))

    train_model = model
    if dinfo.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    t0 = time.time()
    epochs_done_here = 0
    last_epoch = cfg.train.epochs if model.variant.trained else start_epoch   # row 0 trains nothing
    epoch_bar = tqdm(range(start_epoch, last_epoch), desc="training", initial=start_epoch,
                     total=cfg.train.epochs, disable=not show_progress or not dinfo.is_main)
    for epoch in epoch_bar:
        _set_epoch(loader, epoch)
        try:
            stats = train_one_epoch(
                train_model, criterion, loader, optimizer, scaler, device, epoch=epoch, use_amp=use_amp,
                amp_dtype=amp_dtype, channels_last=cfg.train.channels_last and device.type == "cuda",
                iters=cfg.train.iters_per_epoch, show_progress=show_progress, dinfo=dinfo)
        except TrainingDivergedError as exc:
            kept = (f"{ckpt_dir / ckpt_lib.LAST} keeps epoch {epoch}, the last finite one" if epoch
                    else "no checkpoint was written")
            raise _all_ranks(TrainingDivergedError(
                f"{exc} (run {run_dir}); {kept}; lower optim.lr or check the data")) from None
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
                                     extra={"criterion": criterion.state_dict(), "split_identities": split})
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
            **run_record.result_header(cfg),
            **res,
            "convergence": convergence([r.get("total") for r in history if r.get("total") is not None]),
            "train_time_s": round(train_time, 3),
            "eval_time_s": round(time.time() - t1, 3),
            "device": str(device),
            "world_size": dinfo.world_size,
            "torch_version": torch.__version__,
            "dataset_info": json_safe(data.dataset.info),
            "split_identities": split,
            "history": history,
            "config": to_dict(cfg),
        }
        atomic_write_json(run_dir / RESULTS_FILE, result)
    barrier(dinfo)
    return result


def _check_batches(loader, epoch: int, cfg: RunConfig, data, dinfo: DistInfo) -> None:
    """Refuse, before training, an epoch in which a rank would take no step."""
    _set_epoch(loader, epoch)
    try:
        per_rank = len(loader)
    except TypeError:
        return
    if per_rank >= 1:
        return
    t = cfg.train
    ranks = f"{dinfo.world_size} ranks" if dinfo.enabled else "1 process"
    total = per_rank * dinfo.world_size
    sampler = getattr(loader, "batch_sampler", None)
    sampler = getattr(sampler, "sampler", sampler)  # the identity sampler inside the keyed batches
    if sampler is not None and hasattr(sampler, "all_batches"):
        total = len(sampler.all_batches())
    raise _all_ranks(ConfigError(
        f"the training set gives {total} batch(es) of train.P x train.K = {t.P} x {t.K} per epoch "
        f"({data.dataset.num_train_pids} identities) for {ranks}: every rank needs at least one batch; "
        "use fewer processes (torchrun --nproc_per_node) or a smaller train.P / train.K"))


def _set_epoch(loader, epoch: int) -> None:
    for obj in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def _yaml(cfg: RunConfig) -> str:
    return dump_config(cfg)
