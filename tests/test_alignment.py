"""Alignment scores of response maps against ground-truth parts, on hand-computed layouts."""
from __future__ import annotations

import numpy as np
import pytest

from fgra_core.eval.alignment import (
    aligned_shares,
    assigned_parts,
    clip_alignment,
    map_shares,
    overlap,
    peakedness,
    row_coverage,
    stripe_bounds,
    stripe_shares,
    summarise,
    uniform_shares,
)

# head, torso, legs, feet on the cell edges of h = 4 in frame 0
EDGES = np.array([[0, .25], [.25, .5], [.5, .75], [.75, 1]], dtype=np.float32)


def _parts(*frames) -> np.ndarray:
    return np.stack([np.asarray(f, dtype=np.float32) for f in frames])


def _row_maps(rows, h: int, w: int = 3) -> np.ndarray:
    """``rows[t][r]``: the cell rows (a list) where map (t, r) is 1."""
    T, R = len(rows), len(rows[0])
    m = np.zeros((T, R, h, w))
    for t in range(T):
        for r in range(R):
            m[t, r, rows[t][r], :] = 1.0
    return m


def _random_parts(rng, T=5, P=4) -> np.ndarray:
    ends = np.sort(rng.uniform(0, 1, size=(T, P, 2)), axis=2)
    return ends.astype(np.float32)


def test_stripe_bounds_overlap_and_row_coverage():
    np.testing.assert_allclose(stripe_bounds(4), [[0, .25], [.25, .5], [.5, .75], [.75, 1]])
    np.testing.assert_allclose(overlap(np.array([0, 0, .5]), np.array([.5, .2, 1]), .25, .75), [.25, 0, .25])
    np.testing.assert_allclose(overlap(0, .5, .5, 1), 0)   # touching only
    np.testing.assert_allclose(row_coverage(.1, .6, 4), [.6, 1, .4, 0])
    cov = row_coverage(np.array([[0, .5]]), np.array([[1, .5]]), 2)
    assert cov.shape == (1, 2, 2)
    np.testing.assert_allclose(cov, [[[1, 1], [0, 0]]])


def test_assigned_parts_tie_break_and_fallback():
    # stripe 0 = [0, .5] overlaps parts 0 and 1 by .25 each -> lowest index
    assert assigned_parts(np.array([[0, .25], [.25, .5], [.5, 1]]), 2).tolist() == [0, 2]
    # stripe 1 [.25, .5] (centre .375) and stripe 2 [.5, .75] (centre .625) overlap nothing:
    # nearest centres are torso (.15) and legs (.85); stripe 0 ties head/torso at .1 -> head
    assert assigned_parts(np.array([[0, .1], [.1, .2], [.8, .9]]), 4).tolist() == [0, 1, 2, 2]
    # centre distances tie (.25 and .75 from .5) -> lowest index; touching is no overlap
    assert assigned_parts(np.array([[.75, .75], [.25, .25]]), 1).tolist() == [0]
    assert assigned_parts(np.array([[0, .5], [.5, 1]]), 2).tolist() == [0, 1]


def test_map_following_the_part_scores_one():
    shifted = np.clip(EDGES + .25, 0, 1)   # every part one cell lower, feet clipped to [1, 1]
    parts = _parts(EDGES, shifted)
    maps = _row_maps([[[0], [1], [2], [3]], [[1], [2], [3], []]], h=4)
    np.testing.assert_allclose(map_shares(maps, parts), [[1, 1, 1, 1], [1, 1, 1, 0]])
    np.testing.assert_allclose(stripe_shares(parts, 4), [[1, 1, 1, 1], [0, 0, 0, 0]])
    np.testing.assert_allclose(aligned_shares(parts, 4), [[1, 1, 1, 1], [1, 1, 1, 0]])
    np.testing.assert_allclose(uniform_shares(parts, 4), [[.25] * 4, [.25, .25, .25, 0]])


def test_uniform_map_scores_the_part_height():
    rng = np.random.default_rng(0)
    parts = _random_parts(rng)
    maps = np.full((5, 4, 7, 3), 0.5)
    heights = uniform_shares(parts, 4)
    np.testing.assert_allclose(map_shares(maps, parts), heights, atol=1e-12)
    # by hand: part [.1, .6] on h = 4 covers rows .6, 1, .4, 0 -> mean .5
    one = _parts([[.1, .6]])
    np.testing.assert_allclose(map_shares(np.ones((1, 1, 4, 2)), one), [[.5]])


def test_stripe_map_scores_its_overlap():
    rng = np.random.default_rng(1)
    parts = _random_parts(rng)
    R, h = 4, 8   # stripe r = rows 2r, 2r + 1
    maps = _row_maps([[[2 * r, 2 * r + 1] for r in range(R)]] * 5, h=h)
    np.testing.assert_allclose(map_shares(maps, parts), stripe_shares(parts, R), atol=1e-12)
    # half overlap: head [0, .5] -> [.25, .75], body [.5, 1] -> [.75, 1]
    half = _parts([[0, .5], [.5, 1]], [[.25, .75], [.75, 1]])
    stripe_map = _row_maps([[[0], [1]]] * 2, h=2)
    np.testing.assert_allclose(map_shares(stripe_map, half), [[1, 1], [.5, .5]])
    np.testing.assert_allclose(stripe_shares(half, 2), [[1, 1], [.5, .5]])


