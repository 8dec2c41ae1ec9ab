"""The synthetic set's box knobs apart: ``jitter`` (per-frame box errors, centred per tracklet) and
``box_offset`` (per-tracklet box errors), beside the legacy ``misalignment``."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import yaml

from fgra_core.config.schema import ConfigError, dump_config, load_config, to_dict
from fgra_core.data.datasets.synthetic import box_geometry, box_knobs, make_synthetic, part_offsets
from fgra_core.engine.run_ids import run_id_for, settings_hash

SMALL = dict(num_train_ids=6, num_test_ids=4, frames_per_tracklet=(8, 12), height=64, width=32)
H, W = 64, 32

# SHA-256 of the frames and parts of make_synthetic(num_train_ids=4, num_test_ids=4, height=64,
# width=32, seed=3), computed before box_geometry existed: the legacy boxes must stay bit for bit
LEGACY_SHA256 = "33068d3130b4de890dc14971b49608e62e7624b4dde7169701c732aeffb88063"


def _digest(ds) -> str:
    h = hashlib.sha256()
    for split in (ds.train, ds.query, ds.gallery):
        for t in split:
            h.update(np.ascontiguousarray(t.frames).tobytes())
            h.update(np.ascontiguousarray(t.parts).tobytes())
    return h.hexdigest()


def _frames_of(lengths):
    """``f_tr``, ``f_t`` and the number of tracklets for tracklets of the given lengths."""
    lengths = np.asarray(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    f_tr = np.repeat(np.arange(len(lengths)), lengths)
    return f_tr, np.arange(starts[-1]) - starts[f_tr], len(lengths)


def _boxes(f_scale, f_dy, f_dx):
    """Top of the head, body height and centre x (pixels), the formulas of make_synthetic."""
    body_h = 0.94 * H * f_scale
    return {"top": 0.5 * H - 0.5 * body_h + 0.01 * H + f_dy, "height": body_h, "cx": 0.5 * W + f_dx}


def _tracklet_mean(values, f_tr, n_tr):
    return np.bincount(f_tr, weights=values, minlength=n_tr) / np.bincount(f_tr, minlength=n_tr)


def _tracklet_std(values, f_tr, n_tr):
    dev = values - _tracklet_mean(values, f_tr, n_tr)[f_tr]
    return np.sqrt(_tracklet_mean(dev ** 2, f_tr, n_tr))


def _same_in_each_tracklet(values, f_tr) -> bool:
    """Every frame holds exactly its tracklet's first value (``f_tr`` sorted, as make_synthetic lays frames)."""
    first = np.searchsorted(f_tr, f_tr)
    return bool(np.all(values == values[first]))


def _geometry(lengths, seed=7, **knobs):
    f_tr, f_t, n_tr = _frames_of(lengths)
    geom = box_geometry(np.random.default_rng(seed), f_tr, f_t, n_tr, H, W, 1.0, **knobs)
    return geom, f_tr, n_tr


LENGTHS = [1, 2, 3, 5, 8, 12, 17, 24, 24, 13, 9, 20]


def test_legacy_boxes_are_bit_identical_to_earlier_runs():
    ds = make_synthetic(num_train_ids=4, num_test_ids=4, height=64, width=32, seed=3)
    assert _digest(ds) == LEGACY_SHA256
    assert ds.info["misalignment"] == 1.0 and ds.info["jitter"] is None and ds.info["box_offset"] is None
    # the same through box_geometry called without the knobs
    f_tr, f_t, n_tr = _frames_of(LENGTHS)
    a = box_geometry(np.random.default_rng(5), f_tr, f_t, n_tr, H, W, 0.7)
    b = box_geometry(np.random.default_rng(5), f_tr, f_t, n_tr, H, W, 0.7, jitter=None, box_offset=None)
    for x, y in zip(a, b):
        assert x.dtype == np.float64 and x.shape == (len(f_tr),)
        np.testing.assert_array_equal(x, y)


