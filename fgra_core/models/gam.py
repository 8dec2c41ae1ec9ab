"""Guide alignment module (GAM): Eqs. 1, 2 and 5 of the paper.

Inputs: frame features ``fmaps`` [B, N, C, H, W] and template region features ``templates``
[B, R, C] (one C-vector per region of the reference frame).

* Eq. 1: depth-wise cross-correlation of a 1x1xC template with a frame feature is a per-channel
  product, ``M[b,n,r,c,h,w] = t[b,r,c] * F[b,n,c,h,w]``.
* ``M`` goes through ``BatchNorm2d(C)`` (statistics over batch, frames, regions, H, W) and a sigmoid.
* Eq. 2: ``aligned[b,n,r] = mean_hw(F[b,n] * sigmoid(BN(M[b,n,r])))``.
* Eq. 5: ``scores[b,n,r] = mean_hw(sigmoid(BN(M[b,n,r])))`` (the temporal softmax of Eq. 4 is the
  caller's).
* ``maps[b,n,r] = mean_c(sigmoid(BN(M[b,n,r])))`` [B, N, R, H, W] response maps for figures.
* ``score_source`` reads Eq. 5 three ways: ``"sigmoid"`` (above), ``"bn"`` (``mean_hw(BN(M))``, before the
  sigmoid) or ``"raw"`` (``mean_hw(M)``, the cross-correlation itself). The sigmoid reading lies in (0, 1),
  so a softmax over time weights two frames by at most a factor e; the other two are unbounded.

Two implementations with the same values, gradients and running-statistics updates:

``gam_reference``
    The direct one: builds ``M`` with a group convolution and runs the ``nn.BatchNorm2d`` module;
    autograd keeps several [B, N, R, C, H, W] tensors for backward.

``gam_efficient``
    BatchNorm statistics are computed exactly from per-(b, c) reductions of F, because
    ``sum_{n,h,w} (t F - mu)^2 = t^2 * sum (F - Fbar)^2 + NHW (t Fbar - mu)^2``. The normalised map
    is then an affine function of F per (b, r, c): ``z = a F + k`` with ``a = t * gamma * rstd`` and
    ``k = beta - mu * gamma * rstd``. A custom autograd function loops over region chunks, computes
    the sigmoid products without keeping them, and recomputes them in backward, returning gradients
    for F, a and k (autograd carries those to t, the statistics and the BN parameters). At most two
    chunk-sized temporaries ([B, N, chunk, C, H, W]) exist at any time. On CUDA the same function
    runs as fused Triton kernels (``gam_triton.py``) that read F once per pass and keep no
    temporaries at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fgra_core.models import gam_triton

__all__ = ["GAM", "GAMOutput", "gam_reference", "gam_efficient"]


@dataclass
class GAMOutput:
    aligned: torch.Tensor            # [B, N, R, C] region-aligned features (Eq. 2)
    scores: torch.Tensor             # [B, N, R, C] s_{n,i} before the temporal softmax (Eq. 5)
    maps: torch.Tensor | None = None  # [B, N, R, H, W] channel mean of the normalised similarity map


def _check(fmaps: torch.Tensor, templates: torch.Tensor, bn: nn.BatchNorm2d) -> None:
    if fmaps.dim() != 5 or templates.dim() != 3:
        raise ValueError(f"expected fmaps [B, N, C, H, W] and templates [B, R, C], got "
                         f"{tuple(fmaps.shape)} and {tuple(templates.shape)}")
    if templates.shape[0] != fmaps.shape[0] or templates.shape[2] != fmaps.shape[2]:
        raise ValueError(f"templates {tuple(templates.shape)} do not match fmaps {tuple(fmaps.shape)} "
                         "(batch and channel sizes must agree)")
    if bn.num_features != fmaps.shape[2]:
        raise ValueError(f"BatchNorm has {bn.num_features} channels, features have {fmaps.shape[2]}")


def _bn_momentum(bn: nn.BatchNorm2d) -> tuple[bool, float]:
    """Same bookkeeping as ``nn.BatchNorm2d.forward``: (use batch statistics, averaging factor).

    Increments ``num_batches_tracked`` in training mode, exactly like the module does.
    """
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch = bn.training or (bn.running_mean is None and bn.running_var is None)
    return use_batch, factor


SCORE_SOURCES = ("sigmoid", "bn", "raw")


def _check_source(score_source: str) -> None:
    if score_source not in SCORE_SOURCES:
        raise ValueError(f"score_source={score_source!r}; expected one of {SCORE_SOURCES}")


def gam_reference(fmaps: torch.Tensor, templates: torch.Tensor, bn: nn.BatchNorm2d,
                  return_maps: bool = False, score_source: str = "sigmoid") -> GAMOutput:
    """Straightforward GAM: Eq. 1 as a group convolution, the BatchNorm module, sigmoid, Eq. 2."""
    _check(fmaps, templates, bn)
    _check_source(score_source)
    B, N, C, H, W = fmaps.shape
    R = templates.shape[1]
    sims = []
    for b in range(B):
        # groups=C: output channel c*R + r correlates template (r, c) with input channel c
        kernel = templates[b].transpose(0, 1).reshape(C * R, 1, 1, 1)
        sims.append(F.conv2d(fmaps[b], kernel, groups=C).reshape(N, C, R, H, W))
    M = torch.stack(sims).permute(0, 1, 3, 2, 4, 5)                       # [B, N, R, C, H, W]
    Z = bn(M.reshape(B * N * R, C, H, W)).reshape(B, N, R, C, H, W)
    S = torch.sigmoid(Z)
    aligned = (fmaps.unsqueeze(2) * S).mean(dim=(-2, -1))
    scores = {"sigmoid": S, "bn": Z, "raw": M}[score_source].mean(dim=(-2, -1))
    maps = S.mean(dim=3).detach() if return_maps else None
    return GAMOutput(aligned, scores, maps)


def _channels_inner(fmaps: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, N, C, H, W] -> [B, N, 1, H, W, C] contiguous in C: the align function's elementwise work
    then runs over contiguous channel rows (several times faster on a CPU than over 4x2 maps)."""
    return fmaps.to(dtype).permute(0, 1, 3, 4, 2).contiguous().unsqueeze(2)


