"""Shared fixtures. Tests run single-threaded so results are bit-reproducible."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Every test session gets its own cache folder unless IFT_CACHE is set by the caller."""
    if "IFT_CACHE" not in os.environ or os.environ.get("IFT_TEST_KEEP_CACHE") != "1":
        os.environ["IFT_CACHE"] = str(tmp_path_factory.mktemp("ift-cache"))
    yield


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
