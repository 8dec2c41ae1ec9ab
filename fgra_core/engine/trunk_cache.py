"""Trunk feature maps computed once per frame and view, cached on disk (the head regime).

In the frozen-trunk ("head") regime the trunk never changes, so the feature map of every frame is
computed once, for each augmentation view the regime uses -- the frame itself and its horizontal
mirror for training tracklets, the frame itself for test tracklets -- and stored in one file:

``<cache_dir>/<key[:20]>.pt`` = ``{"format", "key", "maps" float16 [F, C, h, w], "offsets", "lengths", "meta",
"checksums"}``

The **key** is a SHA-256 of everything that decides those numbers: every tracklet of the train,
query and gallery sets (order, identity, camera, length and the bytes of each frame: the decoded
array for generated sets, the file's content for datasets on disk), the trunk's architecture and
the exact values of its weights and buffers, the input size and normalisation, and the views.
Any variant, seed or reading that uses the same dataset, trunk and input size shares the file.

The file is **verified, not trusted** (:mod:`fgra_core.engine.trunk_checks`): ``checksums`` holds
a SHA-256 of every chunk of rows of ``maps`` (about 64 MiB each) and one of the row index
(``offsets``, ``lengths``). When the file is loaded every chunk is hashed again and the maps are
checked to be finite. A file that cannot be read, is of another format, holds another key, fails a
checksum or holds non-finite values is rebuilt, with one warning line naming the file. Maps the
trunk itself computes non-finite are an error (the trunk's weights), not a cache to store.

A valid file is read without any lock (writes are atomic, so a reader sees a whole file or none):
a read-only cache folder holding a valid cache is read as it is. Only a builder takes the
exclusive lock on ``<file>.lock``: a concurrent builder of the same key waits and then reads what
the first wrote.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from fgra_core.data.records import Tracklet, VideoDataset
from fgra_core.engine.trunk_checks import check_finite_build, checksums, verify
from fgra_core.utils.errors import DatasetError, StorageError
from fgra_core.utils.io import atomic_torch_save
from fgra_core.utils.warn import CacheWarning, warn_line

FORMAT = 1          # of the key (dataset digest and cache key): unchanged, so keys stay the same
FILE_FORMAT = 2     # of the file: 2 adds the checksums (a format-1 file is rebuilt)
SETS = ("train", "query", "gallery")
# views per set: 0 = the frame, 1 = its horizontal mirror (training tracklets only)
VIEWS = {"train": (0, 1), "query": (0,), "gallery": (0,)}


@dataclass
class TrunkFeatures:
    """Cached trunk maps of one dataset. ``rows(set, i, frame_idx, view)`` -> rows of ``maps``."""

    key: str
    maps: torch.Tensor                                   # float16 [F, C, h, w]
    offsets: dict[str, np.ndarray]                       # set -> [num_tracklets, num_views] first row
    lengths: dict[str, np.ndarray]                       # set -> [num_tracklets] frames
    meta: dict = field(default_factory=dict)

    def rows(self, which: str, index: np.ndarray, frames: np.ndarray, view: np.ndarray | int = 0) -> np.ndarray:
        """Row numbers of ``frames`` ([B, N] frame indices) of tracklets ``index`` ([B]) in ``view`` ([B])."""
        index = np.asarray(index, dtype=np.int64)
        view = np.broadcast_to(np.asarray(view, dtype=np.int64), index.shape)
        start = self.offsets[which][index, view]
        return start[:, None] + np.asarray(frames, dtype=np.int64)

    def gather(self, which: str, index, frames, view=0, dtype=torch.float32) -> torch.Tensor:
        """Feature maps [B, N, C, h, w] of the given clips."""
        rows = torch.from_numpy(self.rows(which, index, frames, view))
        return self.maps[rows.flatten()].to(dtype).unflatten(0, tuple(rows.shape))


# --------------------------------------------------------------------------- the key


def _hash_frames(h, t: Tracklet) -> None:
    if isinstance(t.frames, np.ndarray):
        arr = np.ascontiguousarray(t.frames)
        h.update(f"array{arr.shape}{arr.dtype}".encode())
        h.update(arr.tobytes())
        return
    for path in t.frames:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise DatasetError(f"frame {path} cannot be read ({exc.strerror or exc}); expected an image file") from exc
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)


def dataset_digest(dataset: VideoDataset) -> str:
    """SHA-256 of the train / query / gallery tracklets: order, pid, camera, length and frame bytes."""
    h = hashlib.sha256(f"fgra-dataset-v{FORMAT}".encode())
    for which in SETS:
        tracks = getattr(dataset, which)
        h.update(f"|{which}:{len(tracks)}".encode())
        for t in tracks:
            h.update(f"|{t.pid},{t.camid},{len(t)}".encode())
            _hash_frames(h, t)
    return h.hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's class and the exact values of its parameters and buffers."""
    h = hashlib.sha256(type(module).__name__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        arr = tensor.detach().cpu().contiguous()
        h.update(f"|{name}:{tuple(arr.shape)}:{arr.dtype}".encode())
        h.update(arr.reshape(-1).view(torch.uint8).numpy().tobytes() if arr.numel() else b"")
    return h.hexdigest()


def cache_key(dataset: VideoDataset, trunk: torch.nn.Module, height: int, width: int, *,
              trunk_name: str = "", dataset_hash: str | None = None) -> str:
    from fgra_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    parts = [f"format={FORMAT}", f"dataset={dataset_hash or dataset_digest(dataset)}",
             f"trunk={trunk_name}:{module_digest(trunk)}", f"size={int(height)}x{int(width)}",
             f"norm={list(IMAGENET_MEAN)}/{list(IMAGENET_STD)}", f"views={sorted(VIEWS.items())}"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# --------------------------------------------------------------------------- building


@torch.no_grad()
def compute_features(dataset: VideoDataset, trunk: torch.nn.Module, height: int, width: int, *,
                     load_frames: Callable[[Tracklet], np.ndarray], device: torch.device | str = "cpu",
                     batch_frames: int = 256, show_progress: bool = True) -> tuple[torch.Tensor, dict, dict]:
    """Run the trunk (eval mode) over every frame and view: ``(maps float16 [F, C, h, w], offsets, lengths)``."""
    from tqdm.auto import tqdm

    from fgra_core.data.transforms import ClipTransform

    transform = ClipTransform(height, width, train=False)
    device = torch.device(device)
    was_training = trunk.training
    trunk.eval()
    offsets: dict[str, np.ndarray] = {}
    lengths: dict[str, np.ndarray] = {}
    total = sum(len(t) * len(VIEWS[w]) for w in SETS for t in getattr(dataset, w))
    chunks: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    pending_n = 0
    row = 0
    bar = tqdm(total=total, desc="trunk features", unit="frame", leave=False, disable=not show_progress)

    def flush() -> None:
        nonlocal pending, pending_n
        if pending:
            x = torch.cat(pending).to(device)
            chunks.append(trunk(x).to("cpu", torch.float16))
            bar.update(x.shape[0])
            pending, pending_n = [], 0

    for which in SETS:
        tracks = getattr(dataset, which)
        views = VIEWS[which]
        off = np.zeros((len(tracks), 2), dtype=np.int64)
        lengths[which] = np.asarray([len(t) for t in tracks], dtype=np.int64)
        for i, t in enumerate(tracks):
            x = transform(load_frames(t))                                     # float [T, 3, H, W]
            for v in views:
                off[i, v] = row
                pending.append(x.flip(-1) if v == 1 else x)
                pending_n += x.shape[0]
                row += x.shape[0]
                if pending_n >= batch_frames:
                    flush()
            if len(views) == 1:
                off[i, 1] = off[i, 0]          # test sets: the mirror view is the frame itself
        offsets[which] = off
    flush()
    bar.close()
    trunk.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0), offsets, lengths


@contextmanager
def _locked(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
    except OSError as exc:
        raise StorageError(f"trunk feature cache folder {path.parent} is not writable ({exc.strerror or exc}) and "
                           f"holds no valid cache {path.with_suffix('.pt').name}; expected a writable "
                           "data.feature_cache_dir, or one holding a valid cache", errno=exc.errno,
                           path=str(path)) from exc
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read(path: Path, key: str) -> tuple[TrunkFeatures | None, str]:
    """``(features, "")`` if the file at ``path`` is intact and holds ``key``; ``(None, why not)`` otherwise
    (``why`` is ``""`` when there is no file)."""
    if not path.is_file():
        return None, ""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        ok = (isinstance(blob, dict) and blob.get("format") == FILE_FORMAT and blob.get("key") == key
              and isinstance(blob.get("maps"), torch.Tensor))
        if ok:
            offsets = {w: np.asarray(blob["offsets"][w], dtype=np.int64) for w in SETS}
            lengths = {w: np.asarray(blob["lengths"][w], dtype=np.int64) for w in SETS}
            rows = blob["maps"].shape[0]
            ends = [int((offsets[w].max(initial=0) if len(lengths[w]) else 0)) for w in SETS]
            ok = all(e <= rows for e in ends) and all(
                (offsets[w][:, 1] + lengths[w] <= rows).all() for w in SETS if len(lengths[w]))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is rebuilt
        return None, f"is unreadable ({type(exc).__name__}: {exc})"
    if not ok:
        return None, f"holds other or incomplete contents (not key {key[:12]}..., file format {FILE_FORMAT})"
    problem = verify(blob["maps"], offsets, lengths, blob.get("checksums"))
    if problem:
        return None, problem
    return TrunkFeatures(key, blob["maps"], offsets, lengths, dict(blob.get("meta") or {})), ""


_MEMORY: dict[str, TrunkFeatures] = {}   # per process: a batch of head runs loads each file once


def load_or_build(dataset: VideoDataset, trunk: torch.nn.Module, height: int, width: int, *, cache_dir: str | os.PathLike,
                  load_frames: Callable[[Tracklet], np.ndarray], trunk_name: str = "", device="cpu",
                  show_progress: bool = True, keep_in_memory: bool = True, on_build: Callable[[], None] | None = None,
                  ) -> TrunkFeatures:
    """The dataset's trunk features: from memory, from ``cache_dir`` (verified), or computed (then saved)."""
    key = cache_key(dataset, trunk, height, width, trunk_name=trunk_name)
    if key in _MEMORY:
        return _MEMORY[key]
    path = Path(cache_dir) / f"{key[:20]}.pt"
    feats, _ = _read(path, key)               # no lock: a valid file is read as it is (read-only folders too)
    if feats is None:
        with _locked(path.with_suffix(".lock")):
            feats, problem = _read(path, key)  # another builder may have written it meanwhile
            if feats is None:
                if problem:
                    warn_line(f"trunk feature cache {path} {problem}; rebuilding it", CacheWarning,
                              where="fgra_core.engine.trunk_cache")
                if on_build is not None:
                    on_build()
                maps, offsets, lengths = compute_features(dataset, trunk, height, width, load_frames=load_frames,
                                                          device=device, show_progress=show_progress)
                check_finite_build(maps, trunk_name or type(trunk).__name__)
                meta = {"dataset": dataset.name, "trunk": trunk_name, "height": int(height), "width": int(width),
                        "frames": int(maps.shape[0])}
                atomic_torch_save({"format": FILE_FORMAT, "key": key, "maps": maps,
                                   "offsets": {w: torch.from_numpy(offsets[w]) for w in SETS},
                                   "lengths": {w: torch.from_numpy(lengths[w]) for w in SETS}, "meta": meta,
                                   "checksums": checksums(maps, offsets, lengths)}, path)
                feats = TrunkFeatures(key, maps, offsets, lengths, meta)
    if keep_in_memory:
        _MEMORY.clear()   # one dataset at a time: a batch of runs is grouped by dataset
        _MEMORY[key] = feats
    return feats


def footprint_bytes(feats: TrunkFeatures) -> int:
    return int(feats.maps.numel() * feats.maps.element_size())


__all__: Sequence[str] = ("TrunkFeatures", "dataset_digest", "module_digest", "cache_key", "compute_features",
                          "load_or_build", "footprint_bytes")
