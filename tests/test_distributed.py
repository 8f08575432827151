"""The Ray plumbing and the Ray backend: a local cluster on loopback, a worker killed midway,
results identical to sequential.

The end-to-end tests share one private two-CPU Ray cluster (started once per module, shut down
at the end) and train through the public path ``train_ensemble(config, backend="ray")`` or
:func:`ift_core.train.run_ray`.
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
import torch

from ift_core import distributed as D
from ift_core import train as T
from ift_core.activations import extract_activations, extract_activations_ray
from ift_core.train.seed import _checkpoint_path

LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1", "::1")
TRAIN_TASK = "ift_train_seed"  # the Ray task name run_ray gives its tasks (the worker's process title)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- no cluster needed
def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[ray\]'"):
        with D.ray_session():
            pass


@pytest.mark.parametrize("kwargs, match", [
    ({"num_cpus": -1}, "num_cpus"),
    ({"num_gpus": 1.5}, "num_gpus"),
    ({"num_gpus": float("nan")}, "num_gpus"),
    ({"max_retries": -2}, "max_retries"),
    ({"memory": 0}, "memory"),
    ({"resources": {"big": -1}}, "resources"),
    ({"device": "cuda"}, "num_gpus > 0"),
    ({"device": "cpu", "num_gpus": 0.5}, "reserve GPUs"),
])
def test_run_ray_rejects_bad_resources(kwargs, match):
    config = T.get_profile("tiny", n_models=2)
    with pytest.raises(ValueError, match=match):
        T.run_ray(config, [0, 1], "/nonexistent/never-written", progress=False, **kwargs)


@pytest.mark.parametrize("missing", [[2], [-1], [0, 0], [True]])
def test_run_ray_rejects_bad_indices(missing):
    with pytest.raises(ValueError, match="missing"):
        T.run_ray(T.get_profile("tiny", n_models=2), missing, "/nonexistent/never-written", progress=False)


def test_resource_options():
    assert D.resource_options(None) == {}
    assert D.resource_options({"num_gpus": 0.25, "max_retries": 5}) == {"num_gpus": 0.25, "max_retries": 5}
    with pytest.raises(ValueError, match="num_gpu"):
        D.resource_options({"num_gpu": 1})
    with pytest.raises(ValueError, match="dict"):
        D.resource_options([("num_gpus", 1)])


def test_plumbing_imports_nothing_from_the_stages():
    """distributed sits below every stage: importing it loads no other ift_core module, no torch."""
    import subprocess

    code = ("import sys, ift_core.distributed; "
            "print(sorted(m for m in sys.modules if m.startswith('ift_core')), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['ift_core', 'ift_core.distributed'] False"

def test_bad_address():
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match="address"):
        with D.ray_session(""):
            pass


# ----------------------------------------------------------------------------- a local cluster
@pytest.fixture(scope="module")
def cluster():
    """A private 2-CPU Ray cluster for this module, bound to loopback."""
    pytest.importorskip("ray")
    with D.ray_session(num_cpus=2) as ray:
        yield ray
    assert not ray.is_initialized()


class _Killer(threading.Thread):
    """SIGKILLs the first worker of this test process seen running Ray task ``title``, ``delay``
    seconds after it starts: a worker lost midway through training a seed."""

    def __init__(self, title: str = TRAIN_TASK, delay: float = 0.3):
        super().__init__(daemon=True)
        self.title, self.delay = f"ray::{title}", delay
        self.killed: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        psutil = pytest.importorskip("psutil")
        me = psutil.Process()
        while not self.done.is_set():
            for proc in me.children(recursive=True):
                try:
                    if " ".join(proc.cmdline()).startswith(self.title):
                        time.sleep(self.delay)
                        proc.kill()
                        self.killed.append(proc.pid)
                        return
                except psutil.Error:
                    continue
            time.sleep(0.02)

    def __enter__(self) -> "_Killer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join(timeout=10)


def _train_through_ray(config: T.TrainConfig, max_retries: int) -> T.Ensemble:
    return T.train_ensemble(config, backend="ray", progress=False,
                            ray_resources={"num_cpus": 1, "max_retries": max_retries})


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_cluster_listens_on_loopback_only(cluster):
    psutil = pytest.importorskip("psutil")
    listening = []
    for proc in psutil.Process().children(recursive=True):
        try:
            listening += [(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    names = {n for n, _, _ in listening}
    assert "gcs_server" in names and "raylet" in names, listening  # we did look at the cluster
    assert [x for x in listening if x[1] not in LOOPBACK] == []


@pytest.mark.slow
def test_ray_survives_a_killed_worker_and_matches_sequential(cluster):
    config = T.get_profile("tiny", n_models=3, seed=3)
    directory = T.ensemble_dir(config)
    # A first run trains seed 3 only; the full run below must leave its checkpoint alone.
    first = T.run_ray(config, [0], directory, progress=False)
    assert [r["seed"] for r in first] == [3]
    ck0 = _checkpoint_path(directory, 3)
    before = ck0.stat()

    with _Killer() as killer:
        ens = _train_through_ray(config, max_retries=2)
    assert len(killer.killed) == 1, "no training worker was seen, so none was killed"
    assert ens.n_trained == 2
    st = ck0.stat()
    assert (st.st_ino, st.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [m["backend"] for m in ens.metrics()] == ["ray"] * 3

    ref = T.train_ensemble(config, backend="sequential", cache=False, progress=False)
    assert ens.seeds == ref.seeds == [3, 4, 5]
    for a, b in zip(ens.models, ref.models):
        assert _state_equal(a, b)
    np.testing.assert_array_equal(ens.test_accuracy, ref.test_accuracy)
    np.testing.assert_array_equal(ens.train_accuracy, ref.train_accuracy)
    assert ens.test_accuracy.min() > 0.85  # they did learn


@pytest.mark.slow
def test_killed_worker_without_retries_is_reported(cluster):
    config = T.get_profile("tiny", n_models=1, seed=50, epochs=60)  # long enough to be killed midway
    directory = T.ensemble_dir(config)
    with _Killer(delay=0.1) as killer, pytest.raises(RuntimeError, match="seed 50 lost its Ray worker"):
        T.run_ray(config, [0], directory, max_retries=0, progress=False)
    assert len(killer.killed) == 1
    assert not _checkpoint_path(directory, 50).exists()


@pytest.mark.slow
def test_ray_tasks_map_in_order_with_the_object_store(cluster):
    with D.ray_tasks(num_cpus=1) as tasks:
        assert tasks.options == {"num_cpus": 1, "num_gpus": 0.0, "max_retries": 3}
        box = [tasks.put(np.arange(5))]
        got = tasks.map(lambda b, k: int(cluster.get(b[0]).sum()) * k, [(box, 3), (box, 1), (box, 0)],
                        name="ift_sum", labels=["a", "b", "c"])
        assert got == [30, 10, 0]
        with pytest.raises(ValueError, match="labels must name each of the 2 tasks"):
            tasks.map(lambda k: k, [(1,), (2,)], name="ift_id", labels=["a"])
    assert cluster.is_initialized()  # an initialised session is used, not shut down

@pytest.mark.slow
def test_requests_no_node_can_meet(cluster):
    # A cluster this call started cannot grow: refuse at once instead of waiting forever.
    for cpus, res in ((3, None), (1, {"ift_no_such_resource": 1})):
        with pytest.raises(ValueError, match="no node of the Ray cluster"):
            D._task_options(cluster, True, cpus, 0, None, res, 0)
        # A shared cluster may be autoscaled: only warn.
        with pytest.warns(UserWarning, match="no node of the Ray cluster"):
            D._task_options(cluster, False, cpus, 0, None, res, 0)
    assert D._task_options(cluster, True, 2, 0, None, None, 3) == {"num_cpus": 2, "num_gpus": 0, "max_retries": 3}


@pytest.mark.slow
def test_extract_activations_ray_matches_local(cluster):
    config = T.get_profile("tiny", n_models=3, seed=3)
    ens = T.train_ensemble(config, backend="sequential", progress=False)  # cached by the test above
    _, test = ens.data()
    acts, logits = extract_activations_ray(ens.models, test.x, num_cpus=1)
    ref_acts, ref_logits = extract_activations(ens.models, test.x)
    assert acts.shape == (3, len(test), 128) and acts.dtype == np.float32
    np.testing.assert_array_equal(acts, ref_acts)
    np.testing.assert_array_equal(logits, ref_logits)
    with pytest.raises(ValueError, match="available layers"):
        extract_activations_ray(ens.models, test.x, layer="nope")
