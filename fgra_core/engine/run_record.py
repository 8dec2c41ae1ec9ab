"""What a run folder's record may and may not become: the rules every training engine applies.

* A finished run (``results.json`` with ``status: finished``) is immutable. A request whose
  identity equals the record's gets the record back as it is; any other request for that folder
  (other epochs, other settings, ``resume: false``) is refused *before anything is written*, with
  the way to get what was meant: another run folder.
* A run's identity is its settings minus the ones that only say where things are or how fast
  they are computed (:data:`LOCATION_KEYS`: folders, device, workers, caches), plus what decides
  its data: the train, query and gallery identities of its split (:func:`split_identities`).
  So a moved project, run or data folder resumes; a split that changed does not.
* An interrupted run resumes only with the same identity; ``train.epochs`` and the evaluation
  settings may change while it is unfinished, but not below the epochs already trained.

These functions know nothing of the model being trained: every engine calls
:func:`check_request` before it writes anything, stores :func:`split_identities` in its
checkpoints and results, and calls :func:`check_resume` on the checkpoint it resumes from.
"""
from __future__ import annotations

import json
from pathlib import Path

from fgra_core.config.schema import RunConfig, flatten, load_config, to_dict
from fgra_core.utils.errors import ConfigError, DatasetError, StorageError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"

# settings that say where things are or how fast they are computed, not what is computed
LOCATION_KEYS = frozenset({"run_dir", "resume", "device", "data.root", "data.num_workers", "data.cache_dir",
                           "data.cache_memory_gb", "data.feature_cache_dir"})
# path settings compared by file name only (the folder part is a location)
FILE_NAME_KEYS = frozenset({"data.split_file"})
# settings an unfinished run may change when it resumes (besides the location keys)
RESUMABLE_KEYS = frozenset({"train.epochs", "train.eval_every"})
SPLIT_PARTS = ("train", "query", "gallery")


def with_defaults(saved: dict) -> dict:
    """A saved config with the settings added since it was written filled in at their defaults."""
    try:
        return to_dict(load_config(saved))
    except Exception:  # noqa: BLE001 - a record of removed settings simply does not match
        return saved


def run_identity(cfg: RunConfig | dict) -> dict:
    """The dotted settings that decide a run's numbers (paths and speed settings left out)."""
    flat = flatten(with_defaults(cfg) if isinstance(cfg, dict) else to_dict(cfg))
    out = {}
    for key, value in flat.items():
        if key in LOCATION_KEYS:
            continue
        if key in FILE_NAME_KEYS and value is not None:
            value = Path(str(value)).name
        out[key] = value
    return out


def differences(saved: dict, cfg: RunConfig | dict, ignore=frozenset()) -> list[str]:
    """``["optim.lr: 0.0003 -> 0.001", ...]``: identity settings of ``saved`` that ``cfg`` changes."""
    a, b = run_identity(saved), run_identity(cfg)
    keys = sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys]


def split_identities(dataset) -> dict:
    """``{"train": [...], "query": [...], "gallery": [...]}``: the original person ids of each
    part of a :class:`~fgra_core.data.records.VideoDataset` (sorted, unique)."""
    pid_map = (getattr(dataset, "info", None) or {}).get("train_pid_map")
    train = sorted({int(p) for p in pid_map.values()}) if pid_map else sorted({int(t.pid) for t in dataset.train})
    return {"train": train,
            "query": sorted({int(t.pid) for t in dataset.query}),
            "gallery": sorted({int(t.pid) for t in dataset.gallery})}


def split_changes(saved: dict | None, current: dict | None) -> list[str]:
    """``["train: removed [3], added [7]", ...]``; empty when the splits agree or one is unknown."""
    if not saved or not current:
        return []
    out = []
    for part in SPLIT_PARTS:
        a, b = set(saved.get(part, [])), set(current.get(part, []))
        if a != b:
            removed, added = sorted(a - b), sorted(b - a)
            out.append(f"{part}: removed {_few(removed)}, added {_few(added)}")
    return out


def _few(ids: list) -> str:
    return f"{ids[:8]}{' ...' if len(ids) > 8 else ''} ({len(ids)})"


def _shown(diff: list[str]) -> str:
    return ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")


def make_run_dir(run_dir: str | Path) -> None:
    """Create the run folder (and its parents); a failure is a :class:`StorageError` naming it."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"run folder {run_dir} cannot be created ({exc.strerror or exc}); expected a "
                           "writable location for run_dir", errno=exc.errno, path=str(run_dir)) from exc


def result_header(cfg: RunConfig) -> dict:
    """The first fields of every engine's finished record: what the run is."""
    return {"status": "finished", "run_dir": str(cfg.run_dir), "dataset": cfg.data.dataset,
            "split_id": cfg.data.split_id, "variant": cfg.model.variant, "backbone": cfg.model.backbone,
            "seq_len": cfg.data.seq_len, "num_regions": cfg.model.num_regions, "epochs": cfg.train.epochs,
            "seed": cfg.train.seed, "regime": cfg.train.regime}


def read_finished(run_dir: str | Path) -> dict | None:
    """The run folder's finished record, or ``None`` (absent, unreadable or not finished)."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("status") == "finished" else None


def check_request(run_dir: str | Path, cfg: RunConfig, split_identities: dict | None = None) -> dict | None:
    """Apply the finished-record rule to a request for ``run_dir``.

    Returns the finished record (to be returned as it is) when the folder holds a finished run of
    the same identity; ``None`` when there is no finished run (train, or resume); raises
    :class:`ConfigError` -- before anything is written -- for any other request.
    """
    run_dir = Path(run_dir)
    result = read_finished(run_dir)
    if result is None:
        return None
    where = f"run folder {run_dir} holds a finished run (results.json)"
    way_out = ("a finished run is never rewritten -- give this request another run_dir (a new run folder), "
               "or ask for the finished run's own settings to get its results")
    if not cfg.resume:
        raise ConfigError(f"{where}; resume: false would train it again over its record, and {way_out}")
    diff = differences(result.get("config", {}), cfg)
    if diff:
        raise ConfigError(f"{where} with other settings ({_shown(diff)}); {way_out}")
    changed = split_changes(result.get("split_identities"), split_identities)
    if changed:
        raise DatasetError(f"{where} on another split than its data gives now ({'; '.join(changed)}); {way_out}")
    return result


def check_resume(state: dict, cfg: RunConfig, where: str | Path, split_identities: dict | None = None) -> None:
    """Refuse to resume from checkpoint ``state`` (read from ``where``) a request of another identity,
    fewer epochs than it already holds, or data whose split changed."""
    diff = differences(state.get("config", {}), cfg, ignore=RESUMABLE_KEYS | {k for k in run_identity(cfg)
                                                                             if k.startswith("eval.")})
    if diff:
        raise ConfigError(f"{where} was written by a run with other settings ({_shown(diff)}); "
                          "use another run_dir, or set resume: false to start over")
    done = int(state.get("epoch", 0))
    if done > cfg.train.epochs:
        raise ConfigError(f"{where} already holds {done} epochs but train.epochs={cfg.train.epochs} was asked for; "
                          f"set train.epochs={done} or more to finish this run, or give this request another "
                          "run_dir (a new run folder)")
    changed = split_changes((state.get("extra") or {}).get("split_identities"), split_identities)
    if changed:
        raise DatasetError(f"the data no longer gives the split {where} was trained on ({'; '.join(changed)}); "
                           "restore the data folder to go on with this run, or give this request another run_dir "
                           "(a new run folder)")
