"""The claims table from run records: pairing by seed, verdicts, and its refusal of a single seed."""
import json

import numpy as np
import pytest

from fgra_core.analysis import claims, tables


def _write(runs_dir, run_id, variant, seed, hits, groups=("ablation",), **extra):
    first = [1 if h else 2 for h in hits]
    rec = {"status": "finished", "dataset": "synthetic", "split_id": 0, "variant": variant, "seed": seed,
           "regime": "head", "seq_len": 4, "num_regions": 4,
           "metrics": {"rank1": 100 * np.mean(hits), "mAP": 50.0, "num_queries": len(hits), "num_valid": len(hits)},
           "per_query": {"first_rank": first, "ap": [1.0 if h else 0.5 for h in hits]},
           "config": {"data": {"dataset": "synthetic", "synthetic": {"misalignment": 1.0}}, "train": {"regime": "head"}},
           **extra}
    (runs_dir / run_id).mkdir(parents=True)
    (runs_dir / run_id / "results.json").write_text(json.dumps(rec))
    return {"run_id": run_id, "groups": list(groups)}


def _study(tmp_path, seeds=(0, 1, 2), q=40):
    rng = np.random.default_rng(0)
    manifest = []
    for seed in seeds:
        base = rng.random(q) < 0.4
        better = base | (rng.random(q) < 0.5)             # rows 4-6 clearly above the others
        for v in range(1, 9):
            hits = better if v in (4, 5, 6) else base
            manifest.append(_write(tmp_path, f"v{v}-r{seed}", v, seed, hits.tolist()))
    return tables.collect_results(tmp_path, {"runs": manifest})


def test_claims_pair_by_seed_and_decide(tmp_path):
    df = _study(tmp_path)
    t = claims.claims_table(df, tmp_path, n_resamples=2000)
    row = t.set_index("id")
    assert row.loc["T2.c", "rank1_verdict"] == "supported" and row.loc["T2.c", "rank1_low"] > 0
    # rows 1 and 3 have identical per-query outcomes: a difference of exactly 0 every resample
    assert (row.loc["T2.a", "rank1_diff"], row.loc["T2.a", "rank1_low"], row.loc["T2.a", "rank1_high"]) == (0, 0, 0)
    assert row.loc["T2.a", "rank1_verdict"] == "inconclusive" and row.loc["T2.a", "rank1_p_improve"] == 0.5
    # 5 = 6 exactly, within any margin: supported; 7 < 6 (row 7 lost the gain): contradicted
    assert row.loc["T2.e", "rank1_verdict"] == "supported" and row.loc["T2.f", "rank1_verdict"] == "contradicted"
    assert row.loc["T2.h", "parts"] == 7 and row.loc["T2.h", "rank1_verdict"] == "contradicted"
    assert (row["seeds"] == 3).all() and (row["queries"] == 40).all()
    md = claims.claims_markdown(t)
    assert "T2.c 4 > 3" in md and "**supported**" in md and "(±" in md


def test_a_claims_table_needs_two_seeds(tmp_path):
    df = _study(tmp_path, seeds=(0,))
    with pytest.raises(claims.ClaimsError, match="at least 2 seeds.*has 1"):
        claims.claims_table(df, tmp_path)


def test_records_without_per_query_outcomes_are_named(tmp_path):
    df = _study(tmp_path, seeds=(0, 1))
    path = tmp_path / "v4-r0" / "results.json"
    rec = json.loads(path.read_text())
    del rec["per_query"]
    path.write_text(json.dumps(rec))
    with pytest.raises(claims.ClaimsError, match="v4-r0.*no per-query outcomes"):
        claims.evaluate_claim(df, claims.paper_claims(df)[2], tmp_path)
