"""Faults refused in one line before any training: settings that overflow or cannot be reported, MARS
name lists and query indices that cannot give the tracklets they claim, binary config and plan files."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from test_data_readers import make_mars

from fgra_core.config.schema import load_config
from fgra_core.data import load_mars
from fgra_core.study.plan import StudyError, load_plan
from fgra_core.utils.errors import ConfigError, DatasetError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("lr", ["1e300", "1e38", "1e31"])
def test_a_learning_rate_that_overflows_float32_is_refused(lr):
    with pytest.raises(ConfigError, match=re.escape(f"optim.lr={float(lr):g}") + r" overflows the optimiser's float32 step.*"
                                          r"at most 1e\+30"):
        load_config({}, {"optim.lr": float(lr)})
    with pytest.raises(ConfigError, match=r"optim.center_lr=1e\+38 overflows"):
        load_config({}, {"optim.center_lr": 1e38})
    assert load_config({}, {"optim.lr": 1e30}).optim.lr == 1e30     # large but representable: the divergence stop


@pytest.mark.parametrize("max_rank", [1, 19])
def test_max_rank_below_the_reported_ranks_is_refused_before_training(max_rank):
    with pytest.raises(ConfigError, match=rf"eval.max_rank={max_rank} is below the ranks every run reports "
                                          r"\(rank-1, rank-5, rank-10, rank-20\); expected eval.max_rank >= 20"):
        load_config({}, {"eval.max_rank": max_rank})
    assert load_config({}, {"eval.max_rank": 20}).eval.max_rank == 20


def test_a_query_index_naming_every_test_row_is_an_empty_gallery(tmp_path):
    root = make_mars(tmp_path / "MARS")
    n = scipy.io.loadmat(root / "info" / "tracks_test_info.mat")["track_test_info"].shape[0]
    scipy.io.savemat(root / "info" / "query_IDX.mat", {"query_IDX": np.arange(1, n + 1)[None]})
    with pytest.raises(DatasetError, match=rf"query_IDX.mat names {n} of the {n} test rows as queries, which leaves "
                                           r"no gallery tracklet"):
        load_mars(root)


def test_a_frame_name_breaking_the_mars_rule_is_named_with_its_line(tmp_path):
    root = make_mars(tmp_path / "MARS")
    names = root / "info" / "test_name.txt"
    lines = names.read_bytes().split(b"\r\n")
    lines[1] = b"x005.jpg"
    names.write_bytes(b"\r\n".join(lines))
    with pytest.raises(DatasetError) as err:
        load_mars(root)
    msg = str(err.value)
    assert f"line 2 of {names}: frame name 'x005.jpg' breaks the MARS naming rule" in msg
    assert f"{root / 'bbox_test'}/<pid>/" in msg and "x005/x005.jpg" not in msg


def test_a_frame_listed_twice_is_refused(tmp_path):
    root = make_mars(tmp_path / "MARS")
    names = root / "info" / "train_name.txt"
    lines = names.read_bytes().split(b"\r\n")
    lines[2] = lines[1]                                      # frame 3 of the first tracklet lost, frame 2 twice
    names.write_bytes(b"\r\n".join(lines))
    name = lines[1].decode()
    with pytest.raises(DatasetError, match=rf"{names} lists frame {name} twice \(lines 2 and 3\)"):
        load_mars(root)


def test_a_utf8_bom_in_a_name_list_is_dropped(tmp_path):
    root = make_mars(tmp_path / "MARS")
    clean = load_mars(root)
    names = root / "info" / "train_name.txt"
    names.write_bytes(b"\xef\xbb\xbf" + names.read_bytes())
    again = load_mars(root)
    assert [t.frames for t in again.train] == [t.frames for t in clean.train]
    assert all("\ufeff" not in f for t in again.train for f in t.frames)


def test_binary_config_and_plan_files_are_one_error(tmp_path):
    blob = tmp_path / "last.pt"
    blob.write_bytes(b"PK\x03\x04\x14\x00\x00\x08\x08\x00\xff\xfe\x80\x81binary" * 4)
    with pytest.raises(ConfigError, match=rf"config file {blob} is not a UTF-8 text file \(byte \d+: "
                                          r"invalid start byte\); expected a YAML file of run settings"):
        load_config(blob)
    with pytest.raises(StudyError, match=rf"plan {blob} is not a UTF-8 text file .*expected a YAML plan"):
        load_plan(blob)
    for cmd in (["-m", "fgra_core.train", "--config", str(blob)], ["-m", "fgra_core.study", "--plan", str(blob)]):
        out = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, cwd=REPO, timeout=300)
        lines = [x for x in out.stderr.splitlines() if x.strip()]
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert "not a UTF-8 text file" in lines[0] and "Traceback" not in out.stderr


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_a_checkpoint_with_model_keys_removed_is_one_error_on_resume(tmp_path, damage):
    import torch
    from test_faults_runs import tiny_run

    from fgra_core.train import run
    from fgra_core.utils.errors import FGRAError

    cfg = tiny_run(tmp_path / "run")
    run(cfg, show_progress=False, stop_after_epochs=1)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=False)
    keys = sorted(state["model"])
    if damage == "missing":
        for k in keys[:5]:
            del state["model"][k]
    else:
        state["optimizer"]["param_groups"] = state["optimizer"]["param_groups"][:1] * 7
    torch.save(state, last)
    before = last.read_bytes()
    with pytest.raises(FGRAError) as err:
        run(cfg, show_progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"checkpoint {last}: its ")
    if damage == "missing":
        assert "model state does not fit this run's model (5 missing keys (e.g. " in msg and keys[0] in msg
    else:
        assert "optimizer state does not fit this run's optimizer" in msg
    assert msg.endswith("delete it, or set resume: false, to start this run over")
    assert last.read_bytes() == before and not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty"),
    (b"\x80\x81\xfe\xffPK\x03\x04 binary", "is not a UTF-8 text file (byte 0: invalid start byte)"),
    (b"id,claim,verdict\nT2.1,x,better\n", "has no column(s) dataset, regime, rank1_diff"),
    (b"id,claim,dataset,regime,rank1_diff,rank1_low,rank1_high,rank1_half_width,rank1_verdict\n"
     b"T2.1,x,mars,head,big,1,2,0.5,better\n", "column rank1_diff holds 'big' (row 2); expected numbers"),
])
def test_the_claims_overview_on_a_bad_claims_csv_is_one_error_line_on_stderr(tmp_path, content, expected):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "claims.csv").write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "fgra_core.analysis.claims", str(tmp_path / "study")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert out.returncode == 2 and out.stdout == "" and len(lines) == 1, (out.stdout, out.stderr)
    assert lines[0].startswith(f"error: {tmp_path / 'study' / 'claims.csv'}") and expected in lines[0], lines[0]


def test_the_claims_overview_of_a_missing_claims_csv_goes_to_stderr(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fgra_core.analysis.claims", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == f"error: {tmp_path / 'claims.csv'} does not exist (run the study's claims aggregate first)"
