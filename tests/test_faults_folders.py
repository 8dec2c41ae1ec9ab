"""A run folder is what its name says: a copy of (or a link to) another run's folder stops the study
before any run, naming both ids; the tables count each record once, in its own folder."""
from __future__ import annotations

import shutil

import pytest
from test_faults_runs import study_plan

from fgra_core import study as st
from fgra_core.analysis.tables import collect_results
from fgra_core.engine.run_ids import recorded_run_id
from fgra_core.study.plan import StudyError
from fgra_core.study.state import read_json
from fgra_core.train import run

PLAN = study_plan("folders", variants=(1, 8))   # the fault tests' tiny synthetic plan
PLAN["base"]["train.iters_per_epoch"] = 1


def _study(tmp_path, calls):
    return st.Study(st.load_plan(PLAN), project_dir=tmp_path, run_fn=lambda spec: calls.append(spec.run_id),
                    show_progress=False, aggregate_fn=lambda name, params, out: None,
                    notebooks_dir=tmp_path / "no-notebooks")


@pytest.fixture(scope="module")
def finished_v8(tmp_path_factory):
    """The v8 run trained for real (one step): its folder and the v1 folder it will be copied to."""
    from fgra_core.study.notebook_params import build_config

    tmp = tmp_path_factory.mktemp("project")
    study = _study(tmp, [])
    v1, v8 = study.runs
    assert "-v1-" in v1.run_id and "-v8-" in v8.run_id
    run(build_config(v8.params), show_progress=False)
    return tmp, study.run_dir(v1), study.run_dir(v8), v1.run_id, v8.run_id


def test_a_real_record_recomputes_to_its_folder_id(finished_v8):
    _, _, v8_dir, _, v8_id = finished_v8
    assert recorded_run_id(read_json(v8_dir / "results.json")) == v8_id == v8_dir.name


@pytest.mark.parametrize("how", ["copy", "symlink"])
def test_a_run_folder_holding_another_runs_record_stops_the_study_naming_both_ids(finished_v8, tmp_path, how):
    src, _, v8_dir, v1_id, v8_id = finished_v8
    project = tmp_path / "p"
    shutil.copytree(src, project, symlinks=True)
    runs = project / "results" / "runs"
    (runs / v1_id).unlink() if (runs / v1_id).is_symlink() else shutil.rmtree(runs / v1_id, ignore_errors=True)
    if how == "copy":
        shutil.copytree(runs / v8_id, runs / v1_id)
    else:
        (runs / v1_id).symlink_to(runs / v8_id, target_is_directory=True)
    calls = []
    with pytest.raises(StudyError) as err:
        _study(project, calls).run()
    msg = str(err.value)
    assert "\n" not in msg and calls == []
    assert f"holds the finished record of run {v8_id}, not of run {v1_id} (its name)" in msg
    assert str(runs / v1_id) in msg and (("a link to" in msg) == (how == "symlink"))
    # the tables: the v8 record is counted once, in its own folder, not again as v1
    df = collect_results(runs)
    assert df["run_id"].tolist() == [v8_id] and df["variant"].tolist() == [8]


def test_the_tables_count_a_linked_record_once(finished_v8, tmp_path):
    src, _, _, _, v8_id = finished_v8
    runs = tmp_path / "runs"
    shutil.copytree(src / "results" / "runs" / v8_id, runs / v8_id)
    (runs / "zz-alias").symlink_to(runs / v8_id, target_is_directory=True)
    (runs / "aa-alias").symlink_to(runs / v8_id, target_is_directory=True)
    df = collect_results(runs)
    assert df["run_id"].tolist() == [v8_id]


def test_its_own_folder_is_taken_as_finished(finished_v8, tmp_path):
    src, _, _, v1_id, v8_id = finished_v8
    project = tmp_path / "p"
    shutil.copytree(src, project, symlinks=True)
    calls = []
    report = _study(project, calls).run()
    assert v8_id in report.skipped and calls == [v1_id]
