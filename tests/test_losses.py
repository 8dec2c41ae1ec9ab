"""Losses against values worked out by hand on tiny inputs."""
from __future__ import annotations

import math

import pytest
import torch

from fgra_core.models.fgra import FGRAOutput
from fgra_core.models.losses import FGRALoss, batch_hard_triplet, consistency_loss, cross_entropy, pairwise_distances
from fgra_core.utils.errors import ConfigError


def test_cross_entropy_against_manual_log_softmax():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    manual = []
    for row, y in zip(logits.tolist(), labels.tolist()):
        log_z = math.log(sum(math.exp(v) for v in row))
        manual.append(log_z - row[y])
    assert cross_entropy(logits, labels).item() == pytest.approx(sum(manual) / 2, rel=1e-6)
    # one head per branch: the sum of the heads' losses
    assert cross_entropy((logits, logits), labels).item() == pytest.approx(sum(manual), rel=1e-6)
    # label smoothing eps: (1 - eps) * CE + eps * mean over classes of -log p
    eps = 0.1
    logp = torch.log_softmax(logits, dim=1)
    smooth = ((1 - eps) * -logp[[0, 1], labels] + eps * -logp.mean(dim=1)).mean()
    assert cross_entropy(logits, labels, label_smoothing=eps).item() == pytest.approx(smooth.item(), rel=1e-6)


def test_pairwise_distances():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    d = pairwise_distances(x)
    assert d[0, 1].item() == pytest.approx(5.0) and d[1, 2].item() == pytest.approx(math.sqrt(18))
    assert d[0, 0].item() < 1e-5


def test_batch_hard_triplet_hand_computed():
    # 1-D features: identity 0 at 0 and 1; identity 1 at 3 and 7
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    # hardest positive / negative per anchor:
    #   a=0: p=1 (d 1), n=3 (d 3) -> [0.5 + 1 - 3]_+ = 0
    #   a=1: p=0 (d 1), n=3 (d 2) -> [0.5 + 1 - 2]_+ = 0
    #   a=3: p=7 (d 4), n=1 (d 2) -> [0.5 + 4 - 2]_+ = 2.5
    #   a=7: p=3 (d 4), n=1 (d 6) -> [0.5 + 4 - 6]_+ = 0
    loss, stats = batch_hard_triplet(x, y, margin=0.5)
    assert loss.item() == pytest.approx(2.5 / 4, abs=1e-5)
    assert stats["active"].item() == pytest.approx(0.25)
    assert stats["hardest_pos"].item() == pytest.approx((1 + 1 + 4 + 4) / 4, abs=1e-5)
    assert stats["hardest_neg"].item() == pytest.approx((3 + 2 + 2 + 6) / 4, abs=1e-5)
    loss.backward()
    # only anchor 3 is active: d/dx (d(3,7) - d(3,1)) / 4 -> x3: (-1 - 1)/4, x7: +1/4, x1: +1/4
    assert x.grad.flatten().tolist() == pytest.approx([0.0, 0.25, -0.5, 0.25], abs=1e-5)
    loss_big, _ = batch_hard_triplet(x.detach(), y, margin=10.0)
    assert loss_big.item() == pytest.approx((11 - 3 + 11 - 2 + 14 - 2 + 14 - 6) / 4, abs=1e-4)


def test_triplet_skips_anchors_without_positive_or_negative():
    x = torch.tensor([[0.0], [1.0], [5.0]])
    loss, stats = batch_hard_triplet(x, torch.tensor([0, 0, 1]), margin=5.0)
    # anchor 2 has no positive: only anchors 0 and 1 count; [5 + 1 - 5]_+ = 1, [5 + 1 - 4]_+ = 2
    assert stats["anchors"].item() == 2
    assert loss.item() == pytest.approx(1.5, abs=1e-5)
    loss, stats = batch_hard_triplet(x, torch.tensor([0, 0, 0]))
    assert loss.item() == 0.0 and stats["anchors"].item() == 0


def test_consistency_zero_for_identical_frames_and_hand_value():
    frame = torch.randn(2, 1, 3, 5)
    assert consistency_loss(frame.expand(2, 4, 3, 5)).item() == pytest.approx(0.0, abs=1e-10)
    # one sequence, one region, two frames at 0 and 2 (1-D): centre 1, sum of squares 1 + 1 = 2;
    # second sequence identical frames: 0 -> mean over sequences 1
    aligned = torch.tensor([[[[0.0]], [[2.0]]], [[[4.0]], [[4.0]]]])
    assert consistency_loss(aligned).item() == pytest.approx(1.0)
    centers = torch.tensor([[[1.0]], [[3.0]]])                    # class 0 centre 1, class 1 centre 3
    # learned centres: seq 0 (class 0): 1 + 1 = 2; seq 1 (class 1): 1 + 1 = 2 -> mean 2
    assert consistency_loss(aligned, centers, torch.tensor([0, 1])).item() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        consistency_loss(aligned, centers)


def _out(features, logits=None, aligned=None):
    return FGRAOutput(features=features, logits=logits, aligned=aligned)


def test_fgra_loss_is_the_weighted_sum_of_its_parts():
    torch.manual_seed(0)
    feats = torch.randn(4, 6)
    logits = torch.randn(4, 3)
    aligned = torch.randn(4, 2, 3, 5)
    labels = torch.tensor([0, 0, 2, 2])
    total, parts = FGRALoss()(_out(feats, logits, aligned), labels)
    ce = cross_entropy(logits, labels)
    tri, _ = batch_hard_triplet(feats, labels, 0.5)
    reg = consistency_loss(aligned)
    assert reg.item() > 0
    assert total.item() == pytest.approx((ce + tri + 5e-4 * reg).item(), rel=1e-6)
    for key, value in (("ce", ce), ("triplet", tri), ("reg", reg)):
        assert parts[key].item() == pytest.approx(value.item(), rel=1e-6)
    assert set(parts) >= {"total", "ce", "triplet", "reg", "triplet_active", "hardest_pos", "hardest_neg"}
    # no aligned features (variant without CR): no regularisation term
    total, parts = FGRALoss()(_out(feats, logits), labels)
    assert parts["reg"].item() == 0.0 and total.item() == pytest.approx((ce + tri).item(), rel=1e-6)


def test_fgra_loss_learned_centers_and_model_defaults():
    from fgra_core.models import FGRA

    model = FGRA(3, variant=7, backbone="resnet18", weights="none", last_stride=1)
    loss = FGRALoss.for_model(model, centers="learned")
    assert loss.centers.shape == (3, 4, 512) and loss.center_parameters() == [loss.centers]
    aligned = torch.randn(2, 2, 4, 512)
    total, parts = loss(_out(torch.randn(2, 8), aligned=aligned), torch.tensor([0, 1]))
    total.backward()
    assert loss.centers.grad[2].abs().sum() == 0 and loss.centers.grad[:2].abs().sum() > 0
    assert FGRALoss.for_model(FGRA(3, variant=6, backbone="resnet18", weights="none")).reg_weight == 0.0
    with pytest.raises(ConfigError):
        FGRALoss(centers="learned")
    with pytest.raises(ConfigError):
        FGRALoss(centers="median")