def _torch_forward(fmaps, a, k, return_maps: bool, chunk: int):
    """The align function's forward with torch operations, one region chunk at a time."""
    B, N, C, H, W = fmaps.shape
    R = a.shape[1]
    dtype = torch.promote_types(fmaps.dtype, torch.promote_types(a.dtype, k.dtype))
    aligned = torch.empty(B, N, R, C, dtype=dtype, device=fmaps.device)
    scores = torch.empty_like(aligned)
    maps = torch.empty(B, N, R, H, W, dtype=dtype, device=fmaps.device) if return_maps else None
    Fx = _channels_inner(fmaps, dtype)                                     # [B, N, 1, H, W, C]
    for r0 in range(0, R, chunk):
        r1 = min(R, r0 + chunk)
        ar = a[:, None, r0:r1, None, None, :].to(dtype)
        kr = k[:, None, r0:r1, None, None, :].to(dtype)
        sig = torch.addcmul(kr, ar, Fx)                                   # [B, N, r, H, W, C]
        sig.sigmoid_()
        scores[:, :, r0:r1] = sig.mean(dim=(3, 4))
        if return_maps:
            maps[:, :, r0:r1] = sig.mean(dim=5)
        sig.mul_(Fx)
        aligned[:, :, r0:r1] = sig.mean(dim=(3, 4))
        del sig
    return aligned, scores, maps, Fx


