"""One-line warnings: the message alone, no source line under it.

``warnings.warn`` prints the caller's source line below the message; a cache that is rebuilt
should say so in **one** line naming the file. :func:`warn_line` issues the warning through the
``warnings`` machinery (so filters and ``pytest.warns`` see it) with a location that has no
source line: ``<module>:0: <Category>: <message>``.
"""
from __future__ import annotations

import warnings


class CacheWarning(UserWarning):
    """A cached file failed its check and is being rebuilt."""


def warn_line(message: str, category: type[Warning] = UserWarning, *, where: str = "fgra_core") -> None:
    warnings.warn_explicit(message, category, filename=where, lineno=0, module=where, registry={})
