"""One run, whichever its regime: the engine's entry point.

``run(config)`` loads and validates the configuration, checks the device against this machine and
hands the run to its regime: :mod:`fgra_core.engine.head` (frozen trunk, cached maps) or
:mod:`fgra_core.engine.finetune` (the paper's end-to-end training). Both apply the same record
rules (:mod:`fgra_core.engine.run_record`) under the run folder's lock.
"""
from __future__ import annotations

from typing import Callable

from fgra_core.config.schema import load_config
from fgra_core.engine import finetune, head
from fgra_core.utils.devices import resolve_device


def run(config=None, *, overrides: dict | None = None, show_progress: bool = True,
        stop_after_epochs: int | None = None, on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train (or resume) and evaluate one run; return its results record.

    ``config`` is a YAML path, a dict or a :class:`~fgra_core.config.schema.RunConfig`. The run
    folder receives ``config.yaml``, ``metrics.jsonl`` and ``results.json`` (a fine-tune run also
    ``checkpoints/last.pt``, every epoch). ``stop_after_epochs`` ends a fine-tune run early after
    that many epochs of this call (a controlled interruption, for tests and notebooks).
    """
    cfg = load_config(config, overrides)
    device = resolve_device(cfg.device)
    if cfg.train.regime == "head":
        return head.run(cfg, device, show_progress=show_progress)
    return finetune.run(cfg, device, show_progress=show_progress, stop_after_epochs=stop_after_epochs,
                        on_epoch_end=on_epoch_end)
