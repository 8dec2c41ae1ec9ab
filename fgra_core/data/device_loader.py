"""The training loader of the device-augmentation path: uint8 clips plus their drawn parameters.

Each item of :class:`Uint8ClipBatches` is a whole batch of ``(index, epoch, draw)`` keys (from
the same :class:`~fgra_core.data.loaders.KeyedBatchSampler` as the CPU path) and becomes
``(frames uint8 [B, N, H, W, 3], params int64 [B, 7], pids [B], camids [B])``: the frame
indices and the clip parameters come from :meth:`TrainClipDataset.clip_draw` and
:meth:`ClipTransform.sample_params`, the very draws of the CPU path, and the frames are read
straight into one preallocated uint8 batch (from a :class:`PackedFrameCache`, from in-memory
tracklets, or else through the per-process :class:`FrameCache`). The device then augments the
batch with :class:`~fgra_core.data.device_transforms.DeviceClipTransform`.
"""
from __future__ import annotations

import mmap
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import numpy as np
import torch

from fgra_core.data.device_transforms import DeviceClipTransform, params_to_tensor
from fgra_core.data.loaders import KeyedBatchSampler, TrainClipDataset, TrainLoader, load_frames
from fgra_core.data.packed_frames import PackedFrameCache
from fgra_core.utils.errors import DatasetError


class Uint8ClipBatches:
    """Batch of keys -> ``(frames uint8 [B, N, H, W, 3], params int64 [B, 7], pids, camids)``."""

    def __init__(self, clips: TrainClipDataset, packed: PackedFrameCache | None = None):
        self.clips = clips
        self.packed = packed
        self.pids = torch.tensor([t.pid for t in clips.tracklets], dtype=torch.int64)
        self.camids = torch.tensor([t.camid for t in clips.tracklets], dtype=torch.int64)
        self._lock = threading.Lock()
        self._buffers = HostBufferPool()
        if packed is not None:
            self.frame_size = (packed.height, packed.width)
        elif clips.tracklets[0].in_memory:
            self.frame_size = tuple(clips.tracklets[0].frames.shape[1:3])
        else:
            self.frame_size = None  # known after the first decode

    def set_epoch(self, epoch: int) -> None:
        self.clips.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def _read(self, out: np.ndarray, index: int, idx: np.ndarray) -> None:
        if self.packed is not None:
            self.packed.read_into(out, index, idx)
            return
        t = self.clips.tracklets[index]
        with self._lock:  # the per-process FrameCache is not shared between threads
            frames = load_frames(t, self.clips.cache, idx)
        if frames.shape[1:3] != out.shape[1:3]:
            raise DatasetError(
                f"frames of tracklet {t.name or index} are {frames.shape[1]}x{frames.shape[2]} but the batch holds "
                f"{out.shape[1]}x{out.shape[2]} frames; augmenting on the device needs one frame size: set "
                "data.cache_dir (its packed cache stores every frame at one size) or data.augment_on: cpu")
        out[...] = frames

    def batch_shape(self, batch_size: int) -> tuple[int, int, int, int, int]:
        if self.frame_size is None:
            with self._lock:
                t = self.clips.tracklets[0]
                self.frame_size = tuple(load_frames(t, self.clips.cache, [0]).shape[1:3])
        return (batch_size, self.clips.seq_len, *self.frame_size, 3)

    def new_buffer(self, batch_size: int, pin_memory: bool = False) -> torch.Tensor:
        return self._buffers.get(self.batch_shape(batch_size), pin_memory)

    def __getitem__(self, keys):
        return self.load(keys, self.new_buffer(len(keys)))

    def load(self, keys, out: torch.Tensor):
        """Fill ``out`` (uint8 ``[len(keys), N, H, W, 3]``) with the clips of ``keys``; returns the batch."""
        params, index = [], np.empty(len(keys), np.int64)
        if tuple(out.shape) != self.batch_shape(len(keys)) or out.dtype != torch.uint8:
            raise ValueError(f"expected a uint8 batch buffer of shape {self.batch_shape(len(keys))}, "
                             f"got {out.dtype} {tuple(out.shape)}")
        arr = out.numpy()
        for b, key in enumerate(keys):
            i, idx, g = self.clips.clip_draw(key)
            index[b] = i
            self._read(arr[b], i, idx)
            params.append(self.clips.transform.sample_params(g))
        sel = torch.from_numpy(index)
        return out, params_to_tensor(params), self.pids[sel], self.camids[sel]


