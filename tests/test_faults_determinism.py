"""Fault suite, determinism: the same seed gives identical training batches and identical
metrics twice on CPU (whatever the number of loader workers); another seed gives other batches
-- compared batch by batch (identities and clip pixels), not only through the losses."""
from __future__ import annotations

import hashlib

import pytest
import torch
from test_faults_runs import tiny_run

from fgra_core.config.schema import load_config
from fgra_core.data.samplers import RandomIdentitySampler
from fgra_core.engine import finetune as trainer
from fgra_core.engine.builders import build_data, build_train_loader_for
from fgra_core.engine.distributed import DistInfo
from fgra_core.train import run


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def loader_batches(cfg, epochs=(0, 1)) -> list[tuple]:
    """(epoch, step, pids, sha256 of the clips) of every batch the training loader yields."""
    cfg = load_config(cfg)
    loader = build_train_loader_for(cfg, build_data(cfg), DistInfo())
    out = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        for step, (clips, pids, _cams) in enumerate(loader):
            out.append((epoch, step, tuple(pids.tolist()), digest(clips)))
    return out


def recorded_run(cfg, monkeypatch) -> tuple[dict, list[tuple]]:
    """Run ``cfg`` and record every batch the training loop consumed."""
    seen: list[tuple] = []
    real_epoch = trainer.train_one_epoch

    class Recording:
        def __init__(self, loader, epoch):
            self.loader, self.epoch = loader, epoch

        def __len__(self):
            return len(self.loader)

        def __iter__(self):
            for step, (clips, pids, cams) in enumerate(self.loader):
                seen.append((self.epoch, step, tuple(pids.tolist()), digest(clips)))
                yield clips, pids, cams

    def recording_epoch(model, criterion, loader, *args, epoch, **kwargs):
        return real_epoch(model, criterion, Recording(loader, epoch), *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", recording_epoch)
    result = run(cfg, show_progress=False)
    monkeypatch.setattr(trainer, "train_one_epoch", real_epoch)
    return result, seen


@pytest.mark.slow
def test_same_seed_same_batches_and_metrics_other_seed_other_batches(tmp_path, monkeypatch):
    settings = {"train": {"epochs": 2}}
    a, batches_a = recorded_run(tiny_run(tmp_path / "a", **settings), monkeypatch)
    b, batches_b = recorded_run(tiny_run(tmp_path / "b", **settings), monkeypatch)
    c, batches_c = recorded_run(tiny_run(tmp_path / "c", train={"epochs": 2, "seed": 1}), monkeypatch)

    assert len(batches_a) == 4  # 2 epochs x 2 iterations
    assert batches_a == batches_b
    assert a["history"] == b["history"] and a["metrics"] == b["metrics"]

    assert len(batches_c) == len(batches_a)
    differ = [x != y for x, y in zip(batches_a, batches_c)]
    assert all(differ), "every batch of seed 1 differs from seed 0's"
    assert [x[2] for x in batches_a] != [x[2] for x in batches_c], "the identities drawn differ, not only pixels"
    assert a["history"][0]["total"] != c["history"][0]["total"]
    # within one run, the epochs draw different batches
    assert batches_a[0][2:] != batches_a[2][2:]


def test_loader_batches_follow_the_seed_not_the_workers(tmp_path):
    base = tiny_run(tmp_path / "x")
    zero = loader_batches(base)
    assert len(zero) == 4
    assert loader_batches(base) == zero
    assert loader_batches(tiny_run(tmp_path / "x", data={"num_workers": 2})) == zero
    other = loader_batches(tiny_run(tmp_path / "x", train={"seed": 1}))
    assert all(x[2:] != y[2:] for x, y in zip(zero, other))
    assert [x[2:] for x in zero if x[0] == 0] != [x[2:] for x in zero if x[0] == 1]  # epochs differ too


@pytest.mark.parametrize("P, K", [(3, 2), (2, 4)])
def test_identity_sampler_batches_follow_the_seed_and_the_epoch(P, K):
    pids = [p for p in range(8) for _ in range(3)]  # 8 identities, 3 tracklets each
    s0, again, s1 = (RandomIdentitySampler(pids, P, K, seed=s) for s in (0, 0, 1))
    for epoch in range(3):
        batches = s0.all_batches(epoch)
        assert batches and batches == again.all_batches(epoch)
        assert batches != s1.all_batches(epoch)
        for batch in batches:
            ids = [pids[i] for i in batch]
            assert len(batch) == P * K and len(set(ids)) == P
            assert all(ids[j * K:(j + 1) * K] == [ids[j * K]] * K for j in range(P))
    assert s0.all_batches(0) != s0.all_batches(1)
