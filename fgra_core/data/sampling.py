"""Temporal sampling: which frames of a tracklet form a training clip or the test clips.

* :func:`train_indices` picks ``seq_len`` frame indices, sorted: a random consecutive run
  (``mode="consecutive"``, the default) or random distinct frames (``mode="random"``). A
  tracklet shorter than ``seq_len`` uses every frame, repeating frames evenly
  (``[0, 0, 1, 1, 2, 2]`` for 3 frames and ``seq_len=6``).
* :func:`test_clips` cuts a tracklet into clips of ``seq_len`` frames at ``stride``
  (default ``seq_len // 2``); the last clip always ends at the last frame, so every frame
  is in some clip.
"""
from __future__ import annotations

import numpy as np

MODES = ("consecutive", "random")


def _check(length: int, seq_len: int) -> None:
    if length < 1:
        raise ValueError(f"tracklet length must be >= 1, got {length}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")


def repeat_to(length: int, seq_len: int) -> np.ndarray:
    """``seq_len`` sorted indices covering all ``length`` frames (``length <= seq_len``), repeated evenly."""
    return (np.arange(seq_len, dtype=np.int64) * length) // seq_len


def train_indices(
    length: int,
    seq_len: int,
    mode: str = "consecutive",
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """``seq_len`` sorted frame indices of a tracklet of ``length`` frames (int64 array)."""
    _check(length, seq_len)
    if mode not in MODES:
        raise ValueError(f"sampling mode {mode!r} unknown; choose one of {MODES}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if length <= seq_len:
        return repeat_to(length, seq_len)
    if mode == "consecutive":
        start = int(rng.integers(0, length - seq_len + 1))
        return np.arange(start, start + seq_len, dtype=np.int64)
    return np.sort(rng.choice(length, size=seq_len, replace=False)).astype(np.int64)


def test_clips(length: int, seq_len: int, stride: int | None = None) -> list[list[int]]:
    """Clips of ``seq_len`` frame indices covering every frame; the last ends at the last frame."""
    _check(length, seq_len)
    stride = max(1, seq_len // 2) if stride is None else int(stride)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if length <= seq_len:
        return [repeat_to(length, seq_len).tolist()]
    starts = list(range(0, length - seq_len + 1, stride))
    if starts[-1] + seq_len < length:
        starts.append(length - seq_len)
    return [list(range(s, s + seq_len)) for s in starts]


test_clips.__test__ = False  # not a pytest test, even when imported into a test module
