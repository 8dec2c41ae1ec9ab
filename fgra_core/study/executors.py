"""Where the work items of a study run: side by side here, one per GPU, or as Slurm jobs.

Every executor takes a function and a list of items and yields ``(item, fn(item))`` as the items
complete::

    for item, result in executor.map(fn, items): ...

* :class:`LocalExecutor` (``jobs``): threads in this process, ``jobs`` items at a time (each item
  is typically a notebook kernel or training process of its own; the threads only wait). ``fn``
  may be any callable.
* :class:`GpuExecutor` (``gpus``): one worker process per GPU, started with
  ``CUDA_VISIBLE_DEVICES`` set to that GPU alone, one item at a time on each: one training per GPU
  on one node. ``fn`` and the items must be picklable (a top-level function, or a
  ``functools.partial`` of one).
* :class:`SubmititExecutor` (``submitit``): each item a Slurm job -- or one job array with a cap on
  the tasks running at once -- through ``submitit`` (partition, time limit, GPUs and CPUs per run).
  ``cluster="local"`` runs the same jobs as local processes (no Slurm needed; how CI tests it),
  ``"debug"`` in this process. ``fn`` and the items go through submitit's pickling.

:func:`make_executor` checks the command-line choices and builds one; a bad choice (an unknown
executor, a GPU that does not exist, a Slurm option without Slurm or without ``submitit``,
``--executor slurm`` on a machine without ``sbatch`` unless ``--slurm-cluster local`` asks for
submitit's local test mode) is one :class:`ExecutorError` line, before anything is submitted.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from fgra_core.utils.errors import FGRAError

EXECUTORS = ("local", "slurm")
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")


class ExecutorError(FGRAError):
    """An executor that cannot be built (unknown name, missing GPU, Slurm option without Slurm)."""


class Executor:
    """``map(fn, items)`` yields ``(item, fn(item))`` in the order the items complete."""

    name = "executor"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class LocalExecutor(Executor):
    """``jobs`` items at a time on threads of this process (``jobs == 1``: one after the other, here)."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, int(jobs))

    def describe(self) -> str:
        return f"local, {self.jobs} at a time"

    def map(self, fn, items):
        items = list(items)
        if self.jobs <= 1:
            for item in items:
                yield item, fn(item)
            return
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            try:
                for fut in _as_completed(futures):
                    yield futures[fut], fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


def _as_completed(futures) -> Iterator:
    from concurrent.futures import as_completed

    return as_completed(futures)


