"""Fused Triton kernels for the GAM's align function on CUDA (the torch loop in ``gam.py`` is the fallback).

For frame features F [B, N, C, H, W] and per-region affine coefficients a, k [B, R, C]:

forward   aligned[b,n,r,c] = mean_hw F * sigmoid(a F + k),  scores[b,n,r,c] = mean_hw sigmoid(a F + k)
backward  dF[b,n,c,hw] = sum_r (sig * gA + dz * a) / HW,  dz = (gA F + gS) sig (1 - sig)
          dk[b,r,c] = sum_{n,hw} dz / HW,  da[b,r,c] = sum_{n,hw} dz F / HW

One program owns one (b, n) and a block of channels with all H*W positions, loads its tile of F once
and loops over the regions in registers (standard or channels-last layout, no copy): F is read once per pass and nothing region-sized is
written. The (n)-sums of dk and da are written per frame ([B, N, R, C], small) and summed by torch,
so results are deterministic. Accumulation is in float32 whatever the input dtype.
"""
from __future__ import annotations

import torch

try:  # Triton ships with CUDA builds of torch; CPU-only installs do without it
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except Exception:  # pragma: no cover - depends on the installation
    HAVE_TRITON = False

MAX_TILE = 4096  # largest next_power_of_2(H*W) handled here; bigger maps use the torch loop


def supported(fmaps: torch.Tensor) -> bool:
    """Whether the fused kernels handle these features (CUDA, half/bfloat16/float32, map size)."""
    if not HAVE_TRITON or fmaps.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    return triton.next_power_of_2(fmaps.shape[-1] * fmaps.shape[-2]) <= MAX_TILE


