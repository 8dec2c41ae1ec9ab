"""iLIDS-VID reader.

Layout (``root`` may also be the ``i-LIDS-VID`` folder itself)::

    <root>/i-LIDS-VID/sequences/cam1/person001/cam1_person001_00317.png ...
    <root>/i-LIDS-VID/sequences/cam2/person001/...
    <root>/train-test people splits/train_test_splits_ilidsvid.mat   (optional; key ls_set)

``ls_set`` is 10 x 300: each row holds 1-based indices into the sorted person folders of
``cam1``; the first half of a row are the test identities, the second half the train ones.
Without that file, 10 seeded random 50/50 splits are generated and written to
``<root>/splits_ilidsvid_generated_seed<seed>.json``. Query = camera 1 (camid 0), gallery =
camera 2 (camid 1); train = both cameras of the train identities.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fgra_core.data.records import VideoDataset
from fgra_core.data.splits import (
    assemble,
    check_split,
    generate_splits,
    pick_split,
    read_json_splits,
    resolve_split_file,
    save_generated_splits,
    scan_cameras,
)
from fgra_core.utils.errors import DatasetError

ILIDS_LAYOUT = (
    "expected <root>/i-LIDS-VID/sequences/cam1/personXXX/*.png and <root>/i-LIDS-VID/sequences/cam2/personXXX/*.png, "
    "optionally <root>/train-test people splits/train_test_splits_ilidsvid.mat (key ls_set, 10 x 300)"
)
SPLIT_MAT = "train_test_splits_ilidsvid.mat"


def _locate(root: Path) -> tuple[Path, Path]:
    """(dataset root, sequences folder)."""
    if not root.is_dir():
        raise DatasetError(f"iLIDS-VID folder {root} does not exist; {ILIDS_LAYOUT}")
    if (root / "i-LIDS-VID" / "sequences").is_dir():
        return root, root / "i-LIDS-VID" / "sequences"
    if (root / "sequences").is_dir() and root.name == "i-LIDS-VID":
        return root.parent, root / "sequences"
    raise DatasetError(f"iLIDS-VID folder {root} has no i-LIDS-VID/sequences/ folder; {ILIDS_LAYOUT}")


def _find_split_file(root: Path) -> Path | None:
    for cand in (root / "train-test people splits" / SPLIT_MAT, root / SPLIT_MAT):
        if cand.is_file():
            return cand
    return None


def read_ilids_mat_splits(path: Path, persons: list[str]) -> list[dict]:
    """Splits from the official ``ls_set`` matrix, as folder-name lists."""
    from fgra_core.data.datasets.mars import read_mat_array

    ls_set = read_mat_array(path, "ls_set", layout=ILIDS_LAYOUT)
    if ls_set.ndim != 2 or ls_set.shape[1] < 2:
        raise DatasetError(f"{path}: ls_set must be a num_splits x num_persons matrix, got shape {ls_set.shape}")
    ls_set = ls_set.astype(np.int64)
    n = len(persons)
    if ls_set.min() < 1 or ls_set.max() > n:
        raise DatasetError(
            f"{path}: ls_set names person {ls_set.min() if ls_set.min() < 1 else ls_set.max()} but "
            f"sequences/cam1 holds {n} person folders (ls_set holds 1-based indices into the sorted folders)"
        )
    half = ls_set.shape[1] // 2
    return [
        {"test": sorted(persons[i - 1] for i in row[:half]), "train": sorted(persons[i - 1] for i in row[half:])}
        for row in ls_set.tolist()
    ]


def load_ilidsvid(
    root: str | os.PathLike,
    split_id: int = 0,
    split_file: str | os.PathLike | None = None,
    seed: int = 0,
    num_splits: int = 10,
) -> VideoDataset:
    """Read iLIDS-VID; ``split_file`` (``.mat`` with ``ls_set`` or split JSON) overrides discovery."""
    root, seq_dir = _locate(Path(root))
    sequences = scan_cameras({0: seq_dir / "cam1", 1: seq_dir / "cam2"}, "person", ILIDS_LAYOUT)
    cam1_persons = sorted(p for p, cams in sequences.items() if 0 in cams)
    both = sorted(p for p, cams in sequences.items() if len(cams) == 2)

    path = resolve_split_file("ilidsvid", split_file) if split_file is not None else _find_split_file(root)
    info: dict = {"root": str(root), "split_id": split_id, "num_identities": len(both)}
    if path is not None:
        if not path.is_file():
            raise DatasetError(f"split file {path} is missing; {ILIDS_LAYOUT}")
        splits = read_ilids_mat_splits(path, cam1_persons) if path.suffix == ".mat" else read_json_splits(path)
        info.update(split_source="file", split_path=str(path))
    else:
        splits = generate_splits(both, num_splits=num_splits, seed=seed)
        out = save_generated_splits(
            splits, root, f"splits_ilidsvid_generated_seed{seed}.json",
            {"dataset": "ilidsvid", "seed": seed, "identities": both},
        )
        info.update(split_source="generated", split_path=str(out), seed=seed)
    info["num_splits"] = len(splits)
    split = pick_split(splits, split_id, str(path) if path else info["split_path"])
    check_split(split, both, str(path) if path else info["split_path"], split_id)
    return assemble("ilidsvid", sequences, split, query_cam=0, gallery_cam=1, info=info)
