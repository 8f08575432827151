"""Killed, damaged, concurrent, hostile: nothing lost, nothing run, nothing half-written.

Each test does the real thing on the tiny digits MLP: it kills a real process by its pid, damages
a real file, runs two real processes at once, or hands the loader a hostile folder. Every
subprocess has a timeout and is killed in a ``finally``. The site-build cases (interrupted
``jupyter-book build``, a killed ``build_book.py``) are in ``tests/test_book.py``.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ift_core import activations as act
from ift_core import train as tr
from ift_core.activations import activations_path, ensemble_activations
from ift_core.data import DataConfig, load_data
from ift_core.train import get_profile, load_ensemble, train_ensemble

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
LINUX = sys.platform.startswith("linux")
psutil = pytest.importorskip("psutil")


def tiny(**changes):
    """Digits MLPs: a few seconds of training in all."""
    return get_profile("tiny", **{"n_models": 3, "epochs": 2, **changes})


def weights(ens) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in ens.models]


def same_weights(a, b) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
                                    for x, y in zip(a, b))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def child_env(cache: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, IFT_CACHE=str(cache), PYTHONUNBUFFERED="1", **extra)
    env.pop("IFT_TEST_KEEP_CACHE", None)
    return env


def wait_for(condition, timeout: float, what: str, poll: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = condition()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def kill_all(procs) -> None:
    for p in procs:
        try:
            p.kill()
        except (psutil.NoSuchProcess, ProcessLookupError, OSError):
            pass


def alive(procs) -> list:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


# ------------------------------------------------------------------------------------------
# 1. A data folder never runs code
# ------------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def test_hostile_cifar_folder_runs_no_code(tmp_path):
    base = tmp_path / "data" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    marker = tmp_path / "PWNED"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (base / name).write_bytes(pickle.dumps({"data": _Payload(marker), "labels": [0]}))
    (base / "IFT_FORMAT_FIXTURE").write_text("the marker that used to switch the md5 check off")
    with pytest.raises(ValueError, match="md5"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path / "data"), n_train=None, n_test=None))
    assert not marker.exists(), "a pickle in the data folder was unpickled: its code ran"


# ------------------------------------------------------------------------------------------
# 2. Workers die with their parent; a rerun takes the dead run's seeds over
# ------------------------------------------------------------------------------------------
PROCESSES_RUN = """
    import sys
    from ift_core.train import get_profile, train_ensemble

    if __name__ == "__main__":
        config = get_profile("tiny", n_models=int(sys.argv[1]), epochs=int(sys.argv[2]))
        train_ensemble(config, backend="processes", n_workers=2, progress=False)
        print("finished")
