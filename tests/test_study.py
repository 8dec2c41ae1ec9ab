"""The study runner, notebook parameters, tables and figures -- with a fake run function (no
training, no kernels), so every test here takes well under a second or two."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fgra_core import study as st
from fgra_core.analysis import render, tables
from fgra_core.study.notebook_params import (
    KNOWN,
    build_config,
    check_json_safe,
    expect_parameters,
    notebook_parameters,
    settings_hash,
    to_overrides,
)
from fgra_core.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PAPER_CSV = tables.paper_csv_path()


# --------------------------------------------------------------------------- notebook parameters


def test_shortcuts_and_overrides_build_one_config():
    cfg = build_config({"config": "quick_synthetic", "variant": 3, "misalignment": 0.5, "seq_len": 2,
                        "overrides": {"train.epochs": 2}, "run_dir": "/tmp/x"})
    assert cfg.model.variant == 3 and cfg.data.synthetic.misalignment == 0.5
    assert cfg.data.seq_len == 2 and cfg.train.epochs == 2 and cfg.run_dir == "/tmp/x"
    assert cfg.model.backbone == "resnet18"  # from the base config
    # None keeps the base value
    assert build_config({"config": "quick_synthetic", "variant": None}).model.variant == 8


def test_misspelled_parameter_is_an_error_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"variatn.*did you mean 'variant'"):
        build_config({"variatn": 3})
    with pytest.raises(ConfigError, match="unknown setting"):
        build_config({"overrides": {"model.variatn": 3}})
    with pytest.raises(ConfigError, match="quick_synthtic"):
        build_config({"config": "quick_synthtic"})


@pytest.mark.parametrize("value", [(1, 2), Path("/tmp"), np.int64(3), np.float32(0.5), float("nan"), {1: 2}, {"a": (1,)}])
def test_values_must_be_json_safe(value):
    with pytest.raises(ConfigError, match="JSON-safe|finite"):
        check_json_safe(value, "p")
    with pytest.raises(ConfigError):
        to_overrides({"seq_len": value})


def test_shortcut_contradicting_overrides_is_an_error():
    with pytest.raises(ConfigError, match="contradicts"):
        to_overrides({"variant": 3, "overrides": {"model.variant": 4}})
    assert to_overrides({"variant": 3, "overrides": {"model.variant": 3}}) == {"model.variant": 3}


def test_impossible_values_are_reported_by_the_config():
    with pytest.raises(ConfigError, match="model.variant"):
        build_config({"variant": 9})
    with pytest.raises(ConfigError, match="num_regions"):
        build_config({"config": "quick_synthetic", "num_regions": 64})


def test_notebook_parameters_come_from_the_namespace():
    before = {"Path", "json", "_before"}
    ns = {"Path": Path, "json": json, "_before": before, "_i3": "x", "In": [], "variant": 3, "overrides": {}}
    assert notebook_parameters(ns, before) == {"variant": 3, "overrides": {}}
    with pytest.raises(ConfigError, match="did you mean 'smoke'"):
        expect_parameters({"smok": True}, set(), ["smoke", "run_dir"])
    assert expect_parameters({"smoke": True}, set(), ["smoke"]) == {"smoke": True}
    assert {"config", "overrides", "variant", "seq_len", "num_regions", "misalignment"} <= KNOWN


def test_settings_hash_ignores_locations_only():
    a = build_config({"config": "quick_synthetic"})
    b = build_config({"config": "quick_synthetic", "run_dir": "elsewhere", "device": "cpu", "num_workers": 3})
    c = build_config({"config": "quick_synthetic", "seed": 1})
    assert settings_hash(a) == settings_hash(b) != settings_hash(c)


# --------------------------------------------------------------------------- plans


def tiny_plan(**extra) -> dict:
    plan = {
        "name": "unit",
        "config": "quick_synthetic",
        "base": {"device": "cpu", "train.epochs": 1},
        "datasets": {"synthetic": {"splits": [0]}},
        "groups": {
            "ablation": {"vary": {"model.variant": [1, 3, 8]}},
            "seq_len": {"vary": {"data.seq_len": [2, 4]}},
            "misalignment": {"vary": {"data.synthetic.misalignment": [0.0, 1.0], "model.variant": [3, 8]}},
        },
        "aggregates": ["ablation", "sweeps", "paper_vs_ours", "response_maps"],
    }
    plan.update(extra)
    return plan


def test_expansion_dedupes_identical_runs_and_merges_groups():
    runs = st.expand_plan(st.load_plan(tiny_plan()))
    # ablation 3 + seq_len 2 (len4 v8 = ablation v8) + misalignment 4 (mis1 v3, v8 = ablation's)
    assert len(runs) == 3 + 1 + 2
    by_id = {r.run_id: r for r in runs}
    assert len(by_id) == len(runs)
    v8 = [r for r in runs if r.settings.get("model.variant") == 8 and r.settings.get("data.seq_len") in (None, 4)
          and r.settings.get("data.synthetic.misalignment", 1.0) == 1.0]
    assert len(v8) == 1 and v8[0].groups == ["ablation", "seq_len", "misalignment"]
    for r in runs:
        check_json_safe(r.params)
        assert r.params["run_dir"].endswith(r.run_id)


def test_run_ids_are_readable_stable_and_follow_the_settings():
    a = st.expand_plan(st.load_plan(tiny_plan()))
    b = st.expand_plan(st.load_plan(tiny_plan()))
    assert [r.run_id for r in a] == [r.run_id for r in b]
    rid = a[0].run_id
    assert rid.startswith("synthetic-s0-v1-len4-ns4-mis1-") and len(rid.rsplit("-", 1)[1]) == 8
    other = st.expand_plan(st.load_plan(tiny_plan(base={"device": "cpu", "train.epochs": 2})))
    assert {r.run_id for r in other}.isdisjoint({r.run_id for r in a})
    # where things are does not change what a run is
    moved = st.expand_plan(st.load_plan(tiny_plan(base={"device": "auto", "train.epochs": 1})), runs_dir="/elsewhere")
    assert [r.run_id for r in moved] == [r.run_id for r in a]


def test_the_same_settings_written_differently_are_one_run():
    plan = tiny_plan(groups={"a": {"vary": {"model.variant": [8]}},
                             "b": {"vary": {"model.num_regions": [4]}}})   # 4 is the base value
    runs = st.expand_plan(st.load_plan(plan))
    assert len(runs) == 1 and runs[0].groups == ["a", "b"]


def test_shipped_plans_expand(tmp_path):
    quick = st.expand_plan(st.load_plan("quick"))
    groups = {g for r in quick for g in r.groups}
    assert groups == {"trunk", "ablation", "seq_len", "num_regions", "jitter"}
    assert sorted({r.settings["model.variant"] for r in quick if "ablation" in r.groups}) == list(range(0, 9))
    # one trunk per seed, then 13 settings x 5 seeds (9 rows, 2 + 2 sweep values) and 6 rows at
    # jitter 0 x 3 seeds: every claim's runs share their seeds (those at jitter 0 the first three)
    trunks, heads = quick[:5], quick[5:]
    assert all(r.groups == ["trunk"] for r in trunks) and len(heads) == 13 * 5 + 6 * 3
    jitter0 = [r for r in heads if r.settings["data.synthetic.jitter"] == 0.0]
    assert len(jitter0) == 18 and {r.settings["train.seed"] for r in jitter0} == {0, 1, 2}
    assert [r.settings["train.seed"] for r in trunks] == [0, 1, 2, 3, 4]
    assert all(r.settings["train.regime"] == "head" for r in heads)
    trunk_of = {r.settings["train.seed"]: str(Path(r.params["run_dir"]) / "trunk.pt") for r in trunks}
    assert len(set(trunk_of.values())) == 5
    assert all(r.settings["model.weights"] == trunk_of[r.settings["train.seed"]] for r in heads)   # seed s -> trunk s
    assert {r.settings["train.seed"] for r in heads} == {0, 1, 2, 3, 4}
    cfg = build_config(heads[0].params)
    assert cfg.data.synthetic.num_test_ids >= 200          # one query is at most 0.5 points of rank-1
    smoke = st.expand_plan(st.load_plan("smoke"))
    assert 10 <= len(smoke) <= 30
    roots = {"mars": str(tmp_path), "ilidsvid": str(tmp_path), "prid2011": str(tmp_path)}
    paper_plan = st.load_plan("paper")
    paper = st.expand_plan(paper_plan, roots=roots)
    assert len(paper) == 8 * 21 + 2 * 10 * 3 * 2
    assert {r.split_id for r in paper if r.dataset == "prid2011"} == set(range(10))
    cfg = build_config(paper[0].params)
    assert cfg.model.backbone == "resnet50" and cfg.data.seq_len == 6 and cfg.train.epochs == 300
    mini = st.expand_plan(st.load_plan("mars-mini"), roots={"mars": str(tmp_path)})
    cfg = build_config(mini[0].params)
    assert cfg.model.weights.endswith("mobilenet_v2_imagenet_features.pth") and cfg.model.backbone == "mobilenet_v2"


def test_paper_plan_names_every_missing_dataset_folder(tmp_path):
    plan = st.load_plan("paper")
    with pytest.raises(st.StudyError) as err:
        st.dataset_roots(plan, {}, environ={}, project_dir=tmp_path)
    text = str(err.value)
    for ds, env in (("mars", "FGRA_MARS_ROOT"), ("ilidsvid", "FGRA_ILIDSVID_ROOT"), ("prid2011", "FGRA_PRID2011_ROOT")):
        assert f"  {ds}:" in text and env in text and f"--data-root {ds}=" in text
    # command line first, then the environment; only the still-missing ones are named
    (tmp_path / "m").mkdir()
    (tmp_path / "i").mkdir()
    with pytest.raises(st.StudyError) as err:
        st.dataset_roots(plan, {"mars": str(tmp_path / "m")}, environ={"FGRA_ILIDSVID_ROOT": str(tmp_path / "i")},
                         project_dir=tmp_path)
    assert "prid2011" in str(err.value) and "mars:" not in str(err.value) and "ilidsvid:" not in str(err.value)
    with pytest.raises(st.StudyError, match="does not use"):
        st.dataset_roots(plan, {"market": "/x"}, environ={})
    with pytest.raises(st.StudyError, match="missing dataset"):
        st.Study("paper", project_dir=tmp_path, environ={})


def test_cli_reports_missing_folders_and_lists_runs(tmp_path, capsys, monkeypatch):
    for env in ("FGRA_MARS_ROOT", "FGRA_ILIDSVID_ROOT", "FGRA_PRID2011_ROOT"):
        monkeypatch.delenv(env, raising=False)
    assert st.main(["--plan", "paper", "--project-dir", str(tmp_path), "--no-aggregates"]) == 2
    err = capsys.readouterr().err
    assert "FGRA_PRID2011_ROOT" in err and err.startswith("error: plan paper: missing dataset folder(s):\n  - mars: ")
    assert st.main(["--plan", "paper", "--project-dir", str(tmp_path), "--list"]) == 0   # listed without its data
    out = capsys.readouterr().out
    assert "no data folder for mars, ilidsvid, prid2011" in out and "  no data   mars-s0-v1-" in out
    assert st.main(["--plan", "smoke", "--project-dir", str(tmp_path), "--list"]) == 0
    out = capsys.readouterr().out
    assert "pending" in out and "synthetic-s0-v8" in out


def test_plan_errors_are_clear(tmp_path):
    with pytest.raises(st.StudyError, match="unknown key"):
        st.load_plan(tiny_plan(grups={}))
    with pytest.raises(st.StudyError, match="non-empty list"):
        st.load_plan(tiny_plan(groups={"g": {"vary": {"model.variant": 3}}}))
    with pytest.raises(st.StudyError, match="group g, dataset synthetic"):
        st.expand_plan(st.load_plan(tiny_plan(groups={"g": {"vary": {"model.variant": [9]}}})))
    with pytest.raises(st.StudyError, match="packaged plans"):
        st.plan_path("no-such-plan")
    assert st.plan_path("mars-mini") == st.plan_path("mars_mini")


# --------------------------------------------------------------------------- runner (fake runs)


def fake_result(params: dict) -> dict:
    """A results record as the engine writes it, with numbers that depend on the settings."""
    cfg = build_config(params)
    m = cfg.data.synthetic.misalignment
    v = cfg.model.variant
    r1 = 40.0 + 4 * v - 10 * m * (v <= 3) + cfg.data.seq_len
    return {
        "status": "finished", "run_dir": cfg.run_dir, "dataset": cfg.data.dataset, "split_id": cfg.data.split_id,
        "variant": v, "backbone": cfg.model.backbone, "seq_len": cfg.data.seq_len,
        "num_regions": cfg.model.num_regions, "epochs": cfg.train.epochs, "seed": cfg.train.seed,
        "metrics": {"rank1": r1, "rank5": r1 + 10, "rank10": r1 + 15, "rank20": r1 + 20, "mAP": r1 - 5,
                    "protocol": "cross-camera", "ap_form": "plain", "num_queries": 10, "num_valid": 10,
                    "percent": True},
        "protocol": "cross-camera", "ap_form": "plain", "train_time_s": 1.0, "eval_time_s": 0.5, "device": "cpu",
        "history": [{"epoch": e + 1, "lr": 3e-4, "total": 5.0 - e, "ce": 2.0 - 0.5 * e, "triplet": 1.0, "steps": 2}
                    for e in range(cfg.train.epochs)],
        "config": {"data": {"dataset": cfg.data.dataset, "synthetic": {"misalignment": m}, "height": cfg.data.height,
                            "width": cfg.data.width}, "model": {"weights": cfg.model.weights}},
    }


class FakeRunner:
    def __init__(self, fail: set[str] = frozenset()):
        self.fail = set(fail)
        self.calls: list[str] = []

    def __call__(self, spec: st.RunSpec) -> None:
        self.calls.append(spec.run_id)
        run_dir = Path(spec.params["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"weights of " + spec.run_id.encode())
        if spec.run_id in self.fail:
            raise ValueError(f"boom in {spec.run_id}")
        (run_dir / "results.json").write_text(json.dumps(fake_result(spec.params)))


def digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def make_study(tmp_path, runner, aggregate=None, **kw) -> st.Study:
    return st.Study(st.load_plan(tiny_plan()), project_dir=tmp_path, run_fn=runner, show_progress=False,
                    aggregate_fn=aggregate or (lambda name, params, out: None),
                    notebooks_dir=tmp_path / "no-notebooks", **kw)


def test_failed_run_is_recorded_and_the_study_goes_on_then_a_rerun_completes_the_rest(tmp_path):
    plan_runs = st.expand_plan(st.load_plan(tiny_plan()))
    bad = plan_runs[1].run_id
    first = FakeRunner(fail={bad})
    study = make_study(tmp_path, first)
    report = study.run(aggregates=False)
    assert first.calls == [r.run_id for r in plan_runs]          # every run was tried
    assert list(report.failed) == [bad] and len(report.finished) == len(plan_runs) - 1
    status = json.loads((study.runs_dir / bad / "status.json").read_text())
    assert status["status"] == "failed" and "ValueError: boom in" in status["error"]
    assert any("boom" in line for line in status["traceback_tail"]) and status["attempts"] == 1
    assert not report.ok
    manifest = json.loads(study.manifest_path.read_text())
    states = {r["run_id"]: r["state"] for r in manifest["runs"]}
    assert states[bad] == "failed" and list(states.values()).count("finished") == len(plan_runs) - 1

    finished_dirs = [study.runs_dir / r for r in report.finished]
    before = {str(d): digest_tree(d) for d in finished_dirs}
    second = FakeRunner()
    report2 = make_study(tmp_path, second).run(aggregates=False)
    assert second.calls == [bad]                                  # only what was missing
    assert report2.finished == [bad] and len(report2.skipped) == len(plan_runs) - 1 and report2.ok
    assert {str(d): digest_tree(d) for d in finished_dirs} == before   # finished runs untouched
    assert json.loads((study.runs_dir / bad / "status.json").read_text())["status"] == "finished"

    third = FakeRunner()
    report3 = make_study(tmp_path, third).run(aggregates=False)
    assert third.calls == [] and len(report3.skipped) == len(plan_runs)


def test_a_run_that_ends_without_results_is_a_failure(tmp_path):
    study = make_study(tmp_path, lambda spec: None)
    report = study.run(aggregates=False)
    assert len(report.failed) == len(study.runs)
    assert all("without a finished results.json" in e for e in report.failed.values())


def test_interrupting_the_study_is_not_recorded_as_a_failed_run(tmp_path):
    def interrupt(spec):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_study(tmp_path, interrupt).run()
    assert not list(tmp_path.rglob("status.json"))


def test_aggregates_get_json_safe_parameters_and_missing_notebooks_are_skipped(tmp_path):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    for name in ("ablation", "sweeps", "paper_vs_ours"):
        (nb_dir / f"{name}.ipynb").write_text("{}")
    seen = {}

    def aggregate(name, params, out):
        check_json_safe(params)
        seen[name] = (params, out)
        if name == "sweeps":
            raise RuntimeError("sweeps broke")

    study = st.Study(st.load_plan(tiny_plan()), project_dir=tmp_path, run_fn=FakeRunner(), show_progress=False,
                     aggregate_fn=aggregate, notebooks_dir=nb_dir)
    report = study.run()
    assert set(seen) == {"ablation", "sweeps", "paper_vs_ours"}
    assert report.aggregates["response_maps"].startswith("skipped")
    assert report.aggregates["sweeps"].startswith("failed") and not report.ok
    params, out = seen["ablation"]
    assert params["manifest"] == str(study.manifest_path) and Path(params["results_dir"]).name == "unit"
    assert out.parent.parent.name == st.AGGREGATE_DIR
    # response maps: the full model of the ablation group
    (nb_dir / "response_maps.ipynb").write_text("{}")
    study.execute_aggregates(st.StudyReport("unit"), ["response_maps"])
    params, _ = seen["response_maps"]
    assert set(params) == {"run_dir", "figures_dir", "smoke"}
    assert "-v8-" in Path(params["run_dir"]).name and "mis1-" in Path(params["run_dir"]).name


def test_aggregates_run_jobs_at_a_time_and_report_in_plan_order(tmp_path):
    import threading

    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    names = ["ablation", "sweeps", "paper_vs_ours"]
    for name in names:
        (nb_dir / f"{name}.ipynb").write_text("{}")
    together = threading.Barrier(2, timeout=10)   # the first two notebooks must run side by side

    def aggregate(name, params, out):
        if name in ("ablation", "sweeps"):
            together.wait()

    plan = tiny_plan(aggregates=names)
    study = st.Study(st.load_plan(plan), project_dir=tmp_path, run_fn=FakeRunner(), show_progress=False,
                     aggregate_fn=aggregate, notebooks_dir=nb_dir, jobs=2)
    report = study.run()
    assert list(report.aggregates) == names
    assert all(v.startswith("done") for v in report.aggregates.values()), report.aggregates


# --------------------------------------------------------------------------- tables and figures


@pytest.fixture()
def store(tmp_path):
    """A results store: the tiny plan run with the fake runner, plus iLIDS-VID runs on two splits."""
    study = make_study(tmp_path, FakeRunner())
    study.run(aggregates=False)
    manifest = json.loads(study.manifest_path.read_text())
    for split in (0, 1):
        for v in (3, 4, 8):
            run_id = f"ilidsvid-s{split}-v{v}"
            params = {"config": "paper_ilidsvid", "variant": v, "split_id": split, "data_root": "/x",
                      "run_dir": str(study.runs_dir / run_id)}
            rec = fake_result(params)
            rec["metrics"]["rank1"] += split * 2
            (study.runs_dir / run_id).mkdir(parents=True)
            (study.runs_dir / run_id / "results.json").write_text(json.dumps(rec))
            manifest["runs"].append({"run_id": run_id, "groups": ["ablation"]})
    return study, manifest


def test_table2_puts_ours_beside_the_paper(store):
    study, manifest = store
    df = tables.collect_results(study.runs_dir, manifest)
    assert len(df) == 6 + 6 and not df["run_id"].str.startswith("_").any()
    assert study.manifest_path.parent == study.runs_dir / st.AGGREGATE_DIR / "unit"
    t2 = tables.table2(df, tables.load_paper(PAPER_CSV))
    il = t2[t2["dataset"] == "ilidsvid"].set_index("variant")
    assert list(il.index) == [3, 4, 8] and (il["splits"] == 2).all()
    assert il.loc[8, "rank1_paper"] == 88.0 and il.loc[8, "method"] == "8. GB+RAM+TAS+CR+SA"
    assert il.loc[8, "rank1"] == pytest.approx(40 + 32 + 6 + 1)       # mean over splits (+0, +2)
    assert il.loc[8, "rank1_diff"] == pytest.approx(il.loc[8, "rank1"] - 88.0)
    syn = t2[t2["dataset"] == "synthetic"]
    assert list(syn["variant"]) == [1, 3, 8] and syn["rank1_paper"].isna().all()
    md = render.table2_markdown(t2)
    assert "iLIDS-VID" in md and "Δ rank-1" in md and "± 1.0" in md and "no numbers for this set" in md
    assert "10 queries: one query is 10.0 points of rank-1" in md
    verdict = tables.alignment_verdict(tables.alignment_summary(t2))
    assert len(verdict) == 2 and all("rows 4-8" in v for v in verdict)


def test_table1_sweeps_and_misalignment_tables(store, tmp_path):
    study, manifest = store
    df = tables.collect_results(study.runs_dir, manifest)
    t1 = tables.table1(df, tables.load_paper(PAPER_CSV))
    il = t1[t1["dataset"] == "ilidsvid"]
    assert list(il["row"]) == ["paper (FGRA)", "ours", "ours - paper"]
    assert il.iloc[2]["rank1"] == pytest.approx(il.iloc[1]["rank1"] - 88.0)
    assert list(t1[t1["dataset"] == "synthetic"]["row"]) == ["ours"]
    assert "cross-camera" in render.table1_markdown(t1)
    sw = tables.sweep_table(df, "seq_len", "seq_len")
    assert list(sw["seq_len"]) == [2, 4] and sw["rank1"].iloc[1] - sw["rank1"].iloc[0] == pytest.approx(2)
    mt = tables.misalignment_table(df)
    assert list(mt["misalignment"]) == [0.0, 1.0]
    assert mt["rank1_v8_minus_v3"].iloc[1] == pytest.approx(20 + 10)
    written = render.write_table(mt, tmp_path / "out" / "misalignment", render.misalignment_markdown(mt), title="T")
    assert [p.name for p in written] == ["misalignment.csv", "misalignment.md"]
    assert pd.read_csv(written[0]).shape[0] == 2 and written[1].read_text().startswith("## T")
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_tables_without_a_manifest_use_every_run(store):
    study, _ = store
    df = tables.collect_results(study.runs_dir)
    assert len(df) == 12 and not df["groups"].map(bool).any()
    assert len(tables.table2(df)) == 6  # synthetic 1, 3, 8; ilidsvid 3, 4, 8


def test_figures_are_written_as_png_and_pdf(store, tmp_path):
    from fgra_core.analysis import figures

    study, manifest = store
    df = tables.collect_results(study.runs_dir, manifest)
    t2 = tables.table2(df, tables.load_paper(PAPER_CSV))
    histories = {"a": [{"epoch": 1, "total": 2.0, "ce": 1.0, "triplet_active": 1.0, "steps": 2, "lr": 1.0},
                       {"epoch": 2, "total": 1.0, "ce": 0.5, "steps": 2, "lr": 1.0}]}
    assert figures.loss_keys(histories)[:2] == ["total", "ce"]
    figs = {
        "sweep": figures.plot_sweep(tables.sweep_table(df, "seq_len", "seq_len"), "seq_len", "N"),
        "mis": figures.plot_misalignment(tables.misalignment_table(df)),
        "curves": figures.plot_learning_curves(histories),
        "t2": figures.plot_table2(t2, "ilidsvid"),
    }
    for name, fig in figs.items():
        written = figures.save_figure(fig, tmp_path / "figs" / name)
        assert [p.suffix for p in written] == [".png", ".pdf"]
        assert all(p.stat().st_size > 1000 for p in written)
        assert written[0].read_bytes()[:4] == b"\x89PNG" and written[1].read_bytes()[:4] == b"%PDF"
    import matplotlib.pyplot as plt

    plt.close("all")


def test_variant_names_follow_the_paper():
    paper = tables.load_paper(PAPER_CSV)
    names = paper[paper["table"] == "table2"].drop_duplicates("variant").set_index("variant")["method"]
    for v, name in names.items():
        assert tables.variant_name(int(v)) == name
    assert math.isnan(tables._row({"metrics": {}}, "x")["rank1"])


def test_runs_side_by_side_give_the_same_store(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    make_study(one, FakeRunner()).run(aggregates=False)
    runner = FakeRunner(fail={st.expand_plan(st.load_plan(tiny_plan()))[2].run_id})
    study = make_study(two, runner, jobs=2)
    assert study.jobs == 2 and all(r.params["num_threads"] >= 1 for r in study.runs)
    report = study.run(aggregates=False)
    assert sorted(runner.calls) == sorted(r.run_id for r in study.runs) and len(report.failed) == 1
    assert report.finished == [r.run_id for r in study.runs if r.run_id not in report.failed]
    for spec in study.runs:
        if spec.run_id in report.failed:
            continue
        a = json.loads((study.run_dir(spec) / "results.json").read_text())
        b = json.loads((one / "results" / "runs" / spec.run_id / "results.json").read_text())
        assert {k: v for k, v in a.items() if k != "run_dir"} == {k: v for k, v in b.items() if k != "run_dir"}
    with pytest.raises(st.StudyError, match="jobs"):
        st.load_plan(tiny_plan(jobs=0))
    assert st.load_plan(tiny_plan(jobs="auto")).jobs >= 1


def test_large_pngs_are_compacted(tmp_path):
    from PIL import Image

    from fgra_core.analysis import figures

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "small.png")
    small_before = (tmp_path / "small.png").read_bytes()
    size = (tmp_path / "big.png").stat().st_size
    assert figures.compact_pngs(tmp_path, max_bytes=1000) == [tmp_path / "big.png"]
    assert (tmp_path / "big.png").stat().st_size < size and (tmp_path / "small.png").read_bytes() == small_before
    with Image.open(tmp_path / "big.png") as im:
        assert im.size == (300, 300) and im.mode == "P"


def test_mars_mini_plan_finds_the_shared_folder_beside_the_checkout(mars_mini, mobilenet_weights, monkeypatch):
    monkeypatch.delenv("FGRA_MARS_MINI_ROOT", raising=False)
    study = st.Study("mars-mini", project_dir=REPO, run_fn=FakeRunner(), show_progress=False)
    cfg = build_config(study.runs[0].params)
    assert (REPO / cfg.data.root).resolve() == mars_mini.resolve()
    assert (REPO / cfg.model.weights).resolve() == mobilenet_weights.resolve()
    # rows 0-8 in both regimes, readings, sweeps: 25 settings x 5 seeds
    assert cfg.data.dataset == "mars" and len(study.runs) == 125
    regimes = {build_config(r.params).train.regime for r in study.runs if "ablation_finetune" in r.groups}
    assert regimes == {"finetune"}