class _AlignFunction(torch.autograd.Function):
    """aligned = mean_hw(F * sigmoid(a F + k)), scores = mean_hw(sigmoid(a F + k)), chunked over regions.

    F [B, N, C, H, W]; a, k [B, R, C]. Nothing of size [B, N, R, C, H, W] is kept for backward.
    """

    @staticmethod
    def forward(ctx, fmaps, a, k, return_maps: bool, chunk: int, kernel: str):
        fx = None
        if kernel == "triton":
            aligned, scores = gam_triton.align_forward(fmaps, a, k)
            maps = _torch_forward(fmaps, a, k, True, chunk)[2] if return_maps else None
        else:
            aligned, scores, maps, fx = _torch_forward(fmaps, a, k, return_maps, chunk)
        # the channel-contiguous copy of F is kept for backward (the size of F) instead of made again
        ctx.save_for_backward(fmaps if fx is None else fx, a, k)
        ctx.fmaps_shape, ctx.fmaps_dtype = fmaps.shape, fmaps.dtype
        ctx.chunk = chunk
        ctx.kernel = kernel
        ctx.dtype = aligned.dtype
        if return_maps:
            ctx.mark_non_differentiable(maps)
            return aligned, scores, maps
        return aligned, scores

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_aligned, grad_scores, *_unused):
        saved, a, k = ctx.saved_tensors
        if ctx.kernel == "triton":
            grad_f, grad_a, grad_k = gam_triton.align_backward(saved, a, k, grad_aligned, grad_scores)
            return grad_f, grad_a.to(a.dtype), grad_k.to(k.dtype), None, None, None
        B, N, C, H, W = ctx.fmaps_shape
        R = a.shape[1]
        dtype, chunk = ctx.dtype, ctx.chunk
        inv_hw = 1.0 / (H * W)
        Fx = saved                                                         # [B, N, 1, H, W, C]
        gA = (grad_aligned * inv_hw).to(dtype)
        gS = (grad_scores * inv_hw).to(dtype)
        # F's gradient only when F needs one (cached trunk maps, the head regime, need none)
        want_f = ctx.needs_input_grad[0]
        grad_f = torch.zeros(B, N, H, W, C, dtype=dtype, device=Fx.device) if want_f else None
        grad_a = torch.empty(B, R, C, dtype=dtype, device=Fx.device)
        grad_k = torch.empty_like(grad_a)
        for r0 in range(0, R, chunk):
            r1 = min(R, r0 + chunk)
            ar = a[:, None, r0:r1, None, None, :].to(dtype)
            kr = k[:, None, r0:r1, None, None, :].to(dtype)
            gAr = gA[:, :, r0:r1, None, None, :]
            gSr = gS[:, :, r0:r1, None, None, :]
            sig = torch.addcmul(kr, ar, Fx).sigmoid_()                     # recomputed, [B, N, r, H, W, C]
            if want_f:
                for j in range(r1 - r0):                                   # d aligned / d F (direct term)
                    grad_f.addcmul_(sig[:, :, j], gAr[:, :, j])
            dz = torch.addcmul(gSr, Fx, gAr)                               # dL/d sigmoid
            dz.mul_(sig)
            sig.neg_().add_(1.0)
            dz.mul_(sig)                                                   # dL/dz = dL/dsig * sig (1 - sig)
            grad_k[:, r0:r1] = dz.sum(dim=(1, 3, 4))
            torch.mul(dz, Fx, out=sig)
            grad_a[:, r0:r1] = sig.sum(dim=(1, 3, 4))
            del sig
            if want_f:
                for j in range(r1 - r0):                                   # through z = a F + k
                    grad_f.addcmul_(dz[:, :, j], ar[:, :, j])
            del dz
        if want_f:
            grad_f = grad_f.permute(0, 1, 4, 2, 3).contiguous().to(ctx.fmaps_dtype)   # back to [B, N, C, H, W]
        return grad_f, grad_a.to(a.dtype), grad_k.to(k.dtype), None, None, None


def _pick_kernel(kernel: str, fmaps: torch.Tensor) -> str:
    if kernel == "auto":
        return "triton" if fmaps.is_cuda and gam_triton.supported(fmaps) else "torch"
    if kernel == "triton" and not gam_triton.HAVE_TRITON:
        raise RuntimeError("kernel='triton' needs the triton package")
    if kernel not in ("torch", "triton"):
        raise ValueError(f"kernel={kernel!r}; expected 'auto', 'torch' or 'triton'")
    return kernel


