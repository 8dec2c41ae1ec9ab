"""Claims about the alignment: F5.a against the stripe, the mechanism check and its "not exercised"
verdict, the trunk of each seed as a source of variance, and the minimum detectable effect."""
import json

import numpy as np
import pytest

from fgra_core.analysis import claims, mechanism, stats, tables


def _write(runs_dir, run_id, variant, seed, hits, pc=None, trunk="trunk.pt", groups=("ablation",)):
    q = len(hits)
    rec = {"status": "finished", "dataset": "synthetic", "split_id": 0, "variant": variant, "seed": seed,
           "regime": "head", "seq_len": 4, "num_regions": 4,
           "metrics": {"rank1": 100 * np.mean(hits), "mAP": 50.0, "num_queries": q, "num_valid": q},
           "per_query": {"first_rank": [1 if h else 2 for h in hits], "ap": [1.0 if h else 0.5 for h in hits]},
           "config": {"data": {"dataset": "synthetic", "synthetic": {"misalignment": 1.0}},
                      "train": {"regime": "head"}, "model": {"weights": trunk}}}
    if pc is not None:   # (gam, stripe, aligned) per query
        gam, stripe, aligned = pc
        rec["alignment"] = {"gam": None if gam is None else float(np.mean(gam)), "stripe": float(np.mean(stripe)),
                            "aligned": float(np.mean(aligned)), "headroom": float(np.mean(aligned) - np.mean(stripe)),
                            "per_clip": {"gam": None if gam is None else list(gam), "stripe": list(stripe),
                                         "aligned": list(aligned)}}
    (runs_dir / run_id).mkdir(parents=True)
    (runs_dir / run_id / "results.json").write_text(json.dumps(rec))
    return {"run_id": run_id, "groups": list(groups)}


def _study(tmp_path, gam_above: bool, headroom: float, per_seed_trunks: bool = True, q=40, seeds=(0, 1, 2, 3, 4)):
    rng = np.random.default_rng(1)
    manifest = []
    stripe = np.full(q, 0.50)
    aligned = stripe + headroom
    for seed in seeds:
        base = rng.random(q) < 0.4
        better = base | (rng.random(q) < 0.5)                      # row 4 clearly above row 3 in rank-1
        trunk = f"trunk{seed}.pt" if per_seed_trunks else "trunk.pt"
        for v in range(1, 9):
            gam = None if v < 4 else stripe + (0.2 if gam_above else -0.2) + 0.01 * rng.standard_normal(q)
            manifest.append(_write(tmp_path, f"v{v}-r{seed}", v, seed, (better if v >= 4 else base).tolist(),
                                   pc=(gam, stripe, aligned), trunk=trunk))
    return tables.collect_results(tmp_path, {"runs": manifest})


def test_f5a_measures_the_maps_against_the_stripe(tmp_path):
    t = claims.claims_table(_study(tmp_path, gam_above=True, headroom=0.2), tmp_path, n_resamples=2000).set_index("id")
    f5 = t.loc["F5.a"]
    assert f5["parts"] == 5 and f5["rank1_verdict"] == "supported"
    assert f5["rank1_diff"] == pytest.approx(20.0, abs=0.5)          # +0.2 of a share = 20 points
    assert np.isnan(f5["mAP_diff"])                                   # one measure: no mAP column
    t = claims.claims_table(_study(tmp_path / "b", gam_above=False, headroom=0.2), tmp_path / "b",
                            n_resamples=2000).set_index("id")
    assert t.loc["F5.a", "rank1_verdict"] == "contradicted"


def test_a_mechanism_that_was_not_exercised_gets_no_accuracy_verdict(tmp_path):
    # row 4 is far above row 3 in rank-1, but its maps sit below the stripe: the accuracy says nothing of alignment
    t = claims.claims_table(_study(tmp_path, gam_above=False, headroom=0.2), tmp_path, n_resamples=2000).set_index("id")
    assert t.loc["T2.c", "rank1_low"] > 0                              # the accuracy interval is still shown
    assert t.loc["T2.c", "rank1_verdict"] == mechanism.NOT_EXERCISED == t.loc["T2.c", "mAP_verdict"]
    assert not bool(t.loc["T2.c", "check_pass"])
    assert t.loc["T2.c", "check"].startswith("PC - stripe -20.") and "headroom +20.0" in t.loc["T2.c", "check"]
    # claims that are not about the mechanism keep their verdict and have no check
    assert t.loc["T2.b", "check"] == "" and t.loc["T2.b", "rank1_verdict"] != mechanism.NOT_EXERCISED


