"""A regular (non-editable) install works from any folder: the package finds its notebooks, plans,
configs and the paper's numbers as package data, not through the repository folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install --no-deps --target DIR .``: a wheel built from the checkout and installed into
    DIR (the dependencies are this environment's)."""
    target = tmp_path_factory.mktemp("site")
    for isolation in (["--no-build-isolation"], []):   # this environment's setuptools first, else pip's own
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", *isolation, "--quiet",
                               "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            break
    if proc.returncode != 0:
        pytest.skip(f"pip could not build the package here: {proc.stderr.strip()[-500:]}")
    return target


KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")


def _env(site: Path) -> dict:
    """A user's plain environment (nothing of the test session's), with the install on the path."""
    env = {k: os.environ[k] for k in KEEP if k in os.environ}
    env.update(PYTHONPATH=str(site), MPLBACKEND="Agg")
    return env


def test_the_installed_package_holds_its_data_and_not_the_repository(installed, tmp_path):
    code = ("import json, fgra_core; from fgra_core.study import resources; from fgra_core.analysis import tables;"
            "from fgra_core.config.packaged import packaged_names; from fgra_core.study.plan import plan_path;"
            "print(json.dumps({'pkg': fgra_core.__file__, 'nb': str(resources.notebooks_dir()),"
            "'csv': str(tables.paper_csv_path()), 'configs': packaged_names(), 'plan': str(plan_path('smoke'))}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(installed), capture_output=True,
                         text=True, timeout=120, check=True).stdout
    found = json.loads(out)
    for key in ("pkg", "nb", "csv", "plan"):
        assert found[key].startswith(str(installed)), f"{key} found outside the install: {found[key]}"
    assert (Path(found["nb"]) / "train_evaluate.ipynb").is_file()
    assert Path(found["csv"]).is_file()
    assert "quick_synthetic" in found["configs"]


@pytest.mark.slow
def test_the_smoke_study_runs_from_another_folder(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project = tmp_path / "x"
    proc = subprocess.run([sys.executable, "-m", "fgra_core.study", "--plan", "smoke", "--project-dir", str(project),
                           "--no-progress"], cwd=elsewhere, env=_env(installed), capture_output=True, text=True,
                          timeout=1200)
    if proc.returncode != 0:   # say which run failed first, and why (its status.json)
        failed = sorted((project / "results" / "runs").glob("*/status.json"))
        errors = [f"{p.parent.name}: {json.loads(p.read_text()).get('error', '')}" for p in failed
                  if json.loads(p.read_text()).get("status") == "failed"]
        pytest.fail("the smoke study failed:\n" + proc.stdout[:3000] + proc.stderr[-2000:] + "\n" + "\n".join(errors[:5]))
    assert list((project / "results" / "smoke").glob("table2_ablation.md")), sorted(
        p.name for p in (project / "results").rglob("*"))
    assert not (elsewhere / "results").exists()   # nothing written to the working folder
