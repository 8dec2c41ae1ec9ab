"""The guide alignment module: efficient == reference, BN bookkeeping, memory, alignment sanity."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from fgra_core.models import gam_triton
from fgra_core.models.gam import GAM, gam_efficient, gam_reference

SHAPES = [  # B, N, C, H, W, R
    (2, 3, 5, 4, 3, 2),
    (3, 1, 4, 2, 2, 1),
    (1, 4, 6, 5, 1, 3),
    (2, 6, 3, 8, 4, 4),
]


def _bn(C: int, momentum=0.1, seed: int = 0) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(C, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(C, generator=g, dtype=torch.float64) + 0.5)
        bn.bias.copy_(torch.rand(C, generator=g, dtype=torch.float64) - 0.5)
        bn.running_mean.copy_(torch.randn(C, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(C, generator=g, dtype=torch.float64) + 0.5)
    return bn


def _inputs(shape, seed=1):
    B, N, C, H, W, R = shape
    g = torch.Generator().manual_seed(seed)
    fmaps = torch.randn(B, N, C, H, W, generator=g, dtype=torch.float64).relu().requires_grad_()
    templates = torch.randn(B, R, C, generator=g, dtype=torch.float64).requires_grad_()
    return fmaps, templates


def _run(fn, fmaps, templates, bn, **kw):
    out = fn(fmaps, templates, bn, return_maps=True, **kw)
    g = torch.Generator().manual_seed(7)
    wa = torch.randn(out.aligned.shape, generator=g, dtype=torch.float64).to(out.aligned.device)
    ws = torch.randn(out.scores.shape, generator=g, dtype=torch.float64).to(out.aligned.device)
    loss = (out.aligned * wa).sum() + (out.scores * ws).sum()
    grads = torch.autograd.grad(loss, [fmaps, templates, bn.weight, bn.bias])
    return out, grads


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("chunk", [1, 3])
def test_efficient_matches_reference(shape, train, chunk):
    fmaps, templates = _inputs(shape)
    bn_ref = _bn(shape[2]).train(train)
    bn_eff = copy.deepcopy(bn_ref)
    ref, g_ref = _run(gam_reference, fmaps, templates, bn_ref)
    eff, g_eff = _run(gam_efficient, fmaps, templates, bn_eff, region_chunk=chunk)
    B, N, C, H, W, R = shape
    assert eff.aligned.shape == (B, N, R, C) and eff.scores.shape == (B, N, R, C)
    assert eff.maps.shape == (B, N, R, H, W)
    torch.testing.assert_close(eff.aligned, ref.aligned, rtol=0, atol=1e-8)
    torch.testing.assert_close(eff.scores, ref.scores, rtol=0, atol=1e-8)
    torch.testing.assert_close(eff.maps, ref.maps, rtol=0, atol=1e-8)
    for name, a, b in zip(["fmaps", "templates", "bn.weight", "bn.bias"], g_eff, g_ref):
        assert b.abs().sum() > 0, name                        # the comparison is not between zeros
        torch.testing.assert_close(a, b, rtol=0, atol=1e-8, msg=f"gradient of {name}")
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(bn_eff, key), getattr(bn_ref, key), rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 3])
def test_frozen_features_get_no_gradient_and_the_others_are_the_same(chunk):
    """The head regime: the cached trunk maps need no gradient, so none is computed for them, and
    the gradients of the templates and of BN's affine parameters are bit-for-bit those of a run
    that also computes F's."""
    shape = SHAPES[0]
    fmaps, templates = _inputs(shape)
    frozen = fmaps.detach()
    bn = _bn(shape[2]).train(True)
    out_all, g_all = _run(gam_efficient, fmaps, templates, copy.deepcopy(bn), region_chunk=chunk)
    out = gam_efficient(frozen, templates, copy.deepcopy(bn), return_maps=True, region_chunk=chunk)
    g = torch.Generator().manual_seed(7)
    wa = torch.randn(out.aligned.shape, generator=g, dtype=torch.float64)
    ws = torch.randn(out.scores.shape, generator=g, dtype=torch.float64)
    loss = (out.aligned * wa).sum() + (out.scores * ws).sum()
    grads = torch.autograd.grad(loss, [templates])
    assert torch.equal(out.aligned, out_all.aligned) and torch.equal(out.scores, out_all.scores)
    assert g_all[1].abs().sum() > 0
    assert torch.equal(grads[0], g_all[1])
    assert frozen.grad is None


