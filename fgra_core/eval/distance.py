"""Query x gallery distance matrices, computed in chunks.

Inputs are torch tensors (or numpy arrays, converted) of shape [N, D]; the computation runs on
the query tensor's device in float32 (float64 inputs stay float64), ``chunk_size`` query rows at
a time, so a MARS-sized problem never materialises more than ``chunk_size x num_gallery`` on the
device. The result is a numpy array on the CPU (``as_numpy=True``, the default, the form
:func:`fgra_core.eval.rank.evaluate_rank` and :func:`fgra_core.eval.rerank.re_ranking` take)
or a CPU torch tensor (``as_numpy=False``).
"""
from __future__ import annotations

import numpy as np
import torch

from fgra_core.utils.errors import FGRAError


def _as_tensor(x, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise FGRAError(f"{name} must be 2-D [num_items, feature_dim], got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.detach()


def _prepare(q, g):
    qt, gt = _as_tensor(q, "query features"), _as_tensor(g, "gallery features")
    if qt.shape[1] != gt.shape[1]:
        raise FGRAError(f"query features have dimension {qt.shape[1]} but gallery features {gt.shape[1]}")
    dtype = torch.float64 if torch.float64 in (qt.dtype, gt.dtype) else torch.float32
    return qt.to(dtype=dtype), gt.to(device=qt.device, dtype=dtype)


def _finish(out: torch.Tensor, as_numpy: bool):
    return out.numpy() if as_numpy else out


def cosine_distance(q, g, *, chunk_size: int = 1024, as_numpy: bool = True):
    """``1 - cos(q_i, g_j)`` on L2-normalised features: [Nq, Ng] in [0, 2].

    Zero vectors are normalised with a small epsilon (distance 1 to everything).
    """
    qt, gt = _prepare(q, g)
    qn = torch.nn.functional.normalize(qt, dim=1)
    gn = torch.nn.functional.normalize(gt, dim=1)
    out = torch.empty((qt.shape[0], gt.shape[0]), dtype=qt.dtype)
    for s in range(0, qt.shape[0], max(1, int(chunk_size))):
        block = qn[s : s + chunk_size] @ gn.T
        out[s : s + chunk_size] = (1.0 - block).clamp_(min=0.0).cpu()
    return _finish(out, as_numpy)


def euclidean_distance(q, g, *, squared: bool = False, chunk_size: int = 1024, as_numpy: bool = True):
    """Euclidean (or squared Euclidean) distance on the raw features: [Nq, Ng]."""
    qt, gt = _prepare(q, g)
    g2 = (gt * gt).sum(dim=1)
    out = torch.empty((qt.shape[0], gt.shape[0]), dtype=qt.dtype)
    for s in range(0, qt.shape[0], max(1, int(chunk_size))):
        qb = qt[s : s + chunk_size]
        block = (qb * qb).sum(dim=1, keepdim=True) + g2[None, :] - 2.0 * (qb @ gt.T)
        block.clamp_(min=0.0)
        if not squared:
            block.sqrt_()
        out[s : s + chunk_size] = block.cpu()
    return _finish(out, as_numpy)
