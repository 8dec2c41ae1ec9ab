"""``build_dataset(name, root, **options)``: one entry point for every dataset."""
from __future__ import annotations

import copy
import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from fgra_core.data.records import VideoDataset
from fgra_core.utils.errors import ConfigError, DatasetError


def _mars(root, **options):
    from fgra_core.data.datasets.mars import load_mars

    return load_mars(root, **options)


def _ilidsvid(root, **options):
    from fgra_core.data.datasets.ilidsvid import load_ilidsvid

    return load_ilidsvid(root, **options)


def _prid2011(root, **options):
    from fgra_core.data.datasets.prid2011 import load_prid2011

    return load_prid2011(root, **options)


# the last drawn synthetic sets, by their options: the head runs of a batch (one process) draw the
# same set, which takes seconds; each call gets its own lists and info, the tracklets are shared
SYNTHETIC_MEMO_SIZE = 2
_synthetic_memo: OrderedDict[str, VideoDataset] = OrderedDict()


def _synthetic(root, **options):
    from fgra_core.data.datasets.synthetic import make_synthetic

    key = repr(sorted(options.items()))
    ds = _synthetic_memo.pop(key, None)
    if ds is None:
        ds = make_synthetic(**options)
    _synthetic_memo[key] = ds
    while len(_synthetic_memo) > SYNTHETIC_MEMO_SIZE:
        _synthetic_memo.popitem(last=False)
    return VideoDataset(ds.name, list(ds.train), list(ds.query), list(ds.gallery), ds.num_train_pids,
                        copy.deepcopy(ds.info))


def _layouts() -> dict[str, str]:
    from fgra_core.data.datasets.ilidsvid import ILIDS_LAYOUT
    from fgra_core.data.datasets.mars import MARS_LAYOUT
    from fgra_core.data.datasets.prid2011 import PRID_LAYOUT

    return {"mars": MARS_LAYOUT, "ilidsvid": ILIDS_LAYOUT, "prid2011": PRID_LAYOUT}


DATASETS: dict[str, Callable[..., VideoDataset]] = {
    "mars": _mars,
    "ilidsvid": _ilidsvid,
    "prid2011": _prid2011,
    "synthetic": _synthetic,
}
NEEDS_ROOT = ("mars", "ilidsvid", "prid2011")


def build_dataset(name: str, root: str | os.PathLike | None = None, **options) -> VideoDataset:
    """Load dataset ``name`` (``mars``, ``ilidsvid``, ``prid2011``) from ``root``, or draw ``synthetic``.

    ``options`` go to the reader (e.g. ``split_id``, ``seed``) or to ``make_synthetic``.
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    aliases = {"ilids": "ilidsvid", "prid": "prid2011"}
    key = aliases.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if key in NEEDS_ROOT:
        if root is None or str(root) == "":
            raise DatasetError(f"dataset {key!r} needs a data folder (root); {_layouts()[key]}")
        if not Path(root).is_dir():
            raise DatasetError(f"data folder {root} for dataset {key!r} does not exist; {_layouts()[key]}")
    try:
        return DATASETS[key](root, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise ConfigError(f"dataset {key!r}: {exc}") from exc
        raise
