"""Identity splits of the two-camera datasets (iLIDS-VID, PRID-2011).

A split is ``{"train": [folder, ...], "test": [folder, ...]}`` of person folder names. Split
files are read when the dataset ships one; otherwise 10 seeded random 50/50 identity splits
are generated, written atomically as JSON beside the data (or, if that folder is read-only,
under ``$FGRA_CACHE_DIR/splits/`` — default ``~/.cache/fgra_core/splits/``) and reported with
``info["split_source"] == "generated"``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fgra_core.data.identities import check_no_duplicate_ids, check_one_folder_per_identity
from fgra_core.data.records import Tracklet, VideoDataset, relabel
from fgra_core.utils.errors import DatasetError
from fgra_core.utils.io import atomic_write_json

SPLIT_JSON_LAYOUT = 'a JSON list of dicts {"train": [...], "test": [...]} of person folder names'

# ``data.split_file: standard``: the standard split file of a dataset, read in place (not shipped):
# the file named by the environment variable, else the file of that name beside the checkout
# (``../shared/data/splits/``) -- PRID-2011's 10 splits of 89 / 89 identities used by published results
STANDARD = "standard"
STANDARD_SPLIT_FILES = {"prid2011": ("FGRA_PRID2011_SPLIT_FILE", "splits_prid2011.json")}
SHARED_SPLITS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "splits"


def standard_split_file(dataset: str, environ=None) -> Path:
    """Where the dataset's standard split file is; ``DatasetError`` naming every place tried."""
    environ = os.environ if environ is None else environ
    if dataset not in STANDARD_SPLIT_FILES:
        raise DatasetError(f"data.split_file {STANDARD!r}: there is no standard split file for {dataset} "
                           f"(only for {', '.join(STANDARD_SPLIT_FILES)}); give the path of a split file, or null")
    env, name = STANDARD_SPLIT_FILES[dataset]
    tried = ([Path(environ[env])] if environ.get(env) else []) + [SHARED_SPLITS_DIR / name]
    for path in tried:
        if path.is_file():
            return path
    raise DatasetError(f"data.split_file {STANDARD!r}: the standard {dataset} split file {name} is not at "
                       f"{' nor '.join(str(p) for p in tried)}; set {env} to its path, or give "
                       "data.split_file=<path> (null: generated splits, not comparable with published numbers)")


def resolve_split_file(dataset: str, split_file: str | os.PathLike | None) -> Path | None:
    """``split_file`` as a path; ``"standard"`` names the dataset's standard split file
    (:func:`standard_split_file`)."""
    if split_file is None:
        return None
    if str(split_file) == STANDARD:
        return standard_split_file(dataset)
    return Path(split_file)


def cache_root() -> Path:
    return Path(os.environ.get("FGRA_CACHE_DIR", Path.home() / ".cache" / "fgra_core"))


def generate_splits(ids: Sequence[str], num_splits: int = 10, seed: int = 0) -> list[dict]:
    """``num_splits`` random identity splits, half train (rounded down) and half test, per seed."""
    ids = sorted(ids)
    rng = np.random.default_rng(seed)
    n_train = len(ids) // 2
    out = []
    for _ in range(num_splits):
        perm = rng.permutation(len(ids))
        out.append({
            "train": sorted(ids[i] for i in perm[:n_train]),
            "test": sorted(ids[i] for i in perm[n_train:]),
        })
    return out


def save_generated_splits(splits: list[dict], data_dir: Path, filename: str, meta: dict) -> Path:
    """Write generated splits beside the data, or in the cache folder when that is read-only.

    Written once: a split file already there is never rewritten. When the identities it was
    generated from (``meta["identities"]``) are no longer those of the data, or its splits are
    not the ones these identities give, a :class:`DatasetError` names the identities that changed
    (runs on its splits would otherwise go on with other people in their train or test sets).
    """
    payload = dict(meta, splits=splits, source="generated")
    candidates = [Path(data_dir) / filename]
    digest = hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
    candidates.append(cache_root() / "splits" / digest / filename)
    for path in candidates:
        existing = _read_generated(path)
        if existing is not None:
            _check_generated(path, existing, json.loads(json.dumps(payload)))
            return path
    last_exc: Exception | None = None
    for path in candidates:
        try:
            return atomic_write_json(path, payload)
        except OSError as exc:
            last_exc = exc
    raise DatasetError(f"generated splits could not be written to {candidates[0]} nor {candidates[1]} ({last_exc})")


