"""Training checkpoints: written atomically every epoch, read back for ``resume``."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgra_core.utils.errors import FGRAError
from fgra_core.utils.io import atomic_torch_save

LAST = "last.pt"


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt_dir: str | Path, *, epoch: int, model, optimizer, scheduler, scaler, history: list,
                    config: dict, extra: dict | None = None) -> Path:
    """Write ``last.pt`` atomically (a kill at any moment leaves the previous one intact)."""
    state = {
        "epoch": epoch,
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "history": history,
        "config": config,
        "rng": rng_state(),
        "extra": extra or {},
    }
    return atomic_torch_save(state, Path(ckpt_dir) / LAST)


def load_checkpoint(path: str | Path, map_location: Any = "cpu", require: tuple[str, ...] | None = None) -> dict:
    """Read a checkpoint; refuse one without the keys ``require`` (default: all that training writes)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise FGRAError(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); "
                        "expected a file written by fgra_core training -- delete it, or set resume: false, "
                        "to start this run over") from exc
    check_checkpoint(state, path, REQUIRED_KEYS if require is None else require)
    return state


# what save_checkpoint writes ("scaler" and "extra" may be empty)
REQUIRED_KEYS = ("epoch", "model", "optimizer", "scheduler", "history", "config", "rng")


def check_checkpoint(state: Any, path: str | Path, require: tuple[str, ...] = REQUIRED_KEYS) -> None:
    """Refuse a file that torch can read but that fgra_core training did not write (a bare
    state dict, another project's checkpoint): one ``FGRAError`` naming the file."""
    if isinstance(state, dict):
        missing = [k for k in require if k not in state]
        types = {"model": dict, "epoch": int, "config": dict, "history": list}
        if not missing and all(isinstance(state[k], t) for k, t in types.items() if k in require):
            return
        keys = [str(k) for k in list(state)[:4]]
        found = f"a dict with keys {keys}{' ...' if len(state) > 4 else ''}" + (
            f", without {', '.join(missing)}" if missing else ", of the wrong types")
    else:
        found = f"a {type(state).__name__}"
    raise FGRAError(f"checkpoint {path} was not written by fgra_core training (found {found}; expected a dict "
                    f"with {', '.join(require)}) -- delete it, or set resume: false, to start this run over")


def restore(target, state: Any, path: str | Path, part: str) -> None:
    """``target.load_state_dict(state)`` (a model, optimiser, scheduler, scaler or loss) from checkpoint
    ``path``; a state that does not fit (missing or unexpected keys, other shapes) is one ``FGRAError``
    naming the file, the part and the first keys at fault."""
    target = _unwrap(target)
    detail = ""
    if part == "model" and isinstance(state, dict):
        want, have = set(target.state_dict()), set(state)
        missing, unexpected = sorted(want - have), sorted(have - want)
        if missing or unexpected:
            detail = "; ".join(x for x in (
                f"{len(missing)} missing keys (e.g. {missing[:3]})" if missing else "",
                f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})" if unexpected else "") if x)
    if not detail:
        try:
            target.load_state_dict(state)
            return
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, ValueError or KeyError
            detail = " ".join(str(exc).split())[:300]
    raise FGRAError(f"checkpoint {path}: its {part} state does not fit this run's {part} ({detail}); expected a "
                    "checkpoint written by this run -- delete it, or set resume: false, to start this run over")


def find_last(ckpt_dir: str | Path) -> Path | None:
    path = Path(ckpt_dir) / LAST
    return path if path.is_file() else None


def load_model_weights(model, path: str | Path) -> dict:
    """Load the model weights of a checkpoint (a run folder or a ``.pt`` file); return the checkpoint."""
    path = Path(path)
    if path.is_dir():
        found = find_last(path / "checkpoints") or find_last(path)
        if found is None:
            raise FGRAError(f"no checkpoint in {path} (expected {path / 'checkpoints' / LAST})")
        path = found
    ckpt = load_checkpoint(path)
    _unwrap(model).load_state_dict(ckpt["model"])
    return ckpt


def _unwrap(model):
    return model.module if hasattr(model, "module") else model
