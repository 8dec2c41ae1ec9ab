"""Fault suite, bad configuration: unknown keys, wrong types, impossible values and weights of
another backbone give one clear ``FGRAError`` naming the setting or file -- before any training
starts (the training step is replaced by one that fails the test, and no checkpoint appears)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from test_faults_runs import tiny_run

from fgra_core.config.schema import load_config
from fgra_core.engine import finetune as trainer
from fgra_core.train import run
from fgra_core.utils.errors import ConfigError, FGRAError, WeightsError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def no_training(monkeypatch):
    """Fail the test if a training step is ever reached."""
    def refuse(*args, **kwargs):
        pytest.fail("training started although the configuration is bad")

    monkeypatch.setattr(trainer, "train_one_epoch", refuse)


def run_fails(tmp_path, error, *fragments, **settings) -> str:
    run_dir = tmp_path / "run"
    with pytest.raises(error) as info:
        run(tiny_run(run_dir, **settings), show_progress=False)
    text = str(info.value)
    assert isinstance(info.value, FGRAError) and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text}"
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "results.json").exists()
    return text


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("settings, fragments", [
    ({"train": {"epohcs": 3}}, ["unknown setting(s) train.epohcs", "valid keys of train:", "epochs"]),
    ({"dataa": {}}, ["unknown setting(s) dataa", "valid keys:"]),
    ({"data": {"synthetic": {"num_ids": 4}}}, ["unknown setting(s) data.synthetic.num_ids"]),
    ({"model": {"N_s": 4}}, ["unknown setting(s) model.N_s", "num_regions"]),
])
def test_unknown_key(tmp_path, no_training, settings, fragments):
    run_fails(tmp_path, ConfigError, *fragments, **settings)


@pytest.mark.parametrize("settings, fragment", [
    ({"train": {"P": "16"}}, "train.P: expected an integer, got '16'"),
    ({"train": {"epochs": 2.5}}, "train.epochs: expected an integer, got 2.5"),
    ({"train": {"amp": "yes"}}, "train.amp: expected true or false, got 'yes'"),
    ({"data": {"height": None}}, "data.height: expected an integer, got None"),
    ({"optim": {"lr": "fast"}}, "optim.lr: expected a number, got 'fast'"),
    ({"model": {"backbone": "resnet101"}}, "model.backbone: expected one of 'resnet50', 'resnet18', 'mobilenet_v2'"),
    ({"data": {"dataset": "market1501"}}, "data.dataset: expected one of 'synthetic', 'mars'"),
    ({"data": [1, 2]}, "data: expected a mapping of DataConfig settings"),
])
def test_wrong_type(tmp_path, no_training, settings, fragment):
    run_fails(tmp_path, ConfigError, fragment, **settings)


@pytest.mark.parametrize("settings, fragment", [
    ({"model": {"num_regions": 5, "last_stride": 1}},  # 64-pixel frames, stride 16: a feature map 4 cells high
     "model.num_regions=5 is larger than the feature-map height 4 (data.height=64 with backbone resnet18, last_stride=1)"),
    ({"model": {"num_regions": 3, "last_stride": 2}}, "model.num_regions=3 is larger than the feature-map height 2"),
    ({"train": {"batch_size": 8}}, "train.batch_size=8 does not match train.P x train.K = 3 x 2 = 6"),
    ({"data": {"seq_len": 0}}, "data.seq_len must be at least 1, got 0"),
    ({"data": {"seq_len": -2}}, "data.seq_len must be at least 1, got -2"),
    ({"train": {"epochs": 0}}, "train.epochs must be at least 1, got 0"),
    ({"train": {"P": 1}}, "train.P (identities per batch) must be at least 2"),
    ({"train": {"K": 0}}, "train.K (tracklets per identity) must be at least 1, got 0"),
    ({"train": {"iters_per_epoch": 0}}, "train.iters_per_epoch must be >= 1, got 0"),
    ({"data": {"flip": 1.5}}, "data.flip is a probability, got 1.5"),
    ({"data": {"dataset": "mars"}}, "data.root is required for dataset 'mars'"),
    ({"eval": {"protocol": "official"}}, "protocol 'official' is the MARS evaluation kit's protocol"),
    ({"model": {"variant": -1}}, "model.variant must be a Table-2 row 1..8 (or 0, the untrained trunk), got -1"),
    ({"loss": {"label_smoothing": 1.0}}, "loss.label_smoothing must be in [0, 1), got 1.0"),
])
def test_impossible_values(tmp_path, no_training, settings, fragment):
    run_fails(tmp_path, ConfigError, fragment, **settings)


def test_more_identities_per_batch_than_the_training_set_has(tmp_path, no_training):
    run_fails(tmp_path, ConfigError, "P=8 identities per batch but the training set has only 6 identities",
              train={"P": 8})


def test_config_file_errors_name_the_file(tmp_path, no_training):
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(tiny_run(tmp_path / "run", model={"num_region": 2})))
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown setting\(s\) model.num_region"):
        run(str(path), show_progress=False)
    path.write_text("train: {epochs: [3\n")
    with pytest.raises(ConfigError, match="typo.yaml is not valid YAML"):
        run(str(path), show_progress=False)
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="typo.yaml: expected a mapping at the top level, got list"):
        run(str(path), show_progress=False)
    with pytest.raises(ConfigError, match="absent.yaml does not exist"):
        run(str(tmp_path / "absent.yaml"), show_progress=False)


def test_overrides_are_checked_like_the_file(no_training):
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) train.epoch; valid keys of train"):
        load_config(None, {"train.epoch": 3})
    with pytest.raises(ConfigError, match="override train.epochs.x: epochs is not a group of settings"):
        load_config(None, {"train.epochs": 3, "train.epochs.x": 1})


# --------------------------------------------------------------------------- weights


def save_state(path: Path, module: torch.nn.Module) -> Path:
    torch.save(module.state_dict(), path)
    return path


@pytest.mark.parametrize("backbone, maker, looks_like", [
    ("resnet50", lambda: torchvision.models.resnet18(), "basic-block ResNet"),
    ("mobilenet_v2", lambda: torchvision.models.resnet18(), "basic-block ResNet"),
    ("resnet18", lambda: torchvision.models.mobilenet_v2().features, "mobilenet_v2"),
    ("resnet18", lambda: torchvision.models.resnet50(), "resnet50"),
])
def test_weights_file_of_another_backbone(tmp_path, no_training, backbone, maker, looks_like):
    path = save_state(tmp_path / "weights.pth", maker())
    height = {"resnet50": 64, "mobilenet_v2": 64, "resnet18": 64}[backbone]
    text = run_fails(tmp_path, WeightsError, str(path), f"does not fit backbone {backbone!r}", looks_like,
                     model={"backbone": backbone, "weights": str(path)}, data={"height": height})
    assert "missing keys" in text or "unexpected keys" in text or "shape mismatches" in text


def test_weights_file_missing_or_not_a_state_dict(tmp_path, no_training):
    missing = tmp_path / "resnet18_imagenet.pth"
    run_fails(tmp_path, WeightsError, str(missing), "no such file", "expected 'none', 'imagenet' or the path",
              model={"weights": str(missing)})
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"<html>404 Not Found</html>")
    run_fails(tmp_path, WeightsError, str(junk), "cannot be read as a torch state dict", model={"weights": str(junk)})
    truncated = save_state(tmp_path / "cut.pth", torchvision.models.resnet18())
    truncated.write_bytes(truncated.read_bytes()[:4096])
    run_fails(tmp_path, WeightsError, str(truncated), "cannot be read", model={"weights": str(truncated)})
    listed = tmp_path / "list.pth"
    torch.save([1, 2, 3], listed)
    run_fails(tmp_path, WeightsError, str(listed), "expected a state dict", model={"weights": str(listed)})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_asked_for_without_cuda(tmp_path, no_training):
    run_fails(tmp_path, ConfigError, "device 'cuda' was asked for but CUDA is not available", device="cuda")


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused(tmp_path):
    cfg = tiny_run(tmp_path / "run", train={"epochs": 2})
    run(cfg, show_progress=False, stop_after_epochs=1)
    changed = tiny_run(tmp_path / "run", train={"epochs": 2}, optim={"lr": 1e-3})
    with pytest.raises(ConfigError) as info:
        run(changed, show_progress=False)
    text = str(info.value)
    assert str(tmp_path / "run" / "checkpoints" / "last.pt") in text
    assert "optim.lr: 0.0003 -> 0.001" in text and "resume: false" in text
    # settings that do not change the numbers may change
    assert run(tiny_run(tmp_path / "run", train={"epochs": 2}, data={"num_workers": 0}),
               show_progress=False)["status"] == "finished"


@pytest.mark.slow
def test_command_line_reports_a_bad_configuration_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_run(tmp_path / "run", model={"num_regions": 9})))
    proc = subprocess.run([sys.executable, "-m", "fgra_core.train", "--config", str(path), "--set", "train.epochs=2",
                           "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {path}: model.num_regions=9 is larger than")
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
