"""The study's command line: ``python -m fgra_core.study --plan NAME [...]`` (runs, ``--list``,
``--estimate``, executors).
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import fgra_core
from fgra_core.config.schema import parse_assignments
from fgra_core.study.execute import torchrun_then
from fgra_core.study.expand import expand_plan
from fgra_core.study.plan import AGGREGATE_DIR, RunSpec, StudyError, check_jobs, dataset_roots, load_plan
from fgra_core.study.runner import Study, StudyReport
from fgra_core.study.state import is_finished, record_failure
from fgra_core.utils.errors import FGRAError

SUBMITIT_CLUSTERS_CLI = ("slurm", "local", "debug")
EXECUTORS = ("local", "slurm")


def _int(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _parse_roots(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise StudyError(f"--data-root expects NAME=PATH (e.g. mars=/data/MARS), got {item!r}")
        name, path = item.split("=", 1)
        out[name.strip().lower()] = path.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fgra-study", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="quick", help="quick, paper, mars-mini, smoke, or a plan YAML file")
    parser.add_argument("--data-root", action="append", default=[], metavar="NAME=PATH",
                        help="data folder of a dataset (mars, ilidsvid, prid2011); repeatable; "
                             "else FGRA_<NAME>_ROOT, else the plan's root")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run, e.g. --set device=cuda or --set prid2011:data.split_file=F")
    parser.add_argument("--project-dir", default=".", help="folder holding results/ and figures/ (default: .)")
    parser.add_argument("--jobs", default=None,
                        help="runs executed side by side: a number or 'auto' (default: the plan's jobs, else 1)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads per run (0: torch's default, or cores / jobs when jobs > 1)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {fgra_core.__version__}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true",
                      help="print the runs of the plan and their state, then stop (works without the datasets)")
    mode.add_argument("--no-aggregates", action="store_true", help="only the runs")
    mode.add_argument("--aggregates-only", action="store_true", help="only the aggregate notebooks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    cost = parser.add_argument_group("cost estimate (works without the datasets; nothing runs)")
    mode.add_argument("--estimate", action="store_true",
                      help="print runs, epochs, iterations, frames and GPU-hours per dataset and in total, then stop")
    cost.add_argument("--frames-per-s", type=float, default=None, metavar="X",
                      help="training frames/s of one GPU (default: the measured H100 rate, benchmarks/README.md)")
    cost.add_argument("--eval-frames-per-s", type=float, default=None, metavar="X",
                      help="evaluation frames/s of one GPU (default: the measured H100 rate)")
    disp = parser.add_argument_group("dispatch (docs: README 'Paper scale: cost and dispatch')")
    disp.add_argument("--executor", default="local", choices=EXECUTORS,
                      help="local (this machine, default) or slurm (through submitit)")
    disp.add_argument("--gpus", default=None, metavar="I,J,...",
                      help="local: one run per listed GPU at a time (e.g. --gpus 0,1,2,3); replaces --jobs")
    disp.add_argument("--partition", default=None, help="Slurm partition")
    disp.add_argument("--time", default=None, help="Slurm time limit per run: minutes or [D-]HH:MM[:SS] (default 24 h)")
    disp.add_argument("--gpus-per-run", type=int, default=None,
                      help="Slurm: GPUs per run (default 1; more: DistributedDataParallel through torchrun in the job)")
    disp.add_argument("--cpus-per-run", type=int, default=None, help="Slurm: CPUs per run (default 8)")
    disp.add_argument("--mem-gb", type=float, default=None, help="Slurm: memory per run in GB")
    disp.add_argument("--max-parallel", type=int, default=None,
                      help="Slurm: one job array with at most this many runs at once")
    disp.add_argument("--account", default=None, help="Slurm account")
    disp.add_argument("--qos", default=None, help="Slurm quality of service")
    disp.add_argument("--slurm-cluster", default="slurm", choices=SUBMITIT_CLUSTERS_CLI,
                      help="slurm (default); local or debug run the same jobs on this machine through submitit")
    args = parser.parse_args(argv)
    from fgra_core.utils.cli import RESUME_STUDY, run_cli

    if args.estimate:
        return _estimate_main(args)
    if args.list:
        return run_cli(lambda: _list_main(args), interrupted=RESUME_STUDY)
    return run_cli(lambda: _main(args), interrupted=RESUME_STUDY)


def _list_main(args) -> int:
    """``--list``: every run of the plan and its state. A dataset whose folder is not there is
    named, and its runs are listed as ``no data`` (their data layout is not checked)."""
    plan = load_plan(args.plan)
    absent: list[str] = []
    project = Path(args.project_dir).resolve()
    dataset_roots(plan, _parse_roots(args.data_root), None, project, absent=absent)
    if not absent:
        return _main(args)
    roots = {ds: (None if ds in absent else spec.get("root")) for ds, spec in plan.datasets.items()}
    runs = expand_plan(plan, runs_dir=project / "results" / "runs", roots={**roots, **_parse_roots(args.data_root)},
                       extra=parse_assignments(args.overrides), show_progress=False, project_dir=project)
    print(f"plan {plan.name} ({plan.source}): {len(runs)} runs; no data folder for {', '.join(absent)} "
          f"(give --data-root NAME=PATH): those runs are listed as 'no data', their data not checked")
    for spec in runs:
        state = "no data" if spec.dataset in absent else (
            "finished" if is_finished(Path(spec.params["run_dir"])) else "pending")
        print(f"  {state:9s} {spec.run_id}  [{', '.join(spec.groups)}]")
    return 0


def _main(args) -> int:
    from fgra_core.study.executors import make_executor
    from fgra_core.utils.cli import print_error

    slurm_opts = {k: getattr(args, k) for k in ("partition", "time", "gpus_per_run", "cpus_per_run", "mem_gb",
                                                 "max_parallel", "account", "qos")}
    try:
        executor = make_executor(
            args.executor, jobs=1, gpus=args.gpus, slurm=slurm_opts, cluster=args.slurm_cluster,
            folder=Path(args.project_dir) / "results" / "runs" / AGGREGATE_DIR / "slurm",
            key=_unit_key, on_error=_job_failed)
        study = Study(args.plan, project_dir=args.project_dir, data_roots=_parse_roots(args.data_root),
                      extra=parse_assignments(args.overrides), num_threads=args.threads,
                      jobs=len(executor.gpus) if hasattr(executor, "gpus") else (  # --gpus: cores shared by the runs
                          None if args.jobs is None else check_jobs(args.jobs if args.jobs == "auto" else _int(args.jobs), "--jobs")),
                      show_progress=not args.no_progress)
    except FGRAError as exc:
        return print_error(exc)
    if args.executor == "local" and args.gpus is None:
        executor = None   # the plan's / --jobs' side-by-side runs
    else:
        study.executor = executor
        gpus_per_run = getattr(getattr(executor, "options", None), "gpus_per_run", 1)
        if gpus_per_run > 1:
            study.run_fn = functools.partial(torchrun_then, nproc=gpus_per_run, project_dir=study.project_dir,
                                             run_fn=study.run_fn)
            study.batch_fn = None   # each run its own job through torchrun
    if args.list:
        states = study.states()
        print(f"plan {study.plan.name} ({study.plan.source}): {len(study.runs)} runs")
        for spec in study.runs:
            print(f"  {states[spec.run_id]:9s} {spec.run_id}  [{', '.join(spec.groups)}]")
        return 0
    report = StudyReport(plan=study.plan.name)
    t0 = time.time()
    if executor is not None and not args.aggregates_only:
        print(f"runs on: {executor.describe()}")
    try:
        if not args.aggregates_only:
            study.execute_runs(report)
        else:
            study.write_manifest(study.states())
        if not args.no_aggregates:
            study.execute_aggregates(report)
    except FGRAError as exc:  # e.g. a full disk while writing the manifest: finished runs stay as they are
        report.seconds = time.time() - t0
        print(report.summary())
        return print_error(exc)
    report.seconds = time.time() - t0
    print(report.summary())
    return 0 if report.ok else 1




def _unit_key(unit: list[RunSpec]) -> str:
    """A job's name: its run, or its first run and how many more."""
    return unit[0].run_id + (f"+{len(unit) - 1}" if len(unit) > 1 else "")


