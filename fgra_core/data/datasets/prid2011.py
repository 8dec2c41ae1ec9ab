"""PRID-2011 (multi-shot) reader.

Layout (``root`` may also be the ``prid_2011`` folder itself)::

    <root>/prid_2011/multi_shot/cam_a/person_0001/0001.png ...
    <root>/prid_2011/multi_shot/cam_b/person_0001/...
    <root>/splits_prid2011.json          (optional; also looked for inside prid_2011/)

The split file is a JSON list of 10 dicts ``{"train": [...], "test": [...]}`` of person folder
names (89 / 89 of the 178 identities); ``split_file="standard"`` is the
standard file ``splits_prid2011.json``, read in place (``data.splits.standard_split_file``; the
default of the paper recipe). Without it, the identities kept are those seen by both
cameras whose sequences have more than 21 frames in *each* camera (``min_frames=22``, i.e.
at least 22 frames, following Zheng et al. 2016 as cited by the FGRA paper: 178 identities),
and 10 seeded random 50/50 splits of them are generated and written to
``<root>/splits_prid2011_generated_seed<seed>.json``. With a split file, its identities are used
as listed (each must exist in both cameras). Query = camera A (camid 0), gallery = camera B
(camid 1); train = both cameras of the train identities.
"""
from __future__ import annotations

import os
from pathlib import Path

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

PRID_LAYOUT = (
    "expected <root>/prid_2011/multi_shot/cam_a/person_XXXX/NNNN.png and "
    "<root>/prid_2011/multi_shot/cam_b/person_XXXX/NNNN.png, optionally <root>/splits_prid2011.json"
)
SPLIT_JSON = "splits_prid2011.json"


def _locate(root: Path) -> tuple[Path, Path]:
    """(dataset root, multi_shot folder)."""
    if not root.is_dir():
        raise DatasetError(f"PRID-2011 folder {root} does not exist; {PRID_LAYOUT}")
    if (root / "prid_2011" / "multi_shot").is_dir():
        return root, root / "prid_2011" / "multi_shot"
    if (root / "multi_shot").is_dir() and root.name == "prid_2011":
        return root.parent, root / "multi_shot"
    raise DatasetError(f"PRID-2011 folder {root} has no prid_2011/multi_shot/ folder; {PRID_LAYOUT}")


def _find_split_file(root: Path) -> Path | None:
    for cand in (root / SPLIT_JSON, root / "prid_2011" / SPLIT_JSON):
        if cand.is_file():
            return cand
    return None


def load_prid2011(
    root: str | os.PathLike,
    split_id: int = 0,
    split_file: str | os.PathLike | None = None,
    seed: int = 0,
    min_frames: int = 22,
    num_splits: int = 10,
) -> VideoDataset:
    """Read PRID-2011; ``min_frames`` applies to generated splits (identities kept when both
    sequences have at least ``min_frames`` frames)."""
    root, shot_dir = _locate(Path(root))
    sequences = scan_cameras({0: shot_dir / "cam_a", 1: shot_dir / "cam_b"}, "person_", PRID_LAYOUT)
    both = sorted(p for p, cams in sequences.items() if len(cams) == 2)

    path = resolve_split_file("prid2011", split_file) if split_file is not None else _find_split_file(root)
    info: dict = {"root": str(root), "split_id": split_id, "num_identities_both_cameras": len(both)}
    if path is not None:
        splits = read_json_splits(path)
        info.update(split_source="file", split_path=str(path))
        if str(split_file) == "standard":
            info["split_name"] = "standard"
        source = str(path)
    else:
        kept = [p for p in both if all(len(t) >= min_frames for t in sequences[p].values())]
        if len(kept) < 2:
            raise DatasetError(
                f"PRID-2011 folder {shot_dir}: only {len(kept)} identities are seen by both cameras with at least "
                f"{min_frames} frames each; need 2 or more to split ({PRID_LAYOUT})"
            )
        splits = generate_splits(kept, num_splits=num_splits, seed=seed)
        out = save_generated_splits(
            splits, root, f"splits_prid2011_generated_seed{seed}.json",
            {"dataset": "prid2011", "seed": seed, "min_frames": min_frames, "identities": kept},
        )
        info.update(split_source="generated", split_path=str(out), seed=seed, min_frames=min_frames)
        source = str(out)
    info["num_splits"] = len(splits)
    split = pick_split(splits, split_id, source)
    check_split(split, both, source, split_id)
    info["num_identities"] = len(split["train"]) + len(split["test"])
    return assemble("prid2011", sequences, split, query_cam=0, gallery_cam=1, info=info)
