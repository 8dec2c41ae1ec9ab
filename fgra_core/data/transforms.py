"""Clip-consistent transforms: one draw of random parameters per clip, applied to every frame.

Training: resize to ``scale`` x (H, W) (9/8 by default), one random crop of (H, W), one
horizontal-flip decision, ImageNet normalisation and one random-erasing rectangle (Zhong et
al. 2017: area 2-40 % of the image, aspect ratio 0.3-3.3, filled with 0 after normalisation,
i.e. the mean colour). Evaluation: resize to (H, W) and normalise. Everything runs as torch
ops on the stacked clip ``[N, 3, H, W]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClipParams:
    """Random parameters drawn once per clip (coordinates in the output image)."""

    crop_top: int = 0
    crop_left: int = 0
    flip: bool = False
    erase: tuple[int, int, int, int] | None = None  # (top, left, height, width)


def _generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(int(generator))


def _rand(g) -> float:
    return float(torch.rand((), generator=g))


def _randint(lo: int, hi: int, g) -> int:
    """Uniform integer in [lo, hi] (inclusive)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def to_clip_tensor(frames) -> torch.Tensor:
    """Frames (list of HWC uint8 arrays, array [N, H, W, 3] or uint8 tensor) -> float [N, 3, H, W] in [0, 1]."""
    if isinstance(frames, torch.Tensor):
        x = frames
    else:
        arr = frames if isinstance(frames, np.ndarray) else np.stack([np.asarray(f) for f in frames])
        x = torch.from_numpy(np.ascontiguousarray(arr))
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected frames [N, H, W, 3], got shape {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class ClipTransform:
    def __init__(
        self,
        height: int = 256,
        width: int = 128,
        train: bool = True,
        flip_p: float = 0.5,
        erase_p: float = 0.5,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        scale: float = 9 / 8,
        erase_area: tuple[float, float] = (0.02, 0.4),
        erase_aspect: float = 0.3,
    ):
        if height < 1 or width < 1:
            raise ValueError(f"output size must be positive, got {height}x{width}")
        if scale < 1:
            raise ValueError(f"scale must be >= 1 (resize then crop), got {scale}")
        self.height, self.width, self.train = int(height), int(width), bool(train)
        self.flip_p, self.erase_p, self.scale = float(flip_p), float(erase_p), float(scale)
        self.erase_area, self.erase_aspect = tuple(erase_area), float(erase_aspect)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.resized = (int(round(self.height * self.scale)), int(round(self.width * self.scale))) if train else (self.height, self.width)

    def __repr__(self) -> str:
        return (f"ClipTransform({self.height}x{self.width}, train={self.train}, scale={self.scale:.4g}, "
                f"flip_p={self.flip_p}, erase_p={self.erase_p})")

    def sample_params(self, generator: torch.Generator | int | None = None) -> ClipParams:
        """One draw of the clip's random parameters (identity parameters in eval mode)."""
        if not self.train:
            return ClipParams()
        g = _generator(generator)
        rh, rw = self.resized
        top = _randint(0, rh - self.height, g)
        left = _randint(0, rw - self.width, g)
        flip = _rand(g) < self.flip_p
        erase = None
        if _rand(g) < self.erase_p:
            area = self.height * self.width
            lo, hi = self.erase_area
            for _ in range(100):
                target = area * (lo + (hi - lo) * _rand(g))
                log_r = math.log(self.erase_aspect) + (-2 * math.log(self.erase_aspect)) * _rand(g)
                aspect = math.exp(log_r)
                h = int(round(math.sqrt(target * aspect)))
                w = int(round(math.sqrt(target / aspect)))
                if 0 < h < self.height and 0 < w < self.width:
                    erase = (_randint(0, self.height - h, g), _randint(0, self.width - w, g), h, w)
                    break
        return ClipParams(top, left, flip, erase)

    def apply(self, frames, params: ClipParams) -> torch.Tensor:
        """Apply fixed parameters to every frame of the clip -> float [N, 3, H, W]."""
        x = to_clip_tensor(frames)
        size = self.resized
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        if self.train:
            x = x[:, :, params.crop_top:params.crop_top + self.height, params.crop_left:params.crop_left + self.width]
            if params.flip:
                x = x.flip(-1)
        x = (x - self.mean) / self.std
        if self.train and params.erase is not None:
            t, l, h, w = params.erase
            x[:, :, t:t + h, l:l + w] = 0.0
        return x.contiguous()

    def __call__(self, frames, generator: torch.Generator | int | None = None) -> torch.Tensor:
        return self.apply(frames, self.sample_params(generator))
