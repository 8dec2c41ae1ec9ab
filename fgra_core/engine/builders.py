"""Turn a :class:`RunConfig` into the objects a run needs (dataset, loader, model, loss, optimiser)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..config import RunConfig
from ..data.frames import FrameCache
from ..data.loaders import build_train_loader
from ..data.transforms import ClipTransform
from ..data.registry import build_dataset
from ..data.records import VideoDataset
from ..losses import FGRALoss
from ..models.fgra import FGRA
from .distributed import DistInfo


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
                num_regions=m.num_regions, last_stride=m.last_stride)


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


def build_train_loader_for(cfg: RunConfig, data: RunData, dinfo: DistInfo):
    d, t = cfg.data, cfg.train
    return build_train_loader(
        data.dataset, seq_len=d.seq_len, P=t.P, K=t.K, height=d.height, width=d.width,
        num_workers=d.num_workers, seed=t.seed, rank=dinfo.rank, world_size=dinfo.world_size,
        sample_mode=d.sample_mode, cache_dir=d.cache_dir, cache_max_bytes=_cache_bytes(cfg),
        transform=ClipTransform(d.height, d.width, train=True, flip_p=d.flip, erase_p=d.random_erasing),
        epoch_mode=t.epoch_mode)
