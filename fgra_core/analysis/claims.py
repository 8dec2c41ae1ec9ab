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
X.a       the alignment gain (4 - 3) grows with jitter         beyond the paper
F5.a      aligned regions follow their part better than the    Fig. 5
          fixed stripe (part-consistency, every row 4-8)
========  ==================================================  ==========================

X.a is measured on the ``jitter`` group (within-clip box errors, ``box_offset`` held fixed) when the
study has one, else on the older ``misalignment`` group. F5.a is measured at the default setting
and at each jitter level. The claims about the mechanism (T2.c, T2.e, T2.f, F4.d, X.a) carry the
mechanism check of :mod:`fgra_core.analysis.mechanism` and the verdict *not exercised* when it
fails. Every claim also gets its minimum detectable effect (:func:`~fgra_core.analysis.stats.
minimum_detectable_effect`, 80% power, from the bootstrap's standard error).

**Sources of variance.** Each run's trunk is its ``model.weights``. When the seeds of a comparison
use different trunks (``trunk: {per_seed: true}``: seed s -> trunk s) the intervals resample trunks
(with their head seeds) and queries, so the trunk's variance is in every interval; with one trunk
for every seed it is not, and the table says so.
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

from fgra_core.analysis import mechanism
from fgra_core.analysis.stats import (
    CONFIDENCE,
    INCONCLUSIVE,
    N_RESAMPLES,
    POWER,
    STUDY_METHOD,
    StatsError,
    Term,
    combine,
    interval,
    minimum_detectable_effect,
    verdict,
)
from fgra_core.analysis.tables import belongs

EQUIVALENCE_T2 = 2.0    # "competitive": within 2 points of rank-1 (or mAP)
EQUIVALENCE_F4 = 5.0    # "fluctuate within 5%"
EQUIVALENCE_MARGINS = {"T2.e": EQUIVALENCE_T2, "F4.b": EQUIVALENCE_F4}   # the equivalence claims and their margins
SCORES = ("rank1", "mAP")
METHOD_TEXT = {"percentile": "percentile",
               "t": "t (the bootstrap's standard error, t quantiles for the few trunks)"}


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
    g, knob = ("jitter", "jitter") if _values(df, "jitter", "jitter") else ("misalignment", "misalignment")
    knobs = sorted(float(x) for x in _values(df, g, knob))
    if len(knobs) >= 2:
        lo, hi = knobs[0], knobs[-1]
        part = Part(f"(4 - 3) at {hi:g} - (4 - 3) at {lo:g}",
                    ((1.0, {"group": g, "variant": 4, knob: hi}), (-1.0, {"group": g, "variant": 3, knob: hi}),
                     (-1.0, {"group": g, "variant": 4, knob: lo}), (1.0, {"group": g, "variant": 3, knob: lo})))
        out.append(Claim("X.a", f"the alignment gain (row 4 - row 3) grows from {knob} {lo:g} to {hi:g}",
                         "beyond the paper", (part,)))
    out.extend(f5_claims(df))
    return out


def f5_claims(df: pd.DataFrame) -> list[Claim]:
    """F5.a at the default setting (``ablation``) and at each level of the ``jitter`` group."""
    def part(group: str, v: int, extra: dict) -> Part:
        sel = {"group": group, "variant": v, **extra}
        return Part(f"PC({v}) - stripe" + "".join(f" at {k} {x:g}" for k, x in extra.items()),
                    ((1.0, {**sel, "_score": "pc_gam"}), (-1.0, {**sel, "_score": "pc_stripe"})))

    if "pc_gam" not in df.columns or not df["pc_gam"].notna().any():
        return []
    out = []
    abl = [int(v) for v in _values(df, "ablation", "variant") if int(v) in mechanism.RAM_VARIANTS]
    if abl:
        out.append(Claim("F5.a", "the aligned regions follow their body part better than the fixed stripe "
                                 "(part-consistency, points)", "Fig. 5", tuple(part("ablation", v, {}) for v in abl)))
    jv = [int(v) for v in _values(df, "jitter", "variant") if int(v) in mechanism.RAM_VARIANTS]
    for level in _values(df, "jitter", "jitter") if jv else []:
        out.append(Claim(f"F5.a@{float(level):g}", f"F5.a at jitter {float(level):g}", "Fig. 5",
                         tuple(part("jitter", v, {"jitter": float(level)}) for v in jv)))
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
    out = {"rank1": hit, "mAP": ap * 100.0}
    per_clip = (record.get("alignment") or {}).get("per_clip") or {}
    for key, name in mechanism.PC_SCORES.items():
        values = per_clip.get(key)
        if values is not None and len(values) == len(first) and None not in values:
            out[name] = np.asarray(values, dtype=np.float64) * 100.0
    return out


def _select(df: pd.DataFrame, selector: dict) -> pd.DataFrame:
    sel = {k: v for k, v in selector.items() if k != "_score"}
    group = sel.pop("group")
    rows = df[df["groups"].map(lambda g: belongs(g, group))]
    for col, value in sel.items():
        if isinstance(value, float):
            rows = rows[np.isclose(rows[col].astype(float), value)]
        else:
            rows = rows[rows[col] == value]
    return rows


def _terms(df: pd.DataFrame, part: Part, runs_dir: Path, score: str, cache: dict) -> tuple[list[Term], list | None]:
    """The part's terms in ``score`` (a term's ``_score`` overrides it) and the trunk of each seed
    row (``None`` when every seed used one trunk, or the split count makes rows of several splits)."""
    chosen = [(coef, _select(df, sel), sel) for coef, sel in part.terms]
    for _, rows, sel in chosen:
        if rows.empty:
            raise ClaimsError(f"no finished run for {sel}")
    splits = sorted(set.intersection(*(set(rows["split_id"]) for _, rows, _ in chosen)))
    if not splits:
        raise ClaimsError(f"part {part.label}: its runs share no split")
    terms, trunk_rows = [], None
    for split in splits:
        per_term = [(coef, rows[rows["split_id"] == split], sel) for coef, rows, sel in chosen]
        seeds = sorted(set.intersection(*(set(r["seed"]) for _, r, _ in per_term)))
        if len(seeds) < 2:
            raise ClaimsError(f"part {part.label}, split {split}: {len(seeds)} seed(s) shared by its runs; "
                              "a claims table needs at least 2 seeds (give the plan a list of seeds)")
        for coef, r, sel in per_term:
            by_seed = r.drop_duplicates("seed").set_index("seed")
            which = sel.get("_score", score)
            arrays = []
            for s in seeds:
                run_id = by_seed.loc[s, "run_id"]
                if run_id not in cache:
                    cache[run_id] = _scores(runs_dir / run_id)
                if which not in cache[run_id]:
                    raise ClaimsError(f"run {run_id} has no per-query {which} (a set without ground-truth parts, "
                                      "or a record written before it was measured)")
                arrays.append(cache[run_id][which])
            if len({len(a) for a in arrays}) != 1:
                raise ClaimsError(f"part {part.label}: runs of {sel} disagree on the number of queries")
            qset = f"split{split}|mis{sel.get('misalignment', '')}|jit{sel.get('jitter', '')}"
            terms.append(Term(coef / len(splits), np.stack(arrays), qset))
            trunks = [str(by_seed.loc[s, "weights"]) for s in seeds]
            if trunk_rows is None:
                trunk_rows = trunks
            elif trunk_rows != trunks:
                raise ClaimsError(f"part {part.label}: its runs pair seeds with other trunks ({sel}); a paired "
                                  "comparison needs the same trunk for a seed in every term")
    if len(splits) > 1 or trunk_rows is None or len(set(trunk_rows)) < 2:
        return terms, None
    return terms, trunk_rows


def _fixed_score(claim: Claim) -> bool:
    """Every term names its own score (F5.a: part-consistency): one measure, not rank-1 and mAP."""
    return all("_score" in sel for part in claim.parts for _, sel in part.terms)


def _weakness(item):
    part, iv, _ = item
    if part.direction == "≈":
        return -max(abs(iv.low), abs(iv.high))
    return iv.low if part.direction == ">" else -iv.high


def evaluate_claim(df: pd.DataFrame, claim: Claim, runs_dir: str | Path, *, n_resamples: int = N_RESAMPLES,
                   cache: dict | None = None) -> dict:
    """Every part's interval in rank-1 and mAP, the claim's verdicts (rank-1 decides), the minimum
    detectable effect of the part shown, the sources of variance, and the mechanism check."""
    cache = {} if cache is None else cache
    row: dict = {"id": claim.id, "claim": claim.text, "source": claim.source, "parts": len(claim.parts)}
    for score in SCORES[:1] if _fixed_score(claim) else SCORES:
        results = []
        for part in claim.parts:
            terms, trunks = _terms(df, part, Path(runs_dir), score, cache)
            iv = interval(terms, n_resamples=n_resamples, trunks=trunks, method=STUDY_METHOD)
            results.append((part, iv, verdict(iv.low, iv.high, part.direction, part.margin)))
        overall = combine([v for _, _, v in results])
        # the part shown: the one that decides (a contradicting part, else the least supported one)
        shown = [r for r in results if r[2] == overall and overall != INCONCLUSIVE] or results
        part, iv, _ = min(shown, key=_weakness)
        row.update({f"{score}_part": part.label, f"{score}_diff": iv.estimate, f"{score}_low": iv.low,
                    f"{score}_high": iv.high, f"{score}_half_width": iv.half_width,
                    f"{score}_p_improve": iv.prob_improvement, f"{score}_verdict": overall,
                    f"{score}_mde": minimum_detectable_effect(iv.se, part.direction, iv.confidence, units=iv.units)})
        row["seeds"], row["queries"], row["trunks"] = iv.seeds, iv.queries, iv.trunks or 1
    row.update(_check(df, claim, Path(runs_dir), n_resamples, cache))
    if row["check_pass"] is False:
        for score in SCORES:
            if f"{score}_verdict" in row:
                row[f"{score}_verdict"] = mechanism.NOT_EXERCISED
    return row


def _check(df: pd.DataFrame, claim: Claim, runs_dir: Path, n_resamples: int, cache: dict) -> dict:
    """The mechanism check of a claim about the alignment (None for the other claims): the weakest of
    its RAM runs' ``PC - PC(stripe)`` intervals, and the smallest headroom among them."""
    out = {"check": "", "check_pass": None, "check_low": math.nan, "headroom": math.nan}
    sels = mechanism.checked_selectors(claim)
    if not sels:
        return out
    worst = None
    for sel in sels:
        sel = {k: v for k, v in sel.items() if k != "_score"}
        pc = Part("PC - stripe", ((1.0, {**sel, "_score": "pc_gam"}), (-1.0, {**sel, "_score": "pc_stripe"})))
        room = Part("headroom", ((1.0, {**sel, "_score": "pc_aligned"}), (-1.0, {**sel, "_score": "pc_stripe"})))
        try:
            terms, trunks = _terms(df, pc, runs_dir, "pc_gam", cache)
            iv = interval(terms, n_resamples=n_resamples, trunks=trunks, method=STUDY_METHOD)
            headroom = float(sum(t.coef * np.nanmean(t.scores) for t in _terms(df, room, runs_dir, "", cache)[0]))
        except ClaimsError as exc:
            return {**out, "check": f"not measured ({exc})"}
        key = (mechanism.passes(iv.low, headroom), iv.low)
        if worst is None or key < worst[0]:
            worst = (key, iv, headroom)
    (ok, _), iv, headroom = worst
    return {"check": mechanism.check_text(iv.estimate, iv.low, iv.high, headroom), "check_pass": ok,
            "check_low": iv.low, "headroom": headroom}


def claims_table(df: pd.DataFrame, runs_dir: str | Path, *, n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """One row per (dataset, data folder, regime, claim) the runs can speak to. Raises
    :class:`ClaimsError` when the study has fewer than 2 seeds."""
    cols = ["dataset", "data", "regime", "id", "claim", "source", "parts", "seeds", "queries", "trunks"]
    for s in SCORES:
        cols += [f"{s}_part", f"{s}_diff", f"{s}_low", f"{s}_high", f"{s}_half_width", f"{s}_p_improve", f"{s}_verdict",
                 f"{s}_mde"]
    cols += ["check", "check_pass", "check_low", "headroom"]
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


def sources_of_variance(trunks: int, seeds: int) -> str:
    """What the intervals of a claims table resample, in words."""
    if trunks >= 2 and trunks == seeds:
        return ("trunks x queries: each seed trains its own trunk and its heads, so a resampled seed "
                "carries the trunk's variance and the head's")
    if trunks >= 2:
        return f"{trunks} trunks x the head seeds of each x queries"
    return "head seeds x queries, one trunk: the trunk's own variance is not in these intervals"


def _mde(r, score: str) -> str:
    value = r.get(f"{score}_mde")
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _verdict_text(r, score: str) -> str:
    v = r.get(f"{score}_verdict")
    if not isinstance(v, str) or not v:
        return "—"
    return f"{v}; MDE {_mde(r, score)}" if v == INCONCLUSIVE else v


def claims_markdown(t: pd.DataFrame) -> str:
    """Per dataset and regime: claim, the deciding part, Δ rank-1 [95% CI] (± half-width), its
    minimum detectable effect, P(improvement), verdict, the mechanism check; Δ mAP and its verdict."""
    if t.empty:
        return "_No claim could be evaluated: the study has not run the compared variants._\n"
    parts = []
    for (ds, data, regime), sub in t.groupby(["dataset", "data", "regime"], sort=False, dropna=False):
        per_claim = pd.to_numeric(sub.get("trunks", pd.Series([1] * len(sub), index=sub.index)),
                                  errors="coerce").fillna(1).astype(int)
        trunks = int(per_claim.max())
        seeds = int(sub["seeds"].max())
        fewer = (f" ({int(per_claim.min())} for the claims marked so: their runs are on fewer seeds)"
                 if per_claim.min() < trunks else "")
        head = (f"**{ds}**{f' (`{data}`)' if data else ''}, {regime} regime: {seeds} seeds, {trunks} trunk(s){fewer}, "
                f"{int(sub['queries'].max())} queries, {int(CONFIDENCE * 100)}% {METHOD_TEXT[STUDY_METHOD]} bootstrap "
                f"intervals over {sources_of_variance(trunks, seeds)} ({N_RESAMPLES} resamples). MDE: the smallest true "
                f"difference the plan would call supported with {POWER:.0%} probability (for ≈: the smallest "
                f"margin it would confirm), from the bootstrap's standard error. F5.a rows are in "
                f"part-consistency points (share of map mass on the part x 100), not rank-1. The check: "
                f"PC - stripe of the runs with the mechanism (must exclude 0 from above) and the headroom "
                f"(must be >= {mechanism.HEADROOM_MIN:g}); when it fails the verdict is *not exercised*.")
        rows = []
        for i, r in sub.iterrows():
            few = f" ({per_claim[i]} trunks)" if per_claim[i] < trunks else ""
            rows.append({"claim": f"{r['id']} {r['claim']}",
                         "compared": r["rank1_part"] + (f" (1 of {r['parts']})" if r["parts"] > 1 else "") + few,
                         "Δ rank-1 [95% CI] (± half-width)": _ci(r, "rank1"), "MDE": _mde(r, "rank1"),
                         "P(improve)": f"{r['rank1_p_improve']:.2f}",
                         "verdict (rank-1)": f"**{_verdict_text(r, 'rank1')}**",
                         "mechanism check": r.get("check") or "—",
                         "Δ mAP [95% CI]": _ci(r, "mAP"), "verdict (mAP)": _verdict_text(r, "mAP")})
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

    from fgra_core.utils.cli import emit

    parser = argparse.ArgumentParser(prog="python -m fgra_core.analysis.claims",
                                     description="one table of the claims of several studies (their claims.csv)")
    parser.add_argument("results", nargs="+", help="results folders of studies (each holding claims.csv)")
    parser.add_argument("--out", default=None, help="write the Markdown table here (default: print it)")
    args = parser.parse_args(argv)
    found = {Path(folder).name: read_claims_csv(Path(folder) / "claims.csv") for folder in args.results}
    md = overview(found).to_markdown(index=False, disable_numparse=True) + "\n"
    emit(md, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
