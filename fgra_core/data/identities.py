"""Identity checks of the two-camera datasets: one folder per identity, each id once in a split.

* :func:`check_one_folder_per_identity`: two person folders whose names give the same identity
  number (``person_001`` and ``person_0001``) would be one person under two labels -- an error
  naming both folders.
* :func:`check_no_duplicate_ids`: a split file listing an identity twice in ``train`` or in
  ``test`` is an error naming the split, the list and the ids.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from fgra_core.utils.errors import DatasetError


def check_one_folder_per_identity(folders: Iterable[tuple[str, str]], number: Callable[[str], int]) -> None:
    """``folders``: ``(camera folder, person folder name)`` pairs; ``number``: the identity of a name."""
    seen: dict[int, tuple[str, str]] = {}
    for cam, name in folders:
        pid = number(name)
        other = seen.setdefault(pid, (cam, name))
        if other[1] != name:
            raise DatasetError(f"person folders {other[0]}/{other[1]} and {cam}/{name} both name identity {pid}; "
                               "expected one folder name per identity (rename or remove one)")


def check_no_duplicate_ids(split: Mapping[str, list], source: str, split_id: int) -> None:
    for part in ("train", "test"):
        ids = list(split.get(part, []))
        seen, dup = set(), []
        for x in ids:
            if x in seen and x not in dup:
                dup.append(x)
            seen.add(x)
        if dup:
            raise DatasetError(f"split {split_id} of {source} lists identities {dup[:5]}{' ...' if len(dup) > 5 else ''} "
                               f"more than once in {part}; expected each identity once")
