"""The mixed-precision type of a run, one rule for training and test time.

bfloat16 where the GPU supports it (Ampere and later: the range of float32, no loss scaling),
else float16 (with a gradient scaler in training). Training (``engine/trainer.py``) and feature
extraction (``eval/features.py``) both ask :func:`amp_dtype`, so a model trained in bfloat16 is
evaluated in bfloat16; ``train.amp: false`` runs both in float32. CPU runs are float32.
"""
from __future__ import annotations

import torch


def amp_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 on a CUDA device that supports it, else float16 (the autocast type of ``device``)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16
