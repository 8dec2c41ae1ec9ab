"""One writer per run folder and per study manifest: an OS file lock (``fcntl.flock``).

``hold_run(run_dir)`` is held by the training entry around the whole run (from the check of its
record to its ``results.json``); a second process asking for the same folder gets, at once, a
:class:`~fgra_core.utils.errors.RunLockedError` whose one-line message names the holder (pid, host,
since when). The lock file (``<run_dir>/.lock``) holds that description while the lock is held
and is empty otherwise; the kernel releases the lock when its process ends, however it ends
(SIGKILL included), so there is never a stale lock to delete by hand.

``hold_manifest(path)`` serialises the writes of a study manifest (it waits: a manifest write
takes milliseconds). ``holder(run_dir)`` tells, without waiting, who holds a run folder (``None``
when nobody does); ``wait_for_run(run_dir)`` blocks until its holder is done.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fgra_core.utils.errors import RunLockedError, StorageError

RUN_LOCK = ".lock"
POLL_S = 0.2


def run_lock_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / RUN_LOCK


def manifest_lock_path(manifest: str | os.PathLike) -> Path:
    manifest = Path(manifest)
    return manifest.with_name(f".{manifest.name}.lock")


def _describe(fd_or_path) -> str:
    try:
        if isinstance(fd_or_path, int):
            raw = os.pread(fd_or_path, 4096, 0)
        else:
            raw = Path(fd_or_path).read_bytes()[:4096]
        info = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return f"process {info['pid']} on host {info.get('host', '?')} (since {info.get('since', '?')})"


def _open(path: Path, create: bool) -> int:
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the user's umask applies
        except OSError as exc:
            raise StorageError(f"lock file {path} cannot be created ({exc.strerror or exc}); expected a writable "
                               "run folder", errno=exc.errno, path=str(path)) from exc
    return os.open(path, os.O_RDONLY)


@contextmanager
def hold(lock_path: str | os.PathLike, what: str, *, wait: float | None = 0.0,
         hint: str = "") -> Iterator[Path]:
    """Hold the exclusive lock of ``lock_path`` for the ``with`` block.

    ``wait``: 0 fails at once when another process holds it, ``None`` waits as long as it takes,
    a number of seconds waits that long. The refusal is one line naming ``what``, the holder
    and the lock file, then ``hint``.
    """
    lock_path = Path(lock_path)
    fd = _open(lock_path, create=True)
    try:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise RunLockedError(f"{what} is in use by {_describe(fd)} (lock file {lock_path})"
                                         + (f"; {hint}" if hint else "")) from None
                time.sleep(POLL_S)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": _dt.datetime.now().isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
        except OSError:
            pass  # the description is a courtesy; the lock itself is held
        try:
            yield lock_path
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def hold_run(run_dir: str | os.PathLike, *, wait: float | None = 1.0):
    """The one-writer lock of a run folder (created if needed); see :func:`hold`. The short default
    wait only rides over another process's :func:`holder` probe."""
    run_dir = Path(run_dir)
    return hold(run_lock_path(run_dir), f"run folder {run_dir}", wait=wait,
                hint="wait for it to end, or give this request another run_dir")


def hold_manifest(manifest: str | os.PathLike, *, wait: float | None = None):
    """The one-writer lock of a study manifest (waits by default); see :func:`hold`."""
    manifest = Path(manifest)
    return hold(manifest_lock_path(manifest), f"study manifest {manifest}", wait=wait)


def holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds the run folder's lock (``"process 123 on host h (since ...)"``), ``None`` if nobody."""
    path = run_lock_path(run_dir)
    try:
        fd = _open(path, create=False)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_for_run(run_dir: str | os.PathLike, timeout: float | None = None) -> bool:
    """Block until nobody holds the run folder (``True``), or ``timeout`` seconds pass (``False``)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while holder(run_dir) is not None:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True
