"""Horizontal stripes of a feature map: ``stripe_pool(x, R)`` = ``F.adaptive_avg_pool2d(x, (R, 1))``.

On a CPU, ``adaptive_avg_pool2d`` to ``(R, 1)`` is slow on the head regime's small maps (its kernel
works one tiny plane at a time): it took about a quarter of a row-3 head step, which this makes
0.74 times as long (``benchmarks/bench_head_step.py --against``, ``benchmarks/README.md``). When the stripes tile the map (``H % R == 0``)
the same numbers come from a few whole-tensor additions in the kernel's own order: the window's
elements summed one after the other, row by row, then divided by its height and by its width
(for ``R == 1`` the kernel takes the mean over the map, and so does this). The result is equal bit
for bit (``tests/test_stripes.py`` checks a grid of shapes); other devices, channels-last maps
(another kernel) and maps the stripes do not tile use ``adaptive_avg_pool2d`` itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["stripe_pool"]


def stripe_pool(x: torch.Tensor, regions: int) -> torch.Tensor:
    """[..., C, H, W] -> [..., C, regions, 1]: the mean of each of ``regions`` horizontal stripes."""
    H, W = x.shape[-2:]
    R = int(regions)
    channels_last = x.dim() == 4 and x.shape[1] > 1 and x.stride(1) == 1   # another kernel, another order
    if x.device.type != "cpu" or R < 1 or H % R or channels_last:
        return F.adaptive_avg_pool2d(x, (R, 1))
    if R == 1:
        return x.mean(dim=(-2, -1), keepdim=True)
    kh = H // R
    v = x.unflatten(-2, (R, kh))                                  # [B, C, R, kh, W]
    total = v[..., 0, 0].clone()
    for i in range(kh):
        for j in range(W):
            if i or j:
                total = total + v[..., i, j]
    return (total / kh / W).unsqueeze(-1)