def _job_failed(unit: list[RunSpec], exc: BaseException) -> list[tuple[RunSpec, str]]:
    """A Slurm job that ended outside its runs (time limit, node failure): each run it had not
    finished is recorded like a failed run; the next start of the study submits it again (a
    fine-tune run resumes from its last checkpoint)."""
    return [(spec, None) if is_finished(Path(spec.params["run_dir"])) else
            (spec, record_failure(Path(spec.params["run_dir"]), spec, exc, 0.0)["error"]) for spec in unit]


def _estimate_main(args) -> int:
    """``--estimate``: the plan's runs and what they cost, in their regimes, from the statistics of each
    data root that is there (no image read), else the dataset's published ones, which it says."""
    from fgra_core.study.estimate import (
        MEASURED_EVAL_FPS,
        MEASURED_TRAIN_FPS,
        check_throughput,
        estimate_runs,
        format_estimate,
        run_configs,
    )

    try:
        train_fps = check_throughput(args.frames_per_s, "--frames-per-s")
        eval_fps = check_throughput(args.eval_frames_per_s, "--eval-frames-per-s")
        plan = load_plan(args.plan)
        cli_roots = _parse_roots(args.data_root)
        roots = {ds: cli_roots.get(ds) or spec.get("root") for ds, spec in plan.datasets.items()}
        extra = parse_assignments(args.overrides)
        runs = expand_plan(plan, roots=roots, extra=extra, show_progress=False)
        configs = run_configs((s.run_id, s.params) for s in runs)
        gpus = len(args.gpus.split(",")) if args.gpus else None
    except (FGRAError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        costs = estimate_runs(configs)
        alt_costs = estimate_runs(configs, epoch_mode="groups")
    except KeyError as exc:
        print(f"error: plan {plan.name}: {exc.args[0]}", file=sys.stderr)
        return 2
    except FGRAError as exc:   # a data root that is there but cannot be read
        print(f"error: plan {plan.name}: {exc}", file=sys.stderr)
        return 2
    different = any(a.iterations != b.iterations for a, b in zip(costs, alt_costs))
    print(format_estimate(plan.name, costs, train_fps=train_fps or MEASURED_TRAIN_FPS,
                          eval_fps=eval_fps or MEASURED_EVAL_FPS, measured=train_fps is None,
                          alt_costs=alt_costs if different else None,
                          alt_label="the every-group epoch (--set train.epoch_mode=groups)", gpus=gpus), end="")
    return 0