"""


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="finds the workers through /proc (psutil)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_processes_run_leaves_no_workers(tmp_path, monkeypatch, sig):
    n_models, epochs = 6, 30  # ~2 s a seed: the kill comes with seeds still to train
    cache = tmp_path / "cache"
    run = script(tmp_path, "run.py", PROCESSES_RUN)
    config = get_profile("tiny", n_models=n_models, epochs=epochs)
    monkeypatch.setenv("IFT_CACHE", str(cache))
    folder = tr.ensemble_dir(config, device="cpu")
    proc = subprocess.Popen([sys.executable, str(run), str(n_models), str(epochs)], cwd=REPO,
                            env=child_env(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    family = []
    try:
        wait_for(lambda: list(folder.glob("seed_*.pt")) or proc.poll() is not None, 240, "a first checkpoint")
        assert proc.poll() is None, f"the run ended early:\n{proc.stdout.read().decode()[-3000:]}"
        family = psutil.Process(proc.pid).children(recursive=True)
        assert len(family) >= 2, f"expected the workers as children, found {family}"
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        survivors = []
        end = time.monotonic() + 15
        while time.monotonic() < end and (survivors := alive(family)):
            time.sleep(0.1)
        assert not survivors, f"workers outlived their parent: {[(p.pid, p.cmdline()[-3:]) for p in survivors]}"
        done = sorted(p.name for p in folder.glob("seed_*.pt"))
        time.sleep(2.0)
        assert sorted(p.name for p in folder.glob("seed_*.pt")) == done, "checkpoints appeared after the kill"
        assert len(done) < n_models, "the run finished before the kill: nothing was tested"
    finally:
        kill_all([psutil.Process(proc.pid)] if proc.poll() is None else [])
        kill_all(alive(family))
        proc.wait(timeout=30)
    # A rerun takes over the dead run's claims and trains only what is missing.
    ens = train_ensemble(config, backend="vmap", progress=False)
    assert ens.n_trained == n_models - len(done) and len(ens) == n_models
    assert not list(folder.glob(".seed_*")), "claims or partial files of the dead run remain"


# ------------------------------------------------------------------------------------------
# 3. Concurrent runs of one config split the work
# ------------------------------------------------------------------------------------------
CONCURRENT_RUN = """
    import hashlib, json, sys, time
    from pathlib import Path
    import torch
    from ift_core import activations as act
    from ift_core.train import get_profile, train_ensemble

    if __name__ == "__main__":
        go, mode = Path(sys.argv[1]), sys.argv[2]
        config = get_profile("tiny", n_models=4, epochs=30)
        real = act.extract_activations
        calls = []

        def slow_extract(*args, **kwargs):  # a slow extraction (ResNet18 on CIFAR) widens the race
            calls.append(1)
            time.sleep(1.5)
            return real(*args, **kwargs)

        act.extract_activations = slow_extract
        while not go.exists():  # start together
            time.sleep(0.01)
        ens = train_ensemble(config, backend="sequential", progress=False)
        acts = act.ensemble_activations(ens, progress=False) if mode == "activations" else None
        digest = hashlib.sha256()
        for model in ens.models:
            for name, value in sorted(model.state_dict().items()):
                digest.update(name.encode() + value.numpy().tobytes())
        print(json.dumps({"n_trained": ens.n_trained, "weights": digest.hexdigest(), "extracted": len(calls),
                          "acts": None if acts is None else hashlib.sha256(acts.activations.tobytes()).hexdigest()}))
"""


def _run_together(tmp_path: Path, mode: str, cache: Path) -> list[dict]:
    run = script(tmp_path, "race.py", CONCURRENT_RUN)
    go = tmp_path / f"go-{mode}"
    procs = [subprocess.Popen([sys.executable, str(run), str(go), mode], cwd=REPO, env=child_env(cache),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        time.sleep(0.5)
        go.write_text("go")
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


@pytest.mark.slow
def test_two_concurrent_runs_train_each_seed_once(tmp_path):
    a, b = _run_together(tmp_path, "train", tmp_path / "cache")
    assert a["n_trained"] + b["n_trained"] == 4, (a, b)  # each seed trained once, by one of them
    assert a["weights"] == b["weights"]  # and both have the whole ensemble


@pytest.mark.slow
def test_two_concurrent_extractions_extract_once(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("IFT_CACHE", str(cache))
    train_ensemble(get_profile("tiny", n_models=4, epochs=30), backend="sequential", progress=False)
    a, b = _run_together(tmp_path, "activations", cache)
    assert a["n_trained"] == b["n_trained"] == 0
    assert a["extracted"] + b["extracted"] == 1, (a, b)
    assert a["acts"] == b["acts"]


# ------------------------------------------------------------------------------------------
# 4. Damaged or wrong files are detected, reported with their path, and redone
# ------------------------------------------------------------------------------------------
@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A small cached ensemble in a private cache, and a copy of its weights."""
    monkeypatch.setenv("IFT_CACHE", str(tmp_path / "cache"))
    config = tiny()
    ens = train_ensemble(config, backend="sequential", progress=False)
    return config, ens, weights(ens)


def _retrains_one(config, path: Path, reference) -> None:
    with pytest.warns(UserWarning, match=re.escape(str(path))):
        again = train_ensemble(config, backend="sequential", progress=False)
    assert again.n_trained == 1
    assert same_weights(weights(again), reference)  # the same bits as the original seed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_ensemble(config, backend="sequential", progress=False).n_trained == 0


def test_copied_checkpoint_is_detected_and_retrained(trained):
    config, ens, reference = trained
    src, dst = ens.directory / "seed_00000.pt", ens.directory / "seed_00001.pt"
    dst.write_bytes(src.read_bytes())
    with pytest.raises(ValueError, match="belongs to") as info:
        load_ensemble(config)
    assert str(dst) in str(info.value)
    _retrains_one(config, dst, reference)