def gam_efficient(fmaps: torch.Tensor, templates: torch.Tensor, bn: nn.BatchNorm2d,
                  return_maps: bool = False, region_chunk: int = 1, kernel: str = "auto",
                  score_source: str = "sigmoid") -> GAMOutput:
    """Memory-efficient GAM; same values, gradients and BN running-statistics updates as the reference.

    ``kernel``: ``"auto"`` (fused Triton kernels for CUDA float32/half features, else torch
    operations), ``"torch"`` or ``"triton"``.
    """
    _check(fmaps, templates, bn)
    _check_source(score_source)
    kernel = _pick_kernel(kernel, fmaps)
    B, N, C, H, W = fmaps.shape
    R = templates.shape[1]
    stat_dtype = torch.promote_types(fmaps.dtype, torch.float32)
    t = templates.to(stat_dtype)
    use_batch, factor = _bn_momentum(bn)
    if use_batch:
        # [B, C] each, over (n, h, w): two passes over a [B, C, N*H*W] copy (torch.var_mean over the
        # strided dims is several times slower on a CPU)
        flat = fmaps.transpose(1, 2).reshape(B, C, N * H * W)
        fmean = flat.mean(dim=2)
        fvar = (flat - fmean.unsqueeze(2)).square().mean(dim=2)
        fvar, fmean = fvar.to(stat_dtype), fmean.to(stat_dtype)
        tm = t * fmean.unsqueeze(1)                                        # mean of t*F over (n,h,w), [B, R, C]
        mean = tm.mean(dim=(0, 1))
        var = (t.square() * fvar.unsqueeze(1) + (tm - mean).square()).mean(dim=(0, 1))
        if bn.training and bn.running_mean is not None:
            count = B * N * R * H * W
            with torch.no_grad():
                bn.running_mean.mul_(1.0 - factor).add_(mean.detach().to(bn.running_mean.dtype), alpha=factor)
                unbiased = var.detach() * (count / max(count - 1, 1))
                bn.running_var.mul_(1.0 - factor).add_(unbiased.to(bn.running_var.dtype), alpha=factor)
    else:
        mean = bn.running_mean.to(stat_dtype)
        var = bn.running_var.to(stat_dtype)
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(stat_dtype)
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias.to(stat_dtype)
    a = t * scale
    k = shift.expand(B, R, C)
    out = _AlignFunction.apply(fmaps, a, k, bool(return_maps), max(1, int(region_chunk)), kernel)
    scores = out[1]
    if score_source != "sigmoid":
        # mean_hw is linear: mean_hw(a F + k) = a mean_hw(F) + k and mean_hw(t F) = t mean_hw(F)
        fbar = fmaps.mean(dim=(-2, -1)).to(stat_dtype).unsqueeze(2)                # [B, N, 1, C]
        coef, offset = (a, k) if score_source == "bn" else (t, torch.zeros_like(k))
        scores = (coef.unsqueeze(1) * fbar + offset.unsqueeze(1)).to(out[1].dtype)
    return GAMOutput(out[0], scores, out[2] if return_maps else None)


class GAM(nn.Module):
    """The guide alignment module: a ``BatchNorm2d(channels)`` and no other parameter.

    ``impl``: ``"efficient"`` (default) or ``"reference"``; both use the same ``self.bn``.
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 impl: str = "efficient", region_chunk: int = 1, kernel: str = "auto"):
        super().__init__()
        if impl not in ("efficient", "reference"):
            raise ValueError(f"impl={impl!r}; expected 'efficient' or 'reference'")
        self.bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
        self.impl = impl
        self.region_chunk = region_chunk
        self.kernel = kernel

    def forward(self, fmaps: torch.Tensor, templates: torch.Tensor, return_maps: bool = False,
                score_source: str = "sigmoid") -> GAMOutput:
        if self.impl == "reference":
            return gam_reference(fmaps, templates, self.bn, return_maps, score_source)
        return gam_efficient(fmaps, templates, self.bn, return_maps, self.region_chunk, self.kernel, score_source)

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}, region_chunk={self.region_chunk}, kernel={self.kernel!r}"
