"""Atomic file writes: a temporary file in the target folder, fsync, then ``os.replace``.

A reader never sees a half-written file, and a failed write (full disk, kill) leaves the
previous version untouched. A write that fails with an ``OSError`` (``ENOSPC``, ``EROFS``,
``EACCES`` ...) removes its temporary file and raises :class:`~fgra_core.errors.StorageError`
naming the file (an ``FGRAError`` and an ``OSError`` with the same ``errno``).

A process killed during a write leaves its temporary file ``.<name>.<random>.tmp`` beside the
target (never the target itself half-written); :func:`remove_stale_temps` deletes such leftovers
and the training engine calls it when a run starts or resumes.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import StorageError

TEMP_SUFFIX = ".tmp"


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


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (one ``write`` call) and fsync. A failed write (full disk) cuts the
    file back to its previous length and raises :class:`~fgra_core.errors.StorageError`; a
    process killed at that moment may leave a partial last line (the training engine rewrites
    its ``metrics.jsonl`` from the checkpoint when it resumes)."""
    path = Path(path)
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
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
