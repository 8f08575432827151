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


# scripts/run_tests.py (make test) names the test that was running when the process dies: it
# passes a file, which holds the node id of the running test and is removed when the session
# ends. Taken out of the environment so that subprocesses of the tests do not write it.
_RUNNING_FILE = os.environ.pop("IFT_TEST_RUNNING_FILE", None)


def _note_running(text: str) -> None:
    if _RUNNING_FILE:
        Path(_RUNNING_FILE).write_text(text + "\n")


def pytest_sessionstart(session):
    _note_running("(collection)")


def pytest_runtest_logstart(nodeid, location):
    _note_running(nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _RUNNING_FILE:
        Path(_RUNNING_FILE).unlink(missing_ok=True)