def test_every_single_byte_flip_is_detected(trained):
    config, ens, reference = trained
    path = ens.directory / "seed_00001.pt"
    original = path.read_bytes()
    rng = np.random.default_rng(13)
    positions = rng.choice(len(original), size=40, replace=False)
    undetected = []
    for pos in positions:
        data = bytearray(original)
        data[pos] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(data))
        try:
            load_ensemble(config)
            undetected.append(int(pos))
        except ValueError as err:
            assert str(path) in str(err)
        except Exception as err:  # noqa: BLE001 - any other error does not name the file
            undetected.append(f"{pos}: {type(err).__name__}")
    path.write_bytes(original)
    assert not undetected, f"{len(undetected)} of 40 flips not reported as a damaged {path.name}: {undetected}"
    assert same_weights(weights(load_ensemble(config)), reference)
    path.write_bytes(bytes(b ^ 0xFF if i == len(original) // 2 else b for i, b in enumerate(original)))
    _retrains_one(config, path, reference)


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "hostile"])
def test_unreadable_checkpoint_is_named_and_retrained(trained, tmp_path, damage):
    config, ens, reference = trained
    path = ens.directory / "seed_00002.pt"
    original = path.read_bytes()
    marker = tmp_path / "PWNED"
    path.write_bytes({"truncated": original[:len(original) // 2], "empty": b"",
                      "garbage": np.random.default_rng(0).bytes(5000),
                      "hostile": pickle.dumps(_Payload(marker))}[damage])
    with pytest.raises(ValueError) as info:
        load_ensemble(config)
    message = str(info.value)
    assert str(path) in message and "weights_only" not in message
    assert not marker.exists()
    _retrains_one(config, path, reference)
    assert not marker.exists()


def test_full_disk_is_reported_and_leaves_no_partial_file(tmp_path, monkeypatch):
    from ift_core import internal

    monkeypatch.setenv("IFT_CACHE", str(tmp_path / "cache"))
    config = tiny(n_models=1)

    def full(fh, data):
        fh.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(internal, "_write_all", full)
    with pytest.raises(OSError, match="disk full") as info:
        train_ensemble(config, backend="sequential", progress=False)
    assert info.value.errno == errno.ENOSPC and "seed_00000.pt" in str(info.value)
    folder = tr.ensemble_dir(config, device="cpu")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]  # no partial file, no temp file, no claim


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 64 KiB file system (tmpfs; needs root and mount), unmounted afterwards."""
    if not LINUX or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    point = tmp_path / "small"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)],
                      capture_output=True, timeout=30).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


def test_full_disk_on_a_real_file_system(tiny_tmpfs, monkeypatch):
    monkeypatch.setenv("IFT_CACHE", str(tiny_tmpfs))
    config = tiny(n_models=1, epochs=1)  # its checkpoint (~110 KB) does not fit in 64 KiB
    with pytest.raises(OSError, match="disk full") as info:
        train_ensemble(config, backend="sequential", progress=False)
    assert info.value.errno == errno.ENOSPC and "seed_00000.pt" in str(info.value)
    folder = tr.ensemble_dir(config, device="cpu")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]


@pytest.mark.parametrize("damage", ["flip", "empty"])
def test_damaged_activation_cache_is_recomputed(trained, monkeypatch, damage):
    config, ens, _ = trained
    first = ensemble_activations(ens, progress=False)
    path = activations_path(ens, "test")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 3] ^= 0x55
    path.write_bytes(bytes(data) if damage == "flip" else b"")
    with pytest.warns(UserWarning, match=re.escape(path.name)) as caught:
        again = ensemble_activations(ens, progress=False)
    assert not any(str(path.parent) in str(w.message) for w in caught)  # no machine's folders in the output
    np.testing.assert_array_equal(again.activations, first.activations)
    np.testing.assert_array_equal(again.logits, first.logits)

    def no_compute(*args, **kwargs):
        raise AssertionError("recomputed although the rewritten cache is sound")

    monkeypatch.setattr(act, "extract_activations", no_compute)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(ensemble_activations(ens, progress=False).activations, first.activations)


def test_activation_cache_of_another_ensemble_is_not_used(trained, monkeypatch):
    config, ens, _ = trained
    ensemble_activations(ens, progress=False)
    other = train_ensemble(config.replace(seed=5), backend="sequential", progress=False)
    theirs = activations_path(other, "test")
    ours = activations_path(ens, "test")
    theirs.write_bytes(ours.read_bytes())  # a right file in the wrong place
    with pytest.warns(UserWarning, match="belongs to"):
        got = ensemble_activations(other, progress=False)
    np.testing.assert_array_equal(got.seeds, other.seeds)


# ------------------------------------------------------------------------------------------
# 6. Temporaries of killed runs are removed by the next run (the book's are in test_book.py)
# ------------------------------------------------------------------------------------------
SCRATCH_RUN = """
    import time
    from ift_core.train import get_profile, train_ensemble

    if __name__ == "__main__":
        ens = train_ensemble(get_profile("tiny", n_models=1, epochs=1), cache=False, progress=False)
        print(ens.directory, flush=True)
        time.sleep(600)