def _read_generated(path: Path) -> dict | None:
    """A generated split file's content, ``None`` when absent; unreadable is an error (never rewritten)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"generated split file {path} is not valid JSON ({exc}); it is never rewritten -- "
                           "delete it to generate the splits again (runs on the new splits are new runs)") from exc
    if not isinstance(data, dict) or not isinstance(data.get("splits"), list):
        raise DatasetError(f"generated split file {path} has the wrong structure; expected a mapping with "
                           "'identities' and 'splits' -- delete it to generate the splits again")
    return data


def _check_generated(path: Path, existing: dict, payload: dict) -> None:
    old, new = existing.get("identities"), payload.get("identities")
    if old is not None and new is not None and sorted(old) != sorted(new):
        removed, added = sorted(set(old) - set(new)), sorted(set(new) - set(old))
        raise DatasetError(
            f"the data folder no longer matches its generated split file {path}: identities removed "
            f"{removed[:8]}{' ...' if len(removed) > 8 else ''} ({len(removed)}), added "
            f"{added[:8]}{' ...' if len(added) > 8 else ''} ({len(added)}); the file is never rewritten -- "
            "restore the data folder, or delete the file to generate new splits (runs on them are new runs)")
    if existing.get("splits") != payload.get("splits"):
        raise DatasetError(
            f"generated split file {path} holds other splits than identities and seed give "
            f"(seed {payload.get('seed')}); it is never rewritten -- restore it, or delete it to generate the "
            "splits again (runs on them are new runs)")


def read_json_splits(path: str | os.PathLike) -> list[dict]:
    """Read a split file: a list of ``{"train": [...], "test": [...]}`` (or ``{"splits": [...]}``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split file {path} is missing; expected {SPLIT_JSON_LAYOUT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"split file {path} is not valid JSON ({exc}); expected {SPLIT_JSON_LAYOUT}") from exc
    if isinstance(data, dict) and "splits" in data:
        data = data["splits"]
    ok = isinstance(data, list) and data and all(
        isinstance(s, dict) and isinstance(s.get("train"), list) and isinstance(s.get("test"), list) for s in data
    )
    if not ok:
        raise DatasetError(f"split file {path} has the wrong structure; expected {SPLIT_JSON_LAYOUT}")
    return [{"train": [str(x) for x in s["train"]], "test": [str(x) for x in s["test"]]} for s in data]


def check_split(split: dict, known: Sequence[str], source: str, split_id: int) -> None:
    """Every id of the split must be a known identity folder, listed once; train and test must be disjoint."""
    check_no_duplicate_ids(split, source, split_id)
    known_set = set(known)
    unknown = [x for x in split["train"] + split["test"] if x not in known_set]
    if unknown:
        raise DatasetError(
            f"split {split_id} of {source} names unknown identities {unknown[:5]}"
            f"{' ...' if len(unknown) > 5 else ''} ({len(unknown)} in all); expected person folders present "
            f"in both cameras, e.g. {sorted(known_set)[:3]}"
        )
    both = set(split["train"]) & set(split["test"])
    if both:
        raise DatasetError(f"split {split_id} of {source} puts identities {sorted(both)[:5]} in both train and test")


def pick_split(splits: list[dict], split_id: int, source: str) -> dict:
    if not 0 <= split_id < len(splits):
        raise DatasetError(f"split_id {split_id} out of range: {source} holds {len(splits)} splits (0..{len(splits) - 1})")
    return splits[split_id]


def assemble(
    name: str,
    sequences: Mapping[str, Mapping[int, Tracklet]],
    split: dict,
    query_cam: int,
    gallery_cam: int,
    info: dict,
) -> VideoDataset:
    """Train = both cameras of the train ids (relabelled); query / gallery = one camera each."""
    train = [sequences[p][c] for p in sorted(split["train"]) for c in sorted(sequences[p])]
    query = [sequences[p][query_cam] for p in sorted(split["test"])]
    gallery = [sequences[p][gallery_cam] for p in sorted(split["test"])]
    train, pid_map = relabel(train)
    info = dict(info)
    info.update(
        train_pid_map=pid_map,
        train_ids=sorted(split["train"]),
        test_ids=sorted(split["test"]),
    )
    return VideoDataset(name, train, query, gallery, num_train_pids=len(pid_map), info=info)


def person_number(folder: str) -> int:
    digits = "".join(ch for ch in folder if ch.isdigit())
    if not digits:
        raise DatasetError(f"person folder {folder!r} has no number in its name")
    return int(digits)


def scan_cameras(cam_dirs: Mapping[int, Path], prefix: str, layout: str) -> dict[str, dict[int, Tracklet]]:
    """``{person folder: {camid: Tracklet}}`` for every ``<cam dir>/<prefix>*`` folder.

    Frames are listed in numeric frame order. A folder without images is an error.
    """
    from fgra_core.data.frames import list_folders, list_frames

    out: dict[str, dict[int, Tracklet]] = {}
    for camid, cam_dir in sorted(cam_dirs.items()):
        if not cam_dir.is_dir():
            raise DatasetError(f"camera folder {cam_dir} is missing; {layout}")
        folders = list_folders(cam_dir, prefix)
        if not folders:
            raise DatasetError(f"camera folder {cam_dir} holds no {prefix}* folders; {layout}")
        for folder in folders:
            frames = list_frames(cam_dir / folder)
            if not frames:
                raise DatasetError(f"empty tracklet: {cam_dir / folder} holds no image files; {layout}")
            out.setdefault(folder, {})[camid] = Tracklet(
                frames=tuple(frames), pid=person_number(folder), camid=camid, name=f"{cam_dir.name}/{folder}"
            )
    check_one_folder_per_identity([(cam_dirs[c].name, p) for p, cams in out.items() for c in sorted(cams)], person_number)
    return out
