"""MARS reader (official release layout).

Layout::

    <root>/bbox_train/<pid>/<name>          e.g. bbox_train/0003/0003C4T0003F001.jpg
    <root>/bbox_test/<pid>/<name>           pid folder is name[:4] ('00-1' junk, '0000' distractors)
    <root>/info/train_name.txt              one frame file name per line (\\r\\n tolerated)
    <root>/info/test_name.txt
    <root>/info/tracks_train_info.mat       key track_train_info, rows [start, end, pid, camid]
    <root>/info/tracks_test_info.mat        key track_test_info  (1-based inclusive name indices)
    <root>/info/query_IDX.mat               key query_IDX, 1-based rows of track_test_info

Query = the test rows named by ``query_IDX``; gallery = every other test row, junk (pid -1)
and distractors (pid 0) included with their pids. The evaluator decides the protocol
(gallery = test minus queries with junk dropped, or the official kit's gallery of all test
tracklets, ``query + gallery``); ``info["query_rows"]`` / ``info["gallery_rows"]`` give the
0-based rows of ``track_test_info`` of each list so the official order can be rebuilt.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from fgra_core.data.frames import frame_index, sort_frames
from fgra_core.data.records import Tracklet, VideoDataset, relabel
from fgra_core.utils.errors import ConfigError, DatasetError

MARS_LAYOUT = (
    "expected the official MARS layout: <root>/bbox_train/<pid>/<name>.jpg, <root>/bbox_test/<pid>/<name>.jpg and "
    "<root>/info/ with train_name.txt, test_name.txt, tracks_train_info.mat (key track_train_info), "
    "tracks_test_info.mat (key track_test_info), query_IDX.mat (key query_IDX)"
)

INFO_FILES = {
    "train_names": "train_name.txt",
    "test_names": "test_name.txt",
    "train_info": ("tracks_train_info.mat", "track_train_info"),
    "test_info": ("tracks_test_info.mat", "track_test_info"),
    "query_idx": ("query_IDX.mat", "query_IDX"),
}


def read_name_list(path: str | os.PathLike) -> list[str]:
    """One file name per line; ``\\r\\n`` and blank lines tolerated."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"MARS name list {path} is missing; {MARS_LAYOUT}")
    try:
        with open(path, "r", encoding="utf-8-sig", newline=None) as fh:   # -sig: a leading BOM is dropped
            names = [line.strip() for line in fh]
    except UnicodeDecodeError as exc:
        raise DatasetError(f"MARS name list {path} is not a UTF-8 text file of one frame file name per line "
                           f"({exc}); {MARS_LAYOUT}") from exc
    except OSError as exc:
        raise DatasetError(f"MARS name list {path} cannot be read ({exc.strerror or exc}); {MARS_LAYOUT}") from exc
    return [n for n in names if n]


