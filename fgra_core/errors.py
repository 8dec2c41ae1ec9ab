"""User-facing error types. Every message names the offending file or key and what was expected."""


class FGRAError(Exception):
    """Base class of every error this package raises on purpose."""


class DatasetError(FGRAError):
    """A dataset on disk does not match its documented layout."""


class ConfigError(FGRAError):
    """A configuration value is unknown, of the wrong type or impossible."""


class WeightsError(FGRAError):
    """Pretrained weights could not be found, downloaded or loaded."""
