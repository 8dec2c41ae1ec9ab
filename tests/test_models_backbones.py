"""Backbone trunks: output sizes, last stride, and every way of getting weights (or failing clearly)."""
from __future__ import annotations

import pytest
import torch
import torchvision

from fgra_core.models import backbones
from fgra_core.models.backbones import build_backbone
from fgra_core.utils.errors import ConfigError, WeightsError


@pytest.mark.parametrize("name,channels", [("resnet18", 512), ("resnet50", 2048), ("mobilenet_v2", 1280)])
@pytest.mark.parametrize("last_stride,stride", [(2, 32), (1, 16)])
def test_trunk_output_channels_and_stride(name, channels, last_stride, stride):
    trunk, out_channels = build_backbone(name, "none", last_stride=last_stride)
    assert out_channels == channels
    with torch.no_grad():
        y = trunk.eval()(torch.randn(1, 3, 128, 64))
    assert y.shape == (1, channels, 128 // stride, 64 // stride)


def test_unknown_backbone_and_stride():
    with pytest.raises(ConfigError, match="vgg"):
        build_backbone("vgg16")
    with pytest.raises(ConfigError, match="last_stride"):
        build_backbone("resnet18", last_stride=4)


def test_shared_mobilenet_weights_load(mobilenet_weights):
    trunk, channels = build_backbone("mobilenet_v2", str(mobilenet_weights))
    state = torch.load(mobilenet_weights, map_location="cpu", weights_only=True)
    assert channels == 1280
    assert torch.equal(trunk.state_dict()["0.0.weight"], state["0.0.weight"])
    assert torch.equal(trunk.state_dict()["18.1.running_var"], state["18.1.running_var"])


def test_weights_of_another_backbone_are_refused(mobilenet_weights, tmp_path):
    with pytest.raises(WeightsError, match=r"mobilenet_v2.*resnet50|resnet50.*mobilenet_v2"):
        build_backbone("resnet50", str(mobilenet_weights))
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsError, match="basic-block ResNet"):
        build_backbone("resnet50", str(path))


def test_full_model_state_dict_and_wrapped_checkpoint_load(tmp_path):
    full = torchvision.models.mobilenet_v2()
    path = tmp_path / "full.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in full.state_dict().items()}, "epoch": 3}, path)
    trunk, _ = build_backbone("mobilenet_v2", path)
    assert torch.equal(trunk.state_dict()["1.conv.0.0.weight"], full.state_dict()["features.1.conv.0.0.weight"])
    r18 = torchvision.models.resnet18()
    torch.save(r18.state_dict(), tmp_path / "r18.pth")
    trunk, _ = build_backbone("resnet18", tmp_path / "r18.pth", last_stride=1)
    assert torch.equal(trunk.layer4[0].conv1.weight, r18.layer4[0].conv1.weight)


def test_bad_paths_give_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        build_backbone("resnet18", tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        build_backbone("resnet18", junk)


def test_imagenet_from_the_hub_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(url, model_dir):
        raise AssertionError("must not download when the file is cached")

    monkeypatch.setattr(backbones, "_download", no_network)
    cached = torchvision.models.resnet18()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(cached.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    trunk, _ = build_backbone("resnet18", "imagenet")
    assert torch.equal(trunk.conv1.weight, cached.conv1.weight)


def test_imagenet_unavailable_names_the_file_and_the_path_option(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, model_dir):
        raise OSError("network is unreachable")

    monkeypatch.setattr(backbones, "_download", offline)
    with pytest.raises(WeightsError) as info:
        build_backbone("resnet50", "imagenet")
    message = str(info.value)
    assert "resnet50-0676ba61.pth" in message
    assert "hub/checkpoints" in message and "weights=<path" in message
    assert "network is unreachable" in message
