"""Who owns what: claims on work items, owners that may have died, and processes that die with their parent.

A *claim* is a small file created atomically (``O_CREAT | O_EXCL``) that holds its
owner: host, pid, the process's start time and the machine's boot id. Two runs
of one config claim each seed before training it, so each seed is trained once
and both runs end with the full ensemble. A claim is *live* while its owner
runs and refreshes the file's time stamp (every :data:`HEARTBEAT_S` seconds); a
claim whose owner has died (same host: its pid is gone or belongs to a newer
process) or went silent for :data:`STALE_S` seconds (any host) is *stale* and is
taken over.

:func:`die_with_parent` makes a child process exit when the process that
started it dies (``prctl(PR_SET_PDEATHSIG)`` on Linux, plus a thread watching
``os.getppid()`` everywhere). :func:`owned_tempdir` names temporary folders by
their owner's pid so that :func:`remove_stale_temporaries` removes exactly those
left by dead processes.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "seed_00003.claim"
>>> with Claims() as claims:
...     claims.acquire(path), claims.acquire(path), claim_owner(path)["pid"] == os.getpid()
(True, True, True)
>>> path.exists()  # released on exit
False
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

__all__ = ["HEARTBEAT_S", "STALE_S", "POLL_S", "pid_alive", "claim_owner", "claim_is_live", "Claims",
           "exclusive", "remove_stale_claims", "die_with_parent", "owned_tempdir", "remove_stale_temporaries"]

HEARTBEAT_S = 30.0   # how often an owner refreshes its claims' time stamps
STALE_S = 600.0      # a claim not refreshed for this long is stale, whoever holds it
POLL_S = 0.5         # how often a waiting run looks at a claim again
_MESSAGE_S = 60.0    # how often a waiting run says it is still waiting
_HOST = socket.gethostname()


# ------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The start time of ``pid`` (Linux: clock ticks since boot), "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in (...) may hold spaces


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie does not count).

    Examples
    --------
    >>> pid_alive(os.getpid())
    True
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ValueError(f"pid must be a positive integer, got {pid!r}")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return not _zombie(pid)


def _me() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": _HOST, "pid": pid, "start": _start_time(pid), "boot": _boot_id()}


def _owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process a claim names still runs; other hosts' owners count as alive."""
    if owner.get("host") != _HOST:
        return True
    if owner.get("boot") and owner["boot"] != _boot_id():
        return False  # the machine rebooted since
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not pid_alive(pid):
        return False
    start, now = owner.get("start"), _start_time(pid)
    return not start or not now or start == now  # another start time: the pid was reused


def die_with_parent(parent_pid: int | None = None, *, poll_s: float = 0.2) -> None:
    """Make this process exit when its parent (``parent_pid``, default the current one) dies.

    On Linux the kernel sends SIGKILL at once (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon
    thread also compares ``os.getppid()`` with ``parent_pid`` every ``poll_s`` seconds (a child
    whose parent dies is given to another process) and calls ``os._exit``. Call it first thing in
    a worker process.
    """
    parent = os.getppid() if parent_pid is None else int(parent_pid)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):  # best effort: the thread below covers the rest
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the parent died before we asked to be told
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="ift-die-with-parent", daemon=True).start()


# ------------------------------------------------------------------------------------------
# Claims
# ------------------------------------------------------------------------------------------
def claim_owner(path: str | os.PathLike) -> dict[str, Any] | None:
    """The owner recorded in the claim file ``path`` (plus its age in seconds), None when unclaimed."""
    path = Path(path)
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return {"unreadable": True, "age": 0.0}
    try:
        owner = json.loads(text)
        if not isinstance(owner, dict):
            raise ValueError
    except ValueError:  # being written right now, or a writer died in between
        owner = {"unreadable": True}
    owner["age"] = age
    return owner


def claim_is_live(owner: dict[str, Any] | None) -> bool:
    """Whether a claim (as :func:`claim_owner` returns it) still holds: owner running, refreshed lately."""
    if owner is None:
        return False
    if owner.get("unreadable"):
        return owner["age"] < 10 * POLL_S  # a claim is written at once; an empty one soon is stale
    return owner["age"] < STALE_S and _owner_alive(owner)


def _describe(owner: dict[str, Any] | None) -> str:
    if not owner or owner.get("unreadable"):
        return "another process"
    return f"pid {owner.get('pid')} on {owner.get('host')}"


def _create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(_me(), sort_keys=True))
    return True


