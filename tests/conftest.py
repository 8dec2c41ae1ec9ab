"""Shared fixtures. Tests that need ``../shared`` skip with a reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FGRA_SHARED", REPO.parent / "shared"))


def _shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.exists():
        pytest.skip(f"needs {path} (the read-only shared data folder beside the checkout); not present")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _shared("")


@pytest.fixture(scope="session")
def mars_mini() -> Path:
    return _shared("data/mars-mini")


@pytest.fixture(scope="session")
def mars_info_full() -> Path:
    return _shared("data/mars-info-full")


@pytest.fixture(scope="session")
def prid_splits_file() -> Path:
    return _shared("data/splits/splits_prid2011.json")


@pytest.fixture(scope="session")
def mobilenet_weights() -> Path:
    return _shared("weights/mobilenet_v2_imagenet_features.pth")


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield
