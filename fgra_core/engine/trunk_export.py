"""A trained run's trunk as a weights file: ``export_trunk(run_dir)`` -> ``run_dir/trunk.pt``.

The synthetic study trains its own trunk (a fine-tune run on generated identities that the study
never evaluates) and then freezes it for the head regime. The file holds the trunk's state dict
only (``backbone.`` prefix removed), loadable by ``model.weights: <path>``.
"""
from __future__ import annotations

from pathlib import Path

from fgra_core.engine import checkpoint as ckpt_lib
from fgra_core.utils.errors import FGRAError
from fgra_core.utils.io import atomic_torch_save

TRUNK_FILE = "trunk.pt"


def export_trunk(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the trunk of the run's last checkpoint to ``out`` (default ``run_dir/trunk.pt``); an
    existing file is kept as it is (the run is finished and its record immutable)."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / TRUNK_FILE
    if out.is_file():
        return out
    last = ckpt_lib.find_last(run_dir / "checkpoints")
    if last is None:
        raise FGRAError(f"{run_dir}: no checkpoint to take the trunk from (expected checkpoints/last.pt "
                        "of a finished run)")
    state = ckpt_lib.load_checkpoint(last)["model"]
    trunk = {k[len("backbone."):]: v.detach().clone() for k, v in state.items() if k.startswith("backbone.")}
    if not trunk:
        raise FGRAError(f"{last}: the checkpoint holds no backbone.* weights")
    atomic_torch_save(trunk, out)
    return out


__all__ = ["export_trunk", "TRUNK_FILE"]
