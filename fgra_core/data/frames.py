"""Frame ordering, image decoding with clear errors, and the uint8 frame cache.

* :func:`sort_frames` orders frame files numerically by the frame index in the file name
  (the last run of digits of the stem: ``0003C4T0003F001.jpg`` -> 1, ``0010.png`` -> 10,
  ``person_0001_10.png`` -> 10), never by string order or unsorted ``glob``.
* :func:`read_image` decodes one image to ``uint8 [H, W, 3]`` and raises
  :class:`~fgra_core.utils.errors.DatasetError` naming the file when it is missing, empty or corrupt.
* :class:`FrameCache` keeps decoded frames as uint8, in a per-process dict or in memmap files
  under a cache folder (shared by loader workers and by later runs), so that a frame is
  decoded at most once.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import warnings
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from fgra_core.utils.errors import DatasetError
from fgra_core.utils.warn import CacheWarning, warn_line

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
MAX_FRAME_PIXELS = 16_000_000  # a person crop is far smaller; a larger size is a corrupt header
_DIGITS = re.compile(r"(\d+)")


def frame_index(path: str | os.PathLike) -> int | None:
    """The frame index of a file name: the last run of digits of its stem (None if none)."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    runs = _DIGITS.findall(stem)
    return int(runs[-1]) if runs else None


def _sort_key(path: str) -> tuple:
    idx = frame_index(path)
    return (0 if idx is not None else 1, idx if idx is not None else 0, os.path.basename(path), path)