def test_jitter_moves_the_boxes_but_not_the_tracklet_mean_box():
    (still, f_tr, n_tr), (moving, _, _) = (_geometry(LENGTHS, jitter=j, box_offset=1.0) for j in (0.0, 1.0))
    assert np.all((moving[0] > 0.3) & (moving[0] < 1.4))  # the safety clip is not reached
    b0, b1 = _boxes(*still), _boxes(*moving)
    several = np.asarray(LENGTHS) > 1
    for key in ("top", "height", "cx"):
        np.testing.assert_allclose(_tracklet_mean(b1[key], f_tr, n_tr), _tracklet_mean(b0[key], f_tr, n_tr),
                                   rtol=0, atol=1e-9, err_msg=key)
        assert _same_in_each_tracklet(b0[key], f_tr), key                    # jitter 0: one box per tracklet
        assert np.all(_tracklet_std(b1[key], f_tr, n_tr)[several] > 0), key  # jitter 1: it moves
    # the per-tracklet offsets of box_offset 1 are there: tracklets' mean boxes differ
    assert np.ptp(_tracklet_mean(b0["top"], f_tr, n_tr)) > 1.0 and np.ptp(_tracklet_mean(b0["cx"], f_tr, n_tr)) > 1.0


def test_jitter_moves_the_ground_truth_parts_inside_a_tracklet():
    still = make_synthetic(seed=1, jitter=0.0, box_offset=1.0, **SMALL)
    moving = make_synthetic(seed=1, jitter=1.0, box_offset=1.0, **SMALL)
    for a, b in zip(still.train + still.query + still.gallery, moving.train + moving.query + moving.gallery):
        assert np.all(a.parts == a.parts[:1])                             # one box per tracklet
        assert np.all(b.parts.mean(axis=2).std(axis=0) > 0)
    assert part_offsets(still)["centre_std"] < 1e-6 and part_offsets(still)["height_std"] < 1e-6  # float32 rounding
    assert part_offsets(moving)["centre_std"] > 0.01
    assert moving.info["jitter"] == 1.0 and moving.info["box_offset"] == 1.0


def test_box_offset_moves_the_mean_box_and_keeps_the_deviations():
    (aligned, f_tr, n_tr), (offset, _, _) = (_geometry(LENGTHS, jitter=0.8, box_offset=b) for b in (0.0, 1.0))
    for name, a, b in zip(("f_scale", "f_dy", "f_dx"), aligned, offset):
        dev_a = a - _tracklet_mean(a, f_tr, n_tr)[f_tr]
        dev_b = b - _tracklet_mean(b, f_tr, n_tr)[f_tr]
        np.testing.assert_allclose(dev_a, dev_b, rtol=0, atol=1e-9, err_msg=name)
        assert np.max(np.abs(_tracklet_mean(a, f_tr, n_tr) - _tracklet_mean(b, f_tr, n_tr))) > 1e-3, name
    # box_offset 0: every tracklet's mean box is the aligned one
    np.testing.assert_allclose(_tracklet_mean(aligned[0], f_tr, n_tr), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_tracklet_mean(aligned[1], f_tr, n_tr), 0.0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_tracklet_mean(aligned[2], f_tr, n_tr), 0.0, rtol=0, atol=1e-9)


