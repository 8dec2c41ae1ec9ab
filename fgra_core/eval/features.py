"""Test-time features of tracklets, following the paper's test protocol.

Each tracklet is cut into clips of ``seq_len`` frames at ``stride`` (default ``seq_len // 2``,
adjacent clips overlapping by half; the last clip ends at the last frame; a tracklet shorter
than ``seq_len`` gives one clip with repeated frames), see
:func:`fgra_core.data.sampling.test_clips`. Every clip goes through the model and the clip
features are averaged per tracklet.

:func:`extract_features` runs the backbone once per distinct frame: frames of one or several
tracklets are batched up to ``frame_budget`` frames, their feature maps are kept only until
the last clip using them has been built, and the clips are assembled by indexing these cached
maps and sent to ``model.head`` in batches of ``clip_batch`` clips. Memory on the device is thus
bounded by about two batches of ``frame_budget`` frame maps, however long the tracklet (920
frames on MARS). :func:`extract_features_naive` is the plain clip loop (the backbone runs
``seq_len`` frames per clip, so about twice per frame at stride ``seq_len // 2``); it serves as
the reference in tests and benchmarks.

Model interface: ``model.backbone_features(frames [T, 3, H, W]) -> [T, C, h, w]`` and
``model.head(fmaps [B, N, C, h, w])`` returning an object with ``.features [B, D]`` (or the
tensor itself). Injected callables: ``load_frames(tracklet) -> uint8 [T, H, W, 3]`` and
``transform(frames uint8 [T, H, W, 3]) -> float [T, 3, H, W]`` (deterministic at test time).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from fgra_core.utils.errors import DatasetError, FGRAError


@dataclass
class ExtractionStats:
    """What an extraction ran: frames, forwards and clips."""

    tracklets: int = 0
    test_frames: int = 0  # frames of the tracklets (sum of their lengths)
    backbone_frames: int = 0  # frames passed through model.backbone_features
    backbone_calls: int = 0
    clips: int = 0  # clips passed through model.head
    head_calls: int = 0

    @property
    def forwards_per_frame(self) -> float:
        """Backbone forwards per test frame (1.0 for :func:`extract_features`)."""
        return self.backbone_frames / self.test_frames if self.test_frames else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "tracklets": self.tracklets,
            "test_frames": self.test_frames,
            "backbone_frames": self.backbone_frames,
            "backbone_calls": self.backbone_calls,
            "clips": self.clips,
            "head_calls": self.head_calls,
            "forwards_per_frame": self.forwards_per_frame,
        }


def _clips_of(length: int, seq_len: int, stride: int | None, tracklet) -> list[list[int]]:
    from fgra_core.data.sampling import test_clips

    try:
        clips = test_clips(length, seq_len, stride)
    except ValueError as err:
        name = getattr(tracklet, "name", "") or "<unnamed>"
        raise DatasetError(f"tracklet {name!r} ({length} frames): cannot cut test clips: {err}") from err
    return [list(map(int, c)) for c in clips]


def _default_loader(tracklet) -> np.ndarray:
    frames = getattr(tracklet, "frames", None)
    if isinstance(frames, np.ndarray):
        return frames
    from fgra_core.data.loaders import load_frames

    return load_frames(tracklet)


def _features_of(out) -> torch.Tensor:
    feats = getattr(out, "features", out)
    if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
        raise FGRAError("model.head must return [B, D] features (or an object with .features [B, D])")
    return feats


def _autocast(device: torch.device, amp: bool):
    """Autocast in the training's type (bfloat16 where supported, else float16: fgra_core/utils/precision.py)."""
    if amp and device.type == "cuda":
        from fgra_core.utils.precision import amp_dtype

        return torch.autocast(device_type="cuda", dtype=amp_dtype(device))
    return nullcontext()


def _progress(total: int, show: bool, desc: str):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="tracklet", leave=False)


