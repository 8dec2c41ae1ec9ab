"""The run configurations shipped with the package (``fgra_core/config/configs/*.yaml``), found by
name or by path, so that a command line, a notebook and a plan all accept either."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable

from fgra_core.utils.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def suggest(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def packaged_names() -> list[str]:
    """The names of the packaged configurations (file stems), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_source(config: str | None) -> str | None:
    """A base config given as a path, or as the name of a file in ``fgra_core/config/configs/``."""
    if config is None:
        return None
    path = Path(config)
    if path.is_file():
        return str(path)
    for cand in (CONFIG_DIR / config, CONFIG_DIR / f"{config}.yaml"):
        if cand.is_file():
            return str(cand)
    names = packaged_names()
    raise ConfigError(f"config {config!r} is neither a file nor one of the package configs: {', '.join(names)}"
                      f"{suggest(str(config), names)}")
