"""Settings a dataset would ignore are refused (several splits of the synthetic set), and estimates
are about the plan's real data and regime."""
from __future__ import annotations

import pytest

from fgra_core import study as st
from fgra_core.config.schema import load_config
from fgra_core.study.plan import StudyError
from fgra_core.utils.errors import ConfigError


def test_several_splits_of_the_synthetic_set_are_refused_before_any_run():
    plan = {"name": "two-splits", "config": "quick_synthetic", "datasets": {"synthetic": {"splits": [0, 1]}},
            "groups": {"ablation": {"vary": {"model.variant": [8]}}}, "aggregates": []}
    with pytest.raises(StudyError) as err:
        st.expand_plan(st.load_plan(plan))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("plan two-splits, group ablation, dataset synthetic, split 1, model.variant=8: ")
    assert "data.split_id=1: the synthetic set has one split" in msg and "vary data.synthetic.seed" in msg
    with pytest.raises(ConfigError, match="data.split_id=2: the synthetic set has one split"):
        load_config({"data": {"dataset": "synthetic"}}, {"data.split_id": 2})
    assert load_config({"data": {"dataset": "synthetic"}}, {"data.split_id": 0}).data.split_id == 0


def _row(text: str, name: str) -> list[str]:
    return next(ln for ln in text.splitlines() if ln.startswith(name + " ")).split()


def test_estimate_of_mars_mini_uses_its_real_16_identity_root_and_the_head_regime(mars_mini, capsys, tmp_path,
                                                                                   monkeypatch):
    import numpy as np
    import scipy.io

    monkeypatch.chdir(tmp_path)                      # the plan's own ../shared root is not found from here
    assert st.main(["--plan", "mars-mini", "--estimate", "--data-root", f"mars={mars_mini}"]) == 0
    out = capsys.readouterr().out
    train = scipy.io.loadmat(mars_mini / "info" / "tracks_train_info.mat")["track_train_info"].astype(np.int64)
    test = scipy.io.loadmat(mars_mini / "info" / "tracks_test_info.mat")["track_test_info"].astype(np.int64)
    train_frames, test_frames = int((train[:, 1] - train[:, 0] + 1).sum()), int((test[:, 1] - test[:, 0] + 1).sum())
    assert len(set(train[:, 2])) == 16 and test_frames == 3853
    assert (f"statistics of mars: from data root {mars_mini} (info/*.mat): 16 training identities, "
            f"{len(train)} training tracklets, {len(test)} test tracklets, 3,853 test frames") in out
    plan = st.load_plan("mars-mini")
    runs = st.expand_plan(plan, roots={"mars": str(mars_mini)}, show_progress=False)
    from fgra_core.study.notebook_params import build_config

    cfgs = [build_config(s.params) for s in runs]
    head = [c for c in cfgs if c.train.regime == "head"]
    fine = [c for c in cfgs if c.train.regime == "finetune"]
    assert head and fine
    # 16 identities // P = 8 -> 2 batches an epoch (was 473 from full-MARS statistics)
    r = _row(out, "mars")
    assert r[3] == "2" and int(r[4].replace(",", "")) == 2 * sum(c.train.epochs for c in cfgs)
    # eval frames: one trunk pass for the one cache the head runs share (2 views of the training frames
    # + the test frames), plus each fine-tune run's evaluations of the test frames
    evals = sum(1 + (len(range(c.train.eval_every, c.train.epochs, c.train.eval_every)) if c.train.eval_every else 0)
                for c in fine)
    assert int(r[6].replace(",", "")) == 2 * train_frames + test_frames + evals * test_frames
    assert float(r[7]) < 1.0                                   # was 189.6 GPU-hours
    assert "head regime: train frames are head steps on cached maps" in out and "note:" not in out


def test_estimate_without_the_data_root_says_the_statistics_are_published(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FGRA_MARS_MINI_ROOT", raising=False)
    assert st.main(["--plan", "mars-mini", "--estimate"]) == 0
    out = capsys.readouterr().out
    assert ("note: statistics of mars are the dataset's published ones (the full MARS info/*.mat files: 625 training identities, "
            "8,298 training tracklets, 12,180 test tracklets, 681,089 test frames), as its data root "
            "../shared/data/mars-mini is not here; give --data-root mars=PATH to estimate from the data itself") in out


@pytest.mark.parametrize("plan", ["smoke", "quick"])
def test_synthetic_plans_are_estimable(capsys, plan):
    assert st.main(["--plan", plan, "--estimate"]) == 0
    out = capsys.readouterr().out
    r = _row(out, "synthetic")
    assert int(r[1]) == len(st.expand_plan(st.load_plan(plan), show_progress=False))
    assert "statistics of synthetic: from the synthetic settings" in out and float(r[-1]) >= 0