def read_mat_array(path: str | os.PathLike, key: str, layout: str = MARS_LAYOUT) -> np.ndarray:
    """The array stored under ``key`` in a MATLAB ``.mat`` file, with errors naming file and key."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} is missing; {layout}")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for a bad file
        raise DatasetError(f"{path} is not a readable MATLAB .mat file ({exc}); {layout}") from exc
    if key not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path} has no key {key!r} (found {keys}); {layout}")
    return integer_array(np.asarray(mat[key]), f"{path} (key {key})", layout)


def integer_array(arr: np.ndarray, where: str, layout: str = MARS_LAYOUT) -> np.ndarray:
    """An index array as integers. MATLAB saves ``double`` by default: a float array is accepted
    when every value is a whole number (and becomes int64); a fraction, NaN/inf, text or a cell
    array is a ``DatasetError`` naming the file."""
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) if arr.size else np.zeros(0, bool)
        if bad.any():
            first = arr[bad].ravel()[0]
            raise DatasetError(f"{where} holds a value that is not a whole number ({float(first)!r}, {int(bad.sum())} in all); "
                               f"expected integer indices (a MATLAB double array of whole numbers is accepted); {layout}")
        return arr.astype(np.int64)
    raise DatasetError(f"{where} holds {arr.dtype} values; expected a numeric array of integer indices; {layout}")


# <pid: 4 digits, or 00-1 for junk>C<camera>T<tracklet: 4 digits>F<frame: 3 digits>.jpg
MARS_NAME = re.compile(r"(?:\d{4}|00-1)C\d+T\d{4}F\d{3,}\.(?:jpg|jpeg|png)", re.IGNORECASE)


def check_name_list(names: Sequence[str], names_file: str, image_dir: str) -> None:
    """Every name follows the MARS naming rule and is listed once (checked before any image is read)."""
    first_line: dict[str, int] = {}
    for i, name in enumerate(names):
        if not MARS_NAME.fullmatch(name):
            raise DatasetError(
                f"line {i + 1} of {names_file}: frame name {name!r} breaks the MARS naming rule "
                "<pid, 4 digits or 00-1>C<camera>T<tracklet, 4 digits>F<frame, 3 digits>.jpg (e.g. 0001C1T0001F001.jpg), "
                f"by which its file is found in {image_dir}/<pid>/; expected the official name list")
        j = first_line.setdefault(name, i)
        if j != i:
            raise DatasetError(
                f"{names_file} lists frame {name} twice (lines {j + 1} and {i + 1}); each frame is listed once "
                "in the official name list, so a tracklet would lose the frame that belongs there")


def _mars_frame_index(name: str) -> int:
    try:
        return int(name[name.rindex("F") + 1:name.rindex(".")])
    except ValueError:
        idx = frame_index(name)
        return -1 if idx is None else idx


def _pid_of_name(name: str) -> int | None:
    try:
        return int(name[:4])
    except ValueError:
        return None


def _build(
    rows: np.ndarray,
    names: Sequence[str],
    image_dir: str,
    where: str,
    names_file: str,
) -> tuple[list[Tracklet], int]:
    """Tracklets of the info ``rows`` over the name list. Returns (tracklets, number reordered)."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise DatasetError(f"{where} must be an N x 4 array of [start, end, pid, camid] rows, got shape {rows.shape}; {MARS_LAYOUT}")
    n = len(names)
    starts, ends = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
    bad = np.flatnonzero(ends < starts)
    if bad.size:
        r = int(bad[0])
        raise DatasetError(
            f"empty tracklet at row {r + 1} of {where} (start {starts[r]} > end {ends[r]}): "
            "rows are [start, end, pid, camid], 1-based inclusive, end >= start"
        )
    bad = np.flatnonzero((starts < 1) | (ends > n))
    if bad.size:
        r = int(bad[0])
        raise DatasetError(
            f"row {r + 1} of {where} spans names {starts[r]}..{ends[r]} but {names_file} has {n} names "
            "(rows are 1-based inclusive indices into the name list)"
        )
    prefix = image_dir.rstrip("/\\") + os.sep
    out: list[Tracklet] = []
    reordered = 0
    for r, (s, e, pid, cam) in enumerate(rows[:, :4].tolist()):
        seg = names[s - 1:e]
        first = seg[0]
        name_pid = _pid_of_name(first)
        if name_pid is not None and name_pid != pid:
            raise DatasetError(
                f"row {r + 1} of {where} says pid {pid} but its first frame {first} (from {names_file}) "
                f"belongs to pid {name_pid}; the name list and the info file do not match"
            )
        idx = [_mars_frame_index(x) for x in seg]
        if any(a >= b for a, b in zip(idx, idx[1:])):
            seg = sort_frames(seg)
            reordered += 1
        frames = tuple(f"{prefix}{x[:4]}{os.sep}{x}" for x in seg)
        if cam < 1:
            raise DatasetError(f"row {r + 1} of {where} has camera {cam}; MARS cameras are numbered from 1")
        out.append(Tracklet(frames=frames, pid=int(pid), camid=int(cam) - 1, name=first.rsplit("F", 1)[0]))
    return out, reordered


