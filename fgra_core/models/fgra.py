"""The FGRA network and the eight configurations of the paper's Table 2.

Global branch (GB): per-frame global average pooling, temporal attention over frames (a linear
score per frame, softmax over time, as in Li et al. 2018b), a 1x1 reduction to ``reduce_dim``.

Local branch, either
  * stripe pooling (``local="stripe"``, variants 1 and 3): each frame's map pooled into N_s
    horizontal stripes, no alignment; or
  * the region alignment mechanism (``local="ram"``, variants 4-8): templates = the first frame's
    stripes through a 1x1 conv, the guide alignment module (GAM) gives region-aligned features
    [B, N, N_s, C].
Temporal aggregation of the region features: average (``"avg"``), learned temporal attention
(``"ta"``) or the temporal alignment scores of Eqs. 4-6 (``"tas"``). Spatial aggregation: spatial
attention (Eqs. 7-8, ``SA``) or, without it, concatenation of the N_s region vectors. Then a
reduction to ``reduce_dim``; the retrieval feature is [global, local] (Eq. 9).

Classifier (``classifier="bnneck"``): BatchNorm1d + bias-free linear on the concatenated feature;
``classifier="branch"``: one such head per branch (``logits`` is then a tuple).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fgra_core.models.backbones import build_backbone, feature_stride
from fgra_core.models.gam import GAM
from fgra_core.models.stripes import stripe_pool
from fgra_core.utils.errors import ConfigError

__all__ = ["FGRA", "FGRAOutput", "VariantSpec", "VARIANTS", "TRUNK_ONLY", "get_variant", "weight_statistics"]


@dataclass(frozen=True)
class VariantSpec:
    """One row of Table 2."""

    index: int
    name: str
    global_branch: bool        # GB
    local: str | None          # None, "stripe" (stripe pooling) or "ram" (region alignment mechanism)
    temporal: str | None       # local temporal aggregation: "avg", "ta" or "tas"
    consistency: bool          # CR: the consistency regularisation of Eqs. 3/12 applies
    spatial_attention: bool    # SA: Eqs. 7-8, else the N_s region vectors are concatenated

    @property
    def trained(self) -> bool:
        """Whether the variant has anything to train (variant 0, the untrained trunk, has not)."""
        return self.index != 0


VARIANTS: dict[int, VariantSpec] = {
    1: VariantSpec(1, "AVG", False, "stripe", "avg", False, False),
    2: VariantSpec(2, "GB", True, None, None, False, False),
    3: VariantSpec(3, "GB+AVG", True, "stripe", "avg", False, False),
    4: VariantSpec(4, "GB+RAM+AVG", True, "ram", "avg", False, False),
    5: VariantSpec(5, "GB+RAM+TA", True, "ram", "ta", False, False),
    6: VariantSpec(6, "GB+RAM+TAS", True, "ram", "tas", False, False),
    7: VariantSpec(7, "GB+RAM+TAS+CR", True, "ram", "tas", True, False),
    8: VariantSpec(8, "GB+RAM+TAS+CR+SA", True, "ram", "tas", True, True),
}
# Row 0 is not in the paper: the trunk's feature maps averaged over space and time, no training at
# all. It is the floor every table shows (what the frozen or initial trunk alone retrieves).
TRUNK_ONLY = VariantSpec(0, "TRUNK", False, None, None, False, False)
_ALIASES = {"full": 8, "fgra": 8, "baseline": 1, "trunk": 0}


def get_variant(variant: int | str | VariantSpec) -> VariantSpec:
    """A Table-2 row by number (1-8, int or digit string), name (``"GB+RAM+TAS"``, case-insensitive) or alias."""
    if isinstance(variant, VariantSpec):
        return variant
    if isinstance(variant, bool):
        raise ConfigError(f"variant={variant!r} is not a Table-2 variant")
    if isinstance(variant, int) and variant == 0:
        return TRUNK_ONLY
    if isinstance(variant, int) and variant in VARIANTS:
        return VARIANTS[variant]
    if isinstance(variant, str):
        key = variant.strip().upper().replace(" ", "")
        if key.isdigit() and int(key) in VARIANTS:
            return VARIANTS[int(key)]
        if key == "0" or key == TRUNK_ONLY.name:
            return TRUNK_ONLY
        for spec in VARIANTS.values():
            if spec.name == key:
                return spec
        if key.lower() in _ALIASES:
            return get_variant(_ALIASES[key.lower()])
    names = ", ".join(f"{i} {s.name}" for i, s in VARIANTS.items())
    raise ConfigError(f"variant={variant!r} is unknown; expected one of: {names} (or 'full', or 0 'trunk')")


@dataclass
class FGRAOutput:
    features: torch.Tensor                                # [B, D] retrieval feature f_s (Eq. 9)
    logits: torch.Tensor | tuple[torch.Tensor, ...] | None = None   # training mode only
    aligned: torch.Tensor | None = None                   # [B, N, N_s, C'] when the variant uses CR
    global_feat: torch.Tensor | None = None               # [B, c]  f_{s,g}
    local_feat: torch.Tensor | None = None                # [B, c]  f_{s,l}
    maps: torch.Tensor | None = None                      # [B, N, N_s, h, w] (return_maps, RAM variants)
    temporal_scores: torch.Tensor | None = None           # [B, N, N_s] temporal weights used (channel mean)
    spatial_weights: torch.Tensor | None = None           # [B, N_s] (return_maps, SA variant)
    temporal_entropy: torch.Tensor | None = None          # [B] normalised entropy of the temporal weights
                                                          # actually applied (per channel for TAS), 1 = uniform


def _frozen_bias_bn(dim: int) -> nn.BatchNorm1d:
    """BatchNorm1d whose bias is fixed at 0: a shift common to the whole batch changes neither the
    triplet distances nor the train-mode output of the BN-neck, so it would never be trained."""
    bn = nn.BatchNorm1d(dim)
    bn.bias.requires_grad_(False)
    return bn


class _Reduce(nn.Module):
    """The 1x1 dimension reduction of a sequence-level vector: linear (no bias) + BatchNorm1d."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim, bias=False)
        self.bn = _frozen_bias_bn(out_dim)
        nn.init.kaiming_normal_(self.fc.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))


