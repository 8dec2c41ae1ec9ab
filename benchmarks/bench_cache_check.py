"""Cost of verifying the trunk feature cache (per-chunk SHA-256 + finiteness) next to building and reading it.

    python benchmarks/bench_cache_check.py [--frames 240] [--backbone resnet18] [--height 128 --width 64]
        [--big-mib 256] [--threads 1]

Measured in one run, with the real :func:`fgra_core.engine.trunk_cache.load_or_build` on a generated
dataset (in-memory tracklets; the trunk has random weights, nothing is downloaded):

- build: the first call (trunk forward over every frame and view, checksums, atomic save);
- checksum at build: :func:`fgra_core.engine.trunk_checks.checksums` on the built maps;
- read: the second call (``torch.load`` + verification), and the verification alone;
- the verification alone on a ``--big-mib`` float16 tensor (the check's throughput, MiB/s), and what
  that means per frame of the paper's ResNet-50 maps (2048 x 16 x 8 float16 = 512 KiB a frame).

Printed ratios: check / read, checksum / build, check / torch.load of the big tensor.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fgra_core.data.records import Tracklet, VideoDataset  # noqa: E402
from fgra_core.engine import trunk_cache as tc  # noqa: E402
from fgra_core.engine.trunk_checks import checksums, verify  # noqa: E402
from fgra_core.models.backbones import _make_trunk  # noqa: E402


def _timed(fn, repeats=1):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=240, help="frames in the generated dataset (train views doubled)")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    per = 8
    n = max(3, args.frames // per)
    mk = lambda pid, cam: Tracklet(rng.integers(0, 255, (per, args.height, args.width, 3), dtype=np.uint8), pid, cam)  # noqa: E731
    third = n // 3
    ds = VideoDataset("bench", [mk(i % 4, i % 2) for i in range(third)], [mk(10 + i, 0) for i in range(third)],
                      [mk(10 + i, 1) for i in range(n - 2 * third)], 4, {})
    trunk = _make_trunk(args.backbone).eval()
    print(f"torch {torch.__version__}, {args.threads} threads; {args.backbone} (random weights), "
          f"{args.height}x{args.width}, {n} tracklets of {per} frames")
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(cache_dir=tmp, load_frames=lambda t: t.frames, show_progress=False, keep_in_memory=False)
        feats, build = _timed(lambda: tc.load_or_build(ds, trunk, args.height, args.width, **kw))
        maps, offsets, lengths = feats.maps, feats.offsets, feats.lengths
        stored, checksum = _timed(lambda: checksums(maps, offsets, lengths), args.repeats)
        _, read = _timed(lambda: tc.load_or_build(ds, trunk, args.height, args.width, **kw), args.repeats)
        problem, check = _timed(lambda: verify(maps, offsets, lengths, stored), args.repeats)
        assert problem == "", problem
        size = maps.numel() * maps.element_size() / 2**20
        print(f"cache: {maps.shape[0]} rows {tuple(maps.shape[1:])} float16 = {size:.1f} MiB "
              f"({Path(next(Path(tmp).glob('*.pt'))).stat().st_size / 2**20:.1f} MiB on disk)")
    print(f"  build (trunk forward + checksums + save) {build * 1e3:9.1f} ms")
    print(f"  checksums at build                       {checksum * 1e3:9.1f} ms")
    print(f"  read (torch.load + verification)         {read * 1e3:9.1f} ms")
    print(f"  verification alone                       {check * 1e3:9.1f} ms")
    print(f"  check / read = {check / read:.3f}; checksum / build = {checksum / build:.4f}")
    big = torch.randn(args.big_mib * 2**20 // (2048 * 16 * 8 * 2), 2048, 16, 8).half()
    idx = {w: np.zeros((0, 2), np.int64) for w in tc.SETS}
    ln = {w: np.zeros(0, np.int64) for w in tc.SETS}
    sums = checksums(big, idx, ln)
    _, t_big = _timed(lambda: verify(big, idx, ln, sums), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"maps": big}, Path(tmp) / "big.pt")
        _, t_load = _timed(lambda: torch.load(Path(tmp) / "big.pt", weights_only=True), args.repeats)
    mib = big.numel() * 2 / 2**20
    print(f"  {mib:.0f} MiB of ResNet-50 rows (2048x16x8): torch.load {t_load * 1e3:.1f} ms (page cache), "
          f"verification {t_big * 1e3:.1f} ms = {mib / t_big:.0f} MiB/s = {t_big / big.shape[0] * 1e3:.3f} ms a frame")
    print(f"  check / torch.load at that size = {t_big / t_load:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
