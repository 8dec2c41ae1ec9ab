"""Tracklet and dataset records, and identity relabelling for training.

A :class:`Tracklet` is one video sequence of one person seen by one camera. Its frames are
either ordered file paths (real datasets) or an in-memory uint8 array ``[T, H, W, 3]``
(the synthetic set). A :class:`VideoDataset` holds the train / query / gallery lists.

Conventions shared by every reader:

* camera ids are 0-based;
* train pids are relabelled ``0..num_train_pids-1`` (the original pid of every label is
  kept in ``info["train_pid_map"]``, a dict ``{label: original_pid}``);
* query and gallery keep the dataset's own pids (MARS: ``-1`` junk, ``0`` distractors);
* query and gallery are disjoint; whether queries are added back to the gallery is a
  choice made by the evaluator, not here.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from fgra_core.utils.errors import DatasetError

PART_NAMES = ("head", "torso", "legs", "feet")


@dataclass(frozen=True, eq=False)
class Tracklet:
    """One sequence of one identity in one camera.

    ``frames``: ordered frame paths, or a uint8 array ``[T, H, W, 3]``.
    ``parts``: optional float32 ``[T, n_parts, 2]`` ground-truth (top, bottom) of each body
    part as fractions of the frame height (synthetic data only).
    """

    frames: tuple[str, ...] | np.ndarray
    pid: int
    camid: int
    parts: np.ndarray | None = None
    name: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def in_memory(self) -> bool:
        """True when the frames are an array rather than file paths."""
        return isinstance(self.frames, np.ndarray)


@dataclass
class VideoDataset:
    name: str
    train: list[Tracklet]
    query: list[Tracklet]
    gallery: list[Tracklet]
    num_train_pids: int
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Counts of tracklets, identities and frames per subset."""
        out = {"name": self.name, "num_train_pids": self.num_train_pids}
        for subset in ("train", "query", "gallery"):
            items = getattr(self, subset)
            out[f"num_{subset}_tracklets"] = len(items)
            out[f"num_{subset}_pids"] = len({t.pid for t in items})
            out[f"num_{subset}_frames"] = int(sum(len(t) for t in items))
        return out


def relabel(tracklets: Sequence[Tracklet]) -> tuple[list[Tracklet], dict[int, int]]:
    """Relabel pids to ``0..n-1`` in order of sorted original pid.

    Returns the new tracklets and ``{label: original_pid}``. The original pid is also kept
    in ``Tracklet.name`` by the readers (folder / first frame name).
    """
    pids = sorted({t.pid for t in tracklets})
    to_label = {pid: label for label, pid in enumerate(pids)}
    out = [replace(t, pid=to_label[t.pid]) for t in tracklets]
    return out, {label: pid for pid, label in to_label.items()}


def check_tracklets(tracklets: Iterable[Tracklet], where: str) -> None:
    """Raise :class:`DatasetError` for an empty tracklet (naming it and ``where`` it came from)."""
    for t in tracklets:
        if len(t) == 0:
            raise DatasetError(
                f"empty tracklet {t.name or '(unnamed)'} (pid {t.pid}, camera {t.camid}) in {where}: "
                "every tracklet needs at least one frame"
            )


def count_pids(tracklets: Iterable[Tracklet]) -> Counter:
    return Counter(t.pid for t in tracklets)
