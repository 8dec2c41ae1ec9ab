"""The three command lines (fgra-study, fgra-train, fgra-claims): help without torch, --version,
closed choices and exclusive flags refused by argparse, packaged names accepted, --list of every
packaged plan without its data, long errors wrapped."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fgra_core
from fgra_core.study.plan import PLANS_DIR
from fgra_core.utils.cli import WRAP_AT, error_line
from fgra_core.utils.errors import FGRAError

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"fgra-study": "fgra_core.study", "fgra-train": "fgra_core.train", "fgra-claims": "fgra_core.analysis.claims"}


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not (k.startswith("FGRA_") and k.endswith("_ROOT"))}


def _module(module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=_env())


@pytest.mark.parametrize("module", sorted(COMMANDS.values()))
def test_help_parses_before_torch_is_imported(module):
    code = ("import runpy, sys\nsys.argv = ['x', '--help']\ntry:\n    runpy.run_module(%r, run_name='__main__')\n"
            "except SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)") % module
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env()).stdout
    assert "usage:" in out and out.strip().splitlines()[-1] == "TORCH False", out[-500:]


def test_console_scripts_name_the_three_commands():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"fgra-study": "fgra_core.study.cli:main", "fgra-train": "fgra_core.train:main",
                       "fgra-claims": "fgra_core.analysis.claims:main"}


@pytest.mark.parametrize("module", ["fgra_core.study", "fgra_core.train"])
def test_version(module):
    proc = _module(module, "--version")
    assert proc.returncode == 0 and proc.stdout.strip().endswith(fgra_core.__version__)


@pytest.mark.parametrize("args, message", [
    (["--aggregates-only", "--no-aggregates"], "not allowed with argument --aggregates-only"),
    (["--list", "--estimate"], "not allowed with argument --list"),
    (["--executor", "sge"], "invalid choice: 'sge' (choose from local, slurm)"),
])
def test_study_refuses_contradictory_flags_and_unknown_choices(args, message):
    proc = _module("fgra_core.study", *args)
    assert proc.returncode == 2 and message in proc.stderr.replace("'local', 'slurm'", "local, slurm"), proc.stderr


@pytest.mark.parametrize("plan", sorted(p.stem.replace("_", "-") for p in PLANS_DIR.glob("*.yaml")))
def test_every_packaged_plan_lists_without_its_data(plan, tmp_path):
    proc = _module("fgra_core.study", "--plan", plan, "--list", "--project-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    head, *rows = proc.stdout.strip().splitlines()
    assert head.startswith(f"plan {plan} (") and rows
    n = int(head.split("): ")[1].split(" runs")[0])
    assert len(rows) == n
    from fgra_core import study as st

    data_free = set(st.load_plan(plan).datasets) == {"synthetic"}   # the synthetic set needs no folder
    assert data_free is (plan not in ("mars-mini", "paper"))
    assert ("no data" in head) is not data_free
    assert all(r.split()[0] in (("pending",) if data_free else ("no", "pending")) for r in rows)


def test_train_takes_a_packaged_config_name(tmp_path):
    proc = _module("fgra_core.train", "--config", "no_such_config", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: config 'no_such_config' is neither a file nor one of the package "
                                          "configs: demo_synthetic, mars_mini,")


def test_long_errors_are_one_error_line_and_an_indented_list():
    items = [f"  dataset{i}: data folder /data/{i} does not exist (give --data-root ...)" for i in range(4)]
    text = error_line(FGRAError("plan x: missing dataset folder(s):\n" + "\n".join(items)))
    lines = text.splitlines()
    assert len(text) > WRAP_AT and lines[0] == "error: plan x: missing dataset folder(s):"
    assert lines[1:] == [f"  - {item.strip()}" for item in items]
    short = error_line(FGRAError("plan x: missing dataset folder(s):\n  mars: absent"))
    assert short == "error: plan x: missing dataset folder(s): mars: absent"
