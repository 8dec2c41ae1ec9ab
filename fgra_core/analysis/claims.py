"""The paper's claims as paired comparisons of a study's runs, each with its interval and verdict.

Every claim of Table 2 and Fig. 4 (and one beyond the paper) is written down here once, as parts:
a part is a difference between runs that share every setting but the one the claim is about,
paired over seeds and queries (:mod:`fgra_core.analysis.stats`). ``claims_table(df, runs_dir)`` evaluates
every claim whose runs the study has, per dataset and regime, in rank-1 and in mAP.

The claims (rank-1 decides the verdict; mAP is shown beside it):

========  ==================================================  ==========================
id        claim                                               source
========  ==================================================  ==========================
T2.a      3 > 1: the global branch adds to stripes (AVG)      Table 2, "complementary"
T2.b      3 > 2: the stripes add to the global branch         Table 2
T2.c      4 > 3: the region alignment mechanism helps          Table 2, +3.0/3.5/2.9
T2.d      5 > 4: temporal attention over aligned regions       Table 2
T2.e      6 ≈ 5: alignment scores as good as attention (±2)    Table 2, "competitive"
T2.f      7 > 6: the consistency term helps                    Table 2
T2.g      8 > 7: spatial attention helps                       Table 2
T2.h      8 best: row 8 above every row 1-7                    Table 2, "best performance"
F4.a      N = 2 worst: every other N above N = 2               Fig. 4
F4.b      other N within 5 points of each other                Fig. 4, "within 5%"
F4.c      N = 6 best: N = 6 above every other N                Fig. 4
F4.d      N_s rising to 4: 2 > 1 and 4 > 2                     Fig. 4
X.a       the alignment gain (4 - 3) grows with misalignment   beyond the paper
========  ==================================================  ==========================
"""
from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fgra_core.analysis.stats import CONFIDENCE, INCONCLUSIVE, N_RESAMPLES, StatsError, Term, combine, interval, verdict
from fgra_core.analysis.tables import belongs

EQUIVALENCE_T2 = 2.0    # "competitive": within 2 points of rank-1 (or mAP)
EQUIVALENCE_F4 = 5.0    # "fluctuate within 5%"
EQUIVALENCE_MARGINS = {"T2.e": EQUIVALENCE_T2, "F4.b": EQUIVALENCE_F4}   # the equivalence claims and their margins
SCORES = ("rank1", "mAP")


class ClaimsError(StatsError):
    """A claims table that cannot be made (e.g. fewer than 2 seeds)."""


@dataclass(frozen=True)
class Part:
    label: str
    terms: tuple            # ((coef, selector dict), ...): selector has "group" and column filters
    direction: str = ">"
    margin: float = 0.0


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    source: str
    parts: tuple = field(default_factory=tuple)


def _diff(group: str, a: dict, b: dict, label: str, direction: str = ">", margin: float = 0.0) -> Part:
    return Part(label, ((1.0, {"group": group, **a}), (-1.0, {"group": group, **b})), direction, margin)


