"""stripe_pool against adaptive_avg_pool2d: equal bit for bit on a grid of shapes, with equal
gradients, and the fallback where the stripes do not tile the map."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from fgra_core.models.stripes import stripe_pool


@pytest.mark.parametrize("H,W", list(itertools.product([1, 2, 4, 6, 8, 16], [1, 2, 3, 4, 8])))
def test_equal_bit_for_bit_to_adaptive_pooling(H, W):
    g = torch.Generator().manual_seed(H * 10 + W)
    for R in (1, 2, 3, 4, 8):
        if H % R:
            continue
        x = (torch.randn(5, 37, H, W, generator=g) * 4).exp()    # positive, wide range: rounding shows
        expected = F.adaptive_avg_pool2d(x, (R, 1))
        got = stripe_pool(x, R)
        assert got.shape == expected.shape == (5, 37, R, 1)
        assert torch.equal(got, expected), (H, W, R)
        clip = torch.stack([x, x + 1], dim=1)                                        # [B, N, C, H, W]
        assert not clip[:, 0].is_contiguous()
        assert torch.equal(stripe_pool(clip[:, 0], R), expected)                     # a view, as fmaps[:, 0]
        cl = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(stripe_pool(cl, R), F.adaptive_avg_pool2d(cl, (R, 1))), ("channels_last", H, W, R)


def test_a_hand_worked_map():
    x = torch.arange(8.0).reshape(1, 1, 4, 2)                   # rows (0,1) (2,3) (4,5) (6,7)
    assert stripe_pool(x, 2).flatten().tolist() == [1.5, 5.5]
    assert stripe_pool(x, 4).flatten().tolist() == [0.5, 2.5, 4.5, 6.5]
    assert stripe_pool(x, 1).flatten().tolist() == [3.5]


def test_gradients_equal_those_of_adaptive_pooling():
    x = torch.randn(3, 6, 8, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 6, 4, 1, dtype=torch.float64)
    (ga,) = torch.autograd.grad((F.adaptive_avg_pool2d(x, (4, 1)) * w).sum(), x)
    (gb,) = torch.autograd.grad((stripe_pool(x, 4) * w).sum(), x)
    assert torch.equal(ga, gb)


def test_stripes_that_do_not_tile_the_map_fall_back():
    x = torch.randn(2, 3, 5, 2)
    assert torch.equal(stripe_pool(x, 2), F.adaptive_avg_pool2d(x, (2, 1)))   # overlapping windows
