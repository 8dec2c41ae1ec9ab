"""The notebooks: committed clean and in sync with their jupytext pairs, and every one executed
through papermill with smoke parameters (the ``smoke`` study plan: seconds per notebook)."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
STUDY_NOTEBOOKS = ("train_evaluate", "ablation", "sweeps", "paper_vs_ours", "tour")
BIN = Path(sys.executable).parent

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")


def ipynbs() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


# --------------------------------------------------------------------------- the files


def test_every_notebook_has_its_pair_a_kernel_and_a_parameters_cell():
    names = {p.stem for p in ipynbs()}
    assert set(STUDY_NOTEBOOKS) <= names
    for path in ipynbs():
        assert path.with_suffix(".py").is_file(), f"{path.name} has no jupytext pair {path.stem}.py"
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec python3"
        assert "ipynb" in nb.metadata.get("jupytext", {}).get("formats", ""), f"{path.name} is not paired"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    for path in NOTEBOOKS.glob("*.py"):
        assert path.with_suffix(".ipynb").is_file(), f"{path.name} has no .ipynb pair"


def test_jupytext_pairs_are_in_sync():
    for path in ipynbs():
        a = jupytext.read(path)
        b = jupytext.read(path.with_suffix(".py"))
        cells_a = [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in a.cells]
        cells_b = [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in b.cells]
        assert cells_a == cells_b, (f"{path.name} and {path.stem}.py differ: run "
                                    f"`jupytext --sync notebooks/{path.stem}.py`")


def test_notebooks_are_committed_without_outputs():
    exe = shutil.which("nbstripout", path=str(BIN)) or shutil.which("nbstripout")
    if exe is None:
        pytest.skip("nbstripout is not installed")
    paths = [str(p) for p in ipynbs()]
    proc = subprocess.run([exe, "--verify", *paths], capture_output=True, text=True)
    assert proc.returncode == 0, f"nbstripout --verify: {proc.stdout}{proc.stderr} (run nbstripout on them)"
    for path in ipynbs():
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code"), path.name


# --------------------------------------------------------------------------- executed (smoke)

papermill = pytest.importorskip("papermill")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    """The smoke plan, run for real: train_evaluate per run, then every aggregate notebook."""
    from fgra_core.study.runner import Study

    project = tmp_path_factory.mktemp("study")
    study = Study("smoke", project_dir=project, smoke=True, show_progress=False, num_threads=2, response_maps=1)
    report = study.run()
    return study, report


@pytest.mark.slow
def test_smoke_study_runs_every_notebook_and_writes_results(smoke_study):
    study, report = smoke_study
    assert report.ok, report.summary()
    assert len(report.finished) == len(study.runs) >= 5
    batches = 0
    for spec in study.runs:
        run_dir = study.run_dir(spec)
        result = json.loads((run_dir / "results.json").read_text())
        assert result["status"] == "finished" and result["dataset"] == "synthetic"
        assert 0 <= result["metrics"]["rank1"] <= 100 and 0 <= result["metrics"]["mAP"] <= 100
        assert len(result["per_query"]["first_rank"]) == result["metrics"]["num_queries"]
        if result["regime"] == "head":   # executed in batches: the batch notebook sits in its first run's folder
            assert result["loss_curve"] or result["variant"] == 0
            batches += (run_dir / "train_evaluate_batch.ipynb").is_file()
        else:
            executed = nbformat.read(run_dir / "train_evaluate.ipynb", as_version=4)
            assert executed.metadata["papermill"]["parameters"]["run_dir"] == str(run_dir)
            assert (run_dir / "learning_curves.png").is_file()
        assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    heads = [s for s in study.runs if "trunk" not in s.groups and "finetune" not in s.groups]
    assert 1 <= batches < len(heads) / 2   # several runs per notebook execution
    trunk = [s for s in study.runs if "trunk" in s.groups]
    assert len(trunk) == 2 and all((study.run_dir(t) / "trunk.pt").is_file() for t in trunk)   # one per seed
    full = [s for s in study.runs if json.loads((study.run_dir(s) / "results.json").read_text())["variant"] >= 4]
    assert any((study.run_dir(s) / "response_maps_0.png").is_file() for s in full)


@pytest.mark.slow
def test_smoke_study_writes_tables_and_figures(smoke_study):
    import pandas as pd

    study, report = smoke_study
    res, fig = study.results_dir, study.figures_dir
    for stem in ("table2_ablation", "table1_paper_vs_ours", "sweep_seq_len", "sweep_num_regions", "jitter",
                 "alignment_summary", "claims", "readings", "part_consistency"):
        assert (res / f"{stem}.csv").is_file() and (res / f"{stem}.md").is_file(), stem
    t2 = pd.read_csv(res / "table2_ablation.csv")
    assert sorted(t2["variant"]) == sorted({s.settings["model.variant"] for s in study.runs if "ablation" in s.groups})
    assert "| 8. GB+RAM+TAS+CR+SA" in (res / "table2_ablation.md").read_text()
    assert "| 0. trunk, untrained" in (res / "table2_ablation.md").read_text()
    claims = pd.read_csv(res / "claims.csv")
    assert {"T2.c", "X.a", "F5.a", "F5.a@0", "F5.a@2"} <= set(claims["id"]) and set(claims["rank1_verdict"]) <= {
        "supported", "contradicted", "inconclusive", "not exercised"}
    assert (claims["trunks"] == 2).all() and claims["rank1_mde"].notna().all()
    assert claims.set_index("id").loc["T2.c", "check"].startswith("PC - stripe")
    assert (claims["rank1_low"] <= claims["rank1_diff"]).all() and (claims["rank1_diff"] <= claims["rank1_high"]).all()
    assert "tas_source=bn" in (res / "readings.md").read_text()
    assert pd.read_csv(res / "jitter.csv")["jitter"].tolist() == [0.0, 2.0]
    pc = pd.read_csv(res / "part_consistency.csv")
    assert sorted(pc["jitter"].unique()) == [0.0, 2.0] and pc["pc_stripe"].between(0, 1).all()
    assert pc.loc[pc["variant"] >= 4, "pc_gam"].notna().all() and pc.loc[pc["variant"] < 4, "pc_gam"].isna().all()
    assert "ours" in (res / "table1_paper_vs_ours.md").read_text()
    for stem in ("table2_synthetic", "learning_curves_synthetic", "sweep_seq_len", "sweep_num_regions", "jitter"):
        for ext in ("png", "pdf"):
            assert (fig / f"{stem}.{ext}").stat().st_size > 1000, f"{stem}.{ext}"
    if (NOTEBOOKS / "response_maps.ipynb").is_file():
        assert report.aggregates["response_maps"].startswith("done"), report.aggregates
        assert list(fig.glob("*.png")) and any("resp" in p.name or "fig5" in p.name for p in fig.glob("*.png"))
    assert (fig / "claims_synthetic_head.png").stat().st_size > 1000
    for name in ("ablation", "sweeps", "paper_vs_ours", "claims"):
        assert report.aggregates[name].startswith("done"), report.aggregates


@pytest.mark.slow
def test_rerunning_the_study_recomputes_nothing(smoke_study):
    from fgra_core.study.runner import Study

    study, _ = smoke_study
    before = {s.run_id: _digest(study.run_dir(s)) for s in study.runs}
    again = Study("smoke", project_dir=study.project_dir, smoke=True, show_progress=False)
    report = again.run(aggregates=False)
    assert report.finished == [] and len(report.skipped) == len(study.runs)
    assert {s.run_id: _digest(study.run_dir(s)) for s in study.runs} == before


@pytest.mark.slow
def test_a_misspelled_parameter_stops_train_evaluate(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(str(NOTEBOOKS / "train_evaluate.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"variatn": 3, "run_dir": str(tmp_path / "run")},
                                   kernel_name="python3", progress_bar=False, cwd=str(REPO))
    assert "variatn" in str(err.value) and "did you mean 'variant'" in str(err.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tour_notebook_runs(tmp_path):
    papermill.execute_notebook(str(NOTEBOOKS / "tour.ipynb"), str(tmp_path / "tour.ipynb"),
                               parameters={"smoke": True, "figures_dir": str(tmp_path / "fig")},
                               kernel_name="python3", progress_bar=False, cwd=str(REPO))
    assert (tmp_path / "fig" / "tour_response_maps.png").stat().st_size > 1000


LOOK_FIRST_AND_AGGREGATES = ("ablation", "claims", "sweeps", "paper_vs_ours", "response_maps", "results")


@pytest.mark.slow
@pytest.mark.parametrize("name", LOOK_FIRST_AND_AGGREGATES)
def test_notebooks_run_from_their_own_folder_with_default_parameters(smoke_study, name):
    """As JupyterLab runs them: the kernel's working folder is notebooks/, no parameter is given;
    relative defaults mean the project folder (the one above notebooks/ holding results/)."""
    study, _ = smoke_study
    folder = study.project_dir / "notebooks"
    folder.mkdir(exist_ok=True)
    shutil.copy(NOTEBOOKS / f"{name}.ipynb", folder / f"{name}.ipynb")
    out = papermill.execute_notebook(str(folder / f"{name}.ipynb"), str(folder / f"{name}.out.ipynb"),
                                     kernel_name="python3", progress_bar=False, cwd=str(folder))
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    if name in ("ablation", "claims", "sweeps", "paper_vs_ours"):
        assert f"finished run(s) in {study.project_dir / 'results' / 'runs'}" in text, text[:500]
        assert (study.project_dir / "results" / "adhoc").is_dir() and not (folder / "results").exists()
    if name == "response_maps":
        assert (study.project_dir / "results" / "runs" / "demo" / "results.json").is_file()   # the demo model
    if name == "results":   # no committed results in this project: every section says so, with the command
        assert "nothing to show yet" in text and "run `make study`" in text


@pytest.mark.slow
def test_look_first_notebook_shows_the_committed_results_without_any_run(tmp_path):
    """On a fresh clone: results/quick and figures/quick are committed, results/runs is absent."""
    folder = REPO / "notebooks"
    out = papermill.execute_notebook(str(folder / "results.ipynb"), str(tmp_path / "results.out.ipynb"),
                                     kernel_name="python3", progress_bar=False, cwd=str(folder))
    shown = "".join(o.get("data", {}).get("text/markdown", "") for c in out.cells for o in c.get("outputs", []))
    assert "T2.c 4 > 3" in shown and "| variant" in shown
    images = sum("image/png" in o.get("data", {}) for c in out.cells for o in c.get("outputs", []))
    assert images >= 7
