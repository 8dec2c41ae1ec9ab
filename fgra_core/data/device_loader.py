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

import numpy as np
import torch

from fgra_core.data.device_transforms import DeviceClipTransform, params_to_tensor
from fgra_core.data.loaders import TrainClipDataset, TrainLoader, load_frames
from fgra_core.data.packed_frames import PackedFrameCache
from fgra_core.errors import DatasetError


class Uint8ClipBatches:
    """Batch of keys -> ``(frames uint8 [B, N, H, W, 3], params int64 [B, 7], pids, camids)``."""

    def __init__(self, clips: TrainClipDataset, packed: PackedFrameCache | None = None):
        self.clips = clips
        self.packed = packed
        self.pids = torch.tensor([t.pid for t in clips.tracklets], dtype=torch.int64)
        self.camids = torch.tensor([t.camid for t in clips.tracklets], dtype=torch.int64)
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
        frames = load_frames(t, self.clips.cache, idx)
        if frames.shape[1:3] != out.shape[1:3]:
            raise DatasetError(
                f"frames of tracklet {t.name or index} are {frames.shape[1]}x{frames.shape[2]} but the batch holds "
                f"{out.shape[1]}x{out.shape[2]} frames; augmenting on the device needs one frame size: set "
                "data.cache_dir (its packed cache stores every frame at one size) or data.augment_on: cpu")
        out[...] = frames

    def __getitem__(self, keys):
        n = self.clips.seq_len
        params, index = [], np.empty(len(keys), np.int64)
        draws = [self.clips.clip_draw(k) for k in keys]
        if self.frame_size is None:
            first = load_frames(self.clips.tracklets[draws[0][0]], self.clips.cache, draws[0][1][:1])
            self.frame_size = tuple(first.shape[1:3])
        h, w = self.frame_size
        out = torch.empty((len(keys), n, h, w, 3), dtype=torch.uint8)
        arr = out.numpy()
        for b, (i, idx, g) in enumerate(draws):
            index[b] = i
            self._read(arr[b], i, idx)
            params.append(self.clips.transform.sample_params(g))
        sel = torch.from_numpy(index)
        return out, params_to_tensor(params), self.pids[sel], self.camids[sel]


class DeviceTrainLoader(TrainLoader):
    """A :class:`TrainLoader` of uint8 batches; ``device_transform`` augments them on the device."""

    device_transform: DeviceClipTransform

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)


def device_loader_from(loader: TrainLoader, packed: PackedFrameCache | None = None,
                       pin_memory: bool = False) -> DeviceTrainLoader:
    """The device-augmentation twin of a CPU-path loader: same batches of keys, same draws, same workers."""
    clips: TrainClipDataset = loader.dataset
    if not clips.transform.train:
        raise ValueError("the device-augmentation loader needs a training ClipTransform")
    batches = Uint8ClipBatches(clips, packed)
    out = DeviceTrainLoader(batches, sampler=loader.batch_sampler, batch_size=None,
                            num_workers=loader.num_workers, persistent_workers=loader.num_workers > 0,
                            pin_memory=pin_memory)
    out.device_transform = DeviceClipTransform(clips.transform)
    return out