class _Head(nn.Module):
    """BN-neck classifier: BatchNorm1d + bias-free linear."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.fc = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.fc.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(x))


TAS_SOURCES = ("sigmoid", "bn", "raw")
TEMPLATE_CONVS = ("shared", "per_region")
SPATIAL_WEIGHTS = ("attention", "uniform")


class _RegionConv(nn.Module):
    """One 1x1 convolution per region: [B, R, C] -> [B, R, C'] with weight [R, C', C] and bias [R, C']."""

    def __init__(self, regions: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(regions, out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(regions, out_dim))
        for r in range(regions):
            nn.init.kaiming_uniform_(self.weight[r], a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("brc,rdc->brd", x, self.weight.to(x.dtype)) + self.bias.to(x.dtype)


class RegionTemporalAttention(nn.Module):
    """Learned temporal attention for each region (variant 5): score = w_r . F_{n,r}, softmax over n."""

    def __init__(self, num_regions: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_regions, dim))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(dim))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:   # [B, N, R, C] -> weights [B, N, R]
        return torch.softmax(torch.einsum("bnrc,rc->bnr", feats, self.weight.to(feats.dtype)), dim=1)


class FGRA(nn.Module):
    """Frame-guided region-aligned network.

    Args:
        num_classes: training identities (``None``: no classifier, features only).
        variant: Table-2 row, 1-8 or its name (8 = full model).
        backbone: ``"resnet50"``, ``"resnet18"`` or ``"mobilenet_v2"``.
        weights: ``"imagenet"``, ``"none"`` or a state dict path (see ``build_backbone``).
        num_regions: N_s, the horizontal regions of the reference frame.
        last_stride: 2 (feature stride 32, torchvision's) or 1 (stride 16).
        reduce_dim: c, each branch's output size; default ``C // 2`` (1024 for ResNet-50).
        template_dim: channels of the templates; default C (the frame feature's). Another value adds
            a 1x1 projection of the frame features to that many channels for the local branch.
        classifier: ``"bnneck"`` (one head on [global, local]) or ``"branch"`` (one head per branch).
        gam_impl: ``"efficient"`` or ``"reference"`` (same numbers, different memory).
        gam_region_chunk: regions processed together by the efficient GAM's torch loop.
        gam_kernel: ``"auto"`` (fused Triton kernels on CUDA, else torch), ``"torch"`` or ``"triton"``.
        tas_source: what the temporal alignment scores (Eq. 5) average before the softmax over time:
            ``"sigmoid"`` (the normalised similarity map after BN + sigmoid), ``"bn"`` (after BN, before
            the sigmoid) or ``"raw"`` (the cross-correlation of Eq. 1 itself). docs/reproduction_notes.md.
        template_conv: ``"shared"`` (one 1x1 conv for every region) or ``"per_region"`` (one per region).
        spatial_weights: ``"attention"`` (Eqs. 7-8) or ``"uniform"`` (the same weighted sum with weights
            1/N_s: the control that separates SA from the change of concatenation to a sum).
    """

    def __init__(self, num_classes: int | None, variant: int | str | VariantSpec = 8,
                 backbone: str = "resnet50", weights: str = "imagenet", num_regions: int = 4,
                 last_stride: int = 2, reduce_dim: int | None = None, template_dim: int | None = None,
                 classifier: str = "bnneck", gam_impl: str = "efficient", gam_region_chunk: int = 1,
                 gam_kernel: str = "auto", tas_source: str = "sigmoid", template_conv: str = "shared",
                 spatial_weights: str = "attention"):
        super().__init__()
        self.variant = get_variant(variant)
        for name, value, allowed in (("tas_source", tas_source, TAS_SOURCES),
                                     ("template_conv", template_conv, TEMPLATE_CONVS),
                                     ("spatial_weights", spatial_weights, SPATIAL_WEIGHTS)):
            if value not in allowed:
                raise ConfigError(f"{name}={value!r}; expected one of {', '.join(map(repr, allowed))}")
        self.tas_source = tas_source
        self.template_mode = template_conv
        self.spatial_mode = spatial_weights
        if int(num_regions) < 1:
            raise ConfigError(f"num_regions={num_regions!r} must be at least 1")
        if classifier not in ("bnneck", "branch"):
            raise ConfigError(f"classifier={classifier!r}; expected 'bnneck' or 'branch'")
        if num_classes is not None and int(num_classes) < 1:
            raise ConfigError(f"num_classes={num_classes!r} must be positive (or None for no classifier)")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.num_regions = int(num_regions)
        self.backbone_name = backbone
        self.last_stride = last_stride
        self.feature_stride = feature_stride(last_stride)
        self.backbone, C = build_backbone(backbone, weights, last_stride)
        self.adapt_stage: nn.Module | None = None   # head regime, train.adapt: the trunk's last stage on cached maps
        self.out_channels = C
        self.reduce_dim = int(reduce_dim) if reduce_dim else C // 2
        self.classifier_mode = classifier
        v, R, c = self.variant, self.num_regions, self.reduce_dim

        if v.global_branch:
            self.global_attn = nn.Linear(C, 1, bias=False)   # softmax over time ignores a bias
            self.global_reduce = _Reduce(C, c)

        self.aligned_dim = None
        if v.local == "ram":
            Ct = int(template_dim) if template_dim else C
            self.aligned_dim = Ct
            if Ct != C:
                self.frame_proj = nn.Conv2d(C, Ct, 1, bias=False)
            if template_conv == "shared":
                self.template_conv = nn.Conv2d(C, Ct, 1)
            else:   # one 1x1 conv per region: weight [R, C', C], bias [R, C']
                self.template_convs = _RegionConv(R, C, Ct)
            if Ct == C:   # start from the stripe-pooled reference feature itself
                with torch.no_grad():
                    if template_conv == "shared":
                        self.template_conv.weight.copy_(torch.eye(C).reshape(C, C, 1, 1))
                        self.template_conv.bias.zero_()
                    else:
                        self.template_convs.weight.copy_(torch.eye(C).expand(R, C, C))
            self.gam = GAM(Ct, impl=gam_impl, region_chunk=gam_region_chunk, kernel=gam_kernel)
            if v.temporal == "ta":
                self.local_attn = RegionTemporalAttention(R, Ct)
        local_in = self.aligned_dim if v.local == "ram" else C
        if v.local is not None:
            if v.spatial_attention and spatial_weights == "attention":
                # Eq. 7: g = Conv1d(k=3) + BN + ReLU over the region axis (the BN makes a conv bias moot)
                self.spatial_attn = nn.Sequential(nn.Conv1d(local_in, 1, 3, padding=1, bias=False),
                                                  nn.BatchNorm1d(1), nn.ReLU(inplace=False))
                self.local_reduce = _Reduce(local_in, c)
            elif v.spatial_attention:   # uniform weights: the weighted sum, no attention
                self.local_reduce = _Reduce(local_in, c)
            else:
                self.local_reduce = _Reduce(local_in * R, c)

        branches = int(v.global_branch) + int(v.local is not None)
        self.feature_dim = c * branches if v.trained else C
        if self.num_classes is not None and v.trained:
            if classifier == "bnneck":
                self.classifier = _Head(self.feature_dim, self.num_classes)
            else:
                self.classifiers = nn.ModuleList(_Head(c, self.num_classes) for _ in range(branches))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def region_boxes(num_regions: int, feat_height: int, image_height: int | None = None) -> list[tuple[float, float]]:
        """Row ranges ``[start, end)`` of the reference frame's regions, as adaptive pooling takes them.

        In feature rows, or in image pixels when ``image_height`` is given (scaled by image/feature height).
        """
        if num_regions > feat_height:
            raise ConfigError(f"num_regions={num_regions} exceeds the feature-map height {feat_height}")
        rows = [(math.floor(i * feat_height / num_regions), math.ceil((i + 1) * feat_height / num_regions))
                for i in range(num_regions)]
        if image_height is None:
            return [(float(a), float(b)) for a, b in rows]
        s = image_height / feat_height
        return [(a * s, b * s) for a, b in rows]

    def check_feature_size(self, height: int) -> None:
        if self.variant.local is not None and self.num_regions > height:
            raise ConfigError(
                f"num_regions={self.num_regions} exceeds the feature-map height {height} (input height "
                f"{height * self.feature_stride} px at stride {self.feature_stride}); use fewer regions, a "
                "taller input or last_stride=1")

    # ------------------------------------------------------------------ forward
    def backbone_features(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [T, 3, H, W] -> frame feature maps [T, C, h, w]."""
        return self.backbone(frames)

    def forward(self, clips: torch.Tensor, return_maps: bool = False) -> FGRAOutput:
        """clips [B, N, 3, H, W] -> FGRAOutput (the same as ``head(backbone_features(...))``)."""
        B, N = clips.shape[:2]
        fmaps = self.backbone_features(clips.flatten(0, 1))
        return self.head(fmaps.unflatten(0, (B, N)), return_maps=return_maps)

    def head(self, fmaps: torch.Tensor, return_maps: bool = False, return_weights: bool = False) -> FGRAOutput:
        """fmaps [B, N, C, h, w] (frame 0 of each clip is the reference frame) -> FGRAOutput.

        ``return_weights``: also the temporal weights, their normalised entropy and the spatial
        weights (cheap; ``return_maps`` adds the response maps). With an ``adapt_stage`` (the trunk's
        last stage, trained with the head) ``fmaps`` are the maps before that stage."""
        if self.adapt_stage is not None:
            fmaps = self.adapt_stage(fmaps.flatten(0, 1)).unflatten(0, tuple(fmaps.shape[:2]))
        if fmaps.dim() != 5 or fmaps.shape[2] != self.out_channels:
            raise ValueError(f"expected fmaps [B, N, {self.out_channels}, h, w], got {tuple(fmaps.shape)}")
        B, N, C, H, W = fmaps.shape
        self.check_feature_size(H)
        v, R = self.variant, self.num_regions
        out = FGRAOutput(features=fmaps.new_zeros(0))
        parts = []
        want_weights = return_maps or return_weights
        if not v.trained:                                                         # row 0: pooled trunk
            out.features = fmaps.mean(dim=(1, 3, 4))
            return out

        if v.global_branch:
            g = fmaps.mean(dim=(-2, -1))                                          # [B, N, C]
            w = torch.softmax(self.global_attn(g).squeeze(-1), dim=1)             # [B, N]
            g = torch.einsum("bn,bnc->bc", w.to(g.dtype), g)
            out.global_feat = self.global_reduce(g)
            parts.append(out.global_feat)

        if v.local is not None:
            if v.local == "stripe":
                stripes = stripe_pool(fmaps.flatten(0, 1), R)                    # [B*N, C, R, 1]
                region = stripes.reshape(B, N, C, R).transpose(2, 3)              # [B, N, R, C]
                tw = region.new_full((B, N, R), 1.0 / N)
                fs = region.mean(dim=1)                                           # [B, R, C]
            else:
                lmaps = self.frame_proj(fmaps.flatten(0, 1)).unflatten(0, (B, N)) if hasattr(self, "frame_proj") else fmaps
                ref = stripe_pool(fmaps[:, 0], R)                                 # [B, C, R, 1]
                if self.template_mode == "shared":
                    templates = self.template_conv(ref).flatten(2).transpose(1, 2)  # [B, R, C']
                else:
                    templates = self.template_convs(ref.flatten(2).transpose(1, 2))
                g_out = self.gam(lmaps, templates, return_maps=return_maps, score_source=self.tas_source)
                aligned = g_out.aligned                                           # [B, N, R, C']
                if v.temporal == "avg":
                    fs = aligned.mean(dim=1)
                    tw = aligned.new_full((B, N, R), 1.0 / N)
                elif v.temporal == "ta":
                    weights = self.local_attn(aligned)                            # [B, N, R]
                    fs = (aligned * weights.unsqueeze(-1)).sum(dim=1)
                    tw = weights
                else:                                                             # Eqs. 4 and 6
                    s_hat = torch.softmax(g_out.scores, dim=1)                    # per channel, over time
                    fs = (aligned * s_hat).sum(dim=1)
                    tw = s_hat.mean(dim=-1)
                    if want_weights:
                        out.temporal_entropy = _normalised_entropy(s_hat.detach(), dim=1).mean(dim=(1, 2))
                if v.consistency:
                    out.aligned = aligned
                if return_maps:
                    out.maps = g_out.maps
            if v.spatial_attention:                                               # Eqs. 7 and 8
                if self.spatial_mode == "attention":
                    sw = torch.softmax(self.spatial_attn(fs.transpose(1, 2)).squeeze(1), dim=-1)  # [B, R]
                else:
                    sw = fs.new_full((B, R), 1.0 / R)
                local = torch.einsum("brc,br->bc", fs, sw.to(fs.dtype))
                if want_weights:
                    out.spatial_weights = sw.detach()
            else:
                local = fs.flatten(1)                                             # concatenated regions
            out.local_feat = self.local_reduce(local)
            parts.append(out.local_feat)
            if want_weights:
                out.temporal_scores = tw.detach()
                if out.temporal_entropy is None:
                    out.temporal_entropy = _normalised_entropy(tw.detach(), dim=1).mean(dim=1)

        out.features = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if self.training and self.num_classes is not None:
            if self.classifier_mode == "bnneck":
                out.logits = self.classifier(out.features)
            else:
                out.logits = tuple(head(p) for head, p in zip(self.classifiers, parts))
        return out

    def extra_repr(self) -> str:
        readings = []
        if self.tas_source != "sigmoid":
            readings.append(f"tas_source={self.tas_source!r}")
        if self.template_mode != "shared":
            readings.append(f"template_conv={self.template_mode!r}")
        if self.spatial_mode != "attention":
            readings.append(f"spatial_weights={self.spatial_mode!r}")
        return (f"variant={self.variant.index} ({self.variant.name}), num_regions={self.num_regions}, "
                f"feature_dim={self.feature_dim}" + "".join(", " + r for r in readings))


def _normalised_entropy(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Entropy of weights that sum to 1 along ``dim``, divided by log(n): 1 for uniform weights, 0 for
    all weight on one entry (n = 1 gives 1)."""
    n = w.shape[dim]
    if n <= 1:
        return torch.ones_like(w.sum(dim=dim))
    w = w.float().clamp_min(0)
    h = -(w * torch.log(w.clamp_min(1e-30))).sum(dim=dim)
    return h / math.log(n)


def weight_statistics(outputs: list[FGRAOutput]) -> dict:
    """What the aggregation weights of a trained model did over some clips (``head(..., return_weights=True)``
    outputs): mean normalised temporal entropy (1 = uniform over the N frames) and the spread of the
    spatial weights (mean over clips of their standard deviation and of max - min over the N_s regions;
    0 = uniform). ``None`` where the variant has no such weights."""
    ent = [o.temporal_entropy for o in outputs if o.temporal_entropy is not None]
    sw = [o.spatial_weights for o in outputs if o.spatial_weights is not None]
    out: dict = {"temporal_entropy": None, "spatial_weight_std": None, "spatial_weight_range": None}
    if ent:
        out["temporal_entropy"] = float(torch.cat(ent).float().mean())
    if sw:
        w = torch.cat(sw).float()
        out["spatial_weight_std"] = float(w.std(dim=1, unbiased=False).mean())
        out["spatial_weight_range"] = float((w.amax(dim=1) - w.amin(dim=1)).mean())
    return out