def test_a_knob_left_none_takes_misalignment():
    assert box_knobs(0.4) == (None, None)
    assert box_knobs(0.4, jitter=2) == (2.0, 0.4)
    assert box_knobs(0.4, box_offset=0) == (0.4, 0.0)
    f_tr, f_t, n_tr = _frames_of(LENGTHS)
    a = box_geometry(np.random.default_rng(3), f_tr, f_t, n_tr, H, W, 0.4, jitter=2.0)
    b = box_geometry(np.random.default_rng(3), f_tr, f_t, n_tr, H, W, 9.0, jitter=2.0, box_offset=0.4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert make_synthetic(seed=0, misalignment=0.5, jitter=0.25, **SMALL).info["box_offset"] == 0.5


def test_the_knobs_keep_the_people_and_scenes():
    ref = make_synthetic(seed=2, **SMALL)
    for knobs in ({"jitter": 0.0}, {"box_offset": 0.0}, {"jitter": 1.5, "box_offset": 0.3}):
        other = make_synthetic(seed=2, **SMALL, **knobs)
        np.testing.assert_array_equal(other.info["identity_styles"], ref.info["identity_styles"])
        assert other.info["occluded_tracklets"] == ref.info["occluded_tracklets"]
        for x, y in zip(ref.train + ref.query + ref.gallery, other.train + other.query + other.gallery):
            assert (x.name, x.pid, x.camid, len(x)) == (y.name, y.pid, y.camid, len(y))
    # no box error at all: the frames of the legacy aligned set, bit for bit (only the boxes differ)
    legacy = make_synthetic(seed=2, misalignment=0.0, **SMALL)
    aligned = make_synthetic(seed=2, misalignment=1.0, jitter=0.0, box_offset=0.0, **SMALL)
    for x, y in zip(legacy.train + legacy.query + legacy.gallery, aligned.train + aligned.query + aligned.gallery):
        np.testing.assert_array_equal(x.frames, y.frames)
        np.testing.assert_array_equal(x.parts, y.parts)


@pytest.mark.parametrize("knob", ["jitter", "box_offset"])
@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf")])
def test_bad_knob_values_are_refused(knob, value):
    with pytest.raises(ValueError, match=f"{knob} must be None or a finite number >= 0, got {value}"):
        make_synthetic(**SMALL, **{knob: value})
    f_tr, f_t, n_tr = _frames_of([3])
    with pytest.raises(ValueError, match=knob):
        box_geometry(np.random.default_rng(0), f_tr, f_t, n_tr, H, W, 1.0, **{knob: value})


def test_the_config_carries_the_knobs():
    cfg = load_config()
    assert cfg.data.synthetic.jitter is None and cfg.data.synthetic.box_offset is None
    cfg = load_config(None, {"data.synthetic.jitter": 1, "data.synthetic.box_offset": 0.5})
    assert cfg.data.synthetic.jitter == 1.0 and isinstance(cfg.data.synthetic.jitter, float)
    assert cfg.data.synthetic.box_offset == 0.5
    assert load_config(None, {"data.synthetic.jitter": None}).data.synthetic.jitter is None
    with pytest.raises(ConfigError, match="data.synthetic.box_offset must be >= 0 .*got -1.0"):
        load_config(None, {"data.synthetic.box_offset": -1})
    with pytest.raises(ConfigError, match="data.synthetic.jitter must be a finite number, got nan"):
        load_config(None, {"data.synthetic.jitter": float("nan")})
    with pytest.raises(ConfigError, match="data.synthetic.jitter: expected float or null"):
        load_config(None, {"data.synthetic.jitter": "a lot"})


def test_yaml_null_and_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  synthetic:\n    jitter: null\n    box_offset: 0.25\n")
    cfg = load_config(path)
    assert cfg.data.synthetic.jitter is None and cfg.data.synthetic.box_offset == 0.25
    dumped = dump_config(cfg)
    assert yaml.safe_load(dumped)["data"]["synthetic"]["jitter"] is None
    path.write_text(dumped)
    assert load_config(path) == cfg


def test_the_knobs_reach_the_dataset():
    from fgra_core.engine.builders import build_data

    cfg = load_config(None, {"data.synthetic": {"num_train_ids": 2, "num_test_ids": 1, "min_frames": 2,
                                                 "max_frames": 3, "height": 16, "width": 8,
                                                 "jitter": 0.5, "box_offset": 0.0}})
    info = build_data(cfg).dataset.info
    assert (info["misalignment"], info["jitter"], info["box_offset"]) == (1.0, 0.5, 0.0)


def test_run_ids_name_the_knobs_only_when_set():
    legacy = load_config()
    rid = run_id_for(legacy, "abcdefgh")
    assert "-mis1-r0-" in rid and "jit" not in rid and "off" not in rid
    both = load_config(None, {"data.synthetic.jitter": 0.5, "data.synthetic.box_offset": 0.0})
    assert "-mis1-jit0.5-off0-r0-" in run_id_for(both, "abcdefgh")
    one = load_config(None, {"data.synthetic.misalignment": 0.25, "data.synthetic.box_offset": 2})
    assert "-mis0.25-jit0.25-off2-r0-" in run_id_for(one, "abcdefgh")
    # the knobs at None are left out of the settings hash: earlier runs keep their ids
    old = to_dict(legacy)
    del old["data"]["synthetic"]["jitter"], old["data"]["synthetic"]["box_offset"]
    assert settings_hash(legacy) == settings_hash(old)
    assert settings_hash(both) != settings_hash(legacy)