class DeviceTrainLoader:
    """Uint8 batches filled by ``num_workers`` threads of this process, ``prefetch`` batches ahead.

    Threads, not processes: reading a warm clip is a ``preadv`` and decoding a JPEG is PIL's C
    code, both without the GIL, and a batch filled in this process needs no copy through shared
    memory. Batch buffers are pinned (CUDA's caching host allocator, which reuses a block once its
    asynchronous copy is done) when ``pin_memory``, else reused from a :class:`HostBufferPool`.
    ``device_transform`` augments the batches on the device; ``len``, ``set_epoch``, ``sampler``
    and ``dataset`` are those of a torch loader.
    """

    def __init__(self, batches: Uint8ClipBatches, sampler: KeyedBatchSampler, num_workers: int = 2,
                 prefetch: int = 2, pin_memory: bool = False):
        self.dataset = batches
        self.sampler = sampler
        self.num_workers = int(num_workers)
        self.prefetch = max(1, int(prefetch))
        self.pin_memory = bool(pin_memory)
        self.device_transform = DeviceClipTransform(batches.clips.transform)

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def _load(self, keys):
        return self.dataset.load(keys, self.dataset.new_buffer(len(keys), pin_memory=self.pin_memory))

    def __iter__(self):
        keys = iter(self.sampler)
        if self.num_workers <= 0:
            for k in keys:
                yield self._load(k)
            return
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="fgra-loader")
        try:
            pending = deque(pool.submit(self._load, k) for k in islice(keys, self.num_workers * self.prefetch))
            while pending:
                batch = pending.popleft().result()
                nxt = next(keys, None)
                if nxt is not None:
                    pending.append(pool.submit(self._load, nxt))
                yield batch
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def device_loader_from(loader: TrainLoader, packed: PackedFrameCache | None = None,
                       pin_memory: bool = False, prefetch: int = 2) -> DeviceTrainLoader:
    """The device-augmentation twin of a CPU-path loader: same batches of keys, same draws, as many workers (threads)."""
    clips: TrainClipDataset = loader.dataset
    if not clips.transform.train:
        raise ValueError("the device-augmentation loader needs a training ClipTransform")
    return DeviceTrainLoader(Uint8ClipBatches(clips, packed), loader.batch_sampler, num_workers=loader.num_workers,
                             prefetch=prefetch, pin_memory=pin_memory)


class HostBufferPool:
    """Unpinned batch buffers, each reused once no tensor views it any more (no fresh pages to fault in
    and zero for every batch). Pinned buffers come from CUDA's caching host allocator instead."""

    def __init__(self, max_buffers: int = 16):
        self.max_buffers = int(max_buffers)
        self._arrays: list[np.ndarray] = []
        self._lock = threading.Lock()

    def get(self, shape: tuple[int, ...], pin_memory: bool = False) -> torch.Tensor:
        if pin_memory:
            return host_buffer(shape, pin_memory=True)
        shape = tuple(int(s) for s in shape)
        with self._lock:
            for arr in self._arrays:
                # references: this list, the loop variable, getrefcount's argument; a live tensor adds one
                if arr.shape == shape and sys.getrefcount(arr) == 3:
                    return torch.from_numpy(arr)
            arr = _host_array(shape)
            if len(self._arrays) < self.max_buffers:
                self._arrays.append(arr)
            return torch.from_numpy(arr)  # the tensor holds a reference to the array while it lives


def host_buffer(shape: tuple[int, ...], pin_memory: bool = False) -> torch.Tensor:
    """An uninitialised uint8 host tensor: pinned, or else backed by transparent huge pages where the
    kernel offers them (a fresh 37 MB batch then costs a few page faults instead of ~9,000)."""
    if pin_memory:
        return torch.empty(shape, dtype=torch.uint8, pin_memory=True)
    return torch.from_numpy(_host_array(shape))


def _host_array(shape: tuple[int, ...]) -> np.ndarray:
    nbytes = int(np.prod(shape))
    if nbytes < 1 << 21 or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(shape, np.uint8)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        buf.madvise(mmap.MADV_HUGEPAGE)
    except OSError:
        pass
    return np.frombuffer(buf, dtype=np.uint8).reshape(shape)  # the array keeps the map alive
