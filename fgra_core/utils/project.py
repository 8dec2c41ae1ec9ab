"""The project folder that relative paths of a notebook mean, wherever the notebook runs.

A study executes its notebooks with the project folder as the working folder; JupyterLab starts
a notebook's kernel in the notebook's own folder (``notebooks/``). :func:`project_root` gives the
same folder in both cases: ``$FGRA_PROJECT`` when it is set, else the nearest of the working
folder and its parents that holds a ``results/`` folder or a ``pyproject.toml``, else the working
folder itself.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ENV = "FGRA_PROJECT"


def project_root(start: str | os.PathLike | None = None, environ: dict | None = None) -> Path:
    env = (os.environ if environ is None else environ).get(PROJECT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    here = Path(start if start is not None else os.getcwd()).resolve()
    for cand in (here, *here.parents):
        if (cand / "results").is_dir() or (cand / "pyproject.toml").is_file():
            return cand
    return here


def project_path(path: str | os.PathLike | None, root: str | os.PathLike | None = None) -> Path | None:
    """``path`` as an absolute path: kept when absolute, else under the project folder."""
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else (Path(root) if root is not None else project_root()) / p