def paper_claims(df: pd.DataFrame) -> list[Claim]:
    """The claims that the runs in ``df`` can speak to (a sweep's claims use the values it has)."""
    out: list[Claim] = []
    V = lambda v: {"variant": v}  # noqa: E731
    ab = "ablation"
    simple = [("T2.a", "3 > 1: the global branch adds to the stripe baseline", 3, 1),
              ("T2.b", "3 > 2: the stripes add to the global branch", 3, 2),
              ("T2.c", "4 > 3: the region alignment mechanism helps", 4, 3),
              ("T2.d", "5 > 4: temporal attention over the aligned regions helps", 5, 4),
              ("T2.f", "7 > 6: the consistency term helps", 7, 6),
              ("T2.g", "8 > 7: spatial attention helps", 8, 7)]
    for cid, text, a, b in simple:
        out.append(Claim(cid, text, "Table 2", (_diff(ab, V(a), V(b), f"{a} - {b}"),)))
    out.insert(4, Claim("T2.e", f"6 ≈ 5: alignment scores as good as temporal attention (±{EQUIVALENCE_T2:g})",
                        "Table 2", (_diff(ab, V(6), V(5), "6 - 5", "≈", EQUIVALENCE_MARGINS["T2.e"]),)))
    out.append(Claim("T2.h", "8 best: row 8 above every row 1-7", "Table 2",
                     tuple(_diff(ab, V(8), V(v), f"8 - {v}") for v in range(1, 8))))
    ns = sorted(int(x) for x in _values(df, "seq_len", "seq_len"))
    if 2 in ns and len(ns) >= 2:
        out.append(Claim("F4.a", "N = 2 worst: every other sequence length above N = 2", "Fig. 4",
                         tuple(_diff("seq_len", {"seq_len": n}, {"seq_len": 2}, f"N={n} - N=2") for n in ns if n != 2)))
    rest = [n for n in ns if n != 2]
    if len(rest) >= 2:
        out.append(Claim("F4.b", f"the other sequence lengths within {EQUIVALENCE_F4:g} points of each other",
                         "Fig. 4", tuple(_diff("seq_len", {"seq_len": a}, {"seq_len": b}, f"N={a} - N={b}", "≈",
                                               EQUIVALENCE_MARGINS["F4.b"]) for a, b in itertools.combinations(rest, 2))))
    if 6 in ns and len(ns) >= 2:
        out.append(Claim("F4.c", "N = 6 best: above every other sequence length", "Fig. 4",
                         tuple(_diff("seq_len", {"seq_len": 6}, {"seq_len": n}, f"N=6 - N={n}") for n in ns if n != 6)))
    rs = sorted(int(x) for x in _values(df, "num_regions", "num_regions"))
    up_to_4 = [r for r in rs if r <= 4]
    if len(up_to_4) >= 2 and 4 in up_to_4:
        out.append(Claim("F4.d", "N_s rising to 4: each step up to N_s = 4 improves", "Fig. 4",
                         tuple(_diff("num_regions", {"num_regions": b}, {"num_regions": a}, f"N_s={b} - N_s={a}")
                               for a, b in zip(up_to_4, up_to_4[1:]))))
    knobs = sorted(float(x) for x in _values(df, "misalignment", "misalignment"))
    if len(knobs) >= 2:
        lo, hi = knobs[0], knobs[-1]
        g = "misalignment"
        part = Part(f"(4 - 3) at {hi:g} - (4 - 3) at {lo:g}",
                    ((1.0, {"group": g, "variant": 4, "misalignment": hi}), (-1.0, {"group": g, "variant": 3, "misalignment": hi}),
                     (-1.0, {"group": g, "variant": 4, "misalignment": lo}), (1.0, {"group": g, "variant": 3, "misalignment": lo})))
        out.append(Claim("X.a", f"the alignment gain (row 4 - row 3) grows from misalignment {lo:g} to {hi:g}",
                         "beyond the paper", (part,)))
    return out


def _values(df: pd.DataFrame, group: str, column: str) -> list:
    if df.empty or column not in df.columns:
        return []
    rows = df[df["groups"].map(lambda g: belongs(g, group))]
    return sorted({v for v in rows[column].dropna().tolist()})


# --------------------------------------------------------------------------- per-query scores


def _scores(run_dir: Path) -> dict[str, np.ndarray]:
    record = json.loads((run_dir / "results.json").read_text())
    pq = record.get("per_query")
    if not pq:
        raise ClaimsError(f"{run_dir / 'results.json'} has no per-query outcomes (written before they were "
                          "recorded?); run the study again to recompute it")
    first = np.asarray(pq["first_rank"], dtype=np.float64)
    ap = np.asarray([np.nan if v is None else v for v in pq["ap"]], dtype=np.float64)
    hit = np.where(first > 0, (first == 1) * 100.0, np.nan)
    return {"rank1": hit, "mAP": ap * 100.0}


def _select(df: pd.DataFrame, selector: dict) -> pd.DataFrame:
    sel = dict(selector)
    group = sel.pop("group")
    rows = df[df["groups"].map(lambda g: belongs(g, group))]
    for col, value in sel.items():
        if isinstance(value, float):
            rows = rows[np.isclose(rows[col].astype(float), value)]
        else:
            rows = rows[rows[col] == value]
    return rows


def _terms(df: pd.DataFrame, part: Part, runs_dir: Path, score: str, cache: dict) -> list[Term]:
    chosen = [(coef, _select(df, sel), sel) for coef, sel in part.terms]
    for _, rows, sel in chosen:
        if rows.empty:
            raise ClaimsError(f"no finished run for {sel}")
    splits = sorted(set.intersection(*(set(rows["split_id"]) for _, rows, _ in chosen)))
    if not splits:
        raise ClaimsError(f"part {part.label}: its runs share no split")
    terms = []
    for split in splits:
        per_term = [(coef, rows[rows["split_id"] == split], sel) for coef, rows, sel in chosen]
        seeds = sorted(set.intersection(*(set(r["seed"]) for _, r, _ in per_term)))
        if len(seeds) < 2:
            raise ClaimsError(f"part {part.label}, split {split}: {len(seeds)} seed(s) shared by its runs; "
                              "a claims table needs at least 2 seeds (give the plan a list of seeds)")
        for coef, r, sel in per_term:
            by_seed = r.drop_duplicates("seed").set_index("seed")
            arrays = []
            for s in seeds:
                run_id = by_seed.loc[s, "run_id"]
                if run_id not in cache:
                    cache[run_id] = _scores(runs_dir / run_id)
                arrays.append(cache[run_id][score])
            if len({len(a) for a in arrays}) != 1:
                raise ClaimsError(f"part {part.label}: runs of {sel} disagree on the number of queries")
            qset = f"split{split}|mis{sel.get('misalignment', '')}"
            terms.append(Term(coef / len(splits), np.stack(arrays), qset))
    return terms


