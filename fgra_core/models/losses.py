"""Objective functions (Eqs. 10-13): softmax cross-entropy, batch-hard triplet, consistency term.

``FGRALoss`` returns ``(total, parts)`` where ``parts`` holds detached 0-d tensors for logging
(call ``.item()`` when logging, not every step on a GPU).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fgra_core.utils.errors import ConfigError

__all__ = ["cross_entropy", "pairwise_distances", "batch_hard_triplet", "consistency_loss", "FGRALoss"]


def cross_entropy(logits: torch.Tensor | Sequence[torch.Tensor], labels: torch.Tensor,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """Eq. 11, the mean over the batch; a sequence of logits (one head per branch) gives the sum."""
    if isinstance(logits, torch.Tensor):
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return sum(F.cross_entropy(z.float(), labels, label_smoothing=label_smoothing) for z in logits)


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [B, B]; squared distances clamped at 1e-12 before the root (finite gradients)."""
    x = x.float()
    sq = x.square().sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.t())
    return d2.clamp_min(1e-12).sqrt()


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.5
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 10 (Hermans et al. 2017) averaged over anchors: [m + max_p d(a,p) - min_n d(a,n)]_+.

    Anchors without another sample of their identity, or without any negative, are left out.
    Returns ``(loss, stats)``; stats: ``active`` (fraction of anchors with a positive loss),
    ``hardest_pos`` / ``hardest_neg`` (mean distances) and ``anchors`` (anchors used).
    """
    dist = pairwise_distances(features)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    d_ap = dist.masked_fill(~pos_mask, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(~neg_mask, float("inf")).amin(dim=1)
    # no data-dependent branch (it would synchronise with the GPU): invalid anchors are masked out
    count = valid.sum()
    denom = count.clamp_min(1).to(dist.dtype)
    per_anchor = F.relu(margin + d_ap.masked_fill(~valid, 0.0) - d_an.masked_fill(~valid, 0.0)) * valid
    loss = per_anchor.sum() / denom
    with torch.no_grad():
        nan = torch.full_like(count, float("nan"), dtype=dist.dtype)
        stats = {"active": ((per_anchor > 0) & valid).sum() / denom,
                 "hardest_pos": torch.where(count > 0, d_ap.masked_fill(~valid, 0.0).sum() / denom, nan),
                 "hardest_neg": torch.where(count > 0, d_an.masked_fill(~valid, 0.0).sum() / denom, nan),
                 "anchors": count}
    return loss, stats


def consistency_loss(aligned: torch.Tensor, centers: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
    """Eqs. 3 and 12: mean over sequences of sum_{i,n} ||F_{n,i} - c_i||^2.

    aligned [B, N, N_s, C]. ``centers=None``: c_i is the mean over the sequence's frames of
    F_{n,i}. With ``centers`` [num_classes, N_s, C] (learned per identity) and ``labels`` [B]:
    c_i = centers[label, i]. With ``centers`` [N_s, C] (learned per region, shared by every identity):
    c_i = centers[i].
    """
    if aligned.dim() != 4:
        raise ValueError(f"expected aligned features [B, N, N_s, C], got {tuple(aligned.shape)}")
    aligned = aligned.float()
    if centers is None:
        c = aligned.mean(dim=1, keepdim=True)
    elif centers.dim() == 2:
        c = centers[None, None].to(aligned.dtype)
    else:
        if labels is None:
            raise ValueError("learned centers need the labels of the sequences")
        c = centers[labels].unsqueeze(1).to(aligned.dtype)
    return (aligned - c).square().sum(dim=(1, 2, 3)).mean()


class FGRALoss(nn.Module):
    """Eq. 13: ce_weight * L_softmax + triplet_weight * L_triplet + reg_weight * L_reg.

    ``centers``: ``"mean"`` (per-sequence mean, no parameters), ``"learned"`` (a
    [num_classes, num_regions, dim] parameter: one centre per identity and region) or ``"region"`` (a
    [num_regions, dim] parameter shared by every identity); give learned centres their own learning
    rate, 0.03 in the paper, via :meth:`center_parameters`. The consistency term is computed when the model output carries
    ``aligned`` features (variants with CR) and ``reg_weight > 0``.
    """

    def __init__(self, margin: float = 0.5, reg_weight: float = 5e-4, label_smoothing: float = 0.0,
                 centers: str = "mean", num_classes: int | None = None, num_regions: int | None = None,
                 dim: int | None = None, ce_weight: float = 1.0, triplet_weight: float = 1.0):
        super().__init__()
        if centers not in ("mean", "learned", "region"):
            raise ConfigError(f"centers={centers!r}; expected 'mean', 'learned' or 'region'")
        self.margin = float(margin)
        self.reg_weight = float(reg_weight)
        self.label_smoothing = float(label_smoothing)
        self.ce_weight = float(ce_weight)
        self.triplet_weight = float(triplet_weight)
        self.center_mode = centers
        self.centers = None
        if centers == "learned":
            if not (num_classes and num_regions and dim):
                raise ConfigError("centers='learned' needs num_classes, num_regions and dim "
                                  "(use FGRALoss.for_model(model, centers='learned'))")
            self.centers = nn.Parameter(torch.zeros(num_classes, num_regions, dim))
        elif centers == "region":
            if not (num_regions and dim):
                raise ConfigError("centers='region' needs num_regions and dim (use FGRALoss.for_model)")
            self.centers = nn.Parameter(torch.zeros(num_regions, dim))

    @classmethod
    def for_model(cls, model, **kwargs) -> "FGRALoss":
        """A loss matching ``model``: no consistency term unless its variant has CR."""
        if not model.variant.consistency:
            kwargs["reg_weight"] = 0.0
            kwargs["centers"] = "mean"
        if kwargs.get("centers") in ("learned", "region"):
            if kwargs["centers"] == "learned":
                kwargs.setdefault("num_classes", model.num_classes)
            kwargs.setdefault("num_regions", model.num_regions)
            kwargs.setdefault("dim", model.aligned_dim)
        return cls(**kwargs)

    def center_parameters(self) -> list[nn.Parameter]:
        return [] if self.centers is None else [self.centers]

    def forward(self, out, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        zero = out.features.new_zeros((), dtype=torch.float32)
        ce = cross_entropy(out.logits, labels, self.label_smoothing) if out.logits is not None else zero
        tri, stats = batch_hard_triplet(out.features, labels, self.margin)
        if out.aligned is not None and self.reg_weight > 0:
            per_id = self.centers is not None and self.centers.dim() == 3
            reg = consistency_loss(out.aligned, self.centers, labels if per_id else None)
        else:
            reg = zero
        total = self.ce_weight * ce + self.triplet_weight * tri + self.reg_weight * reg
        parts = {"total": total.detach(), "ce": ce.detach(), "triplet": tri.detach(), "reg": reg.detach(),
                 "triplet_active": stats["active"], "hardest_pos": stats["hardest_pos"],
                 "hardest_neg": stats["hardest_neg"]}
        return total, parts
