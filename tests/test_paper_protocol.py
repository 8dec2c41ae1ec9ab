"""Protocol of the paper plan: PRID-2011 on the standard split file by default, generated splits
marked in every table, and test-time precision the same as training."""
from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
import torch

from fgra_core import study as st
from fgra_core.analysis import render, tables
from fgra_core.data.datasets.prid2011 import load_prid2011
from fgra_core.data.splits import resolve_split_file, standard_split_file
from fgra_core.study.notebook_params import build_config
from fgra_core.utils.errors import DatasetError


def paper_runs(**extra):
    return st.expand_plan(st.load_plan("paper"), extra=extra, show_progress=False)


# --------------------------------------------------------------------------- PRID-2011 splits


def test_paper_plan_uses_the_standard_prid_splits_by_default():
    runs = [s for s in paper_runs() if s.dataset == "prid2011"]
    assert len(runs) == 140 and sorted({s.split_id for s in runs}) == list(range(10))
    assert {build_config(s.params).data.split_file for s in runs} == {"standard"}



def test_the_standard_file_is_found_in_place_or_named(prid_splits_file, tmp_path):
    assert resolve_split_file("prid2011", "standard") == Path(prid_splits_file)
    splits = json.loads(Path(prid_splits_file).read_text())
    assert len(splits) == 10 and all(len(s["train"]) == len(s["test"]) == 89 for s in splits)
    mine = tmp_path / "mine.json"
    mine.write_text("[]")
    assert standard_split_file("prid2011", {"FGRA_PRID2011_SPLIT_FILE": str(mine)}) == mine
    with mock.patch("fgra_core.data.splits.SHARED_SPLITS_DIR", tmp_path / "nowhere"):
        with pytest.raises(DatasetError, match="splits_prid2011.json is not at .*set FGRA_PRID2011_SPLIT_FILE"):
            standard_split_file("prid2011", {})


def test_the_prid_split_default_can_be_overridden():
    other = paper_runs(**{"prid2011:data.split_file": "/elsewhere/splits.json"})
    assert {build_config(s.params).data.split_file for s in other if s.dataset == "prid2011"} == {"/elsewhere/splits.json"}
    generated = paper_runs(**{"prid2011:data.split_file": None})
    assert {build_config(s.params).data.split_file for s in generated if s.dataset == "prid2011"} == {None}
    # the iLIDS-VID runs are not touched by a PRID setting
    assert {build_config(s.params).data.split_file for s in generated if s.dataset == "ilidsvid"} == {None}


def test_reader_follows_the_standard_splits(tmp_path, prid_splits_file):
    STANDARD = Path(prid_splits_file)
    splits = json.loads(STANDARD.read_text())
    ids = sorted(set(splits[0]["train"]) | set(splits[0]["test"]))
    shot = tmp_path / "prid_2011" / "multi_shot"
    for cam in ("cam_a", "cam_b"):
        for person in ids + ["person_0900"]:          # one identity the splits do not use
            (shot / cam / person).mkdir(parents=True)
            (shot / cam / person / "0001.png").write_bytes(b"")
    ds = load_prid2011(tmp_path, split_id=3, split_file="standard")
    assert ds.info["split_source"] == "file" and ds.info["split_name"] == "standard"
    assert ds.info["split_path"] == str(STANDARD)
    assert ds.info["test_ids"] == sorted(splits[3]["test"]) and ds.num_train_pids == 89
    assert len(ds.query) == len(ds.gallery) == 89 and len(ds.train) == 178
    with pytest.raises(DatasetError, match="no standard split file for ilidsvid"):
        resolve_split_file("ilidsvid", "standard")


# --------------------------------------------------------------------------- tables