def sort_frames(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Frame paths ordered numerically by frame index (names without digits go last, by name)."""
    return sorted((os.fspath(p) for p in paths), key=_sort_key)


def is_numerically_ordered(paths: Sequence[str]) -> bool:
    idx = [frame_index(p) for p in paths]
    if any(i is None for i in idx):
        return False
    return all(a < b for a, b in zip(idx, idx[1:]))


def list_frames(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files of ``folder`` in numeric frame order.

    Hidden files (names starting with ``.``: editor and OS leftovers such as ``._0001.png``)
    are not frames. An entry that cannot be followed (a symlink loop) or an image name whose
    symlink points nowhere is a ``DatasetError`` naming it.
    """
    folder = Path(folder)
    names = []
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise DatasetError(f"tracklet folder {folder} cannot be listed ({exc.strerror or exc}); "
                           "expected a folder of image files") from None
    for e in entries:
        if e.name.startswith(".") or not e.name.lower().endswith(tuple(extensions)):
            continue
        try:
            is_file = e.is_file()
        except OSError as exc:
            raise DatasetError(f"frame {folder / e.name} cannot be followed ({exc.strerror or exc}; a symlink "
                               "loop?); expected an image file") from None
        if not is_file:
            if e.is_symlink():
                raise DatasetError(f"frame {folder / e.name} is a symlink to {os.readlink(e.path)!r}, which is not "
                                   "an image file")
            continue
        names.append(e.name)
    return sort_frames(str(folder / n) for n in names)


def list_folders(parent: str | os.PathLike, prefix: str = "") -> list[str]:
    """Names of the sub-folders of ``parent`` starting with ``prefix``, sorted; hidden ones skipped;
    an entry that cannot be followed (a symlink loop) is a ``DatasetError`` naming it."""
    parent = Path(parent)
    out = []
    for e in os.scandir(parent):
        if e.name.startswith(".") or not e.name.startswith(prefix):
            continue
        try:
            if e.is_dir():
                out.append(e.name)
        except OSError as exc:
            raise DatasetError(f"{parent / e.name} cannot be followed ({exc.strerror or exc}; a symlink loop?); "
                               "expected a folder of image files") from None
    return sorted(out)


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image file to RGB ``uint8 [H, W, 3]`` (resized to ``size=(H, W)`` if given)."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    try:
        nbytes = os.path.getsize(path)
    except OSError as exc:
        raise DatasetError(f"frame image {path} cannot be read ({exc.strerror}); expected an RGB JPEG/PNG file") from exc
    if nbytes == 0:
        raise DatasetError(f"frame image {path} is empty (0 bytes); expected an RGB JPEG/PNG file")
    try:
        with warnings.catch_warnings():
            # a corrupt header can claim a gigantic size: refuse it instead of allocating it
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_FRAME_PIXELS:
                    raise ValueError(f"header claims {img.width} x {img.height} pixels")
                img = to_rgb8(img, path)
                if size is not None and (img.height, img.width) != tuple(size):
                    img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(f"frame image {path} is corrupt or not an image ({exc}); expected an RGB JPEG/PNG file") from exc
    return arr


# image modes PIL converts to RGB exactly (alpha is dropped, a palette looked up, CMYK/YCbCr converted)
RGB_MODES = frozenset({"1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "LA", "PA", "CMYK", "YCbCr"})
# 16-bit grayscale (PIL opens a 16-bit grayscale PNG as I;16, or as I in older versions);
# a 16-bit RGB PNG is opened as RGB already reduced to its 8 high bits
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def to_rgb8(img, path: str):
    """An RGB 8-bit PIL image of ``img``: 16-bit grayscale scaled to 0..255 (``round(v / 257)``,
    the inverse of the usual 8 -> 16-bit expansion ``v * 257``); modes with no exact conversion
    (32-bit float, LAB, HSV, ...) are a ``DatasetError`` naming the file. PIL's own
    ``convert("RGB")`` clips 16-bit values at 255, which turns a 16-bit frame all white."""
    from PIL import Image

    if img.mode in RGB_MODES:
        return img.convert("RGB")
    if img.mode in SIXTEEN_BIT_MODES:
        arr = np.asarray(img).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DatasetError(f"frame image {path} holds values {arr.min()}..{arr.max()} in image mode {img.mode!r}; "
                               "expected 8- or 16-bit pixels (0..65535)")
        gray = ((arr + 128) // 257).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB")
    raise DatasetError(f"frame image {path} has image mode {img.mode!r}, which has no exact RGB conversion; "
                       "expected an 8- or 16-bit RGB or grayscale JPEG/PNG file")


# --------------------------------------------------------------------------- cache

_MAGIC = b"FGRAFRM2"
_OLD_MAGIC = b"FGRAFRM1"  # the layout without checksums: replaced when met
_HEADER = 64  # bytes: magic + (T, H, W) as int64 + padding
_CRC = 4  # bytes of the CRC-32 of one frame (after the flag bytes)


def _crc(frame: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(frame, dtype=np.uint8)).cast("B"))


def _magic(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(8)
    except OSError:
        return b""


def _tracklet_key(frames: Sequence[str], size: tuple[int, int] | None) -> str:
    """The cache key of a tracklet: its frame paths with each file's size and modification time,
    so that an image replaced at the same path is decoded again (a missing file keys as -1 and
    is reported by the decoder)."""
    h = hashlib.sha1()
    h.update(b"v2" + repr(size).encode())
    for p in frames:
        h.update(os.fspath(p).encode("utf-8", "surrogateescape"))
        try:
            st = os.stat(p)
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = (-1, -1)
        h.update(b"\0%d\0%d\0" % stamp)
    return h.hexdigest()


class _MemEntry:
    __slots__ = ("data", "filled")

    def __init__(self, t: int, h: int, w: int):
        self.data = np.empty((t, h, w, 3), np.uint8)
        self.filled = np.zeros(t, bool)


class FrameCache:
    """Decoded uint8 frames of path-based tracklets; a frame is decoded at most once.

    ``cache_dir=None`` keeps frames in a dict of this process (each DataLoader worker has its
    own). With ``cache_dir`` every tracklet is one memmap file ``<sha1>.frames`` (the sha1 of its frame paths
    with each file's size and modification time, so a replaced image is decoded again) holding a
    header, one "decoded" flag byte per frame, one CRC-32 per frame and the frames ``[T, H, W, 3]``;
    workers and later runs share it. A stored frame is checked against its CRC-32 the first time a
    process reads it; one that fails is decoded again from its image (one warning line per process
    naming the cache file), and a file of the layout without checksums is replaced. Frames of a tracklet are stored at the size of its first frame (or at
    ``size=(H, W)`` when given, which also shrinks the cache).

    ``max_bytes`` bounds the in-memory cache (least recently used tracklets are dropped first;
    None = unbounded): a test set read once, such as MARS's 681k test frames, need not stay in RAM.

    ``decoded`` counts image decodes done by this instance (to check that later epochs do none).
    """

    MAX_OPEN_MAPS = 128

    def __init__(
        self,
        cache_dir: str | os.PathLike | None = None,
        size: tuple[int, int] | None = None,
        max_bytes: int | None = None,
    ):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.size = tuple(int(s) for s in size) if size is not None else None
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self.decoded = 0
        self._mem_bytes = 0
        self._mem: dict[str, _MemEntry] = {}
        self._maps: dict[str, np.memmap] = {}
        self._keys: dict[tuple, str] = {}
        self._verified: dict[str, np.ndarray] = {}   # per process: frames whose CRC this process checked
        self._warned = False
        if self.cache_dir is not None:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatasetError(f"frame cache folder {self.cache_dir} cannot be created ({exc})") from exc

    # pickling (DataLoader workers): open memmaps are not sent, each process reopens them
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_maps"] = {}
        state["_keys"] = {}
        state["_verified"] = {}
        return state

    def __len__(self) -> int:
        return len(self._mem) + len(self._maps)

    def get(self, tracklet, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Frames ``indices`` (default all) of ``tracklet`` as uint8 ``[len(indices), H, W, 3]``."""
        frames = tracklet.frames if hasattr(tracklet, "frames") else tracklet
        if isinstance(frames, np.ndarray):
            return frames if indices is None else frames[np.asarray(indices, dtype=np.int64)]
        frames = tuple(frames)
        if len(frames) == 0:
            name = getattr(tracklet, "name", "") or "(unnamed)"
            raise DatasetError(f"empty tracklet {name}: every tracklet needs at least one frame")
        idx = np.arange(len(frames)) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(frames)):
            raise IndexError(f"frame indices {idx.tolist()} out of range for a tracklet of {len(frames)} frames")
        key = self._keys.get(frames)
        if key is None:  # one stat per frame per process, not per batch
            key = self._keys[frames] = _tracklet_key(frames, self.size)
        if self.cache_dir is None:
            data, filled = self._mem_entry(key, frames)
            crcs = None
        else:
            data, filled, crcs = self._map_entry(key, frames)
        missing = np.unique(idx[~filled[idx]]) if idx.size else idx
        for i in missing:
            frame = self._decode(frames[i], data.shape[1:3])
            data[i] = frame
            if crcs is not None:
                crcs[i] = _crc(frame)
                self._verified[key][i] = True
            filled[i] = True  # flag after data and CRC: a reader that sees the flag sees both
        if crcs is not None:
            self._check(key, frames, idx, data, crcs)
        return np.array(data[idx])

    def _check(self, key: str, frames, idx: np.ndarray, data, crcs) -> None:
        """Frames of ``idx`` stored earlier (by any process) checked once per process against their CRC-32."""
        seen = self._verified[key]
        for i in np.unique(idx[~seen[idx]]).tolist() if idx.size else []:
            if _crc(data[i]) != int(crcs[i]):
                if not self._warned:
                    self._warned = True
                    warn_line(f"frame cache file {self.cache_dir / (key + '.frames')} fails the checksum of frame {i} "
                              f"({frames[i]}); decoding the damaged frames again", CacheWarning,
                              where="fgra_core.data.frames")
                frame = self._decode(frames[i], data.shape[1:3])
                data[i] = frame
                crcs[i] = _crc(frame)
            seen[i] = True

    # ---------------------------------------------------------------- internals
    def _decode(self, path: str, size) -> np.ndarray:
        self.decoded += 1
        return read_image(path, size=tuple(size))

    def _first_shape(self, frames) -> tuple[np.ndarray, tuple[int, int]]:
        first = read_image(frames[0], size=self.size)
        self.decoded += 1
        return first, first.shape[:2]

    def _mem_entry(self, key, frames):
        entry = self._mem.pop(key, None)
        if entry is None:
            first, (h, w) = self._first_shape(frames)
            entry = _MemEntry(len(frames), h, w)
            entry.data[0] = first
            entry.filled[0] = True
            self._mem_bytes += entry.data.nbytes
            if self.max_bytes is not None:
                while self._mem and self._mem_bytes > self.max_bytes:
                    oldest = next(iter(self._mem))
                    self._mem_bytes -= self._mem.pop(oldest).data.nbytes
        self._mem[key] = entry  # most recently used last
        return entry.data, entry.filled

    def _map_entry(self, key, frames):
        t = len(frames)
        mm = self._maps.pop(key, None)
        if mm is None:
            path = self.cache_dir / f"{key}.frames"
            if path.exists() and _magic(path) == _OLD_MAGIC:
                warn_line(f"frame cache file {path} is of the layout without checksums ({_OLD_MAGIC.decode()}); "
                          "replacing it", CacheWarning, where="fgra_core.data.frames")
                self._create_map(path, frames)
            if not path.exists():
                self._create_map(path, frames)
            mm = self._open_map(path, t)
            # each open memmap holds a file descriptor: keep only the most recently used ones open
            while len(self._maps) >= self.MAX_OPEN_MAPS:
                del self._maps[next(iter(self._maps))]
        self._maps[key] = mm  # most recently used last
        if key not in self._verified:
            self._verified[key] = np.zeros(t, dtype=bool)
        h, w = self._read_hw(mm)
        filled = mm[_HEADER:_HEADER + t].view(np.bool_)
        crcs = mm[_HEADER + t:_HEADER + t * (1 + _CRC)].view("<u4")
        data = mm[_HEADER + t * (1 + _CRC):].reshape(t, h, w, 3)
        return data, filled, crcs

    def _read_hw(self, mm) -> tuple[int, int]:
        t, h, w = np.frombuffer(bytes(mm[8:32]), dtype="<i8")
        return int(h), int(w)

    def _create_map(self, path: Path, frames) -> None:
        first, (h, w) = self._first_shape(frames)
        t = len(frames)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        data_at = _HEADER + t * (1 + _CRC)
        total = data_at + t * h * w * 3
        with open(tmp, "wb") as fh:
            fh.truncate(total)
        mm = np.memmap(tmp, dtype=np.uint8, mode="r+", shape=(total,))
        mm[:8] = np.frombuffer(_MAGIC, np.uint8)
        mm[8:32] = np.frombuffer(np.array([t, h, w], "<i8").tobytes(), np.uint8)
        mm[data_at:data_at + h * w * 3] = first.reshape(-1)
        mm[_HEADER + t:_HEADER + t + _CRC] = np.frombuffer(np.array([_crc(first)], "<u4").tobytes(), np.uint8)
        mm[_HEADER] = 1
        mm.flush()
        del mm
        os.replace(tmp, path)  # another process may have won the race: both files are valid

    def _open_map(self, path: Path, t: int) -> np.memmap:
        try:
            mm = np.memmap(path, dtype=np.uint8, mode="r+")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"frame cache file {path} cannot be opened ({exc}); delete it to rebuild") from exc
        if bytes(mm[:8]) != _MAGIC or int(np.frombuffer(bytes(mm[8:16]), "<i8")[0]) != t:
            raise DatasetError(f"frame cache file {path} is not a frame cache for this tracklet; delete it to rebuild")
        h, w = self._read_hw(mm)
        if mm.size != _HEADER + t * (1 + _CRC) + t * h * w * 3:
            raise DatasetError(f"frame cache file {path} is truncated; delete it to rebuild")
        return mm
