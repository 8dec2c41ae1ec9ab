"""One file holding every decoded frame of a training set, read by slices into a batch.

:class:`PackedFrameCache` is the layout of the frame cache that the device-augmentation loader
reads: under ``cache_dir``, one file ``packed-<sha1>.frames`` per list of path-based
tracklets, made of a 4 KiB header (magic, frame count, H, W), one "decoded" flag byte per
frame, one CRC-32 per frame (little-endian ``uint32``, written before the flag) and then every
frame, uint8 ``[F, H, W, 3]``, tracklet after tracklet in frame order. All
frames share one size (the first frame's, or ``size=(H, W)``; a frame of another size is
resized when decoded). The file is created sparse; a frame is decoded at most once, by
whichever process needs it first (loader workers share the file), or ahead of training by
:meth:`~PackedFrameCache.fill` (CPU, this process), :meth:`~PackedFrameCache.fill_parallel`
(CPU, worker processes) or :meth:`~PackedFrameCache.fill_with_torchvision` (``decode_jpeg`` on
a CUDA device). Once warm, reading a clip is one ``preadv`` per run of consecutive frames,
straight into the caller's uint8 batch: no per-frame Python object.

Verified, not trusted: the first time a process reads a decoded frame its CRC-32 is checked; a
frame that fails it is decoded again from its image file (and stored again), with one warning
line per process naming the cache file. A file of the earlier layout (``FGRAPCK1``, no
checksums) is replaced by a new one, with one warning line.

:func:`cache_footprint` gives the bytes of either cache layout for given tracklet lengths.
"""
from __future__ import annotations

import hashlib
import os
import threading
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from fgra_core.data.frames import read_image
from fgra_core.utils.errors import DatasetError
from fgra_core.utils.warn import CacheWarning, warn_line

_MAGIC = b"FGRAPCK2"
_OLD_MAGIC = b"FGRAPCK1"  # the layout without checksums: replaced
_CRC = 4  # bytes of the CRC-32 of one frame
_PAGE = 4096
_OPEN_LOCK = threading.Lock()
_HEADER = _PAGE  # magic + (F, H, W) as int64, padded to one page
_TRACKLET_HEADER = 64  # the per-tracklet FrameCache file header (fgra_core.data.frames)


def _data_offset(num_frames: int) -> int:
    return -(-(_HEADER + num_frames * (1 + _CRC)) // _PAGE) * _PAGE


def _crc(frame: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(frame, dtype=np.uint8)).cast("B"))


