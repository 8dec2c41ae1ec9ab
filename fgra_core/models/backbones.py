"""Backbone trunks (ResNet-50/18, MobileNetV2 without pooling and classifier) and their weights.

``build_backbone(name, weights, last_stride)`` returns ``(trunk, out_channels)``. ``weights`` is
``"none"`` (random initialisation), ``"imagenet"`` (torchvision's ImageNet weights, read from the
torch hub cache or downloaded when online) or a path to a state dict file. A file may hold a full
torchvision model state dict (classifier keys are dropped) or a trunk-only one such as a saved
``mobilenet_v2().features``; it is loaded strictly.
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from fgra_core.utils.errors import ConfigError, WeightsError

#: output channels of each trunk
BACKBONE_CHANNELS = {"resnet50": 2048, "resnet18": 512, "mobilenet_v2": 1280}

_IMAGENET_WEIGHTS = {
    "resnet50": lambda: torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet18": lambda: torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "mobilenet_v2": lambda: torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1,
}
# File names older torchvision releases used for the same ImageNet weights.
_LEGACY_FILES = {
    "resnet50": ("resnet50-19c8e357.pth",),
    "resnet18": ("resnet18-5c106cde.pth",),
    "mobilenet_v2": (),
}
_DOWNLOAD_TIMEOUT_S = 30.0


class ResNetTrunk(nn.Module):
    """A torchvision ResNet without global average pooling and the fully connected layer.

    Attribute names match torchvision's so its state dicts load directly (``fc.*`` dropped).
    """

    def __init__(self, net: torchvision.models.ResNet):
        super().__init__()
        self.conv1 = net.conv1
        self.bn1 = net.bn1
        self.relu = net.relu
        self.maxpool = net.maxpool
        self.layer1 = net.layer1
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def split_last_stage(trunk: nn.Module) -> tuple[nn.Module, nn.Module]:
    """A ResNet trunk as (everything up to layer3, layer4): the frozen part whose maps a cache holds
    and the last stage that trains with the head (``train.adapt: layer4``). The modules are shared."""
    if not isinstance(trunk, ResNetTrunk):
        raise ValueError(f"only a ResNet trunk has a last stage to adapt (layer4); got {type(trunk).__name__}")
    front = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1, trunk.layer2, trunk.layer3)
    return front, trunk.layer4


def _make_trunk(name: str) -> nn.Module:
    if name == "resnet50":
        return ResNetTrunk(torchvision.models.resnet50(weights=None))
    if name == "resnet18":
        return ResNetTrunk(torchvision.models.resnet18(weights=None))
    if name == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(weights=None).features
    raise ConfigError(f"backbone={name!r} is unknown; expected one of {sorted(BACKBONE_CHANNELS)}")


def _set_last_stride(trunk: nn.Module, name: str, last_stride: int) -> None:
    """Set the stride of the last down-sampling stage (2 = torchvision default, 1 = twice the map)."""
    if last_stride not in (1, 2):
        raise ConfigError(f"last_stride={last_stride!r} is not allowed; expected 1 or 2")
    if last_stride == 2:
        return
    if name.startswith("resnet"):
        stage = trunk.layer4[0]
    else:  # the last inverted-residual block that down-samples
        stage = [m for m in trunk if any(isinstance(c, nn.Conv2d) and c.stride == (2, 2) for c in m.modules())][-1]
    for m in stage.modules():
        if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
            m.stride = (1, 1)


def guess_architecture(state: dict) -> str:
    """A best guess, from key names and shapes, of which backbone a state dict belongs to."""
    keys = list(state)
    if any(k.startswith("layer4.") for k in keys):
        if "layer1.0.conv3.weight" in state:
            w = state.get("fc.weight")
            return "resnet50 (or another bottleneck ResNet)" if w is None or w.shape[1] == 2048 else "a bottleneck ResNet"
        return "resnet18/34 (a basic-block ResNet)"
    if any(re.match(r"^(features\.)?\d+\.conv\.\d", k) for k in keys):
        return "mobilenet_v2"
    return "an unknown architecture"


def _unwrap(state, source: str) -> dict:
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in state and isinstance(state[key], dict):
                return _unwrap(state[key], source)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{source}: expected a state dict (a mapping of parameter names to tensors), "
                           f"found {type(state).__name__}")
    return dict(state)


def adapt_state_dict(state: dict, name: str) -> dict:
    """Map a full torchvision model state dict (or a DataParallel one) onto the trunk's key names."""
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    if name.startswith("resnet"):
        return {k: v for k, v in state.items() if not k.startswith("fc.")}
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return state


