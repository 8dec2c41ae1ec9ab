"""Entry point of one run: ``python -m fgra_core.train --config FILE [--set key=value ...]``.

The same function is available from Python as :func:`fgra_core.train.run`; ``torchrun
--nproc_per_node G -m fgra_core.train ...`` trains with DistributedDataParallel.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import fgra_core
from fgra_core.config.schema import parse_assignments

__all__ = ["run", "main"]


def run(config=None, **kwargs) -> dict:
    """:func:`fgra_core.engine.run.run` (imported when called: ``--help`` needs no torch)."""
    from fgra_core.engine.run import run as engine_run

    return engine_run(config, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fgra-train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file of run settings, or the name of a packaged one "
                                         "(quick_synthetic, demo_synthetic, mars_mini, paper_mars, ...; "
                                         "defaults: the paper's recipe)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {fgra_core.__version__}")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set train.epochs=3 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    from fgra_core.utils.cli import RESUME_TRAIN, run_cli

    def body() -> int:
        from fgra_core.config.packaged import resolve_config_source

        result = run(resolve_config_source(args.config), overrides=parse_assignments(args.overrides), show_progress=not args.no_progress)
        if result.get("metrics"):
            print(json.dumps({"run_dir": result.get("run_dir"), "protocol": result.get("protocol"),
                              **result["metrics"]}, indent=2))
        return 0

    def guarded() -> int:
        from fgra_core.utils.errors import FGRAError

        try:
            return body()
        except FGRAError as exc:
            if getattr(exc, "reported", False):  # a distributed run's rank 0 already said it, once
                return 2
            raise
        except Exception as exc:
            if _peer_failed(exc):  # another rank stopped (and said why): no traceback of this one
                print(f"rank {os.environ.get('RANK')} stopped: another rank of this run failed", file=sys.stderr)
                return 1
            raise

    return run_cli(guarded, interrupted=RESUME_TRAIN)


def _peer_failed(exc: BaseException) -> bool:
    """A collective of a distributed run broken by another rank's exit."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("connection closed by peer", "connection reset by peer", "gloo", "nccl"))


if __name__ == "__main__":
    raise SystemExit(main())
