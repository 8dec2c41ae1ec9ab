"""What the study reads from the package itself: its notebooks (the repository's ``notebooks/``
folder, installed as the package data ``fgra_core.notebooks``) and the paper's numbers
(:func:`fgra_core.analysis.tables.paper_csv_path`), found through the import system, so that
a regular (non-editable) install runs the study from any folder."""
from __future__ import annotations

from importlib import util
from pathlib import Path

RUN_NOTEBOOK = "train_evaluate"
BATCH_NOTEBOOK = "train_evaluate_batch"
PAPER_CSV = "results/paper_reported.csv"   # a project's own copy, when it has one, wins over the package's


def notebooks_dir() -> Path:
    """The folder of the study's notebooks: in a source checkout its ``notebooks/`` beside the
    package (so that the notebooks of the checkout that is imported are the ones run), else the
    installed package data ``fgra_core.notebooks``."""
    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    if (checkout / f"{RUN_NOTEBOOK}.ipynb").is_file():
        return checkout
    spec = util.find_spec("fgra_core.notebooks")   # package data without an __init__: a namespace
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the study's notebooks are neither beside the package (a source checkout) nor "
                                "installed with it (fgra_core.notebooks); reinstall fgra-repro")
    return Path(list(spec.submodule_search_locations)[0])


def paper_csv(project_dir: Path) -> Path:
    """The paper's numbers: the project's ``results/paper_reported.csv`` when there is one, else
    the package's."""
    from fgra_core.analysis.tables import paper_csv_path

    own = Path(project_dir) / PAPER_CSV
    return own if own.is_file() else paper_csv_path()
