"""Where a study's time went, read back from its run folders.

``python benchmarks/study_timeline.py [--runs results/runs] [--plan quick]``

Every run folder of the plan records when its notebook execution started (``run.log``: the first
``---`` line, which also names the batch it ran in) and when it finished (``status.json``), and its
``results.json`` the seconds it spent building or loading its feature cache, training and
evaluating. The script prints each notebook execution (a trunk run, or a batch of head runs) with
its start, end and length in minutes from the first start, then the totals in lane-minutes (one
lane = one execution slot, ``jobs`` of them side by side): the trunk runs, the head batches, and
within the head batches the cache builds, the training, the evaluation and the rest (kernel
start-up, imports, drawing the set, loading the trunk and its maps, writing records).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

BATCH = re.compile(r"\(in a batch of \d+ with (\S+)\)")


def _read(run: Path) -> dict | None:
    try:
        status = json.loads((run / "status.json").read_text())
        log = (run / "run.log").read_text().splitlines()
        results = json.loads((run / "results.json").read_text())
    except (OSError, ValueError):
        return None
    starts = [line for line in log if line.startswith("--- ")]
    if not starts or "finished_at" not in status:
        return None
    first = starts[-1]                         # the execution that finished the run
    m = BATCH.search(first)
    cache = results.get("feature_cache") or {}
    return {"run": run.name, "unit": m.group(1) if m else run.name, "head": "-head-" in run.name,
            "start": dt.datetime.fromisoformat(first.split()[1]), "end": dt.datetime.fromisoformat(status["finished_at"]),
            "cache_s": float(cache.get("seconds", 0.0)), "train_s": float(results.get("train_time_s", 0.0)),
            "eval_s": float(results.get("eval_time_s", 0.0))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="results/runs", help="the runs folder (default: results/runs)")
    parser.add_argument("--plan", default="quick", help="the plan whose manifest names the runs (default: quick)")
    args = parser.parse_args(argv)
    runs_dir = Path(args.runs)
    manifest = runs_dir / "_study" / args.plan / "manifest.json"
    try:
        names = [r["run_id"] for r in json.loads(manifest.read_text())["runs"]]
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {manifest}: cannot read the plan's manifest ({exc}); run the study first", file=sys.stderr)
        return 2
    rows = [r for r in (_read(runs_dir / n) for n in names) if r is not None]
    if not rows:
        print(f"error: {runs_dir}: no finished run of plan {args.plan}", file=sys.stderr)
        return 2
    t0 = min(r["start"] for r in rows)
    units: dict[str, dict] = {}
    for r in rows:
        u = units.setdefault(r["unit"], {"start": r["start"], "end": r["end"], "runs": 0, "head": r["head"],
                                         "cache_s": 0.0, "train_s": 0.0, "eval_s": 0.0})
        u["start"], u["end"] = min(u["start"], r["start"]), max(u["end"], r["end"])
        u["runs"] += 1
        for k in ("cache_s", "train_s", "eval_s"):
            u[k] += r[k]

    def minutes(t: dt.datetime) -> float:
        return (t - t0).total_seconds() / 60

    print(f"{len(rows)} finished runs of plan {args.plan} in {len(units)} notebook executions")
    print(f"{'start':>6} {'end':>6} {'min':>5} {'runs':>4}  first run")
    for name, u in sorted(units.items(), key=lambda kv: kv[1]["start"]):
        print(f"{minutes(u['start']):6.1f} {minutes(u['end']):6.1f} {minutes(u['end']) - minutes(u['start']):5.1f} "
              f"{u['runs']:4d}  {name}")
    span = max(minutes(u["end"]) for u in units.values())
    trunk = sum(minutes(u["end"]) - minutes(u["start"]) for u in units.values() if not u["head"])
    head = sum(minutes(u["end"]) - minutes(u["start"]) for u in units.values() if u["head"])
    heads = [u for u in units.values() if u["head"]]
    cache = sum(u["cache_s"] for u in heads) / 60
    train = sum(u["train_s"] for u in heads) / 60
    evaluate = sum(u["eval_s"] for u in heads) / 60
    print(f"\nfirst start to last finish: {span:.1f} min")
    print(f"lane-minutes: trunk runs {trunk:.1f}; head batches {head:.1f} (feature caches {cache:.1f}, "
          f"training {train:.1f}, evaluation {evaluate:.1f}, the rest {head - cache - train - evaluate:.1f}); "
          f"total {trunk + head:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
