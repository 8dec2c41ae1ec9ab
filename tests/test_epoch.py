"""What an epoch is (``train.epoch_mode``): each identity once with K tracklets, or every K-group of
every identity -- batch counts on MARS-sized labels, and the settings that choose it."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fgra_core.config.schema import load_config
from fgra_core.data.samplers import RandomIdentitySampler
from fgra_core.study.data_stats import DATASET_STATS, MARS_TRACKLETS_PER_ID
from fgra_core.study.notebook_params import build_config, settings_hash
from fgra_core.utils.errors import ConfigError

MARS = DATASET_STATS["mars"]


def mars_pids() -> np.ndarray:
    """625 identities with MARS's training tracklet counts (8,298 tracklets)."""
    return MARS.train_pids()


def test_mars_sized_labels_have_the_real_counts():
    pids = mars_pids()
    assert len(pids) == 8298 and len(np.unique(pids)) == 625
    assert Counter(Counter(pids.tolist()).values()) == Counter(MARS_TRACKLETS_PER_ID)


def test_one_per_identity_epoch_on_mars_sized_labels():
    pids = mars_pids()
    s = RandomIdentitySampler(pids, P=16, K=4, seed=3, epoch_mode="identities")
    for epoch in (0, 1, 7):
        batches = s.all_batches(epoch)
        assert len(batches) == 625 // 16 == 39
        ids = [int(pids[i]) for b in batches for i in b]
        counts = Counter(ids)
        assert len(counts) == 39 * 16 == 624          # 624 identities once, one left out (625 = 39 x 16 + 1)
        assert set(counts.values()) == {4}             # K tracklets each, once per epoch
        for b in batches:
            assert len(b) == 64
            groups = [b[j:j + 4] for j in range(0, 64, 4)]
            assert len({int(pids[g[0]]) for g in groups}) == 16            # P distinct identities
            for g in groups:
                assert len({int(pids[i]) for i in g}) == 1
                n = int((pids == pids[g[0]]).sum())
                assert len(set(g)) == min(4, n)       # without replacement when the identity has >= K
    assert s.all_batches(0) != s.all_batches(1)                       # reshuffled every epoch
    assert RandomIdentitySampler(pids, 16, 4, seed=3, epoch_mode="identities").all_batches(7) == s.all_batches(7)


def test_one_per_identity_epoch_split_over_ranks():
    pids = mars_pids()
    ranks = [RandomIdentitySampler(pids, 16, 4, seed=0, rank=r, world_size=2, epoch_mode="identities") for r in (0, 1)]
    got = [list(r) for r in ranks]
    assert [len(g) for g in got] == [19, 19] == [len(r) for r in ranks]     # 39 // 2
    flat = [tuple(b) for g in got for b in g]
    assert len(set(flat)) == 38


def test_every_group_epoch_on_mars_sized_labels_is_about_2_8_times_longer():
    s = RandomIdentitySampler(mars_pids(), P=16, K=4, seed=0, epoch_mode="groups")
    counts = [len(s.all_batches(e)) for e in range(6)]
    assert all(108 <= c <= 110 for c in counts)
    assert RandomIdentitySampler(mars_pids(), 16, 4, seed=0).epoch_mode == "groups"   # the sampler's default


def test_real_mars_labels(mars_info_full):
    """The same counts from the real MARS ``tracks_train_info.mat`` (and the statistics the cost
    estimate keeps: tracklets per identity, test tracklets and frames)."""
    import scipy.io as sio

    tr = sio.loadmat(mars_info_full / "tracks_train_info.mat")["track_train_info"]
    te = sio.loadmat(mars_info_full / "tracks_test_info.mat")["track_test_info"]
    assert Counter(Counter(tr[:, 2].tolist()).values()) == Counter(MARS_TRACKLETS_PER_ID)
    assert int((te[:, 1] - te[:, 0] + 1).sum()) == MARS.test_frames == 681_089
    assert len(te) == MARS.test_tracklets
    ident = RandomIdentitySampler(tr[:, 2], 16, 4, seed=0, epoch_mode="identities")
    groups = RandomIdentitySampler(tr[:, 2], 16, 4, seed=0, epoch_mode="groups")
    assert len(ident) == 39
    assert [len(groups.all_batches(e)) for e in range(3)] == [109, 109, 109]


def test_train_epoch_setting():
    assert load_config().train.epoch_mode == "groups"      # the dataclass default keeps earlier runs as they were
    for name in ("quick_synthetic", "mars_mini"):
        assert build_config({"config": name}).train.epoch_mode == "groups"
    for name in ("paper_mars", "paper_ilidsvid", "paper_prid2011"):
        assert build_config({"config": name}).train.epoch_mode == "identities"
    with pytest.raises(ConfigError, match=r"train.epoch_mode: expected one of 'identities', 'groups', got 300"):
        load_config(overrides={"train.epoch_mode": 300})
    with pytest.raises(ConfigError, match="epoch_mode must be one of 'groups', 'identities', got 'ids'"):
        RandomIdentitySampler([0, 0, 1, 1], 2, 2, epoch_mode="ids")


def test_the_new_setting_keeps_the_ids_of_earlier_runs():
    # settings_hash of these configs before train.epoch_mode and data.augment_on existed
    assert settings_hash(build_config({"config": "quick_synthetic"})) == "462721db"
    assert settings_hash(build_config({"config": "mars_mini"})) == "65c888a3"
    other = build_config({"config": "quick_synthetic", "overrides": {"train.epoch_mode": "identities"}})
    assert settings_hash(other) != "10dd31c8"


def test_the_training_loader_follows_the_setting():
    from fgra_core.data.loaders import build_train_loader
    from fgra_core.data.records import Tracklet

    frames = np.zeros((3, 16, 8, 3), np.uint8)
    tracklets = [Tracklet(frames=frames, pid=p, camid=c) for p in range(10) for c in range(6)]
    common = dict(seq_len=2, P=2, K=2, height=16, width=8, num_workers=0)
    assert len(build_train_loader(tracklets, epoch_mode="identities", **common)) == 5          # 10 // 2
    assert len(build_train_loader(tracklets, **common)) == 15                              # 10 x 3 groups // 2
