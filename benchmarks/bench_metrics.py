"""Time the fast CMC/mAP against the brute-force reference (a stable argsort per query) on MARS-sized
problems, check they agree exactly, and print the speed ratio.

    python benchmarks/bench_metrics.py [--repeat 2] [--min-ratio 5] [--shared ../shared]

Problems (random distances, so every positive is spread over the whole row, the worst case for
the fast version):
* ``synthetic``: 1,980 queries x 9,330 gallery, real-like labels (626 identities, 6 cameras,
  about 5% junk and 30% distractors), float32 (what ``cosine_distance`` gives) and float64;
* with ``../shared/data/mars-info-full`` present, the real MARS test labels:
  ``gallery-minus-query`` (1,980 x 10,200, 870 junk, i.e. 9,330 ranked entries) and
  ``official`` (1,980 x 12,180, queries in the gallery).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fgra_core.eval.rank import evaluate_rank
from fgra_core.eval.reference import evaluate_rank_reference  # noqa: E402


def synthetic_labels(rng: np.random.Generator, nq=1980, ng=9330, n_ids=626, n_cams=6):
    q_pids = np.repeat(np.arange(1, n_ids + 1), int(np.ceil(nq / n_ids)))[:nq]
    q_cams = rng.integers(0, n_cams, nq)
    g_pids = rng.integers(1, n_ids + 1, ng)
    u = rng.random(ng)
    g_pids[u < 0.05] = -1  # junk
    g_pids[(u >= 0.05) & (u < 0.35)] = 0  # distractors
    g_cams = rng.integers(0, n_cams, ng)
    return q_pids, g_pids, q_cams, g_cams


def mars_labels(shared: Path):
    import scipy.io

    info = shared / "data" / "mars-info-full"
    tracks = scipy.io.loadmat(str(info / "tracks_test_info.mat"))["track_test_info"]
    query = scipy.io.loadmat(str(info / "query_IDX.mat"))["query_IDX"].ravel().astype(int) - 1
    gallery = np.setdiff1d(np.arange(len(tracks)), query)
    return tracks[query, 2], tracks[gallery, 2], tracks[query, 3], tracks[gallery, 3]


def best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def check_equal(a, b, name):
    assert np.array_equal(a.cmc, b.cmc), f"{name}: CMC differs"
    assert abs(a.mAP_plain - b.mAP_plain) < 1e-12, f"{name}: plain mAP differs"
    assert abs(a.mAP_trapezoid - b.mAP_trapezoid) < 1e-12, f"{name}: trapezoid mAP differs"
    assert a.num_skipped == b.num_skipped, f"{name}: skipped queries differ"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=2, help="best of this many runs for each timing")
    p.add_argument("--min-ratio", type=float, default=0.0, help="exit 1 when a ratio is below this")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    problems = []
    qp, gp, qc, gc = synthetic_labels(rng)
    d = rng.random((len(qp), len(gp)))
    problems.append(("synthetic float32", "gallery-minus-query", d.astype(np.float32), qp, gp, qc, gc))
    problems.append(("synthetic float64", "gallery-minus-query", d, qp, gp, qc, gc))
    if (args.shared / "data" / "mars-info-full").exists():
        qp, gp, qc, gc = mars_labels(args.shared)
        d = rng.random((len(qp), len(gp))).astype(np.float32)
        problems.append(("MARS labels", "gallery-minus-query", d, qp, gp, qc, gc))
        d = rng.random((len(qp), len(gp) + len(qp))).astype(np.float32)
        problems.append(("MARS labels", "official", d, qp, np.r_[gp, qp], qc, np.r_[gc, qc]))
    else:
        print(f"(no {args.shared / 'data' / 'mars-info-full'}: real-label problems skipped)")

    header = f"{'problem':18s} {'protocol':20s} {'shape':>13s} {'skipped':>7s} {'reference s':>11s} {'fast s':>7s} {'ratio':>6s}  rank1 / mAP (trapezoid)"
    print(header)
    print("-" * len(header))
    worst = float("inf")
    for name, protocol, d, qp, gp, qc, gc in problems:
        kw = dict(protocol=protocol)
        t_ref, ref = best_time(lambda: evaluate_rank_reference(d, qp, gp, qc, gc, **kw), args.repeat)
        t_fast, fast = best_time(lambda: evaluate_rank(d, qp, gp, qc, gc, **kw), args.repeat)
        check_equal(ref, fast, f"{name} / {protocol}")
        ratio = t_ref / t_fast
        worst = min(worst, ratio)
        shape = f"{d.shape[0]}x{d.shape[1]}"
        print(
            f"{name:18s} {protocol:20s} {shape:>13s} {fast.num_skipped:7d} {t_ref:11.3f} {t_fast:7.3f} {ratio:5.1f}x"
            f"  {100 * fast.rank[1]:.2f} / {100 * fast.mAP_plain:.2f} ({100 * fast.mAP_trapezoid:.2f})"
        )
    print(f"fast == reference on every problem (CMC identical, mAP within 1e-12); smallest ratio {worst:.1f}x")
    if worst < args.min_ratio:
        print(f"FAIL: ratio below {args.min_ratio}x")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
