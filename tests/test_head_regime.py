"""The frozen-trunk regime end to end on a tiny synthetic set, and the study's batching of its runs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fgra_core
from fgra_core import study as st
from fgra_core.engine import trunk_cache
from fgra_core.train import run

QUICK = str(Path(fgra_core.__file__).parent / "config" / "configs" / "quick_synthetic.yaml")

TINY = {"device": "cpu", "train.regime": "head", "data.height": 64, "data.width": 32, "data.synthetic.height": 64,
        "data.synthetic.width": 32, "model.last_stride": 1, "data.seq_len": 2, "model.num_regions": 2,
        "data.synthetic.num_train_ids": 6, "data.synthetic.num_test_ids": 5, "data.synthetic.min_frames": 4,
        "data.synthetic.max_frames": 6, "train.P": 3, "train.K": 2, "train.epochs": 3}


def _run(tmp_path, name="run", **extra):
    return run(QUICK, show_progress=False, overrides={
        **TINY, "run_dir": str(tmp_path / name), "data.feature_cache_dir": str(tmp_path / "cache"), **extra})


@pytest.mark.slow
def test_head_runs_share_one_cache_and_record_what_the_claims_need(tmp_path, monkeypatch):
    built = []
    real = trunk_cache.compute_features
    monkeypatch.setattr(trunk_cache, "compute_features", lambda *a, **k: built.append(1) or real(*a, **k))
    trunk_cache._MEMORY.clear()
    a = _run(tmp_path, "v8", **{"model.variant": 8})
    b = _run(tmp_path, "v3", **{"model.variant": 3})
    assert built == [1]                                    # one trunk pass for both variants
    trunk_cache._MEMORY.clear()
    _run(tmp_path, "v3again", **{"model.variant": 3, "data.seq_len": 3})
    assert built == [1]                                    # read from disk, no trunk pass
    _run(tmp_path, "v3s1", **{"model.variant": 3, "train.seed": 1})
    assert built == [1, 1]                                 # weights "none": the seed draws another trunk
    assert a["feature_cache"]["key"] == b["feature_cache"]["key"]
    for r in (a, b):
        assert r["regime"] == "head" and r["steps"] == 3 * 2 and len(r["loss_curve"]) == r["steps"]
        assert len(r["per_query"]["first_rank"]) == r["metrics"]["num_queries"] == 5
        hits = np.mean([f == 1 for f in r["per_query"]["first_rank"] if f > 0]) * 100
        assert hits == pytest.approx(r["metrics"]["rank1"])
        assert set(r["convergence"]) == {"relative_change", "relative_se", "window", "levelled_off", "tolerance"}
    assert a["weights"]["temporal_entropy"] is not None and a["weights"]["spatial_weight_range"] is not None
    assert b["weights"]["spatial_weight_range"] is None
    # the head (and only the head) is saved; the finished run is returned as it is
    state = torch.load(tmp_path / "v8" / "checkpoints" / "last.pt", weights_only=False)
    assert state["regime"] == "head" and not any(k.startswith("backbone.") for k in state["model"])
    before = (tmp_path / "v8" / "results.json").read_bytes()
    again = _run(tmp_path, "v8", **{"model.variant": 8})
    assert again == json.loads(before) and (tmp_path / "v8" / "results.json").read_bytes() == before


@pytest.mark.slow
def test_row_0_trains_nothing_and_seeds_change_nothing(tmp_path):
    from fgra_core.models.backbones import build_backbone

    trunk_cache._MEMORY.clear()
    trunk, _ = build_backbone("resnet18", "none", 1)
    torch.save(trunk.state_dict(), tmp_path / "trunk.pt")     # a fixed trunk: the seed draws no weights
    w = {"model.weights": str(tmp_path / "trunk.pt")}
    r0 = _run(tmp_path, "a", **{"model.variant": 0}, **w)
    r1 = _run(tmp_path, "b", **{"model.variant": 0, "train.seed": 3}, **w)
    assert r0["steps"] == 0 and r0["history"] == [] and r0["metrics"] == r1["metrics"]


@pytest.mark.slow
def test_a_non_finite_loss_stops_at_its_step(tmp_path):
    from fgra_core.engine.head import DivergenceError

    trunk_cache._MEMORY.clear()
    with pytest.raises(DivergenceError, match=r"not finite at epoch 1, step \d+ \(total="):
        _run(tmp_path, "nan", **{"model.variant": 3, "loss.label_smoothing": 0.0, "optim.lr": 1e30})


def _spec(run_id, regime="head", mis=1.0):
    settings = {**TINY, "train.regime": regime, "data.synthetic.misalignment": mis}
    return st.RunSpec(run_id=run_id, params={"config": "quick_synthetic", "overrides": settings, "run_dir": run_id},
                      dataset="synthetic", split_id=0, settings=settings)


def test_units_group_head_runs_by_feature_cache_and_keep_jobs_busy():
    specs = [_spec(f"h{i}") for i in range(6)] + [_spec("m0", mis=0.0)] + [_spec("f0", "finetune")]
    units = st.units_of(specs, batch=4, jobs=2)
    ids = [[s.run_id for s in u] for u in units]
    assert ids == [["h0", "h1", "h2", "h3"], ["h4", "h5"], ["m0"], ["f0"]] or ids[-1] == ["f0"]
    assert sorted(i for u in ids for i in u) == sorted(s.run_id for s in specs)
    assert all(len(u) <= 4 for u in ids) and ["f0"] in ids and ids[-1] == ["f0"]   # batches first
    assert st.units_of(specs, batch=1, jobs=2) == [[s] for s in specs]
    # units of different caches alternate, so that two jobs do not wait for one cache
    mixed = [_spec(f"a{i}") for i in range(8)] + [_spec(f"b{i}", mis=0.0) for i in range(8)]
    order = [[s.run_id[0] for s in u] for u in st.units_of(mixed, batch=4, jobs=2)]
    assert order == [["a"] * 4, ["b"] * 4, ["a"] * 4, ["b"] * 4]


def test_plan_seeds_and_trunk_are_checked(tmp_path):
    base = {"name": "p", "config": "quick_synthetic", "datasets": {"synthetic": {}},
            "groups": {"ablation": {"vary": {"model.variant": [3, 4]}}}}
    plan = st.load_plan({**base, "seeds": [0, 2]})
    runs = st.expand_plan(plan)
    assert sorted((r.settings["model.variant"], r.settings["train.seed"]) for r in runs) == [(3, 0), (3, 2), (4, 0), (4, 2)]
    assert all(f"-r{r.settings['train.seed']}-" in r.run_id for r in runs)
    for bad, msg in (({"seeds": [1, 1]}, "distinct"), ({"seeds": "x"}, "seeds"), ({"batch": 0}, "batch")):
        with pytest.raises(st.StudyError, match=msg):
            st.load_plan({**base, **bad})
    with pytest.raises(st.StudyError, match="needs the plan's trunk"):
        st.expand_plan(st.load_plan({**base, "base": {"model.weights": "trunk"}}))