"""


@pytest.mark.skipif(not LINUX, reason="SIGKILL by pid")
def test_scratch_folder_of_a_killed_run_is_removed_next_time(tmp_path, monkeypatch):
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()
    run = script(tmp_path, "scratch.py", SCRATCH_RUN)
    proc = subprocess.Popen([sys.executable, str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env=child_env(tmp_path / "cache", TMPDIR=str(scratch_tmp)))
    try:
        left = Path(proc.stdout.readline().strip())
        assert left.parent == scratch_tmp and left.name.startswith("ift-ensemble-"), left
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert left.exists()  # SIGKILL: no finalizer ran
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_tmp))
    ours = train_ensemble(tiny(n_models=1, epochs=1), cache=False, progress=False)
    assert not left.exists(), "the killed run's scratch folder was not removed"
    assert ours.directory.exists() and ours.directory.parent == scratch_tmp  # a live owner's stays


# ------------------------------------------------------------------------------------------
# The building blocks, against planted ground truth
# ------------------------------------------------------------------------------------------
def test_claims_of_dead_and_live_owners(tmp_path):
    from ift_core import locks

    path = tmp_path / "item.claim"
    # A live owner (another process) holds it: not ours; a dead owner's claim is taken over.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ift_core.locks import Claims
        with Claims() as c:
            assert c.acquire({str(path)!r})
            print("held", flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with locks.Claims() as claims:
            assert not claims.acquire(path)
            assert locks.claim_owner(path)["pid"] == holder.pid
            holder.kill()
            holder.wait(timeout=30)
            assert claims.wait_any([path], poll_s=0.05) == path  # its owner died: free
            assert claims.acquire(path) and locks.claim_owner(path)["pid"] == os.getpid()
        assert not path.exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
    # A claim naming a pid that has exited, or a reused pid (another start time), is stale.
    path.write_text(json.dumps({"host": locks._HOST, "pid": dead_pid(), "start": "1", "boot": ""}))
    assert not locks.claim_is_live(locks.claim_owner(path))
    path.write_text(json.dumps({"host": locks._HOST, "pid": os.getpid(), "start": "1", "boot": ""}))
    assert not locks.claim_is_live(locks.claim_owner(path)) or not LINUX
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "start": "", "boot": ""}))
    assert locks.claim_is_live(locks.claim_owner(path))  # another host's owner: alive while fresh
    old = time.time() - locks.STALE_S - 5
    os.utime(path, (old, old))
    assert not locks.claim_is_live(locks.claim_owner(path))


def test_remove_stale_temporaries_spares_live_owners(tmp_path):
    from ift_core import locks

    dead = tmp_path / f"ift-x-pid{dead_pid()}-abc"
    live = tmp_path / f"ift-x-pid{os.getpid()}-abc"
    legacy = tmp_path / "ift-x-abc"
    for folder in (dead, live, legacy):
        folder.mkdir()
    partial = tmp_path / f".seed_00001.pt.pid{dead_pid()}.xyz.pt"
    partial.write_bytes(b"half")
    assert sorted(locks.remove_stale_temporaries("ift-*", dir=tmp_path)) == [dead]
    assert locks.remove_stale_temporaries(".seed_*", dir=tmp_path) == [partial]
    assert live.exists() and legacy.exists()
    gone, kept = tmp_path / ".seed_00001.claim", tmp_path / ".seed_00002.claim"
    gone.write_text(json.dumps({"host": locks._HOST, "pid": dead_pid(), "start": "", "boot": ""}))
    with locks.Claims() as claims:
        assert claims.acquire(kept)
        assert locks.remove_stale_claims(tmp_path, ".seed_*.claim") == [gone]
        assert kept.exists() and not gone.exists()