def cache_footprint(lengths: Sequence[int], height: int, width: int, layout: str = "packed") -> int:
    """Bytes on disk of a fully decoded cache of tracklets of ``lengths`` frames at ``height x width``.

    ``packed``: :class:`PackedFrameCache` (header page, a flag byte and a CRC-32 per frame, page-aligned
    frames);
    ``per-tracklet``: :class:`~fgra_core.data.frames.FrameCache` with a ``cache_dir`` (one file per
    tracklet: 64-byte header, a flag byte and a CRC-32 per frame, frames).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    frames = int(lengths.sum())
    frame_bytes = int(height) * int(width) * 3
    if layout == "packed":
        return _data_offset(frames) + frames * frame_bytes
    if layout == "per-tracklet":
        return int(len(lengths) * _TRACKLET_HEADER + frames * (1 + _CRC) + frames * frame_bytes)
    raise ValueError(f"cache layout must be 'packed' or 'per-tracklet', got {layout!r}")


def _frames_of(t):
    frames = t.frames if hasattr(t, "frames") else t
    if isinstance(frames, np.ndarray):
        raise DatasetError("the packed frame cache holds path-based tracklets; in-memory tracklets need no cache")
    return tuple(frames)


class PackedFrameCache:
    """Decoded uint8 frames of path-based ``tracklets`` in one shared file under ``cache_dir``."""

    def __init__(self, tracklets: Sequence, cache_dir: str | os.PathLike, size: tuple[int, int] | None = None):
        self.frames = [_frames_of(t) for t in tracklets]
        for i, f in enumerate(self.frames):
            if not f:
                name = getattr(tracklets[i], "name", "") or f"#{i}"
                raise DatasetError(f"empty tracklet {name}: every tracklet needs at least one frame")
        lengths = np.fromiter((len(f) for f in self.frames), np.int64, len(self.frames))
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.num_frames = int(self.offsets[-1])
        self.decoded = 0
        self.cache_dir = Path(cache_dir)
        h = hashlib.sha1(repr(None if size is None else tuple(int(s) for s in size)).encode())
        for f in self.frames:
            h.update("\0".join(f).encode("utf-8", "surrogateescape"))
            h.update(b"\1")
        self.path = self.cache_dir / f"packed-{h.hexdigest()}.frames"
        self._fd: int | None = None
        self._pid: int | None = None
        self._flags: np.memmap | None = None
        self._crcs: np.memmap | None = None
        self._verified: np.ndarray | None = None  # per process: frames whose CRC this process checked
        self._warned = False
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(f"frame cache folder {self.cache_dir} cannot be created ({exc})") from exc
        if not self.path.exists():
            self._create(size)
        elif self._magic() == _OLD_MAGIC:
            warn_line(f"frame cache file {self.path} is of the layout without checksums ({_OLD_MAGIC.decode()}); "
                      "replacing it", CacheWarning, where="fgra_core.data.packed_frames")
            self._create(size)
        self.height, self.width = self._read_header()
        self.frame_bytes = self.height * self.width * 3
        self.data_offset = _data_offset(self.num_frames)

    # ------------------------------------------------------------------ file
    def _create(self, size) -> None:
        if size is None:
            first = read_image(self.frames[0][0])
            self.decoded += 1
            size = first.shape[:2]
        hh, ww = (int(s) for s in size)
        total = _data_offset(self.num_frames) + self.num_frames * hh * ww * 3
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(_MAGIC + np.array([self.num_frames, hh, ww], "<i8").tobytes())
                fh.truncate(total)  # sparse: frames take disk space as they are decoded
            os.replace(tmp, self.path)
        except OSError as exc:
            raise DatasetError(f"frame cache file {self.path} cannot be created ({exc.strerror or exc}); "
                               f"it needs {total / 2**30:.1f} GiB once full") from exc

    def _magic(self) -> bytes:
        try:
            with open(self.path, "rb") as fh:
                return fh.read(8)
        except OSError:
            return b""

    def _read_header(self) -> tuple[int, int]:
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(32)
                size = os.fstat(fh.fileno()).st_size
        except OSError as exc:
            raise DatasetError(f"frame cache file {self.path} cannot be read ({exc.strerror or exc})") from exc
        if len(head) < 32 or head[:8] != _MAGIC:
            raise DatasetError(f"frame cache file {self.path} is not a packed frame cache; delete it to rebuild")
        n, hh, ww = (int(v) for v in np.frombuffer(head[8:32], "<i8"))
        if n != self.num_frames or size != _data_offset(n) + n * hh * ww * 3:
            raise DatasetError(f"frame cache file {self.path} is truncated or not made for these tracklets; "
                               "delete it to rebuild")
        return hh, ww

    def _open(self) -> int:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        with _OPEN_LOCK:  # loader threads share one descriptor
            return self._open_locked()

    def _open_locked(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDWR)
            except OSError as exc:
                raise DatasetError(f"frame cache file {self.path} cannot be opened ({exc.strerror or exc}); "
                                   "delete it to rebuild") from exc
            self._flags = np.memmap(self.path, np.uint8, mode="r+", offset=_HEADER, shape=(self.num_frames,))
            self._crcs = np.memmap(self.path, "<u4", mode="r+", offset=_HEADER + self.num_frames,
                                   shape=(self.num_frames,))
            self._verified = np.zeros(self.num_frames, dtype=bool)
            self._pid = os.getpid()
        return self._fd

    def __getstate__(self):  # worker processes open their own descriptor and map
        state = self.__dict__.copy()
        state.update(_fd=None, _pid=None, _flags=None, _crcs=None, _verified=None)
        return state

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None and self._pid == os.getpid():
            try:
                os.close(fd)
            except OSError:
                pass

    # ------------------------------------------------------------------ reading
    def filled(self) -> np.ndarray:
        """Boolean ``[F]``: which frames are decoded."""
        self._open()
        return np.asarray(self._flags).astype(bool)

    def disk_bytes(self) -> int:
        """Bytes the (sparse) file really occupies on disk now."""
        return int(os.stat(self.path).st_blocks) * 512

    def read_into(self, out: np.ndarray, tracklet: int, indices: np.ndarray) -> None:
        """Frames ``indices`` of tracklet number ``tracklet`` into ``out`` (uint8 ``[len, H, W, 3]``, C-contiguous)."""
        fd = self._open()
        idx = np.asarray(indices, dtype=np.int64)
        base = int(self.offsets[tracklet])
        length = int(self.offsets[tracklet + 1]) - base
        if idx.size and (idx.min() < 0 or idx.max() >= length):
            raise IndexError(f"frame indices {idx.tolist()} out of range for a tracklet of {length} frames")
        if out.shape != (idx.size, self.height, self.width, 3) or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"expected a C-contiguous uint8 buffer of shape {(idx.size, self.height, self.width, 3)}, "
                             f"got {out.dtype} {out.shape}")
        gid = base + idx
        have = self._flags[gid].astype(bool)
        if not have.all():
            for k in np.flatnonzero(~have).tolist():
                out[k] = self._decode_store(tracklet, int(idx[k]))
        # runs of consecutive frames that are already decoded: one read each
        k, n = 0, idx.size
        fb = self.frame_bytes
        while k < n:
            if not have[k]:
                k += 1
                continue
            e = k + 1
            while e < n and have[e] and gid[e] == gid[e - 1] + 1:
                e += 1
            want = (e - k) * fb
            got = os.preadv(fd, [memoryview(out[k:e]).cast("B")], self.data_offset + int(gid[k]) * fb)
            if got != want:
                raise DatasetError(f"frame cache file {self.path} is truncated; delete it to rebuild")
            for j in range(k, e):
                if not self._verified[gid[j]]:
                    self._verify(out, j, tracklet, int(idx[j]), int(gid[j]))
            k = e

    def _verify(self, out: np.ndarray, j: int, tracklet: int, i: int, gid: int) -> None:
        """Check frame ``out[j]`` (global id ``gid``) against its CRC-32; decode it again if it fails."""
        if _crc(out[j]) != int(self._crcs[gid]):
            if not self._warned:
                self._warned = True
                warn_line(f"frame cache file {self.path} fails the checksum of frame {i} of tracklet {tracklet} "
                          f"({self.frames[tracklet][i]}); decoding the damaged frames again",
                          CacheWarning, where="fgra_core.data.packed_frames")
            out[j] = self._decode_store(tracklet, i)
        self._verified[gid] = True

    def _decode_store(self, tracklet: int, i: int) -> np.ndarray:
        frame = read_image(self.frames[tracklet][i], size=(self.height, self.width))
        self.decoded += 1
        self._store(int(self.offsets[tracklet]) + i, frame)
        return frame

    def _store(self, gid: int, frame: np.ndarray) -> None:
        fd = self._open()
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        try:
            os.pwrite(fd, frame.data, self.data_offset + gid * self.frame_bytes)
            self._crcs[gid] = _crc(frame)
        except OSError as exc:
            full = (self.data_offset + self.num_frames * self.frame_bytes) / 2**30
            raise DatasetError(f"frame cache file {self.path} cannot be written ({exc.strerror or exc}); "
                               f"it needs {full:.1f} GiB once full") from exc
        self._flags[gid] = 1  # flag after data and CRC: a reader that sees the flag sees both
        self._verified[gid] = True

    # ------------------------------------------------------------------ cold pass
    def _locate(self, gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.searchsorted(self.offsets, gids, side="right") - 1
        return t, gids - self.offsets[t]

    def missing(self, limit: int | None = None) -> np.ndarray:
        """Global ids of the frames not decoded yet (the first ``limit`` of them)."""
        ids = np.flatnonzero(~self.filled())
        return ids if limit is None else ids[:limit]

    def fill(self, gids: Sequence[int] | np.ndarray | None = None, progress: bool = False) -> int:
        """Decode frames ``gids`` (default: all missing) in this process; returns how many."""
        from tqdm.auto import tqdm

        gids = self.missing() if gids is None else np.asarray(gids, dtype=np.int64)
        self._open()
        ts, fs = self._locate(gids)
        for t, i in tqdm(zip(ts.tolist(), fs.tolist()), total=len(gids), desc="decoding frames", disable=not progress):
            if not self._flags[self.offsets[t] + i]:
                self._decode_store(t, i)
        return len(gids)

    def fill_parallel(self, workers: int, gids: np.ndarray | None = None, chunk: int = 256,
                      progress: bool = False) -> int:
        """:meth:`fill` spread over ``workers`` processes (torch DataLoader workers)."""
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        gids = self.missing() if gids is None else np.asarray(gids, dtype=np.int64)
        chunks = [gids[s:s + chunk] for s in range(0, len(gids), chunk)]
        if workers <= 0:
            return sum(self.fill(c) for c in chunks)
        loader = DataLoader(_FillChunks(self, chunks), batch_size=None, num_workers=workers)
        done = 0
        for n in tqdm(loader, total=len(chunks), desc="decoding frames", disable=not progress):
            done += int(n)
        return done

    def fill_with_torchvision(self, device="cuda", gids: np.ndarray | None = None, batch: int = 512,
                              progress: bool = False) -> int:
        """Decode JPEG frames with ``torchvision.io.decode_jpeg`` on ``device`` (nvjpeg on CUDA), in batches.

        Frames at another size than the cache's are resized (bilinear, antialiased) on the device.
        Non-JPEG files are decoded on the CPU. Returns how many frames were decoded.
        """
        import torch
        import torch.nn.functional as F
        from torchvision.io import ImageReadMode, decode_jpeg
        from tqdm.auto import tqdm

        gids = self.missing() if gids is None else np.asarray(gids, dtype=np.int64)
        self._open()
        ts, fs = self._locate(gids)
        bar = tqdm(total=len(gids), desc=f"decoding frames on {device}", disable=not progress)
        for s in range(0, len(gids), batch):
            jpeg, other = [], []
            for g, t, i in zip(gids[s:s + batch].tolist(), ts[s:s + batch].tolist(), fs[s:s + batch].tolist()):
                path = self.frames[t][i]
                (jpeg if path.lower().endswith((".jpg", ".jpeg")) else other).append((g, t, i, path))
            datas = []
            for g, t, i, path in jpeg:
                try:
                    datas.append(torch.from_numpy(np.fromfile(path, dtype=np.uint8)))
                except OSError as exc:
                    raise DatasetError(f"frame image {path} cannot be read ({exc.strerror or exc}); "
                                       "expected an RGB JPEG/PNG file") from exc
            if datas:
                try:
                    images = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
                except RuntimeError:  # one bad file: decode one by one to name it
                    images = [self._decode_one(d, p, device) for d, (_, _, _, p) in zip(datas, jpeg)]
                sized = []
                for img in images:
                    if tuple(img.shape[-2:]) != (self.height, self.width):
                        img = F.interpolate(img[None].float(), size=(self.height, self.width), mode="bilinear",
                                            align_corners=False, antialias=True)[0].round().clamp(0, 255).byte()
                    sized.append(img)
                host = torch.stack(sized).permute(0, 2, 3, 1).contiguous().cpu().numpy()  # one copy back
                for (g, _, _, _), frame in zip(jpeg, host):
                    self._store(g, frame)
                    self.decoded += 1
            for g, t, i, _ in other:
                self._decode_store(t, i)
            bar.update(len(jpeg) + len(other))
        bar.close()
        return len(gids)

    @staticmethod
    def _decode_one(data, path, device):
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as exc:
            raise DatasetError(f"frame image {path} is corrupt or not an image ({exc}); "
                               "expected an RGB JPEG/PNG file") from exc


class _FillChunks:
    def __init__(self, cache: PackedFrameCache, chunks: list[np.ndarray]):
        self.cache, self.chunks = cache, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> int:
        return self.cache.fill(self.chunks[i])