def result(dataset: str, variant: int, split: int, source: str, rank1: float) -> dict:
    return {"status": "finished", "dataset": dataset, "split_id": split, "variant": variant, "backbone": "resnet50",
            "seq_len": 6, "num_regions": 4, "epochs": 300, "seed": 0,
            "metrics": {"rank1": rank1, "rank5": rank1 + 5, "rank10": rank1 + 6, "rank20": rank1 + 7,
                        "mAP": rank1 - 3, "num_valid": 89, "protocol": "cross-camera", "ap_form": "plain"},
            "protocol": "cross-camera", "ap_form": "plain",
            "dataset_info": {"split_source": source},
            "config": {"data": {"dataset": dataset, "root": f"/data/{dataset}", "height": 256, "width": 128},
                       "model": {"weights": "imagenet"}}}


@pytest.fixture()
def store(tmp_path):
    runs = {"prid-file-v8": result("prid2011", 8, 0, "file", 90.0),
            "prid-file-v3": result("prid2011", 3, 0, "file", 85.0),
            "ilids-gen-v8": result("ilidsvid", 8, 0, "generated", 80.0),
            "ilids-gen-v3": result("ilidsvid", 3, 0, "generated", 70.0),
            "syn-v8": result("synthetic", 8, 0, "generated", 40.0)}
    for run_id, rec in runs.items():
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "results.json").write_text(json.dumps(rec))
    return tables.collect_results(tmp_path)


def test_generated_splits_are_marked_in_every_table(store):
    paper = tables.load_paper()
    assert dict(zip(store["run_id"], store["split_source"]))["ilids-gen-v8"] == "generated"
    t2 = tables.table2(store, paper)
    assert dict(zip(t2["dataset"], t2["split_source"])) == {"ilidsvid": "generated", "prid2011": "file",
                                                            "synthetic": "generated"}
    md2 = render.table2_markdown(t2)
    ilids = md2[md2.index("iLIDS-VID"):md2.index("PRID-2011")]
    prid = md2[md2.index("PRID-2011"):md2.index("synthetic")]
    assert tables.NOT_COMPARABLE in ilids and tables.NOT_COMPARABLE not in prid
    assert md2.count(tables.NOT_COMPARABLE) == 1        # the synthetic set has no published numbers

    t1 = tables.table1(store, paper)
    md1 = render.table1_markdown(t1)
    rows = {line.split("|")[1].strip() + "/" + line.split("|")[2].strip() for line in md1.splitlines()
            if line.startswith("|") and "---" not in line}
    assert {"iLIDS-VID/ours †", "iLIDS-VID/ours - paper †", "PRID-2011/ours", "iLIDS-VID/paper (FGRA)"} <= rows
    assert md1.rstrip().endswith(f"† {tables.NOT_COMPARABLE}.")

    sw = tables.sweep_table(store.assign(groups=[["seq_len"]] * len(store)), "seq_len", "seq_len")
    md3 = render.sweep_markdown(sw, "seq_len", "N")
    assert "iLIDS-VID †" in md3 and "PRID-2011 †" not in md3 and md3.rstrip().endswith(f"† {tables.NOT_COMPARABLE}.")


def test_tables_from_file_splits_carry_no_mark(store):
    t1 = tables.table1(store[store["dataset"] != "ilidsvid"])
    assert tables.NOT_COMPARABLE not in render.table1_markdown(t1)


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("bf16", [True, False])
def test_test_time_autocast_is_the_training_type(bf16):
    import warnings

    from fgra_core.config.schema import load_config
    from fgra_core.engine.finetune import _amp_setup
    from fgra_core.eval.features import _autocast

    cuda = torch.device("cuda")
    with mock.patch("torch.cuda.is_bf16_supported", return_value=bf16), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # autocast / GradScaler warn that CUDA is absent on this machine
        use_amp, train_dtype, _ = _amp_setup(load_config(), cuda)
        test_dtype = _autocast(cuda, True).fast_dtype
    assert use_amp and train_dtype == test_dtype == (torch.bfloat16 if bf16 else torch.float16)
    assert type(_autocast(torch.device("cpu"), True)).__name__ == "nullcontext"
