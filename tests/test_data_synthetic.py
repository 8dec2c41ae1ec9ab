"""The synthetic misaligned set: structure, determinism, the misalignment knob, ground truth
that matches the pixels, and speed."""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from fgra_core.data.datasets.synthetic import make_synthetic, part_offsets

SMALL = dict(num_train_ids=6, num_test_ids=4, frames_per_tracklet=(8, 12), height=64, width=32)


def test_default_set_structure_and_speed():
    t0 = time.perf_counter()
    ds = make_synthetic()
    elapsed = time.perf_counter() - t0
    assert elapsed < 20, f"default synthetic set took {elapsed:.1f} s"  # ~2 s on 2 idle cores
    assert ds.num_train_pids == 60 and len(ds.train) == 120
    assert sorted({t.pid for t in ds.train}) == list(range(60))
    assert len(ds.query) == 60 and len(ds.gallery) == 60
    assert {t.camid for t in ds.query} == {0} and {t.camid for t in ds.gallery} == {1}
    assert {t.pid for t in ds.query} == {t.pid for t in ds.gallery} == set(range(60, 120))
    for t in ds.train + ds.query + ds.gallery:
        assert t.frames.dtype == np.uint8 and t.frames.shape[1:] == (128, 64, 3)
        assert 12 <= len(t) <= 24
        assert t.parts.shape == (len(t), 4, 2) and t.parts.dtype == np.float32
        assert np.all(t.parts[:, :, 0] <= t.parts[:, :, 1]) and t.parts.min() >= 0 and t.parts.max() <= 1
        assert np.all(np.diff(t.parts[:, :, 0], axis=1) >= 0)  # head above torso above legs above feet
    assert 0 < ds.info["occluded_tracklets"] < 240


def test_deterministic_per_seed():
    a, b, c = make_synthetic(seed=3, **SMALL), make_synthetic(seed=3, **SMALL), make_synthetic(seed=4, **SMALL)
    for x, y in zip(a.train + a.query + a.gallery, b.train + b.query + b.gallery):
        assert x.name == y.name and x.pid == y.pid and x.camid == y.camid
        np.testing.assert_array_equal(x.frames, y.frames)
        np.testing.assert_array_equal(x.parts, y.parts)
    assert any(x.frames.shape != y.frames.shape or not np.array_equal(x.frames, y.frames) for x, y in zip(a.train, c.train))


def test_misalignment_knob_changes_part_offsets():
    offs = {m: part_offsets(make_synthetic(misalignment=m, seed=1, **SMALL)) for m in (0.0, 0.5, 1.0, 2.0)}
    assert offs[0.0]["centre_std"] < 1e-6 and offs[0.0]["height_std"] < 1e-6 and offs[0.0]["centre_range"] == 0
    assert offs[0.5]["centre_std"] > 0.005
    assert offs[0.5]["centre_std"] < offs[1.0]["centre_std"] < offs[2.0]["centre_std"]
    assert offs[0.5]["height_std"] < offs[1.0]["height_std"] < offs[2.0]["height_std"]
    aligned = make_synthetic(misalignment=0.0, seed=1, **SMALL)
    for t in aligned.train:  # perfectly aligned: the same box in every frame
        assert np.all(t.parts == t.parts[:1])


def test_same_seed_other_misalignment_keeps_people_and_scenes():
    a = make_synthetic(misalignment=0.0, seed=2, **SMALL)
    b = make_synthetic(misalignment=1.0, seed=2, **SMALL)
    assert [len(t) for t in a.train] == [len(t) for t in b.train]
    np.testing.assert_array_equal(a.info["identity_styles"], b.info["identity_styles"])
    assert not np.array_equal(a.train[0].parts, b.train[0].parts)


def test_parts_match_the_pixels():
    H = 64
    ds = make_synthetic(misalignment=1.0, seed=5, clutter=0.0, camera_shift=0.0, noise_std=0.0, occlusion_p=0.0,
                        **{k: v for k, v in SMALL.items()})
    checked = 0
    for t in ds.train + ds.query:
        for f, parts in zip(t.frames, t.parts):
            bg = f[1, 1]  # flat background colour (the body never reaches the top-left corner here)
            body_rows = np.flatnonzero(np.any(np.any(f != bg, axis=2), axis=1))
            top, bottom = parts[0, 0], parts[3, 1]
            if bottom >= 1.0 or top <= 0.0:
                continue  # body cut by the frame edge
            assert abs(body_rows[0] / H - top) <= 1.5 / H
            assert abs((body_rows[-1] + 1) / H - bottom) <= 1.5 / H
            # the torso row at its centre holds the widest body part
            mid = int((parts[1, 0] + parts[1, 1]) / 2 * H)
            assert np.any(f[mid] != bg)
            checked += 1
    assert checked > 50


def test_single_parts_are_shared_combinations_unique():
    ds = make_synthetic(num_train_ids=60, num_test_ids=60, frames_per_tracklet=2, height=32, width=16)
    styles = ds.info["identity_styles"]
    assert styles.shape == (120, 4)
    assert len({tuple(s) for s in styles}) == 120  # every identity is a distinct combination
    for p in range(4):
        counts = Counter(styles[:, p].tolist())
        assert len(counts) <= 6 and min(counts.values()) >= 5  # each single part style is worn by many people


def test_bad_arguments():
    with pytest.raises(ValueError, match="misalignment must be >= 0"):
        make_synthetic(misalignment=-1, **SMALL)
    with pytest.raises(ValueError, match="styles_per_part=2 gives 16 distinct people"):
        make_synthetic(styles_per_part=2, num_train_ids=10, num_test_ids=10, frames_per_tracklet=2)
    with pytest.raises(ValueError, match="frames_per_tracklet"):
        make_synthetic(num_train_ids=2, num_test_ids=2, frames_per_tracklet=(5, 2))


def test_a_process_draws_one_synthetic_set_once_and_every_call_gets_its_own_lists():
    from fgra_core.data import registry

    registry._synthetic_memo.clear()
    opts = dict(num_train_ids=3, num_test_ids=3, frames_per_tracklet=(4, 5), height=32, width=16, seed=11)
    a = registry.build_dataset("synthetic", **opts)
    b = registry.build_dataset("synthetic", **opts)
    assert a is not b and a.train is not b.train and a.info is not b.info
    assert all(x is y for x, y in zip(a.train + a.query, b.train + b.query))     # the drawn tracklets, shared
    a.train.pop()
    a.info["changed"] = True
    c = registry.build_dataset("synthetic", **opts)
    assert len(c.train) == len(b.train) and "changed" not in c.info              # a caller's edits stay its own
    fresh = make_synthetic(**opts)
    assert [t.pid for t in c.train] == [t.pid for t in fresh.train]
    assert all(np.array_equal(x.frames, y.frames) for x, y in zip(c.gallery, fresh.gallery))
    other = registry.build_dataset("synthetic", **{**opts, "seed": 12})
    assert not np.array_equal(other.train[0].frames, c.train[0].frames)
    for seed in (13, 14, 15):
        registry.build_dataset("synthetic", **{**opts, "seed": seed})
    assert len(registry._synthetic_memo) == registry.SYNTHETIC_MEMO_SIZE          # the oldest are dropped
