"""Turn a :class:`RunConfig` into the objects a run needs (dataset, loader, model, loss, optimiser)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from fgra_core.config.schema import RunConfig
from fgra_core.data.device_loader import device_loader_from
from fgra_core.data.device_transforms import pin_memory_for, resolve_augment_on
from fgra_core.data.frames import FrameCache
from fgra_core.data.loaders import build_train_loader
from fgra_core.data.packed_frames import PackedFrameCache
from fgra_core.data.records import VideoDataset
from fgra_core.data.registry import build_dataset
from fgra_core.data.transforms import ClipTransform
from fgra_core.engine.distributed import DistInfo, barrier
from fgra_core.models.fgra import FGRA
from fgra_core.models.losses import FGRALoss


@dataclass
class RunData:
    dataset: VideoDataset
    cache: FrameCache


def build_data(cfg: RunConfig) -> RunData:
    d = cfg.data
    if d.dataset == "synthetic":
        syn = asdict(d.synthetic)
        syn["frames_per_tracklet"] = (syn.pop("min_frames"), syn.pop("max_frames"))
        dataset = build_dataset("synthetic", **syn)
    else:
        dataset = build_dataset(d.dataset, d.root, split_id=d.split_id, split_file=d.split_file)
    return RunData(dataset=dataset, cache=FrameCache(cache_dir=d.cache_dir, max_bytes=_cache_bytes(cfg)))


def _cache_bytes(cfg: RunConfig) -> int | None:
    return None if cfg.data.cache_dir else int(cfg.data.cache_memory_gb * 2**30)


def build_model(cfg: RunConfig, num_classes: int) -> FGRA:
    m = cfg.model
    return FGRA(num_classes, variant=m.variant, backbone=m.backbone, weights=m.weights,
                num_regions=m.num_regions, last_stride=m.last_stride, tas_source=m.tas_source,
                template_conv=m.template_conv, spatial_weights=m.spatial_weights)


def build_criterion(cfg: RunConfig, num_classes: int, model: FGRA) -> FGRALoss:
    lo = cfg.loss
    return FGRALoss.for_model(model, margin=lo.triplet_margin, reg_weight=lo.reg_weight,
                              label_smoothing=lo.label_smoothing, centers=cfg.model.centers)


def build_optimizer(cfg: RunConfig, model: torch.nn.Module, criterion: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam; parameters of the consistency term's learned centres get ``optim.center_lr`` and no decay."""
    o = cfg.optim
    centre, other = [], []
    seen: set[int] = set()
    for module in (model, criterion):
        for name, p in module.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (centre if "center" in name.split(".")[-1] or "centers" in name else other).append(p)
    groups = [{"params": other, "lr": o.lr, "weight_decay": o.weight_decay}]
    if centre:
        groups.append({"params": centre, "lr": o.center_lr, "weight_decay": 0.0})
    return torch.optim.Adam(groups)


def build_train_loader_for(cfg: RunConfig, data: RunData, dinfo: DistInfo, device: torch.device | str = "cpu"):
    """The CPU-augmentation loader, or its uint8 twin when ``data.augment_on`` resolves to the device."""
    loader = _build_cpu_train_loader(cfg, data, dinfo, pin_memory_for(device))
    shared = bool(cfg.data.cache_dir) or loader.dataset.tracklets[0].in_memory
    if resolve_augment_on(cfg.data.augment_on, device, frames_shared=shared) == "cpu":
        return loader
    return device_loader_for(cfg, loader, device, dinfo)


def device_loader_for(cfg: RunConfig, loader, device: torch.device | str, dinfo: DistInfo | None = None):
    """Uint8 batches for the device; with ``data.cache_dir`` frames come from the packed cache,
    decoded ahead of training with nvjpeg when the device is CUDA (by the first process; else by
    the loader's threads as they meet them)."""
    packed = None
    tracklets = loader.dataset.tracklets
    dinfo = dinfo if dinfo is not None else DistInfo()
    if cfg.data.cache_dir and not tracklets[0].in_memory:
        if dinfo.is_main:  # one process creates and fills the shared file
            packed = PackedFrameCache(tracklets, cfg.data.cache_dir)
            if torch.device(device).type == "cuda" and torch.cuda.is_available() and len(packed.missing()):
                packed.fill_with_torchvision(device, progress=True)
        barrier(dinfo)
        if packed is None:
            packed = PackedFrameCache(tracklets, cfg.data.cache_dir)
    return device_loader_from(loader, packed, pin_memory=pin_memory_for(device))


def _build_cpu_train_loader(cfg: RunConfig, data: RunData, dinfo: DistInfo, pin_memory: bool):
    d, t = cfg.data, cfg.train
    return build_train_loader(
        data.dataset, seq_len=d.seq_len, P=t.P, K=t.K, height=d.height, width=d.width,
        num_workers=d.num_workers, seed=t.seed, rank=dinfo.rank, world_size=dinfo.world_size,
        sample_mode=d.sample_mode, cache_dir=d.cache_dir, cache_max_bytes=_cache_bytes(cfg),
        transform=ClipTransform(d.height, d.width, train=True, flip_p=d.flip, erase_p=d.random_erasing),
        pin_memory=pin_memory, epoch_mode=t.epoch_mode)