def _break_stale(path: Path, owner: dict[str, Any]) -> None:
    """Remove a stale claim, unless another run is breaking it or it changed hands meanwhile.

    Breakers serialise on ``<claim>.break`` (held for microseconds), so no run ever removes a
    claim that another one has just taken over.
    """
    guard = path.with_name(path.name + ".break")
    if not _create(guard):
        info = claim_owner(guard)
        if info is not None and not claim_is_live(info):
            guard.unlink(missing_ok=True)  # a breaker died inside this tiny window
        return
    try:
        now = claim_owner(path)
        if now is not None and not claim_is_live(now) and _same_owner(now, owner):
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def _same_owner(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("host", "pid", "start", "boot", "unreadable")
    return all(a.get(k) == b.get(k) for k in keys)


class Claims:
    """The claims one run holds: acquire, release, all released on exit; a thread keeps them fresh.

    Parameters
    ----------
    message : callable, optional
        Called with a line of text while :meth:`wait_any` waits (default: print to stderr).
    """

    def __init__(self, *, message: Callable[[str], None] | None = None) -> None:
        self._held: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._message = message or (lambda text: print(text, file=sys.stderr, flush=True))

    def __enter__(self) -> "Claims":
        self._thread = threading.Thread(target=self._heartbeat, name="ift-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for path in list(self._held):
            self.release(path)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._lock:
                for path in self._held:
                    with contextlib.suppress(OSError):
                        os.utime(path)

    def holds(self, path: str | os.PathLike) -> bool:
        return Path(path) in self._held

    def acquire(self, path: str | os.PathLike) -> bool:
        """Claim ``path``: True when this run holds it now (taking over a stale claim), False when a
        live owner holds it."""
        path = Path(path)
        if path in self._held:
            return True
        for _ in range(3):  # create; else break a stale claim and try again
            if _create(path):
                with self._lock:
                    self._held.add(path)
                return True
            owner = claim_owner(path)
            if owner is None:
                continue  # released meanwhile
            if claim_is_live(owner):
                return False
            _break_stale(path, owner)
        return False

    def release(self, path: str | os.PathLike) -> None:
        """Give ``path`` up (removes the file if this run still owns it)."""
        path = Path(path)
        with self._lock:
            if path not in self._held:
                return
            self._held.discard(path)
        owner = claim_owner(path)
        if owner is not None and _same_owner(owner, _me()):
            path.unlink(missing_ok=True)

    def wait_any(self, paths: Iterable[str | os.PathLike], *, what: Callable[[Path], str] = str,
                 poll_s: float = POLL_S, message_s: float = _MESSAGE_S) -> Path:
        """Block until one of ``paths`` is no longer claimed by a live owner; return it.

        Says which items it waits for and who holds them, at once and every ``message_s`` seconds.
        """
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("paths is empty: nothing to wait for")
        said = float("-inf")
        while True:
            owners = {p: claim_owner(p) for p in paths}
            free = [p for p, o in owners.items() if not claim_is_live(o)]
            if free:
                return free[0]
            now = time.monotonic()
            if now - said >= message_s:
                held = "; ".join(f"{what(p)} by {_describe(o)}" for p, o in owners.items())
                self._message(f"waiting for another run of this config to finish {held} "
                              f"(polling every {poll_s:g} s; it is taken over if its owner dies)")
                said = now
            time.sleep(poll_s)


def remove_stale_claims(folder: str | os.PathLike, pattern: str = "*.claim") -> list[Path]:
    """Remove the claims matching ``pattern`` in ``folder`` whose owner has died; return them."""
    removed = []
    for path in Path(folder).glob(pattern):
        owner = claim_owner(path)
        if owner is not None and not claim_is_live(owner):
            _break_stale(path, owner)
            if not path.exists():
                removed.append(path)
    return removed


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, *, what: str = "", poll_s: float = POLL_S,
              message: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the claim ``path`` for the ``with`` block, waiting while a live owner holds it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with exclusive(pathlib.Path(tempfile.mkdtemp()) / "job.claim"):
    ...     pass
    """
    path = Path(path)
    with Claims(message=message) as claims:
        while not claims.acquire(path):
            claims.wait_any([path], what=lambda p: what or p.name, poll_s=poll_s)
        yield


# ------------------------------------------------------------------------------------------
# Temporaries
# ------------------------------------------------------------------------------------------
_OWNED = re.compile(r"[-.]pid(\d+)[-.]")  # owned_tempdir's and internal.atomic_path's names


def owned_tempdir(prefix: str, *, dir: str | os.PathLike | None = None) -> Path:
    """A new temporary folder ``<prefix>pid<this pid>-XXXX`` (see :func:`remove_stale_temporaries`)."""
    if not isinstance(prefix, str) or not prefix or "/" in prefix:
        raise ValueError(f"prefix must be a non-empty name without '/', got {prefix!r}")
    base = prefix if prefix.endswith("-") else prefix + "-"
    return Path(tempfile.mkdtemp(prefix=f"{base}pid{os.getpid()}-", dir=dir))


def remove_stale_temporaries(pattern: str = "ift-*", *, dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove the folders and files matching ``pattern`` in ``dir`` (default: the temporary folder)
    whose name carries the pid of a process that no longer runs (``-pidN-`` or ``.pidN.``); return them.

    Names without a pid, and those of live processes, are left alone.
    """
    folder = Path(dir) if dir is not None else Path(tempfile.gettempdir())
    removed = []
    for path in folder.glob(pattern):
        match = _OWNED.search(path.name)
        if not match or pid_alive(int(match.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
