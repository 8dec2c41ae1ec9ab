"""Torch datasets and the training loader.

Reproducibility: the random choices for one training sample (which frames, which crop / flip /
erasing) come from an RNG seeded by ``(seed, epoch, index, draw)``, where ``draw`` is the
position of the sample in the epoch's batch stream. The loader's batch sampler hands
``(index, epoch, draw)`` keys to the workers, so a batch is the same whatever the number of
workers, and an identity drawn twice in a batch (fewer than K tracklets) gets two different
clips. Plain integer indices work too (``draw = 0``, epoch from :meth:`TrainClipDataset.set_epoch`).

Decoded frames are kept by a :class:`~fgra_core.data.frames.FrameCache` (uint8, in memory or
memmap files under ``cache_dir``), so epochs after the first do not decode images again. With
workers and no ``cache_dir`` every worker keeps its own in-memory cache (persistent workers);
use ``cache_dir`` for real datasets so that all workers and later runs share one cache.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fgra_core.data.frames import FrameCache
from fgra_core.data.records import Tracklet, VideoDataset, check_tracklets
from fgra_core.data.samplers import RandomIdentitySampler
from fgra_core.data.sampling import train_indices
from fgra_core.data.transforms import ClipTransform
from fgra_core.utils.errors import FGRAError


def load_frames(tracklet: Tracklet, cache: FrameCache | None = None, indices=None) -> np.ndarray:
    """All (or ``indices``) frames of a tracklet as uint8 ``[T, H, W, 3]``."""
    if tracklet.in_memory:
        return tracklet.frames if indices is None else tracklet.frames[np.asarray(indices)]
    return (cache if cache is not None else FrameCache()).get(tracklet, indices)


class TrainClipDataset(Dataset):
    """Item ``i`` (or key ``(i, epoch, draw)``) -> ``(clip float [N, 3, H, W], pid, camid)``."""

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        seq_len: int = 6,
        transform: ClipTransform | None = None,
        sample_mode: str = "consecutive",
        seed: int = 0,
        cache: FrameCache | None = None,
    ):
        self.tracklets = list(tracklets)
        check_tracklets(self.tracklets, "the training set")
        self.seq_len = int(seq_len)
        self.transform = transform if transform is not None else ClipTransform()
        self.sample_mode = sample_mode
        self.seed = int(seed)
        self.cache = cache if cache is not None else FrameCache()
        self.epoch = 0
        train_indices(1, self.seq_len, sample_mode)  # validates seq_len and mode early

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.tracklets)

    def clip_draw(self, item) -> tuple[int, np.ndarray, torch.Generator]:
        """The random choices of item (or key): tracklet index, frame indices, and the generator
        from which the transform draws the clip's parameters (shared by the device-augmentation path)."""
        if isinstance(item, (tuple, list)):
            index, epoch, draw = (int(v) for v in item)
        else:
            index, epoch, draw = int(item), self.epoch, 0
        rng = np.random.default_rng([self.seed, epoch, index, draw])
        idx = train_indices(len(self.tracklets[index]), self.seq_len, self.sample_mode, rng)
        return index, idx, torch.Generator().manual_seed(int(rng.integers(0, 2**62)))

    def __getitem__(self, item):
        index, idx, g = self.clip_draw(item)
        t = self.tracklets[index]
        frames = load_frames(t, self.cache, idx)
        clip = self.transform(frames, g)
        return clip, t.pid, t.camid


class KeyedBatchSampler:
    """Wraps :class:`RandomIdentitySampler`: batches of ``(index, epoch, draw)`` keys."""

    def __init__(self, sampler: RandomIdentitySampler):
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        epoch = self.sampler.epoch
        bs = self.sampler.batch_size
        for b, batch in enumerate(self.sampler):
            # draw ids are global over ranks: batch b of rank r is batch b * world_size + r overall
            base = (b * self.sampler.world_size + self.sampler.rank) * bs
            yield [(i, epoch, base + j) for j, i in enumerate(batch)]


class TrainLoader(DataLoader):
    """A DataLoader whose :meth:`set_epoch` reshuffles batches and redraws clips.

    An :class:`~fgra_core.utils.errors.FGRAError` raised in a worker process (a corrupt frame, say)
    reaches the caller as the same error type with its own one-line message, not torch's
    "Caught ... in DataLoader worker" text holding the worker's whole traceback.
    """

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def __iter__(self):
        it = super().__iter__()
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except FGRAError as exc:
                clean = worker_error(exc)
                if clean is exc:
                    raise
                raise clean from None
            yield batch


def worker_error(exc: FGRAError) -> FGRAError:
    """The error a DataLoader worker raised, rebuilt from torch's re-raised copy (whose message
    is "Caught X in DataLoader worker process N. Original Traceback ..."); ``exc`` itself when it
    did not come from a worker."""
    text = str(exc)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return exc
    cls = type(exc)
    marker = f"{cls.__module__}.{cls.__qualname__}: "
    pos = text.rfind(marker)
    if pos < 0:
        return exc
    message = text[pos + len(marker):].strip()
    worker = text[len("Caught "):text.index("\n")].split(" in ", 1)[-1].rstrip(".")
    try:
        clean = cls(message)
    except Exception:  # noqa: BLE001 - an error type with another signature: keep torch's text
        return exc
    clean.worker = worker
    return clean


def build_train_loader(
    dataset: VideoDataset | Sequence[Tracklet],
    seq_len: int = 6,
    P: int = 16,
    K: int = 4,
    height: int = 256,
    width: int = 128,
    num_workers: int = 2,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    cache_dir: str | os.PathLike | None = None,
    cache_max_bytes: int | None = None,
    sample_mode: str = "consecutive",
    transform: ClipTransform | None = None,
    pin_memory: bool = False,
    epoch_mode: str = "groups",
) -> TrainLoader:
    """Loader of P x K batches: ``(clips [P*K, N, 3, H, W], pids [P*K], camids [P*K])``.

    Call ``loader.set_epoch(epoch)`` before each epoch. ``epoch_mode`` is what an epoch is:
    ``"groups"`` or ``"identities"`` (see :mod:`fgra_core.data.samplers`).
    """
    tracklets = dataset.train if isinstance(dataset, VideoDataset) else list(dataset)
    transform = transform if transform is not None else ClipTransform(height, width, train=True)
    cache = FrameCache(cache_dir, max_bytes=cache_max_bytes)
    ds = TrainClipDataset(tracklets, seq_len, transform, sample_mode, seed, cache)
    sampler = RandomIdentitySampler([t.pid for t in tracklets], P, K, seed=seed, rank=rank, world_size=world_size,
                                    epoch_mode=epoch_mode)
    return TrainLoader(
        ds,
        batch_sampler=KeyedBatchSampler(sampler),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
    )


class TrackletFramesDataset(Dataset):
    """Test-time item ``i`` -> ``(frames float [T, 3, H, W], pid, camid, i)`` through an eval transform.

    ``cache=None`` decodes the frames each time without keeping them.

    Use with ``DataLoader(ds, batch_size=None, num_workers=...)`` to decode / transform the next
    tracklets in workers while the model runs.
    """

    def __init__(self, tracklets: Sequence[Tracklet], transform: ClipTransform | None = None, cache: FrameCache | None = None):
        self.tracklets = list(tracklets)
        check_tracklets(self.tracklets, "the evaluation set")
        self.transform = transform if transform is not None else ClipTransform(train=False)
        self.cache = cache  # None: decode every time (test sets are read once)

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int):
        t = self.tracklets[index]
        return self.transform(load_frames(t, self.cache)), t.pid, t.camid, index