if HAVE_TRITON:

    @triton.jit
    def _align_fwd_kernel(F_ptr, A_ptr, K_ptr, AL_ptr, SC_ptr, N, R, C, HW, inv_hw,
                          stride_bn, stride_c, stride_hw, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
        pid_bn = tl.program_id(0)
        pid_c = tl.program_id(1)
        b = pid_bn // N
        offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
        offs_hw = tl.arange(0, BLOCK_HW)
        mc = offs_c < C
        mask = mc[:, None] & (offs_hw < HW)[None, :]
        tile = pid_bn.to(tl.int64) * stride_bn + offs_c[:, None] * stride_c + offs_hw[None, :] * stride_hw
        f = tl.load(F_ptr + tile, mask=mask, other=0.0).to(tl.float32)
        for r in range(R):
            coef = (b * R + r) * C + offs_c
            a = tl.load(A_ptr + coef, mask=mc, other=0.0)
            k = tl.load(K_ptr + coef, mask=mc, other=0.0)
            s = tl.sigmoid(a[:, None] * f + k[:, None])
            s = tl.where(mask, s, 0.0)
            out = (pid_bn.to(tl.int64) * R + r) * C + offs_c
            tl.store(SC_ptr + out, tl.sum(s, axis=1) * inv_hw, mask=mc)
            tl.store(AL_ptr + out, tl.sum(s * f, axis=1) * inv_hw, mask=mc)

    @triton.jit
    def _align_bwd_kernel(F_ptr, A_ptr, K_ptr, GA_ptr, GS_ptr, DF_ptr, DK_ptr, DA_ptr, N, R, C, HW, inv_hw,
                          stride_bn, stride_c, stride_hw, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
        pid_bn = tl.program_id(0)
        pid_c = tl.program_id(1)
        b = pid_bn // N
        offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
        offs_hw = tl.arange(0, BLOCK_HW)
        mc = offs_c < C
        mask = mc[:, None] & (offs_hw < HW)[None, :]
        tile = pid_bn.to(tl.int64) * stride_bn + offs_c[:, None] * stride_c + offs_hw[None, :] * stride_hw
        f = tl.load(F_ptr + tile, mask=mask, other=0.0).to(tl.float32)
        df = tl.zeros([BLOCK_C, BLOCK_HW], dtype=tl.float32)
        for r in range(R):
            coef = (b * R + r) * C + offs_c
            a = tl.load(A_ptr + coef, mask=mc, other=0.0)
            k = tl.load(K_ptr + coef, mask=mc, other=0.0)
            out = (pid_bn.to(tl.int64) * R + r) * C + offs_c
            ga = tl.load(GA_ptr + out, mask=mc, other=0.0) * inv_hw
            gs = tl.load(GS_ptr + out, mask=mc, other=0.0) * inv_hw
            s = tl.sigmoid(a[:, None] * f + k[:, None])
            dz = (ga[:, None] * f + gs[:, None]) * s * (1.0 - s)
            dz = tl.where(mask, dz, 0.0)
            df += s * ga[:, None] + dz * a[:, None]
            tl.store(DK_ptr + out, tl.sum(dz, axis=1), mask=mc)
            tl.store(DA_ptr + out, tl.sum(dz * f, axis=1), mask=mc)
        tl.store(DF_ptr + tile, df.to(DF_ptr.dtype.element_ty), mask=mask)


def _dense(t: torch.Tensor) -> bool:
    """Non-overlapping and dense: some permutation of the dimensions is contiguous."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride()), key=lambda p: (p[1], p[0])):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def _flat(fmaps: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """fmaps, or a contiguous copy, whose (b, n) and (h, w) dimensions merge; (stride_bn, stride_c, stride_hw).

    Standard and channels-last layouts both merge without a copy.
    """
    B, N, C, H, W = fmaps.shape
    s = fmaps.stride()
    if not (N == 1 or s[0] == N * s[1]) or not (W == 1 or s[3] == W * s[4]) or not _dense(fmaps):
        fmaps = fmaps.contiguous()
        s = fmaps.stride()
    return fmaps, (s[1], s[2], s[4] if W > 1 else s[3])


def _blocks(C: int, HW: int) -> tuple[int, int]:
    block_hw = triton.next_power_of_2(HW)
    block_c = max(1, min(triton.next_power_of_2(C), 4096 // block_hw, 64))
    return block_c, block_hw


def align_forward(fmaps: torch.Tensor, a: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(aligned, scores), float32 [B, N, R, C]."""
    B, N, C, H, W = fmaps.shape
    R = a.shape[1]
    f, strides = _flat(fmaps)
    a = a.float().contiguous()
    k = k.float().contiguous()
    aligned = torch.empty(B, N, R, C, dtype=torch.float32, device=fmaps.device)
    scores = torch.empty_like(aligned)
    block_c, block_hw = _blocks(C, H * W)
    grid = (B * N, triton.cdiv(C, block_c))
    _align_fwd_kernel[grid](f, a, k, aligned, scores, N, R, C, H * W, 1.0 / (H * W), *strides,
                            BLOCK_C=block_c, BLOCK_HW=block_hw)
    return aligned, scores


def align_backward(fmaps: torch.Tensor, a: torch.Tensor, k: torch.Tensor, grad_aligned: torch.Tensor,
                   grad_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dF in fmaps' dtype and shape, da [B, R, C] float32, dk [B, R, C] float32)."""
    B, N, C, H, W = fmaps.shape
    R = a.shape[1]
    f, strides = _flat(fmaps)
    a = a.float().contiguous()
    k = k.float().contiguous()
    ga = grad_aligned.float().contiguous()
    gs = grad_scores.float().contiguous()
    grad_f = torch.empty_like(f)                       # same strides as f (dense, non-overlapping)
    dk = torch.empty(B, N, R, C, dtype=torch.float32, device=fmaps.device)
    da = torch.empty_like(dk)
    block_c, block_hw = _blocks(C, H * W)
    grid = (B * N, triton.cdiv(C, block_c))
    assert grad_f.stride() == f.stride()
    _align_bwd_kernel[grid](f, a, k, ga, gs, grad_f, dk, da, N, R, C, H * W, 1.0 / (H * W), *strides,
                            BLOCK_C=block_c, BLOCK_HW=block_hw)
    return grad_f, da.sum(dim=1), dk.sum(dim=1)
