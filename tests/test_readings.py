"""Each reading option changes what it claims to change, and nothing else."""
import math
from pathlib import Path

import pytest
import torch

import fgra_core
from fgra_core.config.schema import load_config
from fgra_core.engine.builders import build_criterion, build_model, build_optimizer
from fgra_core.models.fgra import FGRA, weight_statistics
from fgra_core.models.gam import GAM, gam_efficient, gam_reference
from fgra_core.models.losses import FGRALoss, consistency_loss

QUICK = str(Path(fgra_core.__file__).parent / "config" / "configs" / "quick_synthetic.yaml")


def _head(variant, **kw):
    torch.manual_seed(0)
    m = FGRA(4, variant=variant, backbone="resnet18", weights="none", num_regions=2, last_stride=1, **kw)
    m.backbone = torch.nn.Identity()
    return m


def _ramp(B=2, N=4, C=512, H=4, W=2):
    """Frames whose features grow with time: frame n is (n + 1) * 3 times a fixed positive pattern."""
    g = torch.Generator().manual_seed(1)
    base = torch.rand(B, 1, C, H, W, generator=g) + 0.5
    return base * (3.0 * torch.arange(1, N + 1, dtype=torch.float32)).view(1, N, 1, 1, 1)


@pytest.mark.parametrize("source", ["bn", "raw"])
def test_pre_sigmoid_tas_readings_weight_frames_unevenly(source):
    x = _ramp()
    sig = _head(6).eval().head(x, return_weights=True)
    other = _head(6, tas_source=source).eval().head(x, return_weights=True)
    # the sigmoid reading's scores lie in (0, 1): no two frames' weights differ by more than a factor e
    s_hat = torch.softmax(_head(6).eval().gam(x, _templates(_head(6), x)).scores, dim=1)
    assert (s_hat.amax(dim=1) / s_hat.amin(dim=1)).max() <= math.e + 1e-6
    assert sig.temporal_entropy.min() > 0.95
    assert other.temporal_entropy.max() < 0.5          # the same input, weights far from uniform
    assert not torch.allclose(sig.features, other.features)


def _templates(model, x):
    ref = torch.nn.functional.adaptive_avg_pool2d(x[:, 0], (model.num_regions, 1))
    return model.template_conv(ref).flatten(2).transpose(1, 2)


@pytest.mark.parametrize("source", ["sigmoid", "bn", "raw"])
def test_score_sources_agree_between_reference_and_efficient_gam(source):
    torch.manual_seed(2)
    f = torch.randn(2, 3, 5, 3, 2, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    bn_a, bn_b = GAM(5).double().bn, GAM(5).double().bn
    a = gam_reference(f, t, bn_a, score_source=source)
    b = gam_efficient(f, t, bn_b, score_source=source, kernel="torch")
    assert torch.allclose(a.scores, b.scores, atol=1e-10) and torch.allclose(a.aligned, b.aligned, atol=1e-10)
    ga = torch.autograd.grad(a.scores.square().sum() + a.aligned.sum(), (f, t))
    gb = torch.autograd.grad(b.scores.square().sum() + b.aligned.sum(), (f, t))
    assert all(torch.allclose(p, q, atol=1e-9) for p, q in zip(ga, gb))
    if source == "raw":   # the raw reading is the cross-correlation of Eq. 1: t * mean_hw(F)
        assert torch.allclose(b.scores, t[:, None] * f.mean(dim=(-2, -1))[:, :, None], atol=1e-12)


def test_per_region_template_conv_changes_only_its_region():
    x = torch.randn(2, 3, 512, 4, 2)
    shared = _head(4).eval()
    per = _head(4, template_conv="per_region").eval()
    assert tuple(per.template_convs.weight.shape) == (2, 512, 512) and not hasattr(per, "template_conv")
    per.load_state_dict({**{k: v for k, v in shared.state_dict().items() if not k.startswith("template_conv")},
                         "template_convs.weight": torch.eye(512).expand(2, 512, 512).clone(),
                         "template_convs.bias": torch.zeros(2, 512)})
    assert torch.allclose(per.head(x).features, shared.head(x).features, atol=1e-5)   # identity start: the same
    captured = {}
    per.gam.register_forward_hook(lambda m, i, o: captured.setdefault("aligned", []).append(o.aligned))
    per.head(x)
    with torch.no_grad():
        per.template_convs.weight[1].mul_(0.5)
    per.head(x)
    before, after = captured["aligned"]
    assert torch.equal(before[:, :, 0], after[:, :, 0]) and not torch.allclose(before[:, :, 1], after[:, :, 1])


def test_uniform_spatial_weights_are_the_plain_mean_of_regions():
    x = torch.randn(2, 3, 512, 4, 2)
    m = _head(8, spatial_weights="uniform").eval()
    assert not hasattr(m, "spatial_attn")
    out = m.head(x, return_weights=True)
    assert torch.equal(out.spatial_weights, torch.full((2, 2), 0.5))
    stats = weight_statistics([out])
    assert stats["spatial_weight_range"] == 0.0 and stats["spatial_weight_std"] == 0.0
    learned = _head(8).eval().head(x, return_weights=True)
    assert learned.spatial_weights.shape == (2, 2) and torch.allclose(learned.spatial_weights.sum(1), torch.ones(2))


def test_region_centres_by_hand_and_their_learning_rate():
    aligned = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])          # B=1, N=2, N_s=1, C=2
    centres = torch.tensor([[1.0, 1.0]])                             # [N_s, C]
    # (0^2 + 1^2) + (2^2 + 3^2) = 14
    assert consistency_loss(aligned, centres).item() == 14.0
    # per-sequence mean centre (2, 3): (1 + 1) + (1 + 1) = 4
    assert consistency_loss(aligned).item() == 4.0
    for mode, shape in (("region", (4, 512)), ("learned", (6, 4, 512))):
        cfg = load_config(QUICK, {"model.centers": mode, "model.variant": 7})
        model = build_model(cfg, 6)
        crit = build_criterion(cfg, 6, model)
        assert tuple(crit.centers.shape) == shape
        opt = build_optimizer(cfg, model, crit)
        assert [g["lr"] for g in opt.param_groups] == [cfg.optim.lr, 0.03]
        assert opt.param_groups[1]["params"][0] is crit.centers


def test_row_0_is_the_pooled_trunk():
    x = torch.randn(2, 3, 512, 4, 2)
    m = _head(0)
    assert m.head(x).features.shape == (2, 512) and torch.allclose(m.head(x).features, x.mean(dim=(1, 3, 4)))
    assert not any(p.requires_grad for n, p in m.named_parameters())
    assert FGRALoss.for_model(m).reg_weight == 0.0