def test_running_stats_follow_batchnorm_over_steps_and_cumulative_momentum():
    shape = (2, 3, 4, 3, 2, 2)
    for momentum in (0.1, None):
        bn_ref, bn_eff = _bn(4, momentum), _bn(4, momentum)
        start = bn_ref.running_var.clone()
        for step in range(3):
            fmaps, templates = _inputs(shape, seed=10 + step)
            gam_reference(fmaps, templates, bn_ref)
            gam_efficient(fmaps, templates, bn_eff)
        assert not torch.allclose(bn_ref.running_var, start)
        torch.testing.assert_close(bn_eff.running_mean, bn_ref.running_mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(bn_eff.running_var, bn_ref.running_var, rtol=0, atol=1e-12)
        assert int(bn_eff.num_batches_tracked) == int(bn_ref.num_batches_tracked) == 3


def test_train_and_eval_modes_differ():
    # guards against both implementations silently ignoring the mode
    fmaps, templates = _inputs(SHAPES[0])
    bn = _bn(SHAPES[0][2])
    train = gam_efficient(fmaps, templates, bn.train()).aligned
    evaluated = gam_efficient(fmaps, templates, bn.eval()).aligned
    assert (train - evaluated).abs().max() > 1e-3


def test_module_switches_implementation_and_shares_state():
    m_eff = GAM(5).double()
    m_ref = GAM(5, impl="reference").double()
    m_ref.load_state_dict(m_eff.state_dict())
    fmaps, templates = _inputs(SHAPES[0])
    torch.testing.assert_close(m_eff(fmaps, templates).aligned, m_ref(fmaps, templates).aligned, rtol=0, atol=1e-10)
    with pytest.raises(ValueError):
        GAM(5, impl="fast")


def test_efficient_keeps_no_region_sized_tensor_for_backward():
    B, N, C, H, W, R = 2, 3, 8, 6, 4, 4
    fmaps = torch.randn(B, N, C, H, W).relu().requires_grad_()
    templates = torch.randn(B, R, C, requires_grad=True)

    def saved_numels(fn):
        sizes = []

        def pack(t):
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fn(fmaps, templates, nn.BatchNorm2d(C))
            (out.aligned.sum() + out.scores.sum()).backward()
        return sizes

    big = B * N * R * C * H * W
    assert max(saved_numels(gam_reference)) >= big
    assert max(saved_numels(gam_efficient)) <= fmaps.numel()


def test_channels_last_and_bfloat16_inputs():
    B, N, C, H, W, R = 2, 3, 8, 6, 4, 4
    torch.manual_seed(0)
    x = torch.randn(B * N, C, H, W).relu()
    templates = torch.randn(B, R, C)
    bn = nn.BatchNorm2d(C)
    base = gam_efficient(x.unflatten(0, (B, N)), templates, copy.deepcopy(bn)).aligned
    cl = x.contiguous(memory_format=torch.channels_last).unflatten(0, (B, N)).requires_grad_()
    out = gam_efficient(cl, templates, copy.deepcopy(bn))
    torch.testing.assert_close(out.aligned, base, rtol=1e-5, atol=1e-6)
    out.aligned.sum().backward()
    assert cl.grad is not None and torch.isfinite(cl.grad).all()
    half = x.bfloat16().unflatten(0, (B, N)).requires_grad_()
    out = gam_efficient(half, templates, copy.deepcopy(bn))
    torch.testing.assert_close(out.aligned.float(), base, rtol=0.05, atol=0.05)
    out.aligned.sum().backward()
    assert half.grad.dtype == torch.bfloat16


def _shifted_parts(shift: int, H: int = 16, W: int = 4, R: int = 4, per_part: int = 6, seed: int = 0):
    """Frame features with one bump per region (its own channel group), the bump of region i at
    row 4i+1; frame 1 is frame 0 moved down by ``shift`` rows (zeros enter at the top)."""
    g = torch.Generator().manual_seed(seed)
    C = R * per_part
    rows = torch.arange(H, dtype=torch.float32)
    f0 = torch.full((C, H, W), 0.1)
    for i in range(R):
        centre = i * (H // R) + 1
        bump = torch.exp(-0.5 * ((rows - centre) / 1.0) ** 2)
        f0[i * per_part:(i + 1) * per_part] += 2.0 * bump[None, :, None]
    f0 = f0 + 0.02 * torch.rand(C, H, W, generator=g)
    f1 = torch.zeros_like(f0)
    f1[:, shift:] = f0[:, :H - shift]
    fmaps = torch.stack([f0, f1]).unsqueeze(0)                       # [1, 2, C, H, W]
    templates = torch.nn.functional.adaptive_avg_pool2d(f0, (R, 1)).flatten(1).t().unsqueeze(0)  # [1, R, C]
    return fmaps, templates


@pytest.mark.parametrize("impl", [gam_efficient, gam_reference])
@pytest.mark.parametrize("shift", [1, 2])
def test_alignment_peak_moves_with_the_frame(impl, shift):
    fmaps, templates = _shifted_parts(shift)
    R = templates.shape[1]
    out = impl(fmaps, templates, nn.BatchNorm2d(fmaps.shape[2]), return_maps=True)
    peak_rows = out.maps.mean(dim=-1).argmax(dim=-1)[0]             # [N=2, R]
    expected = torch.tensor([i * 4 + 1 for i in range(R)])
    assert peak_rows[0].tolist() == expected.tolist()               # each region found in the template frame
    assert peak_rows[1].tolist() == (expected + shift).tolist()     # and followed down by `shift` rows


_INTERPRETED = textwrap.dedent("""
    import copy, torch
    from fgra_core.models.gam import gam_efficient, gam_reference
    for shape, channels_last in [((2, 3, 5, 4, 3, 2), False), ((1, 2, 70, 3, 3, 3), False),
                                 ((2, 2, 8, 16, 8, 4), False), ((2, 3, 6, 4, 2, 3), True)]:
        B, N, C, H, W, R = shape
        torch.manual_seed(0)
        x = torch.randn(B * N, C, H, W).relu()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        fmaps = x.unflatten(0, (B, N)).requires_grad_()
        templates = torch.randn(B, R, C, requires_grad=True)
        bn = torch.nn.BatchNorm2d(C)
        results = []
        for kernel in ("torch", "triton"):
            out = gam_efficient(fmaps, templates, copy.deepcopy(bn), return_maps=True, kernel=kernel)
            weight = torch.linspace(-1, 1, out.aligned.numel()).view_as(out.aligned)
            loss = (out.aligned * weight).sum() + out.scores.square().sum()
            results.append((out.aligned, out.scores, out.maps, *torch.autograd.grad(loss, [fmaps, templates])))
        for x, y in zip(*results):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    print("ok")
""")


@pytest.mark.skipif(not gam_triton.HAVE_TRITON, reason="needs the triton package")
@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA the compiled kernels are checked directly")
def test_triton_kernels_match_the_torch_loop_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", _INTERPRETED], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_efficient_matches_reference_on_cuda_and_uses_less_memory():
    dev = torch.device("cuda")
    shape = (4, 6, 64, 16, 8, 4)
    fmaps, templates = (x.detach().to(dev).requires_grad_() for x in _inputs(shape))
    bn_ref = _bn(shape[2]).to(dev).train()
    bn_eff = copy.deepcopy(bn_ref)
    ref, g_ref = _run(gam_reference, fmaps, templates, bn_ref)
    eff, g_eff = _run(gam_efficient, fmaps, templates, bn_eff)
    torch.testing.assert_close(eff.aligned, ref.aligned, rtol=0, atol=1e-8)
    for a, b in zip(g_eff, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-8)
    torch.testing.assert_close(bn_eff.running_var, bn_ref.running_var, rtol=0, atol=1e-12)
    # float32 / bfloat16 on CUDA take the fused Triton kernels
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        x = fmaps.detach().to(dtype).requires_grad_()
        t = templates.detach().float().requires_grad_()
        outs = []
        for kernel in ("torch", "triton"):
            bn = _bn(shape[2]).float().to(dev)
            out = gam_efficient(x, t, bn, kernel=kernel)
            grads = torch.autograd.grad((out.aligned * out.scores).sum(), [x, t])
            outs.append((out.aligned, out.scores, *grads))
        for a, b in zip(*outs):
            torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol)

    def peak(fn):
        x = torch.randn(8, 6, 256, 16, 8, device=dev).relu_().requires_grad_()
        t = torch.randn(8, 4, 256, device=dev, requires_grad=True)
        bn = nn.BatchNorm2d(256).to(dev)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn(x, t, bn)
        (out.aligned.sum() + out.scores.sum()).backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    assert peak(gam_efficient) * 3 <= peak(gam_reference)
