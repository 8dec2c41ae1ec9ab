"""``python -m fgra_core.study --plan paper --estimate``: the cost of the paper plan, worked by hand,
without any dataset present."""
from __future__ import annotations

import re

import pytest

from fgra_core import study as st
from fgra_core.study.estimate import DATASET_STATS, iterations_per_epoch, run_cost
from fgra_core.study.notebook_params import build_config


def row(text: str, name: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
    return line.split()


@pytest.fixture()
def no_roots(monkeypatch, tmp_path):
    for name in ("MARS", "ILIDSVID", "PRID2011"):
        monkeypatch.delenv(f"FGRA_{name}_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)   # the plan's /data/... folders do not exist here either


def test_paper_estimate_by_hand(no_roots, capsys):
    rc = st.main(["--plan", "paper", "--estimate", "--frames-per-s", "1000", "--eval-frames-per-s", "2000"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "288 runs" in out and "given with --frames-per-s" in out
    # MARS: 8 variants x 300 epochs x 625 // 16 = 39 iterations of 16 x 4 clips of 6 frames;
    # evaluation reads the 681,089 test frames once per run
    assert row(out, "mars") == ["mars", "8", "2,400", "39", "93,600", "35,942,400", "5,448,712", "10.7"]
    # iLIDS-VID: 140 runs (80 ablation + 30 + 30 sweep runs not shared), 150 // 16 = 9 iterations;
    # sequence lengths: 110 runs of 6, 10 each of 2, 4, 8 -> 300 x 9 x 64 x 800 frames
    assert row(out, "ilidsvid") == ["ilidsvid", "140", "42,000", "9", "378,000", "138,240,000", "3,066,000", "38.8"]
    assert row(out, "prid2011") == ["prid2011", "140", "42,000", "5", "210,000", "76,800,000", "2,492,000", "21.7"]
    # (250,982,400 / 1000 + 11,006,712 / 2000) / 3600
    assert row(out, "total") == ["total", "288", "86,400", "681,600", "250,982,400", "11,006,712", "71.2"]
    alt = re.search(r"every-group epoch.*: ([\d,]+) iterations", out)
    assert alt and int(alt.group(1).replace(",", "")) > 681_600   # MARS: ~109 instead of 39 per epoch


def test_default_throughput_is_the_measured_one():
    from fgra_core.study.estimate import MEASURED_EVAL_FPS, MEASURED_TRAIN_FPS, estimate_runs, format_estimate

    runs = st.expand_plan(st.load_plan("paper"), show_progress=False)
    mars = [(s.run_id, build_config(s.params)) for s in runs if s.dataset == "mars"]
    out = format_estimate("paper", estimate_runs(mars), train_fps=MEASURED_TRAIN_FPS, eval_fps=MEASURED_EVAL_FPS,
                          measured=True)
    assert "training 811 frames/s (measured end to end on one H100" in out
    # 35,942,400 / 811 + 5,448,712 / (3,572 / 2.5) seconds
    assert row(out, "mars")[-1] == f"{(35_942_400 / 811 + 5_448_712 / (3572 / 2.5)) / 3600:.1f}" == "13.4"


def test_estimate_bad_input_is_one_line(no_roots, capsys):
    assert st.main(["--plan", "paper", "--estimate", "--frames-per-s", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --frames-per-s must be a positive number of frames per second, got 0.0\n"
    assert st.main(["--plan", "paper", "--estimate", "--data-root", "mars"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_run_cost_and_iteration_caps():
    cfg = build_config({"config": "paper_mars", "overrides": {"train.epochs": 3, "train.eval_every": 1}})
    c = run_cost(cfg)
    assert c.iters_per_epoch == 39 and c.iterations == 117
    assert c.train_frames == 117 * 64 * 6
    assert c.eval_frames == 3 * 681_089            # after epochs 1 and 2, and at the end
    capped = run_cost(build_config({"config": "paper_mars", "overrides": {"train.iters_per_epoch": 10}}))
    assert capped.iters_per_epoch == 10
    assert iterations_per_epoch(DATASET_STATS["ilidsvid"], 16, 4, "groups") == 9     # 150 identities, 1 group each
    assert 108 <= iterations_per_epoch(DATASET_STATS["mars"], 16, 4, "groups") <= 110