def load_trunk_weights(trunk: nn.Module, state, name: str, source: str) -> None:
    """Strictly load ``state`` into ``trunk``; a clear :class:`WeightsError` when it does not fit."""
    state = adapt_state_dict(_unwrap(state, source), name)
    try:
        trunk.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        own = trunk.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if shapes:
            detail.append(f"{len(shapes)} shape mismatches (e.g. {shapes[0]}: file "
                          f"{tuple(state[shapes[0]].shape)} vs model {tuple(own[shapes[0]].shape)})")
        raise WeightsError(
            f"{source} does not fit backbone {name!r}: it looks like a {guess_architecture(state)} "
            f"state dict; {'; '.join(detail) or exc}") from exc


def _download(url: str, model_dir: str) -> dict:
    """torchvision's own download into the hub cache (with a socket timeout so offline fails fast)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        return torch.hub.load_state_dict_from_url(url, model_dir=model_dir, progress=False,
                                                  map_location="cpu", weights_only=True)
    finally:
        socket.setdefaulttimeout(old)


def imagenet_state_dict(name: str) -> tuple[dict, str]:
    """ImageNet weights of ``name`` from the torch hub cache, else downloaded; ``(state, source)``."""
    weights = _IMAGENET_WEIGHTS[name]()
    file_name = os.path.basename(urlparse(weights.url).path)
    cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    for candidate in (file_name, *_LEGACY_FILES[name]):
        path = cache_dir / candidate
        if path.is_file():
            return _read_file(path), str(path)
    try:
        return _download(weights.url, str(cache_dir)), weights.url
    except Exception as exc:  # no network, proxy, disk: all end in the same instruction
        raise WeightsError(
            f"ImageNet weights for {name} are not available: {cache_dir / file_name} does not exist and "
            f"downloading {weights.url} failed ({type(exc).__name__}: {exc}). Place the file "
            f"{file_name} in $TORCH_HOME/hub/checkpoints/ (here {cache_dir}/), or pass "
            f"weights=<path to a state dict file> (or weights='none' for random initialisation).") from exc


def _read_file(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: cannot be read as a torch state dict ({type(exc).__name__}: {exc})") from exc


def build_backbone(name: str = "resnet50", weights: str | os.PathLike = "none",
                   last_stride: int = 2) -> tuple[nn.Module, int]:
    """The trunk of ``name`` with ``weights`` loaded; returns ``(module, out_channels)``.

    ``weights``: ``"none"``, ``"imagenet"`` or a path to a state dict file.
    ``last_stride``: 2 (torchvision's, feature stride 32) or 1 (feature stride 16).
    """
    if name not in BACKBONE_CHANNELS:
        raise ConfigError(f"backbone={name!r} is unknown; expected one of {sorted(BACKBONE_CHANNELS)}")
    trunk = _make_trunk(name)
    if isinstance(weights, str) and weights.lower() == "none":
        pass
    elif isinstance(weights, str) and weights.lower() == "imagenet":
        state, source = imagenet_state_dict(name)
        load_trunk_weights(trunk, state, name, source)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights={str(weights)!r}: no such file; expected 'none', 'imagenet' or the "
                               f"path of a {name} state dict file")
        load_trunk_weights(trunk, _read_file(path), name, str(path))
    _set_last_stride(trunk, name, last_stride)
    return trunk, BACKBONE_CHANNELS[name]


def feature_stride(last_stride: int = 2) -> int:
    """Input pixels per feature-map cell for every trunk here."""
    return 32 if last_stride == 2 else 16
