"""User-facing error types. Every message names the offending file or key and what was expected."""


class FGRAError(Exception):
    """Base class of every error this package raises on purpose."""


class DatasetError(FGRAError):
    """A dataset on disk does not match its documented layout."""


class ConfigError(FGRAError):
    """A configuration value is unknown, of the wrong type or impossible."""


class WeightsError(FGRAError):
    """Pretrained weights could not be found, downloaded or loaded."""


class StorageError(FGRAError, OSError):
    """A file could not be written (full disk, read-only or missing folder, permissions).

    Raised by the atomic writers of :mod:`fgra_core.utils.io`; the previous version of the file, if
    any, is unchanged. It is also an ``OSError`` (with the ``errno`` of the cause), so code that
    handles ``OSError`` keeps working.
    """

    def __init__(self, message: str, errno: int | None = None, path: str | None = None):
        super().__init__(message)
        self.errno = errno
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):
        return (type(self), (str(self), self.errno, self.path))


class RunLockedError(FGRAError):
    """A run folder (or a study manifest) is held by another process; the one-line message names
    it (pid, host) and the lock file."""


class TrainingDivergedError(FGRAError):
    """Training met a non-finite loss or gradient; the message names the epoch, the step and the
    loss terms, and the last finite checkpoint is kept."""
