"""Exactness of the evaluation metrics: fast == brute-force reference, hand-computed cases, protocols."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fgra_core.eval import (
    build_protocol_gallery,
    cosine_distance,
    euclidean_distance,
    evaluate_features,
    evaluate_rank,
    evaluate_rank_reference,
    re_ranking,
    summarise_splits,
)
from fgra_core.utils.errors import ConfigError, FGRAError

PROTOCOLS = ("gallery-minus-query", "official", "cross-camera")


def _labels(rng, nq, ng, n_ids, n_cams, junk=0.05, distractor=0.1):
    q_pids = rng.integers(1, n_ids + 1, nq)
    g_pids = rng.integers(1, n_ids + 1, ng)
    u = rng.random(ng)
    g_pids[u < junk] = -1
    g_pids[(u >= junk) & (u < junk + distractor)] = 0
    return q_pids, g_pids, rng.integers(0, n_cams, nq), rng.integers(0, n_cams, ng)


def _assert_same(a, b):
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.rank == b.rank
    assert abs(a.mAP_plain - b.mAP_plain) < 1e-12
    assert abs(a.mAP_trapezoid - b.mAP_trapezoid) < 1e-12
    assert a.mAP == b.mAP or abs(a.mAP - b.mAP) < 1e-12
    assert (a.num_queries, a.num_valid, a.num_skipped) == (b.num_queries, b.num_valid, b.num_skipped)
    np.testing.assert_array_equal(a.skipped_queries, b.skipped_queries)
    assert (a.protocol, a.ap_form, a.max_rank) == (b.protocol, b.ap_form, b.max_rank)


def _both(d, qp, gp, qc, gc, **kw):
    a = evaluate_rank_reference(d, qp, gp, qc, gc, **kw)
    b = evaluate_rank(d, qp, gp, qc, gc, **kw)
    _assert_same(a, b)
    return b


# --------------------------------------------------------------------------- fast == reference


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_equals_reference_random(protocol, dtype):
    rng = np.random.default_rng(0)
    for nq, ng in [(300, 500), (37, 90), (1, 7)]:  # 300 rows: more than one block of queries
        qp, gp, qc, gc = _labels(rng, nq, ng, n_ids=25, n_cams=4)
        gp[0], gc[0] = qp[0], (qc[0] + 1) % 4  # at least one query has a match
        d = rng.random((nq, ng)).astype(dtype)
        r = _both(d, qp, gp, qc, gc, protocol=protocol)
        assert r.num_valid > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fast_equals_reference_tie_heavy(protocol):
    rng = np.random.default_rng(1)
    for levels in (2, 3, 10):
        qp, gp, qc, gc = _labels(rng, 120, 260, n_ids=12, n_cams=3)
        d = np.floor(rng.random((120, 260)) * levels)  # integer-rounded: most entries tie
        _both(d, qp, gp, qc, gc, protocol=protocol)
        _both(d.astype(np.float32), qp, gp, qc, gc, protocol=protocol, max_rank=5, ranks=(1, 5))
    d = np.full((50, 80), 0.25)  # everything ties: order is the column order
    qp, gp, qc, gc = _labels(rng, 50, 80, n_ids=6, n_cams=2)
    _both(d, qp, gp, qc, gc, protocol=protocol)


def test_fast_equals_reference_odd_inputs():
    rng = np.random.default_rng(2)
    qp, gp, qc, gc = _labels(rng, 60, 150, n_ids=10, n_cams=3)
    cases = {
        "inf": np.where(rng.random((60, 150)) < 0.1, np.inf, rng.standard_normal((60, 150))),
        "-inf": np.where(rng.random((60, 150)) < 0.1, -np.inf, rng.random((60, 150))),
        "huge offset, tiny spread": 1e12 + rng.random((60, 150)) * 1e-3,
        "float16": rng.random((60, 150)).astype(np.float16),
        "integers": rng.integers(0, 7, (60, 150)),
        "torch": torch.rand(60, 150, generator=torch.Generator().manual_seed(0)),
    }
    for name, d in cases.items():
        for protocol in PROTOCOLS:
            _both(d, qp, gp, qc, gc, protocol=protocol)


def test_queries_without_match_are_skipped_and_counted():
    # q0: its only same-pid entry is in its own camera -> skipped; q1: pid absent -> skipped;
    # q2: pid -1 -> skipped; q3: one positive
    q_pids = np.array([1, 9, -1, 2])
    q_cams = np.array([0, 0, 0, 0])
    g_pids = np.array([1, 2, 3, -1, 0])
    g_cams = np.array([0, 1, 1, 1, 1])
    d = np.array(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5],
            [0.1, 0.2, 0.3, 0.4, 0.5],
            [0.1, 0.2, 0.3, 0.4, 0.5],
            [0.1, 0.2, 0.3, 0.4, 0.5],
        ]
    )
    for protocol in ("gallery-minus-query", "cross-camera"):
        r = _both(d, q_pids, g_pids, q_cams, g_cams, protocol=protocol)
        assert (r.num_queries, r.num_valid, r.num_skipped) == (4, 1, 3)
        np.testing.assert_array_equal(r.skipped_queries, [0, 1, 2])
        # q3: g0 (pid 1, another identity) comes first, then its positive g1
        assert r.rank[1] == 0.0 and r.rank[5] == 1.0 and r.mAP == pytest.approx(0.5)
    with pytest.raises(FGRAError, match="no query has a valid match"):
        evaluate_rank(d[:3], q_pids[:3], g_pids, q_cams[:3], g_cams)
    with pytest.raises(FGRAError, match="no query has a valid match"):
        evaluate_rank_reference(d[:3], q_pids[:3], g_pids, q_cams[:3], g_cams)


# --------------------------------------------------------------------------- worked by hand


def test_hand_computed_one_query_four_gallery():
    # query: pid 1, camera 0. Gallery:
    #   g0 pid 2 cam 1 d=0.10  negative
    #   g1 pid 1 cam 0 d=0.05  same pid, same camera: ignored (not ranked)
    #   g2 pid 1 cam 1 d=0.40  positive
    #   g3 pid 1 cam 2 d=0.20  positive
    # Ranking of the non-ignored entries: g0 (0.1), g3 (0.2), g2 (0.4): positives at ranks 2 and 3.
    # CMC: rank 1 = 0, rank >= 2 = 1.
    # plain AP     = (1/2) * (1/2 + 2/3)                             = 7/12
    # trapezoid AP = (1/2) * [ (0/1 + 1/2)/2 + (1/2 + 2/3)/2 ]      = (1/2) * (1/4 + 7/12) = 5/12
    #   (the kit: precision one place above the first positive is 0/1, above the second 1/2)
    d = np.array([[0.10, 0.05, 0.40, 0.20]])
    args = (d, [1], [2, 1, 1, 1], [0], [1, 0, 1, 2])
    r = _both(*args, protocol="gallery-minus-query", max_rank=4, ranks=(1, 2, 4))
    np.testing.assert_array_equal(r.cmc, [0.0, 1.0, 1.0, 1.0])
    assert r.rank == {1: 0.0, 2: 1.0, 4: 1.0}
    assert r.mAP == pytest.approx(7 / 12, abs=1e-15) and r.ap_form == "plain"
    assert r.mAP_trapezoid == pytest.approx(5 / 12, abs=1e-15)
    r = _both(*args, protocol="gallery-minus-query", ap_form="trapezoid", max_rank=4, ranks=(1,))
    assert r.mAP == pytest.approx(5 / 12, abs=1e-15) and r.mAP_plain == pytest.approx(7 / 12, abs=1e-15)


def test_hand_computed_first_positive_at_rank_one():
    # positives at ranks 1 and 3 (negative at rank 2); a junk entry (pid -1) is nearest of all
    # and is not ranked.
    # plain AP     = (1/2) * (1/1 + 2/3)                             = 5/6
    # trapezoid AP = (1/2) * [ (1 + 1)/2 + (1/2 + 2/3)/2 ]           = (1/2) * (1 + 7/12) = 19/24
    #   (the kit starts with old_precision = 1)
    d = np.array([[0.1, 0.2, 0.3, 0.0]])
    r = _both(d, [5], [5, 0, 5, -1], [0], [1, 1, 2, 1], protocol="official", max_rank=3, ranks=(1, 3))
    assert r.ap_form == "trapezoid"  # the official protocol's default
    assert r.mAP == pytest.approx(19 / 24, abs=1e-15)
    assert r.mAP_plain == pytest.approx(5 / 6, abs=1e-15)
    np.testing.assert_array_equal(r.cmc, [1.0, 1.0, 1.0])
    # the distractor (pid 0) is a negative: put it first and rank 1 is lost
    d2 = np.array([[0.1, 0.05, 0.3, 0.0]])
    r2 = _both(d2, [5], [5, 0, 5, -1], [0], [1, 1, 2, 1], protocol="official", max_rank=3, ranks=(1, 3))
    assert r2.rank[1] == 0.0 and r2.mAP_plain == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-15)


def test_ties_follow_gallery_order():
    # three entries at the same distance: the stable order is g0, g1, g2
    d = np.array([[0.5, 0.5, 0.5]])
    pos_middle = _both(d, [1], [2, 1, 3], [0], [1, 1, 1], max_rank=3, ranks=(1, 3))
    assert pos_middle.rank[1] == 0.0 and pos_middle.mAP == pytest.approx(1 / 2)
    pos_first = _both(d, [1], [1, 2, 3], [0], [1, 1, 1], max_rank=3, ranks=(1, 3))
    assert pos_first.rank[1] == 1.0 and pos_first.mAP == 1.0
    pos_last = _both(d, [1], [2, 3, 1], [0], [1, 1, 1], max_rank=3, ranks=(1, 3))
    assert pos_last.mAP == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- protocols


def test_official_gallery_ignores_the_query_itself():
    rng = np.random.default_rng(3)
    qf = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    gf = torch.randn(20, 8, generator=torch.Generator().manual_seed(2))
    q_pids, q_cams = np.arange(1, 7), np.zeros(6, dtype=int)
    g_pids = rng.integers(1, 7, 20)
    g_cams = rng.integers(0, 3, 20)
    g_pids[:6], g_cams[:6] = np.arange(1, 7), 1  # every query has a match in camera 1
    g_all, gp, gc = build_protocol_gallery("official", qf, gf, q_pids, g_pids, q_cams, g_cams)
    assert g_all.shape == (26, 8) and torch.equal(g_all[20:], qf)
    np.testing.assert_array_equal(gp, np.r_[g_pids, q_pids])
    d = cosine_distance(qf, g_all)
    assert np.allclose(np.diag(d[:, 20:]), 0.0, atol=1e-6)  # each query is its own nearest entry
    official = _both(d, q_pids, gp, q_cams, gc, protocol="official", ap_form="plain")
    # the same numbers as marking, for each query, its own entry as junk (the other queries stay
    # in the gallery as ordinary entries)
    per_query = []
    for i in range(6):
        gp_i = gp.copy()
        gp_i[20 + i] = -1
        per_query.append(_both(d[i : i + 1], q_pids[i : i + 1], gp_i, q_cams[i : i + 1], gc, protocol="official"))
    np.testing.assert_allclose(official.cmc, np.mean([r.cmc for r in per_query], axis=0), atol=1e-15)
    assert official.mAP == pytest.approx(np.mean([r.mAP_plain for r in per_query]), abs=1e-12)
    assert official.rank[1] < 1.0  # were the own entry a match, every query would be matched at rank 1
    via_features = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, protocol="official")
    assert via_features.ap_form == "trapezoid" and via_features.mAP_plain == pytest.approx(official.mAP_plain)


def test_official_finds_matches_among_other_queries():
    # two queries of pid 7 in cameras 0 and 1; the gallery has pid 7 only in camera 0
    qf = torch.tensor([[1.0, 0.0], [0.9, 0.1]])
    gf = torch.tensor([[1.0, 0.05], [0.0, 1.0]])
    args = (qf, gf, [7, 7], [7, 3], [0, 1], [0, 0])
    gmq = evaluate_features(*args, protocol="gallery-minus-query")
    assert (gmq.num_valid, gmq.num_skipped) == (1, 1)  # query 0 has no cross-camera match
    off = evaluate_features(*args, protocol="official")
    assert (off.num_valid, off.num_skipped) == (2, 0)  # query 1 is query 0's match, and vice versa
    assert off.protocol == "official" and gmq.protocol == "gallery-minus-query"


def test_real_mars_labels_skip_140_queries(mars_info_full):
    scipy_io = pytest.importorskip("scipy.io")
    tracks = scipy_io.loadmat(str(mars_info_full / "tracks_test_info.mat"))["track_test_info"]
    query = scipy_io.loadmat(str(mars_info_full / "query_IDX.mat"))["query_IDX"].ravel().astype(int) - 1
    gallery = np.setdiff1d(np.arange(len(tracks)), query)
    qp, qc, gp, gc = tracks[query, 2], tracks[query, 3], tracks[gallery, 2], tracks[gallery, 3]
    d = np.random.default_rng(0).random((len(query), len(gallery))).astype(np.float32)
    r = evaluate_rank(d, qp, gp, qc, gc, protocol="gallery-minus-query")
    assert (r.num_queries, r.num_skipped) == (1980, 140)
    d_off = np.random.default_rng(1).random((len(query), len(tracks))).astype(np.float32)
    r_off = evaluate_rank(d_off, qp, np.r_[gp, qp], qc, np.r_[gc, qc], protocol="official")
    assert r_off.num_skipped == 0 and r_off.mAP_trapezoid < r_off.mAP_plain


def test_summarise_splits():
    rng = np.random.default_rng(4)
    results = []
    for split in range(3):
        qp = np.arange(10)
        d = rng.random((10, 10))
        results.append(evaluate_rank(d, qp, qp, np.zeros(10), np.ones(10), protocol="cross-camera"))
    s = summarise_splits(results)
    assert s["num_splits"] == 3 and s["protocol"] == "cross-camera" and s["ap_form"] == "plain"
    r1 = np.array([r.rank[1] for r in results]) * 100
    assert s["rank1"]["mean"] == pytest.approx(r1.mean()) and s["rank1"]["std"] == pytest.approx(r1.std())
    assert s["mAP"]["mean"] == pytest.approx(np.mean([r.mAP for r in results]) * 100)
    assert len(s["cmc_mean"]) == 20
    with pytest.raises(FGRAError):
        summarise_splits([results[0], evaluate_rank(d, qp, qp, np.zeros(10), np.ones(10), protocol="official")])


def test_bad_inputs_are_named():
    d = np.zeros((2, 3))
    with pytest.raises(ConfigError, match="protocol"):
        evaluate_rank(d, [1, 2], [1, 2, 3], [0, 0], [1, 1, 1], protocol="market")
    with pytest.raises(ConfigError, match="ap_form"):
        evaluate_rank(d, [1, 2], [1, 2, 3], [0, 0], [1, 1, 1], ap_form="interpolated")
    with pytest.raises(FGRAError, match="g_pids has 2 entries"):
        evaluate_rank(d, [1, 2], [1, 2], [0, 0], [1, 1, 1])
    with pytest.raises(FGRAError, match="NaN"):
        evaluate_rank(np.full((2, 3), np.nan), [1, 2], [1, 2, 3], [0, 0], [1, 1, 1])
    with pytest.raises(ConfigError, match="ranks"):
        evaluate_rank(d, [1, 2], [1, 2, 3], [0, 0], [1, 1, 1], max_rank=3, ranks=(1, 5))


# --------------------------------------------------------------------------- distances, re-ranking


def test_distances_match_direct_formulas_and_chunking():
    g = torch.Generator().manual_seed(5)
    q, gal = torch.randn(37, 16, generator=g), torch.randn(53, 16, generator=g)
    cos = cosine_distance(q, gal, chunk_size=5)
    qn, gn = q / q.norm(dim=1, keepdim=True), gal / gal.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(cos, (1 - qn @ gn.T).numpy(), atol=1e-6)
    np.testing.assert_allclose(cos, cosine_distance(q, gal, chunk_size=1000), atol=1e-6)  # GEMM blocking: ulps
    assert isinstance(cosine_distance(q, gal, as_numpy=False), torch.Tensor)
    np.testing.assert_allclose(euclidean_distance(q, gal, chunk_size=7), torch.cdist(q, gal).numpy(), atol=1e-4)
    np.testing.assert_allclose(
        euclidean_distance(q.numpy(), gal.numpy(), squared=True), (torch.cdist(q, gal) ** 2).numpy(), rtol=1e-4
    )
    with pytest.raises(FGRAError, match="dimension"):
        cosine_distance(q, gal[:, :8])


def test_rerank_shape_and_easy_case():
    # 8 identities, tight clusters; each query's nearest gallery entry is sometimes a wrong one,
    # but its k-reciprocal neighbourhood is its own cluster
    rng = np.random.default_rng(6)
    centers = rng.standard_normal((8, 32)) * 3
    g_pids = np.repeat(np.arange(8), 6)
    gf = centers[g_pids] + rng.standard_normal((48, 32))
    q_pids = np.arange(8)
    qf = centers[q_pids] + rng.standard_normal((8, 32)) * 1.5
    qg, qq, gg = (euclidean_distance(a, b) for a, b in ((qf, gf), (qf, qf), (gf, gf)))
    rr = re_ranking(qg, qq, gg, k1=6, k2=3, lambda_value=0.3)
    assert rr.shape == (8, 48) and np.isfinite(rr).all()
    cams = (np.zeros(8), np.ones(48))
    base = evaluate_rank(qg, q_pids, g_pids, *cams, protocol="cross-camera", max_rank=5, ranks=(1, 5))
    after = evaluate_rank(rr, q_pids, g_pids, *cams, protocol="cross-camera", max_rank=5, ranks=(1, 5))
    assert after.rank[1] >= base.rank[1] and after.mAP >= base.mAP - 1e-9
    assert after.mAP > 0.9
    with pytest.raises(ConfigError):
        re_ranking(qg, qq, gg, k1=0)