class _Job:
    """One tracklet in flight: its frames, clips, and the frame maps still needed."""

    __slots__ = ("index", "frames", "clips", "needed", "scheduled", "computed", "next_clip", "cache", "last_use")

    def __init__(self, index: int, frames: np.ndarray, clips: list[list[int]]):
        self.index = index
        self.frames = frames
        self.clips = clips
        self.needed = np.unique(np.concatenate([np.asarray(c, dtype=np.int64) for c in clips]))
        if self.needed[0] < 0 or self.needed[-1] >= frames.shape[0]:
            raise FGRAError(f"test clips index frames outside 0..{frames.shape[0] - 1}")
        self.scheduled = 0  # frames of `needed` handed to the backbone queue
        self.computed = -1  # highest frame index whose map is cached or done
        self.next_clip = 0
        self.cache: dict[int, torch.Tensor] = {}
        self.last_use: dict[int, int] = {}
        for ci, clip in enumerate(clips):
            for f in clip:
                self.last_use[f] = ci
        # clips are emitted in order as soon as their frames exist: order them by last frame
        order = sorted(range(len(clips)), key=lambda ci: max(clips[ci]))
        if order != list(range(len(clips))):
            self.clips = [clips[ci] for ci in order]
            self.last_use = {}
            for ci, clip in enumerate(self.clips):
                for f in clip:
                    self.last_use[f] = ci


class _Accumulator:
    """Sums of clip features per tracklet (float64, CPU)."""

    def __init__(self, n: int):
        self.n = n
        self.sums: torch.Tensor | None = None
        self.counts = torch.zeros(n, dtype=torch.float64)

    def add(self, idx: torch.Tensor, feats: torch.Tensor) -> None:
        feats = feats.detach().to("cpu", torch.float64)
        if self.sums is None:
            self.sums = torch.zeros(self.n, feats.shape[1], dtype=torch.float64)
        self.sums.index_add_(0, idx, feats)
        self.counts.index_add_(0, idx, torch.ones(idx.shape[0], dtype=torch.float64))

    def mean(self) -> torch.Tensor:
        if self.sums is None:
            return torch.zeros(self.n, 0)
        return (self.sums / self.counts.clamp(min=1)[:, None]).to(torch.float32)