def test_too_little_headroom_is_not_exercised_either(tmp_path):
    t = claims.claims_table(_study(tmp_path, gam_above=True, headroom=0.05), tmp_path, n_resamples=2000).set_index("id")
    assert t.loc["T2.c", "rank1_verdict"] == mechanism.NOT_EXERCISED and "headroom +5.0" in t.loc["T2.c", "check"]
    t = claims.claims_table(_study(tmp_path / "b", gam_above=True, headroom=0.2), tmp_path / "b",
                            n_resamples=2000).set_index("id")
    assert t.loc["T2.c", "rank1_verdict"] == "supported" and bool(t.loc["T2.c", "check_pass"])


def test_the_check_passes_only_above_the_stripe_and_the_threshold():
    assert mechanism.passes(0.1, mechanism.HEADROOM_MIN)
    assert not mechanism.passes(0.0, 50.0) and not mechanism.passes(1.0, mechanism.HEADROOM_MIN - 0.01)
    assert not mechanism.passes(float("nan"), 50.0)


def test_each_seed_with_its_own_trunk_puts_the_trunk_in_the_interval(tmp_path):
    t = claims.claims_table(_study(tmp_path, True, 0.2), tmp_path, n_resamples=2000)
    assert (t["trunks"] == 5).all()
    md = claims.claims_markdown(t)
    assert "5 trunk(s)" in md and "each seed trains its own trunk" in md
    fewer = t.copy()
    fewer.loc[fewer["id"] == "T2.c", "trunks"] = 3       # a claim whose runs are on three of the five seeds
    md3 = claims.claims_markdown(fewer)
    assert "5 trunk(s) (3 for the claims marked so" in md3
    assert [line for line in md3.splitlines() if line.startswith("| T2.c")][0].count("(3 trunks)") == 1
    assert sum("(3 trunks)" in line for line in md3.splitlines()) == 1 and "(3 trunks)" not in md
    one = claims.claims_table(_study(tmp_path / "b", True, 0.2, per_seed_trunks=False), tmp_path / "b", n_resamples=2000)
    assert (one["trunks"] == 1).all() and "the trunk's own variance is not in these intervals" in claims.claims_markdown(one)


def test_every_claim_prints_its_minimum_detectable_effect(tmp_path):
    t = claims.claims_table(_study(tmp_path, True, 0.2), tmp_path, n_resamples=2000)
    assert t["rank1_mde"].notna().all() and (t["rank1_mde"] >= 0).all()
    # the MDE is 4.156 bootstrap standard errors of the part shown (t interval over 5 trunks), whose
    # interval is 2 x 3.104 of them wide
    r = t.set_index("id").loc["T2.c"]
    assert r["rank1_mde"] == pytest.approx(4.1561 * (r["rank1_high"] - r["rank1_low"]) / (2 * 3.1041), rel=1e-3)
    md = claims.claims_markdown(t)
    assert "| MDE " in md and "inconclusive; MDE" in md


def test_a_seed_paired_with_two_trunks_is_refused(tmp_path):
    df = _study(tmp_path, True, 0.2)
    path = tmp_path / "v3-r1" / "results.json"
    rec = json.loads(path.read_text())
    rec["config"]["model"]["weights"] = "another.pt"
    path.write_text(json.dumps(rec))
    df = tables.collect_results(tmp_path, {"runs": [{"run_id": r, "groups": ["ablation"]} for r in df["run_id"]]})
    with pytest.raises(claims.ClaimsError, match="same trunk for a seed"):
        claims.evaluate_claim(df, next(c for c in claims.paper_claims(df) if c.id == "T2.c"), tmp_path)


def test_checked_runs_of_each_claim():
    df_claims = {c.id: c for c in claims.paper_claims(__import__("pandas").DataFrame())}
    sels = mechanism.checked_selectors(df_claims["T2.c"])
    assert sels == [{"group": "ablation", "variant": 4}]
    assert mechanism.checked_selectors(df_claims["T2.b"]) == []
    assert stats.minimum_detectable_effect(1.0) == pytest.approx(2.8016, abs=1e-4)
