"""FGRA: every Table-2 variant x backbone (shapes, gradients, determinism) and its configuration checks."""
from __future__ import annotations

import pytest
import torch

from fgra_core.models import FGRA, VARIANTS, get_variant
from fgra_core.models.backbones import BACKBONE_CHANNELS
from fgra_core.models.losses import FGRALoss
from fgra_core.utils.errors import ConfigError

B, N, H, W = 4, 3, 64, 32          # last_stride=1 -> 4 x 2 feature maps
LABELS = torch.tensor([0, 0, 1, 1])
NUM_CLASSES = 5


def _clips(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, N, 3, H, W, generator=torch.Generator().manual_seed(seed))


def _model(variant, backbone="resnet18", **kw) -> FGRA:
    torch.manual_seed(0)
    kw.setdefault("last_stride", 1)
    return FGRA(NUM_CLASSES, variant=variant, backbone=backbone, weights="none", **kw)


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v2", "resnet50"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_shapes_gradients_and_eval_determinism(variant, backbone):
    spec = VARIANTS[variant]
    model = _model(variant, backbone).train()
    C = BACKBONE_CHANNELS[backbone]
    c = C // 2
    branches = int(spec.global_branch) + int(spec.local is not None)
    assert model.feature_dim == c * branches

    out = model(_clips(), return_maps=True)
    assert out.features.shape == (B, c * branches)
    assert out.logits.shape == (B, NUM_CLASSES)
    assert (out.global_feat is not None) == spec.global_branch
    assert (out.local_feat is not None) == (spec.local is not None)
    h, w = H // 16, W // 16
    if spec.consistency:
        assert out.aligned.shape == (B, N, 4, C)
    else:
        assert out.aligned is None
    if spec.local == "ram":
        assert out.maps.shape == (B, N, 4, h, w)
        assert ((out.maps > 0) & (out.maps < 1)).all()
    else:
        assert out.maps is None
    if spec.local is not None:
        assert out.temporal_scores.shape == (B, N, 4)
        torch.testing.assert_close(out.temporal_scores.sum(dim=1), torch.ones(B, 4))
    if spec.spatial_attention:
        assert out.spatial_weights.shape == (B, 4)
        torch.testing.assert_close(out.spatial_weights.sum(dim=1), torch.ones(B))
    else:
        assert out.spatial_weights is None

    loss, parts = FGRALoss.for_model(model)(out, LABELS)
    assert torch.isfinite(loss)
    assert (parts["reg"] > 0) == spec.consistency
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in trainable if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not no_grad, f"parameters without gradient in variant {spec.name}: {no_grad}"

    model.eval()
    with torch.no_grad():
        a = model(_clips(1))
        b = model(_clips(1))
    assert a.logits is None and a.features.shape == (B, c * branches)
    assert torch.equal(a.features, b.features)


def test_variant_modules_match_the_flags():
    names = {v: {n.split(".")[0] for n, _ in _model(v).named_parameters()} for v in VARIANTS}
    assert "global_attn" not in names[1] and "local_reduce" in names[1]
    assert "local_reduce" not in names[2] and "global_attn" in names[2]
    for v in (1, 2, 3):
        assert "gam" not in names[v] and "template_conv" not in names[v]
    for v in (4, 5, 6, 7, 8):
        assert {"gam", "template_conv", "global_attn"} <= names[v]
    assert "local_attn" in names[5] and all("local_attn" not in names[v] for v in (4, 6, 7, 8))
    assert "spatial_attn" in names[8] and all("spatial_attn" not in names[v] for v in range(1, 8))


