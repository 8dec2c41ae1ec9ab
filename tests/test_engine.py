"""Training engine: a run end to end, resume equality, finished runs, 2-process DDP (gloo), a real
run on MARS crops. Seed determinism is in tests/test_faults_determinism.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_faults_runs import tiny_run as tiny  # the suite's one tiny run configuration

from fgra_core.train import run

REPO = Path(__file__).resolve().parents[1]


def _metrics(result: dict) -> dict:
    return result["metrics"]


def test_run_writes_everything_and_resumes_exactly(tmp_path):
    full = run(tiny(tmp_path / "full"), show_progress=False)
    assert full["status"] == "finished"
    run_dir = tmp_path / "full"
    for name in ("config.yaml", "metrics.jsonl", "results.json", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert all(r["steps"] == 2 for r in lines)
    # the scheduler steps every optim.step_size epochs
    assert lines[0]["lr"] == pytest.approx(3e-4) and lines[2]["lr"] == pytest.approx(3e-5)
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["metrics"] == full["metrics"] and on_disk["protocol"] == "cross-camera"
    assert not list(run_dir.rglob("*.tmp")), "no temporary files are left behind"

    part = run(tiny(tmp_path / "part"), show_progress=False, stop_after_epochs=1)
    assert part["status"] == "interrupted" and part["epoch"] == 1
    resumed = run(tiny(tmp_path / "part"), show_progress=False)
    assert resumed["history"] == full["history"]
    assert _metrics(resumed) == _metrics(full)


def test_finished_run_is_not_retrained(tmp_path):
    first = run(tiny(tmp_path / "r", train={"epochs": 1}), show_progress=False)
    ckpt = tmp_path / "r" / "checkpoints" / "last.pt"
    stamp = ckpt.stat().st_mtime_ns
    again = run(tiny(tmp_path / "r", train={"epochs": 1}), show_progress=False)
    assert ckpt.stat().st_mtime_ns == stamp
    assert again["metrics"] == first["metrics"]
    # a record written before a setting existed still counts when the setting is at its default
    res_path = tmp_path / "r" / "results.json"
    record = json.loads(res_path.read_text())
    del record["config"]["data"]["flip"]
    res_path.write_text(json.dumps(record))
    older = run(tiny(tmp_path / "r", train={"epochs": 1}), show_progress=False)
    assert ckpt.stat().st_mtime_ns == stamp and older["metrics"] == first["metrics"]
    # a changed setting is not mistaken for the finished run, nor resumed from its checkpoint
    from fgra_core.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"other settings \(data.flip: 0.5 -> 0.0\)"):
        run(tiny(tmp_path / "r", train={"epochs": 1}, data={"flip": 0.0}), show_progress=False)


@pytest.mark.slow
def test_two_process_gloo_ddp(tmp_path):
    cfg_path = tmp_path / "ddp.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(tiny(tmp_path / "ddp", train={"epochs": 1})))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fgra_core.train", "--config", str(cfg_path), "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert result["world_size"] == 2
    assert result["history"][0]["steps"] == 1  # 2 batches per epoch shared by 2 ranks
    assert 0.0 <= result["metrics"]["rank1"] <= 100.0


@pytest.mark.slow
def test_mars_mini_imagenet_backbone_beats_random_init(tmp_path, mars_mini, mobilenet_weights, capsys):
    """A short real run on MARS crops: ImageNet MobileNetV2 vs the same run from random weights."""
    def cfg(name, weights):
        return {
            "run_dir": str(tmp_path / name), "device": "cpu",
            "data": {"dataset": "mars", "root": str(mars_mini), "seq_len": 4, "height": 128, "width": 64,
                     "num_workers": 0},
            "model": {"variant": 8, "backbone": "mobilenet_v2", "weights": weights, "num_regions": 4},
            "train": {"epochs": 3, "P": 8, "K": 2},
            "eval": {"frame_budget": 128},
        }

    pre = run(cfg("imagenet", str(mobilenet_weights)), show_progress=False)
    rnd = run(cfg("random", "none"), show_progress=False)
    for res in (pre, rnd):
        assert res["status"] == "finished"
        assert (Path(res["run_dir"]) / "checkpoints" / "last.pt").is_file()
        assert len((Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()) == 3
        assert res["metrics"]["num_queries"] == 32
        assert res["metrics"]["num_valid"] + res["metrics"]["num_skipped"] == 32
    with capsys.disabled():
        print(f"\nmars-mini, 3 epochs, MobileNetV2: ImageNet rank-1 {pre['metrics']['rank1']:.1f} "
              f"mAP {pre['metrics']['mAP']:.1f} | random init rank-1 {rnd['metrics']['rank1']:.1f} "
              f"mAP {rnd['metrics']['mAP']:.1f}")
    assert pre["metrics"]["rank1"] > rnd["metrics"]["rank1"]