def extract_features(
    model,
    tracklets: Sequence,
    *,
    seq_len: int = 6,
    stride: int | None = None,
    transform: Callable[[np.ndarray], torch.Tensor],
    device: str | torch.device = "cpu",
    frame_budget: int = 256,
    clip_batch: int | None = None,
    load_frames: Callable[[Any], np.ndarray] | None = None,
    show_progress: bool = True,
    amp: bool = False,
    return_stats: bool = False,
):
    """Tracklet features [len(tracklets), D] (float32, CPU), one backbone pass per frame.

    Args:
        model: has ``backbone_features`` and ``head`` (see the module notes); put in eval mode
            for the call and restored afterwards.
        tracklets: records with ``len()`` (``Tracklet``); ``load_frames`` reads them.
        seq_len, stride: the test clips (stride ``None`` = ``seq_len // 2``).
        transform: uint8 ``[T, H, W, 3]`` -> float ``[T, 3, H, W]``, applied per frame batch.
        device: where the model runs.
        frame_budget: most frames per backbone batch (and bound on cached frame maps).
        clip_batch: clips per head batch (default ``max(1, frame_budget // seq_len)``).
        load_frames: ``tracklet -> uint8 [T, H, W, 3]``; default: the in-memory array of the
            tracklet, else :func:`fgra_core.data.loaders.load_frames`.
        show_progress: tqdm bar over tracklets.
        amp: autocast on CUDA in the training's type, bfloat16 where supported, else float16
            (ignored on CPU).
        return_stats: also return :class:`ExtractionStats` (``(features, stats)``).
    """
    if frame_budget < 1:
        raise FGRAError(f"frame_budget must be >= 1, got {frame_budget}")
    device = torch.device(device)
    clip_batch = max(1, int(clip_batch) if clip_batch else frame_budget // max(1, seq_len))
    loader = load_frames or _default_loader
    stats = ExtractionStats(tracklets=len(tracklets))
    acc = _Accumulator(len(tracklets))
    segments: list[tuple[_Job, np.ndarray]] = []
    pending = 0
    head_queue: list[tuple[int, torch.Tensor]] = []
    bar = _progress(len(tracklets), show_progress, "features")

    def run_head() -> None:
        groups: dict[tuple, list[tuple[int, torch.Tensor]]] = {}
        for item in head_queue:
            groups.setdefault(tuple(item[1].shape), []).append(item)
        head_queue.clear()
        for items in groups.values():
            x = torch.stack([t for _, t in items])
            with _autocast(device, amp):
                feats = _features_of(model.head(x))
            stats.head_calls += 1
            stats.clips += x.shape[0]
            acc.add(torch.tensor([i for i, _ in items], dtype=torch.long), feats)

    def emit_ready(job: _Job) -> None:
        while job.next_clip < len(job.clips) and max(job.clips[job.next_clip]) <= job.computed:
            clip = job.clips[job.next_clip]
            head_queue.append((job.index, torch.stack([job.cache[f] for f in clip])))
            for f in set(clip):
                if job.last_use[f] == job.next_clip:
                    del job.cache[f]
            job.next_clip += 1
            if len(head_queue) >= clip_batch:
                run_head()
        if job.next_clip == len(job.clips) and bar is not None:
            bar.update(1)

    def run_backbone() -> None:
        nonlocal pending
        x = torch.cat([transform(job.frames[idx]) for job, idx in segments]).to(device)
        with _autocast(device, amp):
            maps = model.backbone_features(x)
        if maps.shape[0] != x.shape[0]:
            raise FGRAError(f"model.backbone_features returned {maps.shape[0]} maps for {x.shape[0]} frames")
        stats.backbone_calls += 1
        stats.backbone_frames += x.shape[0]
        done = []
        start = 0
        for job, idx in segments:
            for m, f in enumerate(idx.tolist()):
                job.cache[f] = maps[start + m]
            start += idx.shape[0]
            job.computed = int(idx[-1])
            if job.scheduled == job.needed.shape[0]:
                job.frames = None  # every needed frame is in
            done.append(job)
        segments.clear()
        pending = 0
        for job in done:
            emit_ready(job)
        for job in done:  # maps kept for later clips must not pin the whole batch
            for f, t in job.cache.items():
                if t.untyped_storage().data_ptr() == maps.untyped_storage().data_ptr():
                    job.cache[f] = t.clone()

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.inference_mode():
            for i, tracklet in enumerate(tracklets):
                frames = np.asarray(loader(tracklet))
                if frames.ndim != 4 or frames.shape[0] == 0:
                    name = getattr(tracklet, "name", "") or f"#{i}"
                    raise DatasetError(f"tracklet {name!r}: expected frames [T, H, W, 3] with T >= 1, got {frames.shape}")
                stats.test_frames += frames.shape[0]
                job = _Job(i, frames, _clips_of(frames.shape[0], seq_len, stride, tracklet))
                while job.scheduled < job.needed.shape[0]:
                    take = min(frame_budget - pending, job.needed.shape[0] - job.scheduled)
                    segments.append((job, job.needed[job.scheduled : job.scheduled + take]))
                    job.scheduled += take
                    pending += take
                    if pending >= frame_budget:
                        run_backbone()
            if segments:
                run_backbone()
            if head_queue:
                run_head()
    finally:
        if bar is not None:
            bar.close()
        if hasattr(model, "train"):
            model.train(was_training)
    feats = acc.mean()
    return (feats, stats) if return_stats else feats


def extract_features_naive(
    model,
    tracklets: Sequence,
    *,
    seq_len: int = 6,
    stride: int | None = None,
    transform: Callable[[np.ndarray], torch.Tensor],
    device: str | torch.device = "cpu",
    load_frames: Callable[[Any], np.ndarray] | None = None,
    show_progress: bool = False,
    amp: bool = False,
    return_stats: bool = False,
):
    """The plain clip loop: every clip through backbone and head on its own (reference)."""
    device = torch.device(device)
    loader = load_frames or _default_loader
    stats = ExtractionStats(tracklets=len(tracklets))
    acc = _Accumulator(len(tracklets))
    bar = _progress(len(tracklets), show_progress, "features (clip loop)")
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.inference_mode():
            for i, tracklet in enumerate(tracklets):
                frames = np.asarray(loader(tracklet))
                stats.test_frames += frames.shape[0]
                for clip in _clips_of(frames.shape[0], seq_len, stride, tracklet):
                    x = transform(frames[np.asarray(clip)]).to(device)
                    with _autocast(device, amp):
                        maps = model.backbone_features(x)
                        feats = _features_of(model.head(maps[None]))
                    stats.backbone_calls += 1
                    stats.backbone_frames += x.shape[0]
                    stats.head_calls += 1
                    stats.clips += 1
                    acc.add(torch.tensor([i]), feats)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if hasattr(model, "train"):
            model.train(was_training)
    feats = acc.mean()
    return (feats, stats) if return_stats else feats