def _pin_gpu(gpu: int) -> None:
    """Initializer of a GPU worker process: it (and every process it starts) sees one GPU."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


class GpuExecutor(Executor):
    """One worker process per GPU of ``gpus``; each item runs alone on one GPU, which it sees as
    ``cuda:0`` (``CUDA_VISIBLE_DEVICES`` is that GPU's index)."""

    name = "gpus"

    def __init__(self, gpus: Sequence[int]):
        if not gpus:
            raise ExecutorError("--gpus needs at least one GPU index")
        self.gpus = [int(g) for g in gpus]

    def describe(self) -> str:
        return f"one run per GPU on GPUs {','.join(map(str, self.gpus))}"

    def map(self, fn, items):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: CUDA never initialised before the pin
        pools = {g: ProcessPoolExecutor(1, mp_context=ctx, initializer=_pin_gpu, initargs=(g,)) for g in self.gpus}
        queue = list(items)
        running: dict = {}   # future -> (gpu, item)
        completed = False
        try:
            free = list(self.gpus)
            while queue or running:
                while queue and free:
                    gpu = free.pop(0)
                    item = queue.pop(0)
                    running[pools[gpu].submit(fn, item)] = (gpu, item)
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    gpu, item = running.pop(fut)
                    free.append(gpu)
                    yield item, fut.result()
            completed = True
        finally:
            for fut in running:
                fut.cancel()
            for pool in pools.values():   # interrupted: do not wait for runs still going in the workers
                pool.shutdown(wait=completed, cancel_futures=True)


@dataclass
class SlurmOptions:
    """Resources of each job (one run per job)."""

    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: float | None = None
    max_parallel: int | None = None     # job array: at most this many tasks at once (None: no cap)
    array: bool = True                  # one job array, else one job per item
    account: str | None = None
    qos: str | None = None
    extra: dict = field(default_factory=dict)  # other sbatch options, e.g. {"constraint": "h100"}

    def parameters(self, name: str = "fgra-study") -> dict:
        params: dict[str, Any] = {
            "name": name,
            "timeout_min": int(self.time_min),
            "gpus_per_node": int(self.gpus_per_run),
            "tasks_per_node": 1,          # multi-GPU runs start their ranks with torchrun inside the job
            "cpus_per_task": int(self.cpus_per_run),
            "nodes": 1,
        }
        if self.mem_gb is not None:
            params["mem_gb"] = float(self.mem_gb)
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.max_parallel:
            params["slurm_array_parallelism"] = int(self.max_parallel)
        extra = dict(self.extra)
        if self.account:
            extra["account"] = self.account
        if self.qos:
            extra["qos"] = self.qos
        if extra:
            params["slurm_additional_parameters"] = extra
        return params


LIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")


class SubmititExecutor(Executor):
    """Each item is a job of ``submitit`` (a job array by default); results come back as the jobs end.

    ``folder`` keeps submitit's job files (pickled calls, logs, results) and ``submitted.json``,
    the job of each item by ``key(item)``: an item whose job is still queued or running on the
    cluster (a study started again while its jobs are out) is not submitted again -- the executor
    waits for that job instead.
    """

    name = "slurm"
    LEDGER = "submitted.json"

    def __init__(self, folder: str | os.PathLike, options: SlurmOptions | None = None, cluster: str = "slurm",
                 poll_s: float = 5.0, on_submit: Callable[[Any, str], None] | None = None,
                 key: Callable[[Any], str] | None = None, on_error: Callable[[Any, BaseException], Any] | None = None):
        submitit = require_submitit("--executor slurm")
        if cluster not in SUBMITIT_CLUSTERS:
            raise ExecutorError(f"submitit cluster {cluster!r} is not one of {', '.join(SUBMITIT_CLUSTERS)}")
        self.folder = str(folder)
        self.options = options or SlurmOptions()
        self.cluster = cluster
        self.poll_s = float(poll_s)
        self.on_submit = on_submit
        self.key = key
        self.on_error = on_error   # a job that failed outside fn (time limit, node failure): its result, else raise
        self._submitit = submitit

    def describe(self) -> str:
        o = self.options
        where = f"Slurm partition {o.partition}" if o.partition else "Slurm (default partition)"
        if self.cluster != "slurm":
            where = f"submitit's {self.cluster} executor"
        cap = f", at most {o.max_parallel} at once" if o.max_parallel else ""
        return f"{where}, {o.gpus_per_run} GPU(s) and {o.cpus_per_run} CPUs per run, {o.time_min} min{cap}"

    def executor(self):
        ex = self._submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)   # never a silent fallback
        ex.update_parameters(**self.options.parameters())
        return ex

    # ------------------------------------------------------------ jobs already out
    def _ledger(self) -> dict:
        import json

        try:
            data = json.loads((Path(self.folder) / self.LEDGER).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _record(self, entries: dict) -> None:
        from fgra_core.utils.io import atomic_write_json

        atomic_write_json(Path(self.folder) / self.LEDGER, {**self._ledger(), **entries})

    def _job_state(self, job_id: str) -> str:
        """The cluster's state of a job (Slurm: through sacct / squeue); only asked on Slurm."""
        return str(self._submitit.SlurmJob(folder=self.folder, job_id=job_id).state).upper()

    def _attach(self, job_id: str):
        return self._submitit.SlurmJob(folder=self.folder, job_id=job_id)

    def _live_jobs(self, items: list) -> dict:
        """``{item index: job}`` of the items whose earlier job is still queued or running."""
        if self.key is None or self.cluster != "slurm":
            return {}
        ledger = self._ledger()
        live = {}
        for i, item in enumerate(items):
            job_id = ledger.get(self.key(item))
            if job_id:
                try:
                    state = self._job_state(job_id)
                except Exception:  # noqa: BLE001 - unknown to the cluster: submit again
                    continue
                if state.split()[0] in LIVE_STATES:
                    live[i] = self._attach(job_id)
        return live

    def map(self, fn, items):
        items = list(items)
        if not items:
            return
        live = self._live_jobs(items)
        pending = {job: items[i] for i, job in live.items()}
        new = [item for i, item in enumerate(items) if i not in live]
        if new:
            ex = self.executor()
            if self.options.array:
                jobs = ex.map_array(fn, new)
            else:
                jobs = [ex.submit(fn, item) for item in new]
            pending.update(zip(jobs, new))
            if self.key is not None:
                self._record({self.key(item): str(job.job_id) for job, item in zip(jobs, new)})
            if self.on_submit is not None:
                for job, item in zip(jobs, new):
                    self.on_submit(item, str(job.job_id))
        try:
            while pending:
                finished = [j for j in pending if j.done()]
                if not finished:
                    time.sleep(self.poll_s if self.cluster == "slurm" else min(self.poll_s, 0.2))
                    continue
                for job in finished:
                    item = pending.pop(job)
                    try:
                        result = job.result()
                    except Exception as exc:  # noqa: BLE001 - submitit's FailedJobError / UncompletedJobError
                        if self.on_error is None:
                            raise
                        result = self.on_error(item, exc)
                    yield item, result
        except KeyboardInterrupt:
            # the jobs stay queued / running on the cluster; a later start of the study finds their records
            raise


def require_submitit(option: str):
    try:
        import submitit
    except ImportError:
        raise ExecutorError(f"{option} needs the submitit package, which is not installed "
                            "(pip install 'fgra-repro[slurm]', or pip install submitit)") from None
    return submitit


def cuda_device_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no torch / no driver: no GPU
        return 0


def parse_gpus(text: str, device_count: int | None = None) -> list[int]:
    """``"0,1,3"`` -> ``[0, 1, 3]``, each an existing GPU (``torch.cuda.device_count()``)."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ExecutorError(f"--gpus expects GPU indices separated by commas, e.g. --gpus 0,1,2,3; got {text!r}")
    gpus = [int(p) for p in parts]
    if len(set(gpus)) != len(gpus):
        raise ExecutorError(f"--gpus {text}: a GPU is listed twice")
    count = cuda_device_count() if device_count is None else int(device_count)
    missing = [g for g in gpus if g >= count]
    if missing:
        have = f"indices 0..{count - 1}" if count else "no CUDA GPU is visible"
        raise ExecutorError(f"--gpus {text}: GPU {', '.join(map(str, missing))} does not exist on this machine "
                            f"(torch.cuda.device_count() = {count}: {have})")
    return gpus


def parse_time(text: str | int) -> int:
    """Slurm time limit -> minutes: ``90``, ``"90"``, ``"HH:MM:SS"``, ``"D-HH:MM:SS"``, ``"D-HH"``."""
    s = str(text).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", s)
    if not m or (m.group(1) is None and m.group(3) is None and m.group(4) is not None):
        raise ExecutorError(f"--time expects minutes or [D-]HH:MM[:SS], e.g. --time 2-00:00:00; got {text!r}")
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    if days is None and b is None:
        minutes = a                               # plain minutes
    elif b is None:
        minutes = a * 60                          # D-HH
    elif c is None:
        minutes = a * 60 + b                      # HH:MM
    else:
        minutes = a * 60 + b + (1 if c else 0)    # HH:MM:SS, seconds rounded up
    minutes += (days or 0) * 24 * 60
    if minutes < 1:
        raise ExecutorError(f"--time must be at least one minute, got {text!r}")
    return minutes


SLURM_FLAGS = ("partition", "time", "gpus_per_run", "cpus_per_run", "mem_gb", "max_parallel", "account", "qos")


def make_executor(name: str = "local", *, jobs: int = 1, gpus: str | None = None, folder: str | os.PathLike = ".",
                  slurm: dict | None = None, cluster: str = "slurm", device_count: int | None = None,
                  on_submit: Callable[[Any, str], None] | None = None,
                  key: Callable[[Any], str] | None = None,
                  on_error: Callable[[Any, BaseException], Any] | None = None) -> Executor:
    """The executor the command line asks for. ``slurm`` holds the Slurm flags that were given
    (``partition``, ``time``, ``gpus_per_run``, ``cpus_per_run``, ``mem_gb``, ``max_parallel``,
    ``account``, ``qos``; ``None`` values are not given)."""
    slurm = {k: v for k, v in (slurm or {}).items() if v is not None}
    unknown = sorted(set(slurm) - set(SLURM_FLAGS))
    if unknown:
        raise ExecutorError(f"unknown Slurm option(s) {', '.join(unknown)}; valid: {', '.join(SLURM_FLAGS)}")
    if name not in EXECUTORS:
        raise ExecutorError(f"--executor {name!r} is not one of {', '.join(EXECUTORS)}")
    flags = ", ".join("--" + k.replace("_", "-") for k in slurm)
    if name == "local":
        if slurm:
            require_submitit(flags)  # without submitit the missing package is the first thing to fix
            raise ExecutorError(f"{flags}: Slurm option(s) given without --executor slurm")
        if gpus is not None:
            return GpuExecutor(parse_gpus(gpus, device_count))
        return LocalExecutor(jobs)
    require_submitit(f"--executor slurm{' ' + flags if flags else ''}")
    if gpus is not None:
        raise ExecutorError("--gpus picks GPUs of this machine; with --executor slurm use --gpus-per-run")
    opts = SlurmOptions(partition=slurm.get("partition"), account=slurm.get("account"), qos=slurm.get("qos"))
    if "time" in slurm:
        opts.time_min = parse_time(slurm["time"])
    for flag in ("gpus_per_run", "cpus_per_run", "max_parallel"):
        if flag in slurm:
            value = slurm[flag]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if flag == "gpus_per_run" else 1):
                raise ExecutorError(f"--{flag.replace('_', '-')} must be a positive integer, got {value!r}")
            setattr(opts, flag, value)
    if "mem_gb" in slurm:
        if not isinstance(slurm["mem_gb"], (int, float)) or slurm["mem_gb"] <= 0:
            raise ExecutorError(f"--mem-gb must be a positive number, got {slurm['mem_gb']!r}")
        opts.mem_gb = float(slurm["mem_gb"])
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ExecutorError("--executor slurm needs Slurm, but sbatch is not on this machine's PATH (submitit would "
                            "run the jobs as local processes instead); run the study where Slurm is, or ask for "
                            "submitit's local test mode explicitly with --slurm-cluster local")
    return SubmititExecutor(folder, opts, cluster=cluster, on_submit=on_submit, key=key, on_error=on_error)


def run_items(executor: Executor, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[tuple[Any, Any]]:
    """All ``(item, result)`` pairs, in completion order (a convenience for scripts and tests)."""
    return list(executor.map(fn, list(items)))
