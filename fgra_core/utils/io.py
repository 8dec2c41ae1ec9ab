"""Atomic file writes: a temporary file in the target folder, fsync, then ``os.replace``.

A reader never sees a half-written file, and a failed write (full disk, kill) leaves the
previous version untouched. A write that fails with an ``OSError`` (``ENOSPC``, ``EROFS``,
``EACCES`` ...) removes its temporary file and raises :class:`~fgra_core.utils.errors.StorageError`
naming the file (an ``FGRAError`` and an ``OSError`` with the same ``errno``).

A process killed during a write leaves its temporary file ``.<name>.<random>.tmp`` beside the
target (never the target itself half-written); :func:`remove_stale_temps` deletes such leftovers
and the training engine calls it when a run starts or resumes.
"""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from fgra_core.utils.errors import StorageError

TEMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's umask, read without changing it (``/proc``), else by the set-and-restore
    dance (not thread-safe, hence only the fallback)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-Infinity) replaced by ``None``: JSON as the
    standard has it, which every reader accepts (Python writes ``NaN`` by default)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def json_line(record: dict) -> str:
    """One strict-JSON line (sorted keys, non-finite numbers as ``null``), ending in a newline."""
    return json.dumps(strict_json(record), sort_keys=True, allow_nan=False) + "\n"


def _storage_error(path: Path, exc: OSError, what: str = "write") -> StorageError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return StorageError(
        f"could not {what} {path} ({reason}); the previous version of the file, if any, is unchanged "
        "-- free some space or fix the folder's permissions and run again",
        errno=exc.errno, path=str(path))


def temp_prefix(path: str | os.PathLike) -> str:
    """Prefix of the temporary files :func:`atomic_write_bytes` creates for ``path``."""
    return f".{Path(path).name}."


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a written file is shareable
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise _storage_error(path, exc) from exc
        raise
    return path


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Write (then delete) a probe file in ``folder`` -- or, when it does not exist yet, in its nearest
    existing parent, creating nothing; a folder that cannot be written is one :class:`StorageError`
    naming it and saying ``what`` needs it (so that it comes before that work starts)."""
    folder = Path(folder)
    try:
        probe_dir = folder
        while not probe_dir.exists() and probe_dir.parent != probe_dir:
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(probe_dir))
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=TEMP_SUFFIX, dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise StorageError(f"folder {folder} is not writable ({reason}); {what} write there -- fix the folder's "
                           "permissions (or give another project folder) and run again",
                           errno=exc.errno, path=str(folder)) from exc
    return folder


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(strict_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (one ``write`` call) and fsync. A failed write (full disk) cuts the
    file back to its previous length and raises :class:`~fgra_core.utils.errors.StorageError`; a
    process killed at that moment may leave a partial last line (the training engine rewrites
    its ``metrics.jsonl`` from the checkpoint when it resumes)."""
    path = Path(path)
    line = json_line(record).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask decides
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        if isinstance(exc, StorageError):
            raise
        raise _storage_error(path, exc, "append to") from exc


def remove_stale_temps(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_write_bytes` left for ``folder/<name>``
    (only files named ``.<name>.*.tmp``); returns the paths removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for name in names:
        for tmp in folder.glob(f"{temp_prefix(name)}*{TEMP_SUFFIX}"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed
