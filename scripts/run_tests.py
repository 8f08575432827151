"""Run the test suite so that a dying test process is a failure that names the test (``make test``).

A native crash (a segfault in a C extension, heap corruption detected by glibc, a per-test
timeout's ``os._exit``) kills pytest before it can print its report. pytest's faulthandler
still prints the Python traceback of the crash ("Fatal Python error: ..."), and
pytest-timeout prints the stacks of a test that hangs; on top of that this wrapper runs
pytest as a child process, tells it (``IFT_TEST_RUNNING_FILE``, see ``tests/conftest.py``)
to note the node id of each test before it runs, and if the child dies prints which test it
was running and exits non-zero.

    python scripts/run_tests.py [pytest arguments...]

``make test`` adds ``-n 2 --dist loadfile`` (pytest-xdist: two test processes, each file on
one of them). A worker that dies is reported by xdist itself as a failure of the test it was
running ("worker 'gw0' crashed while running ..."), and the run goes on; this wrapper covers
the controlling process and runs without xdist.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="ift-tests-") as tmp:
        marker = Path(tmp) / "running"
        env = dict(os.environ, IFT_TEST_RUNNING_FILE=str(marker))
        rc = subprocess.call([sys.executable, "-m", "pytest", "-p", "faulthandler", *argv], env=env)
        if not marker.exists():  # pytest finished its session (whatever the tests' outcome)
            return rc
        running = marker.read_text().strip() or "(collection)"
    if rc < 0:
        how = f"was killed by {signal.Signals(-rc).name}"
    else:
        how = f"exited with status {rc} before the end of its session"
    print(f"\nFATAL: the test process {how} while running\n    {running}\n"
          "Its traceback, if Python could print one, is above ('Fatal Python error' from faulthandler, "
          "or '+++ Timeout +++' from pytest-timeout).", file=sys.stderr, flush=True)
    return 128 - rc if rc < 0 else (rc or 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
