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


# The committed CIFAR-format fixture's md5 sums (scripts/make_fixtures.py writes reproducible bytes
# and lists them in tests/fixtures/cifar10/README.md). The loader always lets torchvision check md5
# sums before unpickling; the tests give it these instead of CIFAR-10's.
CIFAR_FIXTURE_MD5 = {
    "data_batch_1": "e5aed0edbd780392e10f14d26377d981",
    "data_batch_2": "aa6c51951985875508f5b7b34afb6be0",
    "data_batch_3": "f93e90167663b09344bba17c7f0118f9",
    "data_batch_4": "2980476024775e985e0ceed33c15c883",
    "data_batch_5": "a05ab02b9b3b37284e70a2d924d44169",
    "test_batch": "bf4d5e4f24031784358d11e86703458f",
    "batches.meta": "077b4880e6ea24793646adde0d28c73f",
}


@pytest.fixture
def cifar_fixture_md5(monkeypatch):
    """torchvision's CIFAR10 expects the fixture's md5 sums (for this test only)."""
    from torchvision.datasets import CIFAR10

    from ift_core.data.sources import _read_cifar

    monkeypatch.setattr(CIFAR10, "train_list", [[f, CIFAR_FIXTURE_MD5[f]] for f, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[f, CIFAR_FIXTURE_MD5[f]] for f, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": CIFAR_FIXTURE_MD5["batches.meta"]})
    _read_cifar.cache_clear()  # nothing read under these sums outlives the test
    yield
    _read_cifar.cache_clear()
