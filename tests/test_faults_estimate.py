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
