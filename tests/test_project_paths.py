"""Relative paths of a notebook mean the project folder wherever the kernel starts; a collection
of runs says what it did not find; the look-first sections name what is missing."""
from __future__ import annotations

import json

from fgra_core.analysis import showcase, tables
from fgra_core.utils.project import PROJECT_ENV, project_path, project_root


def test_project_root_from_the_notebooks_folder_the_project_folder_and_the_variable(tmp_path):
    (tmp_path / "proj" / "results").mkdir(parents=True)
    (tmp_path / "proj" / "notebooks").mkdir()
    assert project_root(tmp_path / "proj" / "notebooks", environ={}) == tmp_path / "proj"
    assert project_root(tmp_path / "proj", environ={}) == tmp_path / "proj"
    (tmp_path / "bare").mkdir()
    assert project_root(tmp_path / "bare", environ={}) == tmp_path / "bare"     # nothing above: the folder itself
    assert project_root(tmp_path / "bare", environ={PROJECT_ENV: str(tmp_path / "proj")}) == tmp_path / "proj"


def test_project_path_keeps_absolute_paths_and_roots_relative_ones(tmp_path):
    assert project_path("results/runs", tmp_path) == tmp_path / "results" / "runs"
    assert project_path(tmp_path / "x", "/elsewhere") == tmp_path / "x"
    assert project_path(None) is None and project_path("") is None


def test_collection_note_names_a_missing_folder_an_empty_one_and_unreadable_records(tmp_path):
    missing = tables.collect_results(tmp_path / "nope")
    assert tables.collection_note(missing) == (f"no finished runs: {tmp_path / 'nope'} does not exist; "
                                               "run `make study` (or `python -m fgra_core.study --plan quick`)")
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "results.json").write_text("{not json")
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "results.json").write_text(json.dumps([1, 2]))
    df = tables.collect_results(tmp_path / "runs")
    assert df.empty and df.attrs["unreadable"] == [str(tmp_path / "runs" / "a" / "results.json"),
                                                   str(tmp_path / "runs" / "b" / "results.json")]
    note = tables.collection_note(df)
    assert note.startswith(f"no finished runs in {tmp_path / 'runs'}; run `make study`")
    assert note.endswith(f"2 record(s) could not be read: {tmp_path / 'runs' / 'a' / 'results.json'}, "
                         f"{tmp_path / 'runs' / 'b' / 'results.json'}")


def test_showcase_sections_find_committed_files_and_name_the_missing_ones(tmp_path):
    (tmp_path / "results" / "quick").mkdir(parents=True)
    (tmp_path / "results" / "quick" / "claims.md").write_text("| claim |\n")
    secs = {s.title: s for s in showcase.sections(tmp_path, "quick")}
    claims = secs["The paper's claims"]
    assert claims.tables == [tmp_path / "results" / "quick" / "claims.md"]
    assert claims.missing == [tmp_path / "figures" / "quick" / "claims_synthetic_head.png"]
    fig5 = secs["Fig. 5: response maps"]
    assert fig5.empty
    assert showcase.missing_note(fig5) == ("Fig. 5: response maps: nothing to show yet (fig5_response_maps.png, "
                                           "fig5_alignment_scores.png missing); run `make study`")
    assert "--plan mars-mini" in showcase.missing_note(fig5, "mars-mini")
