"""One head-regime train step at the quick plan's shapes, this checkout against another one.

``python benchmarks/bench_head_step.py [--against CHECKOUT] [--variants 3,4,8] [--rounds 3]``

A step is what ``engine/head.py`` does per batch: the head's forward on cached trunk maps
(P x K = 16 clips of 4 frames, ResNet-18 maps 512 x 4 x 2, N_s = 4), ``FGRALoss``, backward, Adam.
Each measurement runs in a fresh process with one torch thread (``--threads``); with ``--against``
the two checkouts alternate, ``--rounds`` times, so that both see the same load, and the ratio of
their best medians is printed (``this / against``: below 1 means this checkout is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from fgra_core.config.packaged import resolve_config_source
from fgra_core.config.schema import load_config
from fgra_core.engine.builders import build_criterion, build_model, build_optimizer
out = {}
for variant in [int(v) for v in sys.argv[1].split(",")]:
    cfg = load_config(resolve_config_source("quick_synthetic"), {"model.variant": variant, "model.backbone": "resnet18",
                                          "model.weights": "none", "model.last_stride": 1,
                                          "data.height": 64, "data.width": 32, "train.P": 8, "train.K": 2})
    torch.manual_seed(0)
    model = build_model(cfg, 100)
    model.backbone = torch.nn.Identity()
    crit = build_criterion(cfg, 100, model)
    opt = build_optimizer(cfg, model, crit)
    x = torch.randn(16, 4, 512, 4, 2).relu()
    y = torch.arange(8).repeat_interleave(2)
    model.train(); crit.train()
    def step():
        loss, _ = crit(model.head(x), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(5):
        step()
    times = []
    for _ in range(int(sys.argv[3])):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    times.sort()
    out[variant] = 1e3 * times[len(times) // 2]
print(json.dumps(out))
"""


def measure(checkout: Path, variants: str, threads: int, steps: int) -> dict[int, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": str(threads)}
    res = subprocess.run([sys.executable, "-c", CHILD, variants, str(threads), str(steps)], env=env, cwd=str(checkout),
                         capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", type=Path, help="another checkout of the project (e.g. a git worktree of an older commit)")
    p.add_argument("--variants", default="3,4,8")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    here = Path(__file__).resolve().parents[1]
    checkouts = {"this": here} if args.against is None else {"this": here, "against": args.against.resolve()}
    best: dict[str, dict[int, float]] = {k: {} for k in checkouts}
    for r in range(args.rounds):
        for name, path in checkouts.items():
            for v, ms in measure(path, args.variants, args.threads, args.steps).items():
                best[name][v] = min(ms, best[name].get(v, float("inf")))
            print(f"round {r + 1}: {name:8s} " + "  ".join(f"v{v} {best[name][v]:6.1f} ms" for v in sorted(best[name])),
                  flush=True)
    print(f"\nhead train step, median of {args.steps} steps, best of {args.rounds} rounds, {args.threads} thread(s)")
    for v in sorted(best["this"]):
        line = f"  variant {v}: this {best['this'][v]:6.1f} ms"
        if "against" in best:
            line += f"  against {best['against'][v]:6.1f} ms  this / against = {best['this'][v] / best['against'][v]:.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