def evaluate_claim(df: pd.DataFrame, claim: Claim, runs_dir: str | Path, *, n_resamples: int = N_RESAMPLES,
                   cache: dict | None = None) -> dict:
    """Every part's interval in rank-1 and mAP, and the claim's verdicts (rank-1 decides)."""
    cache = {} if cache is None else cache
    row: dict = {"id": claim.id, "claim": claim.text, "source": claim.source, "parts": len(claim.parts)}
    for score in SCORES:
        results = []
        for part in claim.parts:
            iv = interval(_terms(df, part, Path(runs_dir), score, cache), n_resamples=n_resamples)
            results.append((part, iv, verdict(iv.low, iv.high, part.direction, part.margin)))
        overall = combine([v for _, _, v in results])
        # the part shown: the one that decides (a contradicting part, else the least supported one)
        def weakness(item):
            part, iv, v = item
            if part.direction == "≈":
                return -max(abs(iv.low), abs(iv.high))
            return iv.low if part.direction == ">" else -iv.high
        shown = [r for r in results if r[2] == overall and overall != INCONCLUSIVE] or results
        part, iv, _ = min(shown, key=weakness)
        row.update({f"{score}_part": part.label, f"{score}_diff": iv.estimate, f"{score}_low": iv.low,
                    f"{score}_high": iv.high, f"{score}_half_width": iv.half_width,
                    f"{score}_p_improve": iv.prob_improvement, f"{score}_verdict": overall})
        row["seeds"], row["queries"] = iv.seeds, iv.queries
    return row