def test_aligned_equals_stripe_on_reference_and_under_pure_shift():
    rng = np.random.default_rng(2)
    parts = _random_parts(rng)
    for ref in (0, 3):
        np.testing.assert_allclose(aligned_shares(parts, 4, ref)[ref], stripe_shares(parts, 4, ref)[ref])
    base = np.array([[.1, .2], [.2, .45], [.45, .7], [.7, .8]])
    shifted = _parts(base, base + .1, base + .2, base - .1)
    aligned = aligned_shares(shifted, 4)
    for t in range(4):
        np.testing.assert_allclose(aligned[t], stripe_shares(shifted, 4)[0], atol=1e-6)


def test_known_headroom_half_stripe_shift():
    shifted = _parts(EDGES, np.clip(EDGES + .125, 0, 1))   # feet clipped to [.875, 1]
    np.testing.assert_allclose(stripe_shares(shifted, 4), [[1] * 4, [.5] * 4])
    np.testing.assert_allclose(aligned_shares(shifted, 4), np.ones((2, 4)))
    clip = clip_alignment(shifted, 4)
    assert clip["stripe"] == pytest.approx(.75) and clip["aligned"] == pytest.approx(1)
    assert clip["headroom"] == pytest.approx(.25)
    assert clip["uniform"] == pytest.approx(1.875 / 8)
    assert clip["gam"] is None and clip["range"] is None and clip["entropy"] is None
    # maps on the part's rows at h = 8 score 1 (the feet's cell row 7 is [.875, 1])
    maps = _row_maps([[[0, 1], [2, 3], [4, 5], [6, 7]], [[1, 2], [3, 4], [5, 6], [7]]], h=8)
    with_maps = clip_alignment(shifted, 4, maps=maps)
    assert with_maps["gam"] == pytest.approx(1)
    assert 0 < with_maps["entropy"] < 1 and with_maps["range"] == pytest.approx(1)


def test_aligned_zero_reference_height_shifts_and_empty_part_scores_zero():
    # one part, empty in the reference frame: the stripe [0, 1] is only shifted, by +.25 then -.25
    parts = _parts([[.5, .5]], [[.75, .75]], [[.25, .75]])
    np.testing.assert_allclose(aligned_shares(parts, 1), [[0], [0], [.5]])


def test_peakedness_flat_and_one_hot():
    flat = peakedness(np.full((2, 3, 4, 4), .5))
    assert flat["range"] == pytest.approx(0) and flat["entropy"] == pytest.approx(1)
    hot = np.zeros((1, 1, 2, 2))
    hot[0, 0, 1, 0] = 1
    one = peakedness(hot)
    assert one["range"] == pytest.approx(1) and one["entropy"] == pytest.approx(0)
    hot[0, 0, 0, 1] = 1   # two of four cells: log 2 / log 4
    assert peakedness(hot)["entropy"] == pytest.approx(.5)
    assert peakedness(np.zeros((1, 1, 2, 2)))["entropy"] == pytest.approx(1)


def test_summarise_means_and_per_clip():
    a = {"gam": 1 / 3, "stripe": .5, "range": None}
    b = {"gam": 2 / 3, "stripe": 1.0, "range": None}
    s = summarise([a, b])
    assert s["clips"] == 2
    assert s["gam"] == pytest.approx(.5) and s["stripe"] == pytest.approx(.75) and s["range"] is None
    assert s["per_clip"] == {"gam": [0.333333, 0.666667], "stripe": [.5, 1.0], "range": [None, None]}
    with pytest.raises(ValueError, match="every clip or in none"):
        summarise([a, {"gam": None, "stripe": 1.0, "range": None}])
    with pytest.raises(ValueError, match="at least one clip"):
        summarise([])
    clips = [clip_alignment(_parts(EDGES, EDGES), 4, maps=np.ones((2, 4, 4, 2)))] * 3
    assert summarise(clips)["gam"] == pytest.approx(.25)


def test_validation_messages():
    parts = _parts(EDGES, EDGES)
    with pytest.raises(ValueError, match=r"maps must have shape \[T=2, R=R, h>=1, w>=1\].*\(2, 4, 4\)"):
        map_shares(np.ones((2, 4, 4)), parts)
    with pytest.raises(ValueError, match=r"T=2.*got \(3, 4, 4, 2\)"):
        map_shares(np.ones((3, 4, 4, 2)), parts)
    with pytest.raises(ValueError, match=r"h>=1.*got \(2, 4, 0, 2\)"):
        map_shares(np.ones((2, 4, 0, 2)), parts)
    with pytest.raises(ValueError, match=r"R=3.*got \(2, 4, 4, 2\)"):
        clip_alignment(parts, 3, maps=np.ones((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="non-negative, got minimum -0.5"):
        map_shares(np.full((2, 4, 4, 2), -.5), parts)
    with pytest.raises(ValueError, match="finite"):
        peakedness(np.full((1, 1, 2, 2), np.nan))
    with pytest.raises(ValueError, match=r"\[T, P, 2\].*got \(4, 2\)"):
        stripe_shares(EDGES, 4)
    with pytest.raises(ValueError, match=r"\[0, 1\], got range \[0.0, 1.5\]"):
        stripe_shares(_parts([[0, 1.5]]), 1)
    with pytest.raises(ValueError, match="top <= bottom.*frame 1, part 0"):
        stripe_shares(_parts([[0, .5]], [[.6, .5]]), 1)
    with pytest.raises(ValueError, match="R must be an integer >= 1, got 0"):
        uniform_shares(parts, 0)
    with pytest.raises(ValueError, match=r"reference must be a frame index in \[0, 2\), got 2"):
        aligned_shares(parts, 4, reference=2)
    with pytest.raises(ValueError, match="h must be an integer >= 1"):
        row_coverage(0, 1, 0)
