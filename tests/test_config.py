"""Configuration: strict loading, overrides, cross-field checks, round trip."""
from __future__ import annotations

import pytest
import yaml

from fgra_core.config.schema import (
    ConfigError,
    RunConfig,
    dump_config,
    feature_height,
    load_config,
    merge,
    resolve_protocol,
    to_dict,
)
from fgra_core.utils.errors import ConfigError as BaseConfigError


def test_defaults_are_the_papers_recipe():
    cfg = load_config()
    assert (cfg.optim.lr, cfg.optim.center_lr, cfg.optim.weight_decay) == (3e-4, 0.03, 5e-4)
    assert (cfg.optim.step_size, cfg.optim.gamma, cfg.train.epochs) == (100, 0.1, 300)
    assert (cfg.train.P, cfg.train.K, cfg.data.seq_len) == (16, 4, 6)
    assert (cfg.data.height, cfg.data.width, cfg.model.num_regions) == (256, 128, 4)
    assert (cfg.loss.triplet_margin, cfg.loss.reg_weight) == (0.5, 5e-4)
    assert cfg.model.backbone == "resnet50" and cfg.model.variant == 8


def test_yaml_round_trip(tmp_path):
    cfg = load_config(None, {"train.epochs": 7, "model.backbone": "resnet18", "data.synthetic.misalignment": 0.25})
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    again = load_config(path)
    assert again == cfg
    assert again.data.synthetic.misalignment == 0.25


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"train.epohcs": 3}, "unknown setting(s) train.epohcs"),
        ({"bogus": 1}, "unknown setting(s) bogus"),
        ({"train.P": "16"}, "train.P: expected an integer, got '16'"),
        ({"train.amp": 1}, "train.amp: expected true or false"),
        ({"model.backbone": "vgg"}, "model.backbone: expected one of 'resnet50'"),
        ({"data.seq_len": 0}, "data.seq_len must be at least 1, got 0"),
        ({"model.num_regions": 32}, "model.num_regions=32 is larger than the feature-map height 8"),
        ({"train.batch_size": 60}, "train.batch_size=60 does not match train.P x train.K = 16 x 4 = 64"),
        ({"train.P": 1}, "train.P (identities per batch) must be at least 2"),
        ({"data.dataset": "mars"}, "data.root is required for dataset 'mars'"),
        ({"eval.protocol": "official"}, "protocol 'official' is the MARS evaluation kit's protocol"),
        ({"model.variant": 9}, "model.variant must be a Table-2 row 1..8 (or 0, the untrained trunk), got 9"),
    ],
)
def test_bad_values_name_the_setting(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, override)
    assert fragment in str(info.value)
    assert isinstance(info.value, BaseConfigError)


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"train": {"epoch": 3}}))
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown setting\(s\) train.epoch"):
        load_config(typo)


def test_numbers_written_without_dot_are_accepted():
    cfg = load_config(yaml.safe_load("loss: {reg_weight: 5e-4}\noptim: {lr: 1}"))
    assert cfg.loss.reg_weight == 5e-4 and cfg.optim.lr == 1.0


def test_feature_height_and_protocol():
    cfg = load_config(None, {"data.height": 64, "model.last_stride": 2, "model.num_regions": 2})
    assert feature_height(cfg) == 2
    assert resolve_protocol(cfg) == "cross-camera"
    mars = load_config(None, {"data.dataset": "mars", "data.root": "/x"})
    assert resolve_protocol(mars) == "gallery-minus-query"
    assert resolve_protocol(load_config(mars, {"eval.protocol": "official"})) == "official"


def test_merge_is_deep_and_does_not_mutate():
    base = {"train": {"epochs": 3, "P": 4}}
    out = merge(base, {"train.epochs": 5, "model": {"variant": 2}})
    assert out == {"train": {"epochs": 5, "P": 4}, "model": {"variant": 2}}
    assert base == {"train": {"epochs": 3, "P": 4}}
    assert to_dict(RunConfig())["train"]["epochs"] == 300
