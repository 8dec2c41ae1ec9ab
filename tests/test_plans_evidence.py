"""The evidence plans: one trunk per seed, the jitter group, the paper's regime on a GPU."""
from pathlib import Path

import pytest

from fgra_core import study as st
from fgra_core.study.notebook_params import build_config


def test_quick_e2e_is_the_quick_plan_in_the_fine_tune_regime():
    quick = [r for r in st.expand_plan(st.load_plan("quick")) if "trunk" not in r.groups]
    e2e = st.expand_plan(st.load_plan("quick-e2e"))
    assert len(e2e) == len(quick) == 83
    assert {g for r in e2e for g in r.groups} == {g for r in quick for g in r.groups}
    for r in e2e:
        cfg = build_config(r.params)
        assert (cfg.device, cfg.train.regime, cfg.model.weights) == ("auto", "finetune", "none")   # cuda when there is one
        assert cfg.data.synthetic.jitter in (0.0, 2.5) and cfg.data.synthetic.box_offset == 1.0
    # the same settings apart from the regime: the same variants, sweeps and jitter levels, 5 seeds each
    key = lambda r: (r.settings["model.variant"] if "model.variant" in r.settings else None,  # noqa: E731
                     r.settings.get("data.seq_len"), r.settings.get("model.num_regions"),
                     r.settings.get("data.synthetic.jitter"), r.settings["train.seed"])
    assert sorted(map(key, e2e), key=str) == sorted(map(key, quick), key=str)


def test_readings_use_the_quick_plans_trunks():
    quick = st.expand_plan(st.load_plan("quick"))
    readings = st.expand_plan(st.load_plan("readings"))
    trunks = lambda runs: [r.run_id for r in runs if r.groups == ["trunk"]]  # noqa: E731
    assert trunks(readings) == trunks(quick) and len(trunks(quick)) == 5


def test_per_seed_trunks_need_seeds(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nconfig: quick_synthetic\ntrunk: {config: synthetic_trunk, per_seed: true}\n"
                    "datasets: {synthetic: {splits: [0]}}\ngroups: {a: {vary: {model.variant: [3]}}}\n")
    with pytest.raises(st.StudyError, match="per_seed needs the plan's seeds"):
        st.load_plan(plan)
    plan.write_text("name: p\nconfig: quick_synthetic\nseeds: [0, 1]\ntrunk: {config: synthetic_trunk, per_seed: 1}\n"
                    "datasets: {synthetic: {splits: [0]}}\ngroups: {a: {vary: {model.variant: [3]}}}\n")
    with pytest.raises(st.StudyError, match="per_seed must be true or false"):
        st.load_plan(plan)


def test_a_group_seed_without_a_trunk_is_refused(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nconfig: quick_synthetic\nseeds: [0, 1]\ntrunk: {config: synthetic_trunk, per_seed: true}\n"
                    "base: {model.weights: trunk, train.regime: head}\ndatasets: {synthetic: {splits: [0]}}\n"
                    "groups: {a: {seeds: [7], vary: {model.variant: [3]}}}\n")
    with pytest.raises(st.StudyError, match="seed 7 has no trunk of its own"):
        st.expand_plan(st.load_plan(plan))
    plan.write_text(plan.read_text().replace("seeds: [7]", "seeds: [1]"))
    runs = st.expand_plan(st.load_plan(plan))
    assert [r.settings["train.seed"] for r in runs if r.groups == ["a"]] == [1]


def test_seed_s_uses_trunk_s(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nconfig: quick_synthetic\nseeds: [0, 1, 2]\ntrunk: {config: synthetic_trunk, per_seed: true}\n"
                    "base: {model.weights: trunk, train.regime: head}\ndatasets: {synthetic: {splits: [0]}}\n"
                    "groups: {a: {vary: {model.variant: [3, 4]}}}\n")
    runs = st.expand_plan(st.load_plan(plan))
    trunks = {r.settings["train.seed"]: str(Path(r.params["run_dir"]) / "trunk.pt") for r in runs if r.groups == ["trunk"]}
    assert sorted(trunks) == [0, 1, 2]
    heads = [r for r in runs if r.groups == ["a"]]
    assert len(heads) == 6 and all(r.settings["model.weights"] == trunks[r.settings["train.seed"]] for r in heads)


def test_the_reading_plans_change_one_thing():
    quick = st.expand_plan(st.load_plan("quick"))
    q_trunks = [r.run_id for r in quick if r.groups == ["trunk"]]
    maps = st.expand_plan(st.load_plan("maps-8x4"))
    assert [r.run_id for r in maps if r.groups == ["trunk"]] == q_trunks         # the quick plan's trunks, reused
    cfg = build_config(next(r for r in maps if r.groups != ["trunk"]).params)
    assert (cfg.data.height, cfg.data.width) == (128, 64)                        # stride 16: 8x4 maps
    row8 = st.expand_plan(st.load_plan("trunk-row8"))
    trunks = [build_config(r.params) for r in row8 if r.groups == ["trunk"]]
    assert len(trunks) == 5 and {c.model.variant for c in trunks} == {8}
    for runs in (maps, row8):
        heads = [r for r in runs if r.groups != ["trunk"]]
        assert len(heads) == 20 and {r.settings["model.variant"] for r in heads} == {3, 4}


def test_the_adapt_plan_trains_layer4_on_the_quick_plans_trunks():
    quick = [r.run_id for r in st.expand_plan(st.load_plan("quick")) if r.groups == ["trunk"]]
    runs = st.expand_plan(st.load_plan("adapt"))
    assert [r.run_id for r in runs if r.groups == ["trunk"]] == quick
    heads = [build_config(r.params) for r in runs if r.groups != ["trunk"]]
    assert len(heads) == 10 and {c.train.adapt for c in heads} == {"layer4"} and {c.model.variant for c in heads} == {3, 4}