def claims_table(df: pd.DataFrame, runs_dir: str | Path, *, n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """One row per (dataset, data folder, regime, claim) the runs can speak to. Raises
    :class:`ClaimsError` when the study has fewer than 2 seeds."""
    cols = ["dataset", "data", "regime", "id", "claim", "source", "parts", "seeds", "queries"]
    for s in SCORES:
        cols += [f"{s}_part", f"{s}_diff", f"{s}_low", f"{s}_high", f"{s}_half_width", f"{s}_p_improve", f"{s}_verdict"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    seeds = df.groupby(["dataset", "regime"])["seed"].nunique()
    if seeds.max() < 2:
        raise ClaimsError(f"a claims table needs at least 2 seeds per comparison; this study has "
                          f"{int(seeds.max())} (give the plan a list of seeds, e.g. seeds: [0, 1, 2, 3, 4])")
    rows, cache = [], {}
    for (ds, data, regime), sub in df.groupby(["dataset", "data", "regime"], sort=False, dropna=False):
        for claim in paper_claims(sub):
            try:
                r = evaluate_claim(sub, claim, runs_dir, n_resamples=n_resamples, cache=cache)
            except ClaimsError as exc:
                if "at least 2 seeds" in str(exc):
                    raise
                continue   # this study has not run what the claim needs
            rows.append({"dataset": ds, "data": data, "regime": regime, **r})
    return pd.DataFrame(rows, columns=cols)


def _ci(r, score: str) -> str:
    if r.get(f"{score}_diff") is None or (isinstance(r[f"{score}_diff"], float) and math.isnan(r[f"{score}_diff"])):
        return "—"
    return (f"{r[f'{score}_diff']:+.1f} [{r[f'{score}_low']:+.1f}, {r[f'{score}_high']:+.1f}] "
            f"(±{r[f'{score}_half_width']:.1f})")


def claims_markdown(t: pd.DataFrame) -> str:
    """Per dataset and regime: claim, the deciding part, Δ rank-1 [95% CI] (± half-width),
    P(improvement), verdict; Δ mAP [95% CI] and its verdict."""
    if t.empty:
        return "_No claim could be evaluated: the study has not run the compared variants._\n"
    parts = []
    for (ds, data, regime), sub in t.groupby(["dataset", "data", "regime"], sort=False, dropna=False):
        head = (f"**{ds}**{f' (`{data}`)' if data else ''}, {regime} regime: {int(sub['seeds'].max())} seeds, "
                f"{int(sub['queries'].max())} queries, {int(CONFIDENCE * 100)}% two-way bootstrap intervals "
                f"(seeds x queries, {N_RESAMPLES} resamples)")
        rows = []
        for _, r in sub.iterrows():
            rows.append({"claim": f"{r['id']} {r['claim']}", "compared": r["rank1_part"] + (f" (1 of {r['parts']})" if r["parts"] > 1 else ""),
                         "Δ rank-1 [95% CI] (± half-width)": _ci(r, "rank1"),
                         "P(improve)": f"{r['rank1_p_improve']:.2f}", "verdict (rank-1)": f"**{r['rank1_verdict']}**",
                         "Δ mAP [95% CI]": _ci(r, "mAP"), "verdict (mAP)": r["mAP_verdict"]})
        parts.append(head + "\n\n" + pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- several studies


def overview(tables_by_study: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim, one column per (study, dataset, regime): ``Δ rank-1 [95% CI] verdict``."""
    cols: dict[str, dict[str, str]] = {}
    texts: dict[str, str] = {}
    for study, t in tables_by_study.items():
        for _, r in t.iterrows():
            label = f"{'synthetic' if r['dataset'] == 'synthetic' else study}, {r['regime']}"
            cols.setdefault(label, {})[r["id"]] = f"{_ci(r, 'rank1')} **{r['rank1_verdict']}**"
            texts[r["id"]] = r["claim"]
    ids = sorted(texts, key=lambda i: (i.split(".")[0] != "T2", i.split(".")[0] != "F4", i))
    rows = [{"claim": f"{i} {texts[i]}", **{c: v.get(i, "—") for c, v in cols.items()}} for i in ids]
    return pd.DataFrame(rows)


OVERVIEW_COLUMNS = ("id", "claim", "dataset", "regime", "rank1_diff", "rank1_low", "rank1_high", "rank1_half_width",
                    "rank1_verdict")


def read_claims_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A study's ``claims.csv`` as the overview reads it; anything else is one :class:`ClaimsError` naming the file."""
    path = Path(path)
    expected = f"expected the claims table the study's claims aggregate writes (columns {', '.join(OVERVIEW_COLUMNS)})"
    if not path.is_file():
        raise ClaimsError(f"{path} does not exist (run the study's claims aggregate first)")
    try:
        t = pd.read_csv(path, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ClaimsError(f"{path} is not a UTF-8 text file (byte {exc.start}: {exc.reason}); {expected}") from None
    except pd.errors.EmptyDataError:
        raise ClaimsError(f"{path} is empty; {expected}") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise ClaimsError(f"{path} is not a readable CSV file ({' '.join(str(exc).split())}); {expected}") from None
    missing = [c for c in OVERVIEW_COLUMNS if c not in t.columns]
    if missing:
        raise ClaimsError(f"{path} has no column(s) {', '.join(missing)}; {expected}")
    for c in ("rank1_diff", "rank1_low", "rank1_high", "rank1_half_width"):
        values = pd.to_numeric(t[c].replace("", float("nan")), errors="coerce")
        bad = t[c][values.isna() & (t[c] != "")]
        if len(bad):
            raise ClaimsError(f"{path}: column {c} holds {bad.iloc[0]!r} (row {int(bad.index[0]) + 2}); expected numbers")
        t[c] = values
    return t


def main(argv: list[str] | None = None) -> int:
    """``python -m fgra_core.analysis.claims results/quick results/mars-mini [--out results/claims_overview.md]``;
    a bad ``claims.csv`` is one ``error:`` line on stderr and exit status 2."""
    from fgra_core.utils.cli import run_cli

    return run_cli(lambda: _main(argv), interrupted="interrupted")


def _main(argv: list[str] | None) -> int:
    import argparse

    from fgra_core.utils.io import atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m fgra_core.analysis.claims",
                                     description="one table of the claims of several studies (their claims.csv)")
    parser.add_argument("results", nargs="+", help="results folders of studies (each holding claims.csv)")
    parser.add_argument("--out", default=None, help="write the Markdown table here (default: print it)")
    args = parser.parse_args(argv)
    found = {Path(folder).name: read_claims_csv(Path(folder) / "claims.csv") for folder in args.results}
    md = overview(found).to_markdown(index=False, disable_numparse=True) + "\n"
    if args.out:
        atomic_write_text(args.out, md)
    else:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