def parse_mars_info(
    info_dir: str | os.PathLike,
    train_names: Sequence[str] | None = None,
    test_names: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
) -> VideoDataset:
    """Parse the MARS ``info/`` files into a :class:`VideoDataset` (no image is opened).

    ``train_names`` / ``test_names`` default to ``info/train_name.txt`` / ``test_name.txt``;
    frame paths are ``<root>/bbox_{train,test}/<name[:4]>/<name>`` with ``root`` defaulting to
    the parent of ``info_dir``.
    """
    info_dir = Path(info_dir)
    if not info_dir.is_dir():
        raise DatasetError(f"MARS info folder {info_dir} is missing; {MARS_LAYOUT}")
    root = Path(root) if root is not None else info_dir.parent
    train_file = info_dir / INFO_FILES["train_names"]
    test_file = info_dir / INFO_FILES["test_names"]
    if train_names is None:
        train_names = read_name_list(train_file)
    if test_names is None:
        test_names = read_name_list(test_file)
    f, k = INFO_FILES["train_info"]
    train_rows = read_mat_array(info_dir / f, k)
    f, k = INFO_FILES["test_info"]
    test_rows = read_mat_array(info_dir / f, k)
    f, k = INFO_FILES["query_idx"]
    qpath = info_dir / f
    query_idx = read_mat_array(qpath, k).astype(np.int64).ravel()

    check_name_list(train_names, str(train_file), str(root / "bbox_train"))
    check_name_list(test_names, str(test_file), str(root / "bbox_test"))
    train, n_re_train = _build(train_rows, train_names, str(root / "bbox_train"),
                               str(info_dir / INFO_FILES["train_info"][0]), str(train_file))
    test, n_re_test = _build(test_rows, test_names, str(root / "bbox_test"),
                             str(info_dir / INFO_FILES["test_info"][0]), str(test_file))

    if query_idx.size == 0:
        raise DatasetError(f"{qpath} holds no query index; {MARS_LAYOUT}")
    if query_idx.min() < 1 or query_idx.max() > len(test):
        raise DatasetError(
            f"{qpath} names rows {query_idx.min()}..{query_idx.max()} but track_test_info has {len(test)} rows "
            "(query_IDX is 1-based)"
        )
    if len(np.unique(query_idx)) != len(query_idx):
        raise DatasetError(f"{qpath} names some test rows more than once")
    query_rows = query_idx - 1
    is_query = np.zeros(len(test), bool)
    is_query[query_rows] = True
    gallery_rows = np.flatnonzero(~is_query)
    gallery_pids = np.asarray([test[i].pid for i in gallery_rows.tolist()], dtype=np.int64)
    if not (gallery_pids != -1).any():
        raise DatasetError(
            f"{qpath} names {len(query_rows)} of the {len(test)} test rows as queries, which leaves no gallery "
            "tracklet (junk rows aside); expected query_IDX to name a subset of track_test_info's rows")
    query = [test[i] for i in query_rows.tolist()]
    gallery = [test[i] for i in gallery_rows.tolist()]

    train, pid_map = relabel(train)
    test_pids = np.asarray([t.pid for t in test])
    lengths = np.asarray([len(t) for t in train + test])
    info = {
        "root": str(root),
        "train_pid_map": pid_map,
        "query_rows": query_rows.tolist(),
        "gallery_rows": gallery_rows.tolist(),
        "num_train_frames": int(sum(len(t) for t in train)),
        "num_test_frames": int(sum(len(t) for t in test)),
        "num_test_tracklets": len(test),
        "num_junk": int((test_pids == -1).sum()),
        "num_distractors": int((test_pids == 0).sum()),
        "min_length": int(lengths.min()),
        "max_length": int(lengths.max()),
        "reordered_tracklets": n_re_train + n_re_test,
        "split_source": "file",
    }
    return VideoDataset("mars", train, query, gallery, num_train_pids=len(pid_map), info=info)


def load_mars(
    root: str | os.PathLike,
    check_files: bool = True,
    split_id: int = 0,
    split_file: str | os.PathLike | None = None,
) -> VideoDataset:
    """Read MARS from its official layout under ``root``.

    ``check_files`` checks that the first frame of every tracklet exists (one ``stat`` each).
    MARS has one fixed split: ``split_id`` must be 0 and ``split_file`` None (they exist so that
    every reader takes the same options).
    """
    if split_id != 0 or split_file is not None:
        raise ConfigError(
            f"MARS has one fixed train/test split (info/ files); got split_id={split_id}, split_file={split_file}"
        )
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"MARS folder {root} does not exist; {MARS_LAYOUT}")
    for sub in ("bbox_train", "bbox_test", "info"):
        if not (root / sub).is_dir():
            raise DatasetError(f"MARS folder {root} has no {sub}/ folder; {MARS_LAYOUT}")
    ds = parse_mars_info(root / "info", root=root)
    if check_files:
        for t in ds.train + ds.query + ds.gallery:
            if not os.path.isfile(t.frames[0]):
                raise DatasetError(f"MARS frame {t.frames[0]} (tracklet {t.name}) is missing; {MARS_LAYOUT}")
    return ds
