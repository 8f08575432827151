"""What the docstring examples of ``ift_core`` need when pytest runs them (``--doctest-modules``).

The tests' own fixtures are in ``tests/conftest.py``. Examples close the figures they draw and write
to a fresh cache folder, as the tests do. (Nothing here sets a matplotlib backend through the
environment: the book's build, which a test runs, inherits it and would lose its figures.)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# scripts/run_tests.py names the test a dying test process was running: tests/conftest.py notes
# the tests, this file the docstring examples (it reads the variable; tests/conftest.py takes it).
_RUNNING_FILE = os.environ.get("IFT_TEST_RUNNING_FILE")


def pytest_runtest_logstart(nodeid, location):
    if _RUNNING_FILE and not nodeid.startswith("tests/"):
        Path(_RUNNING_FILE).write_text(nodeid + "\n")


def pytest_sessionfinish(session, exitstatus):
    if _RUNNING_FILE:  # also when only the examples ran (tests/conftest.py not loaded)
        Path(_RUNNING_FILE).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _doctest_sandbox(request):
    """For a docstring example: a fresh cache, and no figure left open after it."""
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    if os.environ.get("IFT_TEST_KEEP_CACHE") != "1":
        monkeypatch.setenv("IFT_CACHE", str(request.getfixturevalue("tmp_path") / "ift-cache"))
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
