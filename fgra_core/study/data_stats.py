"""The statistics a cost estimate uses for one run: those of its data root when it is there, the
dataset's published ones (:data:`DATASET_STATS`) only when it is not, and those the synthetic set's
settings give.

* MARS with a data root: the ``info/`` files (``tracks_train_info.mat``, ``tracks_test_info.mat``);
  no name list and no image is read;
* iLIDS-VID / PRID-2011 with a data root: the reader itself on the run's split (folder listings;
  no image is decoded);
* synthetic: ``num_train_ids`` identities of ``num_cams x tracklets_per_id`` tracklets each, test
  frames at the mean of ``min_frames..max_frames`` (nothing is drawn).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# MARS training tracklets per identity -> number of identities (from tracks_train_info.mat)
MARS_TRACKLETS_PER_ID: dict[int, int] = {
    1: 1, 2: 16, 3: 28, 4: 35, 5: 42, 6: 34, 7: 45, 8: 41, 9: 51, 10: 50, 11: 36, 12: 32, 13: 17, 14: 18,
    15: 17, 16: 25, 17: 16, 18: 11, 19: 11, 20: 8, 21: 12, 22: 6, 23: 6, 24: 6, 25: 6, 26: 2, 27: 7, 28: 1,
    29: 6, 30: 4, 31: 4, 32: 1, 33: 2, 34: 2, 35: 1, 36: 2, 37: 1, 38: 4, 39: 1, 40: 3, 42: 1, 44: 1, 45: 1,
    47: 1, 51: 1, 54: 1, 58: 1, 63: 1, 64: 1, 67: 1, 75: 1, 87: 1, 186: 1, 271: 1,
}


@dataclass(frozen=True)
class DatasetStats:
    """What the cost of a run on one split depends on."""

    name: str
    tracklets_per_id: dict[int, int]   # training tracklets per identity -> number of identities
    test_frames: int                   # frames the evaluation reads (one backbone pass each)
    test_tracklets: int
    exact: bool = True                 # False: test frames from published averages
    source: str = ""
    measured: bool = False             # True: from the data root or the synthetic settings, not published
    train_frames: int | None = None    # frames of the training tracklets (None: unknown, the test mean is used)

    @property
    def train_ids(self) -> int:
        return sum(self.tracklets_per_id.values())

    @property
    def train_tracklets(self) -> int:
        return sum(k * n for k, n in self.tracklets_per_id.items())

    def train_pids(self) -> np.ndarray:
        """A label vector with these counts (identity ``i`` repeated once per tracklet)."""
        counts = [k for k, n in sorted(self.tracklets_per_id.items()) for _ in range(n)]
        return np.repeat(np.arange(len(counts)), counts)


DATASET_STATS: dict[str, DatasetStats] = {
    "mars": DatasetStats("mars", MARS_TRACKLETS_PER_ID, test_frames=681_089, test_tracklets=12_180,
                         source="the full MARS info/*.mat files", train_frames=509_914),
    "ilidsvid": DatasetStats("ilidsvid", {2: 150}, test_frames=150 * 2 * 73, test_tracklets=300, exact=False,
                             source="published: 300 identities, 2 x 23-192 frames (73 on average)"),
    "prid2011": DatasetStats("prid2011", {2: 89}, test_frames=89 * 2 * 100, test_tracklets=178, exact=False,
                             source="published: 178 identities in the splits, 5-675 frames (100 on average)"),
}


_SEEN: dict[tuple, DatasetStats] = {}


def _counts(pids) -> dict[int, int]:
    per_id = collections.Counter(int(p) for p in pids)
    return dict(sorted(collections.Counter(per_id.values()).items()))


def _mars(root: Path) -> DatasetStats:
    from fgra_core.data.datasets.mars import INFO_FILES, read_mat_array

    f, k = INFO_FILES["train_info"]
    train = np.asarray(read_mat_array(root / "info" / f, k), dtype=np.int64)
    f, k = INFO_FILES["test_info"]
    test = np.asarray(read_mat_array(root / "info" / f, k), dtype=np.int64)
    return DatasetStats("mars", _counts(train[:, 2]), test_frames=int((test[:, 1] - test[:, 0] + 1).sum()),
                        test_tracklets=int(len(test)), source=f"data root {root} (info/*.mat)", measured=True,
                        train_frames=int((train[:, 1] - train[:, 0] + 1).sum()))


def _reader(cfg) -> DatasetStats:
    from fgra_core.data.registry import build_dataset

    d = cfg.data
    ds = build_dataset(d.dataset, d.root, split_id=d.split_id, split_file=d.split_file)
    test = ds.query + ds.gallery
    return DatasetStats(d.dataset, _counts(t.pid for t in ds.train), test_frames=sum(len(t) for t in test),
                        test_tracklets=len(test), source=f"data root {d.root} (split {d.split_id})", measured=True,
                        train_frames=sum(len(t) for t in ds.train))


def _synthetic(cfg) -> DatasetStats:
    s = cfg.data.synthetic
    per_id = s.num_cams * s.tracklets_per_id
    mean = (s.min_frames + s.max_frames) / 2
    tracklets = s.num_test_ids * per_id
    return DatasetStats("synthetic", {per_id: s.num_train_ids}, test_frames=int(round(tracklets * mean)),
                        test_tracklets=tracklets, exact=s.min_frames == s.max_frames,
                        source=f"the synthetic settings ({s.num_train_ids} + {s.num_test_ids} identities)",
                        measured=True, train_frames=int(round(s.num_train_ids * per_id * mean)))


def stats_for(cfg) -> DatasetStats:
    """The statistics of the run ``cfg`` (a RunConfig) is about; ``KeyError`` for a dataset without any."""
    d = cfg.data
    if d.dataset == "synthetic":
        key = ("synthetic", repr(d.synthetic))
        if key not in _SEEN:
            _SEEN[key] = _synthetic(cfg)
        return _SEEN[key]
    root = Path(d.root) if d.root else None
    if root is not None and root.is_dir():
        key = (d.dataset, str(root.resolve()), d.split_id, str(d.split_file))
        if key not in _SEEN:
            _SEEN[key] = _mars(root) if d.dataset == "mars" else _reader(cfg)
        return _SEEN[key]
    if d.dataset not in DATASET_STATS:
        raise KeyError(f"no known statistics for dataset {d.dataset!r} (known: {', '.join(DATASET_STATS)})")
    return DATASET_STATS[d.dataset]
