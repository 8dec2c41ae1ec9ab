"""The adapting trunk (``train.adapt: layer4``): the cache holds layer-3 maps, layer4 trains with
the head, the saved head carries it, and the response maps of the run use the trained layer4."""
from pathlib import Path

import pytest
import torch

import fgra_core
from fgra_core.config.schema import load_config
from fgra_core.engine.builders import build_model
from fgra_core.train import run
from fgra_core.utils.errors import ConfigError
from fgra_core.utils.seeding import seed_everything

QUICK = str(Path(fgra_core.__file__).parent / "config" / "configs" / "quick_synthetic.yaml")
TINY = {"device": "cpu", "train.regime": "head", "data.height": 64, "data.width": 32, "data.synthetic.height": 64,
        "data.synthetic.width": 32, "model.last_stride": 1, "data.seq_len": 2, "model.num_regions": 2,
        "data.synthetic.num_train_ids": 6, "data.synthetic.num_test_ids": 5, "data.synthetic.min_frames": 4,
        "data.synthetic.max_frames": 6, "train.P": 3, "train.K": 2, "train.epochs": 2, "model.variant": 4}


@pytest.mark.slow
def test_layer4_trains_with_the_head_and_the_maps_use_it(tmp_path):
    from fgra_core.viz import response_maps as rm

    over = {**TINY, "run_dir": str(tmp_path / "adapt"), "data.feature_cache_dir": str(tmp_path / "cache"),
            "train.adapt": "layer4"}
    r = run(QUICK, show_progress=False, overrides=over)
    assert r["status"] == "finished" and r["steps"] == 2 * 2
    assert r["alignment"]["gam"] is not None and len(r["alignment"]["per_clip"]["gam"]) == 5
    state = torch.load(tmp_path / "adapt" / "checkpoints" / "last.pt", weights_only=False)["model"]
    stage = {k[len("adapt_stage."):]: v for k, v in state.items() if k.startswith("adapt_stage.")}
    assert stage and not any(k.startswith("backbone.") for k in state)
    cfg = load_config(QUICK, overrides=over)
    seed_everything(cfg.train.seed, cfg.train.deterministic)     # as the run does before it builds its model
    initial = build_model(cfg, 6).backbone.layer4.state_dict()
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    again = build_model(cfg, 6).backbone.layer4.state_dict()
    assert [k for k, v in initial.items() if not torch.equal(v, again[k])] == []
    moved = [k for k, v in stage.items() if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert any(k.endswith("conv1.weight") for k in moved)                 # layer4 was trained
    bundle = rm.load_model(str(tmp_path / "adapt"))
    for k, v in stage.items():                                             # ... and the explorer uses it
        assert torch.equal(bundle.model.backbone.layer4.state_dict()[k], v)
    assert bundle.model.adapt_stage is None


def test_adapt_needs_the_head_regime_and_a_resnet():
    with pytest.raises(ConfigError, match="only the head regime has"):
        load_config(QUICK, overrides={**TINY, "train.regime": "finetune", "train.adapt": "layer4"})
    with pytest.raises(ConfigError, match="needs a ResNet trunk"):
        load_config(QUICK, overrides={**TINY, "model.backbone": "mobilenet_v2", "train.adapt": "layer4"})