def test_head_on_cached_maps_equals_forward():
    model = _model(8).eval()
    clips = _clips(2)
    with torch.no_grad():
        direct = model(clips, return_maps=True)
        fmaps = model.backbone_features(clips.flatten(0, 1))
        assert fmaps.shape == (B * N, 512, H // 16, W // 16)
        via_head = model.head(fmaps.unflatten(0, (B, N)), return_maps=True)
    torch.testing.assert_close(via_head.features, direct.features)
    torch.testing.assert_close(via_head.maps, direct.maps)


def test_reference_frame_is_the_first_frame():
    model = _model(6).eval()
    with torch.no_grad():
        fmaps = model.backbone_features(_clips(3).flatten(0, 1)).unflatten(0, (B, N))
        base = model.head(fmaps).features
        later = fmaps.clone()
        later[:, 1:] = later[:, 1:].flip(1)          # reorder frames 1.., keep frame 0
        same = model.head(later).features
        first = fmaps.clone()
        first[:, [0, 1]] = first[:, [1, 0]]          # a different reference frame
        other = model.head(first).features
    torch.testing.assert_close(same, base, rtol=1e-5, atol=1e-5)
    assert (other - base).abs().max() > 1e-4


def test_gam_implementations_give_the_same_model_outputs_and_gradients():
    torch.manual_seed(0)
    eff = FGRA(NUM_CLASSES, variant=8, backbone="resnet18", weights="none", last_stride=1).double()
    ref = FGRA(NUM_CLASSES, variant=8, backbone="resnet18", weights="none", last_stride=1,
               gam_impl="reference").double()
    ref.load_state_dict(eff.state_dict())
    fmaps = torch.randn(B, N, 512, 4, 2, dtype=torch.float64).relu()
    loss_fn = FGRALoss()
    results = []
    for m in (eff, ref):
        out = m.head(fmaps)
        loss, _ = loss_fn(out, LABELS)
        loss.backward()
        results.append((out.features.detach(), {n: p.grad.clone() for n, p in m.named_parameters()
                                                 if p.grad is not None and not n.startswith("backbone")}))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-8)
    assert results[0][1].keys() == results[1][1].keys()
    for name in results[0][1]:
        torch.testing.assert_close(results[0][1][name], results[1][1][name], rtol=0, atol=1e-8, msg=name)


def test_num_regions_larger_than_the_feature_height_is_refused():
    model = FGRA(NUM_CLASSES, variant=8, backbone="resnet18", weights="none", num_regions=8, last_stride=1)
    with pytest.raises(ConfigError, match=r"num_regions=8.*height 4"):
        model(_clips())
    model = FGRA(NUM_CLASSES, variant=8, backbone="resnet18", weights="none", num_regions=4)  # stride 32: 2 rows
    with pytest.raises(ConfigError, match=r"num_regions=4.*height 2"):
        model(_clips())
    FGRA(NUM_CLASSES, variant=2, backbone="resnet18", weights="none", num_regions=8)(_clips())  # no regions in GB


@pytest.mark.parametrize("regions", [1, 2, 4])
def test_region_counts(regions):
    model = _model(8, num_regions=regions)
    out = model(_clips(), return_maps=True)
    assert out.maps.shape[2] == regions and out.aligned.shape[2] == regions


def test_region_boxes():
    assert FGRA.region_boxes(4, 16) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert FGRA.region_boxes(4, 8, image_height=256) == [(0, 64), (64, 128), (128, 192), (192, 256)]
    assert FGRA.region_boxes(3, 4) == [(0, 2), (1, 3), (2, 4)]      # adaptive pooling overlaps
    with pytest.raises(ConfigError):
        FGRA.region_boxes(5, 4)


def test_variant_lookup():
    assert get_variant(8) is get_variant("GB+RAM+TAS+CR+SA") is get_variant("full") is get_variant("8")
    assert get_variant("gb+ram+ta").index == 5
    assert get_variant(0) is get_variant("trunk") is get_variant("0")
    assert not get_variant(0).trained and get_variant(1).trained
    for bad in (-1, 9, "GB+SA", True):
        with pytest.raises(ConfigError):
            get_variant(bad)


def test_options_template_dim_branch_classifier_reduce_dim():
    model = _model(8, template_dim=64, classifier="branch", reduce_dim=32).train()
    out = model(_clips())
    assert out.features.shape == (B, 64) and out.aligned.shape == (B, N, 4, 64)
    assert isinstance(out.logits, tuple) and [z.shape for z in out.logits] == [(B, NUM_CLASSES)] * 2
    loss, _ = FGRALoss.for_model(model)(out, LABELS)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing
    assert model.frame_proj.weight.grad is not None
    plain = FGRA(None, variant=8, backbone="resnet18", weights="none", last_stride=1).train()
    assert plain(_clips()).logits is None
    for bad in ({"classifier": "arcface"}, {"num_regions": 0}, {"num_classes": 0}, {"last_stride": 3},
                {"backbone": "vgg16"}):
        with pytest.raises(ConfigError):
            FGRA(**{"num_classes": 3, "weights": "none", "backbone": "resnet18", **bad})


def test_channels_last_and_autocast():
    model = _model(8).eval().to(memory_format=torch.channels_last)
    clips = _clips()
    with torch.no_grad():
        ref = _model(8).eval()(clips).features
        cl = model(clips).features
        torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(clips).features
    assert torch.isfinite(low).all() and low.shape == ref.shape
