"""The committed results of a study, as a list of sections to show: what the look-first notebook
(``notebooks/results.ipynb``) displays without any training. Each section names its files; a
section whose files are missing says so in one line and names the command that makes them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# (title, what it says, tables under results/<plan>/, figures under figures/<plan>/)
SECTIONS = (
    ("The paper's claims", "every claim of Table 2, Fig. 4 and Fig. 5 as a paired difference with its 95% bootstrap "
     "interval (over trunks, seeds and queries), its minimum detectable effect, its verdict and, for the claims "
     "about the alignment, the check that the mechanism was exercised", ("claims.md",), ("claims_synthetic_head.png",)),
    ("Table 2", "rows 0-8: mean ± standard deviation over the seeds (population form, ddof = 0)", ("table2_ablation.md",),
     ("table2_synthetic.png",)),
    ("Does region alignment help?", "the aligned rows against the unaligned ones", ("alignment_summary.md",), ()),
    ("Fig. 4: sequence length and number of regions", "row 8 under N and N_s",
     ("sweep_seq_len.md", "sweep_num_regions.md"), ("sweep_seq_len.png", "sweep_num_regions.png")),
    ("Do the regions follow the body parts?", "part-consistency of every variant's response maps against the "
     "ground-truth parts, beside the fixed stripe, a uniform map and a perfect aligner", ("part_consistency.md",), ()),
    ("Within-clip box errors", "rows 3 and 4 against the jitter knob", ("jitter.md",), ("jitter.png",)),
    ("Readings of ambiguous passages", "the same rows under another reading of the paper", ("readings.md",), ()),
    ("Fig. 5: response maps", "where each region's template finds its body part in every frame", (),
     ("fig5_response_maps.png", "fig5_alignment_scores.png")),
)
MAKE = {"quick": "make study", "mars-mini": "python -m fgra_core.study --plan mars-mini"}


@dataclass
class Section:
    title: str
    about: str
    tables: list[Path] = field(default_factory=list)    # Markdown files that exist
    figures: list[Path] = field(default_factory=list)   # PNG files that exist
    missing: list[Path] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.tables and not self.figures


def sections(root: str | Path, plan: str = "quick") -> list[Section]:
    """The sections of ``plan``'s committed results under the project folder ``root``."""
    root = Path(root)
    out = []
    for title, about, tables, figures in SECTIONS:
        sec = Section(title, about)
        for name in tables:
            p = root / "results" / plan / name
            (sec.tables if p.is_file() else sec.missing).append(p)
        for name in figures:
            p = root / "figures" / plan / name
            (sec.figures if p.is_file() else sec.missing).append(p)
        out.append(sec)
    return out


def missing_note(section: Section, plan: str = "quick") -> str:
    """One line for a section with nothing to show: which files, and the command that makes them."""
    names = ", ".join(p.name for p in section.missing) or "its files"
    return f"{section.title}: nothing to show yet ({names} missing); run `{MAKE.get(plan, f'python -m fgra_core.study --plan {plan}')}`"
