"""The clip-consistent training transform run as batched tensor operations (on the GPU).

The loader draws each clip's random parameters with :meth:`ClipTransform.sample_params` (the
same code and RNG as the CPU path), packs them into an ``int64 [B, 7]`` tensor
(:func:`params_to_tensor`) and sends the clip frames as uint8 ``[B, N, H0, W0, 3]``.
:class:`DeviceClipTransform` then applies, to the whole batch at once and on whatever device the
tensors are on, exactly what :meth:`ClipTransform.apply` does to one clip: scale to [0, 1],
resize to ``transform.resized``, crop, flip, normalise, erase. On CPU tensors both paths give
the same numbers for the same draws (``tests/test_device_transforms.py``).

:func:`to_device_batch` is the trainer's one entry point: it moves a loader batch to the device
(non-blocking, from pinned memory when the loader pins) and returns float clips, whichever path
produced the batch.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from fgra_core.data.transforms import ClipParams, ClipTransform

AUGMENT_ON = ("auto", "cpu", "device")
PARAM_FIELDS = ("crop_top", "crop_left", "flip", "erase_top", "erase_left", "erase_height", "erase_width")


def params_to_tensor(params: Sequence[ClipParams]) -> torch.Tensor:
    """Per-clip parameters -> ``int64 [B, 7]`` in :data:`PARAM_FIELDS` order (no erasing = height 0)."""
    rows = [[p.crop_top, p.crop_left, int(bool(p.flip)), *(p.erase if p.erase is not None else (0, 0, 0, 0))]
            for p in params]
    return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), len(PARAM_FIELDS))


def tensor_to_params(table: torch.Tensor) -> list[ClipParams]:
    """Inverse of :func:`params_to_tensor`."""
    out = []
    for top, left, flip, et, el, eh, ew in table.tolist():
        out.append(ClipParams(int(top), int(left), bool(flip), (int(et), int(el), int(eh), int(ew)) if eh > 0 else None))
    return out


def resolve_augment_on(setting: str, device: torch.device | str, frames_shared: bool = True) -> str:
    """``'cpu'`` or ``'device'``: ``auto`` augments on the device when it is a CUDA device and the
    decoded frames are shared by the loader's threads (frames in memory, or a ``data.cache_dir``);
    without a cache folder the CPU path's worker processes decode in parallel, so it stays."""
    if setting not in AUGMENT_ON:
        raise ValueError(f"data.augment_on must be one of {', '.join(AUGMENT_ON)}, got {setting!r}")
    if setting == "auto":
        return "device" if torch.device(device).type == "cuda" and frames_shared else "cpu"
    return setting


def pin_memory_for(device: torch.device | str) -> bool:
    """Pin host batches only when they go to a CUDA device that exists."""
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


class DeviceClipTransform:
    """Batched twin of a training :class:`ClipTransform` (same size, scale, mean, std)."""

    def __init__(self, transform: ClipTransform):
        self.transform = transform
        self.height, self.width = transform.height, transform.width
        self.resized = tuple(transform.resized)
        self.train = transform.train
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"DeviceClipTransform({self.transform!r})"

    def _mean_std(self, device: torch.device):
        if device not in self._stats:
            self._stats[device] = (self.transform.mean.to(device).view(1, 1, 3, 1, 1),
                                   self.transform.std.to(device).view(1, 1, 3, 1, 1))
        return self._stats[device]

    def __call__(self, frames: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[B, N, H0, W0, 3]`` + params ``[B, 7]`` -> float ``[B, N, 3, H, W]``."""
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames [B, N, H, W, 3], got shape {tuple(frames.shape)}")
        b, n, h0, w0, _ = frames.shape
        if params.shape != (b, len(PARAM_FIELDS)):
            raise ValueError(f"expected clip parameters [{b}, {len(PARAM_FIELDS)}], got shape {tuple(params.shape)}")
        dev = frames.device
        params = params.to(dev, torch.int64)
        x = frames.permute(0, 1, 4, 2, 3).reshape(b * n, 3, h0, w0)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        rh, rw = self.resized
        if (h0, w0) != (rh, rw):
            x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
        x = x.view(b, n, 3, rh, rw)
        h, w = self.height, self.width
        ar_h = torch.arange(h, device=dev)
        ar_w = torch.arange(w, device=dev)
        if self.train:
            rows = params[:, 0:1] + ar_h  # [B, H]
            flip = params[:, 2:3].bool()
            cols = params[:, 1:2] + torch.where(flip, (w - 1) - ar_w, ar_w)  # [B, W]
            bidx = torch.arange(b, device=dev).view(b, 1, 1)
            # advanced indices around slices: result [B, H, W, N, 3]
            x = x[bidx, :, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 4, 1, 2)
        mean, std = self._mean_std(dev)
        x = (x - mean) / std
        if self.train:
            et, el, eh, ew = (params[:, i].view(b, 1, 1) for i in range(3, 7))
            inside = ((ar_h.view(1, h, 1) >= et) & (ar_h.view(1, h, 1) < et + eh)
                      & (ar_w.view(1, 1, w) >= el) & (ar_w.view(1, 1, w) < el + ew))  # [B, H, W]
            x = x.masked_fill(inside[:, None, None], 0.0)
        return x.contiguous()


def to_device_batch(batch, device: torch.device, device_transform: DeviceClipTransform | None = None,
                    channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch on ``device`` -> ``(clips float [B, N, 3, H, W], pids [B])``.

    A CPU-path batch is ``(clips, pids, camids)``; a device-path batch is
    ``(frames uint8 [B, N, H0, W0, 3], params [B, 7], pids, camids)`` and ``device_transform``
    augments it on ``device``. Copies are non-blocking (asynchronous from pinned memory).
    """
    if len(batch) == 4:
        if device_transform is None:
            raise ValueError("a batch of uint8 frames and clip parameters needs a DeviceClipTransform")
        frames, params, pids, _cams = batch
        clips = device_transform(frames.to(device, non_blocking=True), params.to(device, non_blocking=True))
    else:
        clips, pids, _cams = batch
        clips = clips.to(device, non_blocking=True)
    pids = pids.to(device, non_blocking=True)
    if channels_last:
        b, t = clips.shape[:2]
        clips = clips.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (b, t))
    return clips, pids
