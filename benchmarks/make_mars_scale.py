"""A MARS-scale tree in the official MARS layout, made of links to the real mars-mini JPEGs.

    python benchmarks/make_mars_scale.py OUT [--fraction 1.0] [--link symlink|hardlink]

The tracklets (counts, lengths, identities, cameras, the 1,980 queries) are MARS's own, read from
``../shared/data/mars-info-full`` (``tracks_{train,test}_info.mat``, ``query_IDX.mat``). The name
lists are not part of those files, so names are generated consistently with the tracks:
``<pid4>C<cam>T<tracklet4>F<frame3>.jpg`` (pid ``00-1`` for junk, ``0000`` for distractors,
tracklet numbered per identity and camera, frames from 1). Each frame is a link to a frame of a
real mars-mini tracklet of the same split (tracklets taken in turn, frames cycled), so every image
is a real 256 x 128 MARS JPEG. ``--fraction f`` keeps every round(1/f)-th tracklet of each split
(and the queries among the kept test tracklets), for quick checks.

The tree reads with ``fgra_core.data.datasets.mars.load_mars(OUT)`` like the real dataset.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fgra_core.data.datasets.mars import INFO_FILES, load_mars, read_mat_array  # noqa: E402

SHARED = Path(os.environ.get("FGRA_SHARED", REPO.parent / "shared"))


def pid_code(pid: int) -> str:
    """Four characters of a MARS name / folder: ``0003``, ``0000`` (distractor), ``00-1`` (junk)."""
    return "00-1" if pid == -1 else f"{pid:04d}"


def select_rows(n: int, fraction: float) -> np.ndarray:
    """Rows kept for ``fraction`` of a split: every round(1 / fraction)-th, from the first."""
    if not 0 < fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
    return np.arange(0, n, max(1, int(round(1 / fraction))))


def names_for(rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Generated frame names of tracks ``[start, end, pid, cam]`` and the tracks renumbered over them."""
    names: list[str] = []
    counter: dict[tuple[int, int], int] = {}
    out = np.array(rows[:, :4], dtype=np.int32, copy=True)
    for r, (s, e, pid, cam) in enumerate(rows[:, :4].tolist()):
        k = counter[(pid, cam)] = counter.get((pid, cam), 0) + 1
        stem = f"{pid_code(pid)}C{cam}T{k:04d}F"
        start = len(names) + 1
        names.extend(f"{stem}{f:03d}.jpg" for f in range(1, e - s + 2))
        out[r, 0], out[r, 1] = start, len(names)
    return names, out


def build_mars_scale(out: str | os.PathLike, info_dir: str | os.PathLike | None = None,
                     mini_dir: str | os.PathLike | None = None, fraction: float = 1.0,
                     link: str = "symlink", progress: bool = False) -> dict:
    """Write the tree under ``out``; returns counts (tracklets, frames, queries per split)."""
    import scipy.io
    from tqdm.auto import tqdm

    info_dir = Path(info_dir or SHARED / "data" / "mars-info-full")
    mini_dir = Path(mini_dir or SHARED / "data" / "mars-mini")
    if link not in ("symlink", "hardlink"):
        raise ValueError(f"--link must be symlink or hardlink, got {link!r}")
    make_link = os.symlink if link == "symlink" else os.link
    out = Path(out)
    mini = load_mars(mini_dir)
    sources = {"train": [tuple(os.path.abspath(p) for p in t.frames) for t in mini.train],
               "test": [tuple(os.path.abspath(p) for p in t.frames) for t in mini.query + mini.gallery]}
    f, k = INFO_FILES["train_info"]
    train_rows = read_mat_array(info_dir / f, k)
    f, k = INFO_FILES["test_info"]
    test_rows = read_mat_array(info_dir / f, k)
    f, k = INFO_FILES["query_idx"]
    query_idx = read_mat_array(info_dir / f, k).astype(np.int64).ravel()

    keep_train = select_rows(len(train_rows), fraction)
    keep_test = select_rows(len(test_rows), fraction)
    new_row = np.full(len(test_rows), -1, np.int64)
    new_row[keep_test] = np.arange(len(keep_test))
    kept_queries = new_row[query_idx - 1]
    kept_queries = kept_queries[kept_queries >= 0] + 1  # 1-based rows of the kept test tracks

    (out / "info").mkdir(parents=True, exist_ok=True)
    summary = {"root": str(out), "fraction": fraction, "link": link}
    for split, rows, (fname, key) in (("train", train_rows[keep_train], INFO_FILES["train_info"]),
                                      ("test", test_rows[keep_test], INFO_FILES["test_info"])):
        names, tracks = names_for(rows)
        folder = out / f"bbox_{split}"
        for code in sorted({n[:4] for n in names}):
            (folder / code).mkdir(parents=True, exist_ok=True)
        src = sources[split]
        bar = tqdm(total=len(names), desc=f"linking bbox_{split}", disable=not progress)
        for r, (s, e, _pid, _cam) in enumerate(tracks.tolist()):
            frames = src[r % len(src)]
            for j, name in enumerate(names[s - 1:e]):
                dst = folder / name[:4] / name
                if not os.path.lexists(dst):
                    make_link(frames[j % len(frames)], dst)
            bar.update(e - s + 1)
        bar.close()
        (out / "info" / INFO_FILES[f"{split}_names"]).write_text("\n".join(names) + "\n")
        scipy.io.savemat(str(out / "info" / fname), {key: tracks.astype(np.int32)})
        summary[f"{split}_tracklets"] = len(tracks)
        summary[f"{split}_frames"] = len(names)
    f, k = INFO_FILES["query_idx"]
    scipy.io.savemat(str(out / "info" / f), {k: kept_queries.astype(np.uint16).reshape(1, -1)})
    summary["queries"] = int(kept_queries.size)
    return summary


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder to write (a temporary folder: it holds ~1.2M links at full size)")
    ap.add_argument("--fraction", type=float, default=1.0, help="keep every round(1/f)-th tracklet (default: all)")
    ap.add_argument("--link", choices=("symlink", "hardlink"), default="symlink")
    ap.add_argument("--info", default=None, help="MARS info/ folder with the .mat files (default ../shared/data/mars-info-full)")
    ap.add_argument("--mini", default=None, help="mars-mini folder (default ../shared/data/mars-mini)")
    args = ap.parse_args(argv)
    t0 = time.time()
    s = build_mars_scale(args.out, args.info, args.mini, args.fraction, args.link, progress=True)
    print(f"MARS-scale tree at {s['root']}: {s['train_tracklets']:,} train tracklets ({s['train_frames']:,} frames), "
          f"{s['test_tracklets']:,} test tracklets ({s['test_frames']:,} frames), {s['queries']:,} queries; "
          f"{args.link}s to mars-mini JPEGs; {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
