"""Generic Ray plumbing: a session on a cluster, per-task resources, tasks gathered with retries.

Ray (https://www.ray.io) is an optional extra (``pip install -e .[ray]``). This module knows
nothing of models or data: the Ray training backend (:func:`ift_core.train.run_ray`) and Ray
activation extraction (:func:`ift_core.activations.extract_activations_ray`) are built on it.

Where things run

* ``address=None`` and no ``$RAY_ADDRESS``: a private local cluster is started
  for the call, bound to the loopback interface only (``127.0.0.1``; no dashboard,
  no usage statistics), and shut down afterwards.
* ``address="auto"`` (the cluster this machine belongs to), ``"HOST:6379"`` (a
  head node's GCS) or ``"ray://HOST:10001"`` (Ray Client), or ``$RAY_ADDRESS``:
  connect to an existing cluster; it is left running.
* An already initialised Ray session (``ray.init`` by the caller, or
  :func:`ray_session`) is used as it is, whatever ``address`` says.

Failures

A task whose worker process or node dies is rerun up to ``max_retries`` times
(:func:`ray_tasks`); past that, the caller gets a ``RuntimeError`` naming the task.
Resources no node of a cluster this call started can meet are refused at once; on a
shared cluster (which may grow) they are a warning.

Examples
--------
>>> with ray_tasks(num_cpus=1) as tasks:                        # doctest: +SKIP
...     tasks.map(pow, [(2, 3), (3, 2)], name="pow", labels=["a", "b"])
[8, 9]
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

__all__ = ["RAY_OPTIONS", "ray_session", "ray_tasks", "RayTasks", "resource_options"]

# The per-task options train_ensemble(ray_resources=...) may set (keywords of ift_core.train.run_ray).
RAY_OPTIONS = ("num_cpus", "num_gpus", "memory", "resources", "max_retries", "ship_data", "runtime_env")

_INSTALL_HINT = "Ray is not installed; install the optional extra with: pip install -e '.[ray]'"


def _import_ray():
    """Import ray, keeping a local cluster private: no usage statistics, no OS X/Windows clusters
    (which listen on every interface). Set before the first import, which reads them."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    return ray


# This module imports nothing from ift_core (it sits below every stage), so its few checks are its own.
def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and math.isfinite(v))


def _check_address(address: Any) -> str | None:
    if address is None:
        env = os.environ.get("RAY_ADDRESS", "").strip()
        return env or None
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"address must be None, 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got {address!r}")
    if address.strip() == "local":
        return None
    return address.strip()


@contextlib.contextmanager
def _session(address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None,
             runtime_env: Mapping[str, Any] | None = None) -> Iterator[tuple[Any, bool]]:
    """(ray, started_here): the session of :func:`ray_session`, and whether this call started
    a local cluster (so infeasible requests can fail at once instead of waiting)."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray, False
        return
    addr = _check_address(address)
    for name, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if v is not None and (not _is_int(v) or v < 0):
            raise ValueError(f"{name} must be None or an integer >= 0, got {v!r}")
    if runtime_env is not None and not isinstance(runtime_env, Mapping):
        raise ValueError(f"runtime_env must be None or a dict, got {type(runtime_env).__name__}")
    common = dict(logging_level=logging.WARNING, runtime_env=dict(runtime_env) if runtime_env else None)
    if addr is not None:
        ray.init(address=addr, **common)
    else:
        # "local", not None: None would join the last cluster started on this machine.
        # 127.0.0.1: every Ray server of the private cluster listens on loopback only.
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                 num_cpus=num_cpus, num_gpus=num_gpus, **common)
    try:
        yield ray, addr is None
    finally:
        ray.shutdown()


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
                runtime_env: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A connected Ray session for the ``with`` block; yields the ``ray`` module.

    Use it to keep one cluster across several calls (training, then activations):
    :func:`ray_tasks` and everything built on it use an initialised session as it is.

    Parameters
    ----------
    address : str, optional
        ``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` connects to a running
        cluster (left running afterwards); default ``$RAY_ADDRESS``, and when that is
        unset a new private local cluster bound to ``127.0.0.1`` (no dashboard),
        shut down when the block ends. ``"local"`` always starts a new local one.
        When Ray is already initialised in this process that session is used and
        left alone.
    num_cpus, num_gpus : int, optional
        Size of a *local* cluster (default: what the machine has). Ignored when connecting.
    runtime_env : dict, optional
        Ray runtime environment for the job (e.g. ``{"py_modules": [path_to_ift_core]}``
        when the nodes do not have ``ift_core`` installed).

    Examples
    --------
    >>> with ray_session(num_cpus=2) as ray:                     # doctest: +SKIP
    ...     int(ray.cluster_resources()["CPU"])
    2
    """
    with _session(address, num_cpus=num_cpus, num_gpus=num_gpus, runtime_env=runtime_env) as (ray, _):
        yield ray


def _infeasible(ray: Any, num_cpus: float, num_gpus: float, resources: Mapping[str, float] | None) -> str | None:
    """Why no node of the cluster could ever run one task, or None."""
    need = {"CPU": num_cpus, "GPU": num_gpus, **(resources or {})}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(res.get(k, 0.0) >= v for k, v in need.items() if v > 0) for res in nodes):
        return None
    return (f"no node of the Ray cluster has {{{', '.join(f'{k}: {v}' for k, v in need.items() if v > 0)}}} "
            f"for one task; nodes have {nodes}")


def _task_options(ray: Any, started_here: bool, num_cpus: float, num_gpus: float, memory: float | None,
                  resources: Mapping[str, float] | None, max_retries: int) -> dict[str, Any]:
    """Ray task options; refuses (own cluster) or warns (shared cluster) when no node fits one task."""
    why = _infeasible(ray, float(num_cpus), float(num_gpus), resources)
    if why and started_here:
        raise ValueError(f"{why}; ask for less per task (num_cpus, num_gpus)")
    if why:
        warnings.warn(f"{why}; the tasks wait until the cluster grows", stacklevel=4)
    opts: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": max_retries}
    if memory is not None:
        opts["memory"] = memory
    if resources:
        opts["resources"] = dict(resources)
    return opts


def _check_resources(num_cpus: Any, num_gpus: Any, memory: Any, resources: Any, max_retries: Any) -> None:
    if not _is_real(num_cpus) or num_cpus < 0:
        raise ValueError(f"num_cpus must be a number >= 0, got {num_cpus!r}")
    if not _is_real(num_gpus) or num_gpus < 0:
        raise ValueError(f"num_gpus must be a number >= 0, got {num_gpus!r}")
    if num_gpus > 1 and num_gpus != int(num_gpus):
        raise ValueError(f"num_gpus above 1 must be a whole number (Ray's rule), got {num_gpus!r}")
    if memory is not None and (not _is_real(memory) or memory <= 0):
        raise ValueError(f"memory must be None or a number of bytes > 0, got {memory!r}")
    if resources is not None and (not isinstance(resources, Mapping)
                                  or not all(isinstance(k, str) and _is_real(v) and v >= 0
                                             for k, v in resources.items())):
        raise ValueError(f"resources must be None or a dict of name -> amount >= 0, got {resources!r}")
    if not _is_int(max_retries) or max_retries < -1:
        raise ValueError(f"max_retries must be an integer >= -1 (-1: retry forever), got {max_retries!r}")


def resource_options(ray_resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a ``ray_resources`` dict (``train_ensemble``, ``ensemble_activations``) and return it
    as keywords of the Ray runners.

    Allowed keys: :data:`RAY_OPTIONS`. Defaults of the keys not given: ``num_cpus=1``,
    ``num_gpus=0``, ``max_retries=3``.

    Examples
    --------
    >>> resource_options({"num_gpus": 0.25})
    {'num_gpus': 0.25}
    """
    if ray_resources is None:
        return {}
    if not isinstance(ray_resources, Mapping):
        raise ValueError(f"ray_resources must be a dict, got {type(ray_resources).__name__}")
    unknown = sorted(set(ray_resources) - set(RAY_OPTIONS))
    if unknown:
        raise ValueError(f"unknown ray_resources keys {unknown}; allowed: {list(RAY_OPTIONS)}")
    r = ray_resources  # the values too, before any work starts
    _check_resources(r.get("num_cpus", 1), r.get("num_gpus", 0.0), r.get("memory"), r.get("resources"),
                     r.get("max_retries", 3))
    return dict(ray_resources)


def _lost_worker_errors(ray: Any) -> tuple[type, ...]:
    names = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "TaskUnschedulableError",
             "ActorUnschedulableError", "LocalRayletDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def _gather(ray: Any, refs: list, labels: Sequence[str], bar: Any, max_retries: int, lost_hint: str) -> list[Any]:
    """Results of ``refs`` in order, ticking ``bar`` as each finishes; cancel the rest on error."""
    index = {ref: i for i, ref in enumerate(refs)}
    out: list[Any] = [None] * len(refs)
    pending = list(refs)
    lost = _lost_worker_errors(ray)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index[ref]
                try:
                    out[i] = ray.get(ref)
                except lost as err:
                    raise RuntimeError(
                        f"{labels[i]} lost its Ray worker {max_retries + 1} time(s) ({type(err).__name__}); "
                        f"{lost_hint + ' ' if lost_hint else ''}Raise max_retries, or give the tasks more "
                        "memory.") from err
                if bar is not None:
                    bar.update()
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        raise
    return out


@dataclass
class RayTasks:
    """Tasks with the same resources on one Ray session (made by :func:`ray_tasks`).

    Attributes
    ----------
    ray : module
        The connected ``ray`` module.
    options : dict
        The Ray task options every task gets (``num_cpus``, ``num_gpus``, ``max_retries``, ...).
    """

    ray: Any
    options: dict[str, Any]

    def put(self, value: Any) -> Any:
        """``value`` in Ray's object store, once; pass the reference (boxed in a list, so that Ray
        does not fetch it for every task) instead of the value."""
        return self.ray.put(value)

    def map(self, fn: Callable[..., Any], args: Sequence[tuple], *, name: str, labels: Sequence[str],
            bar: Any = None, lost_hint: str = "") -> list[Any]:
        """``[fn(*a) for a in args]``, one Ray task each (named ``name``: the worker's process title
        is ``ray::NAME``), in order; ``bar.update()`` as each finishes.

        A task that loses its worker more than ``max_retries`` times raises ``RuntimeError``
        naming its label (followed by ``lost_hint``); the other tasks are then cancelled.
        """
        if len(labels) != len(args):
            raise ValueError(f"labels must name each of the {len(args)} tasks, got {len(labels)}")
        task = self.ray.remote(fn).options(name=name, **self.options)
        refs = [task.remote(*a) for a in args]
        return _gather(self.ray, refs, labels, bar, self.options["max_retries"], lost_hint)


@contextlib.contextmanager
def ray_tasks(*, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0.0,
              memory: float | None = None, resources: Mapping[str, float] | None = None, max_retries: int = 3,
              runtime_env: Mapping[str, Any] | None = None) -> Iterator[RayTasks]:
    """A Ray session (see :func:`ray_session`) and the per-task resources of the tasks to run on it.

    Parameters
    ----------
    address : str, optional
        The cluster (see :func:`ray_session`); default ``$RAY_ADDRESS`` or a private local
        cluster on 127.0.0.1 for the block.
    num_cpus : float
        CPUs reserved per task. Default 1.
    num_gpus : float
        GPUs per task; a fraction shares a GPU (0.25: four tasks per GPU). Default 0.
    memory : float, optional
        Bytes of RAM reserved per task (Ray schedules by it; it does not cap usage).
    resources : dict, optional
        Custom Ray resources per task (e.g. ``{"big_gpu": 1}``).
    max_retries : int
        Reruns of a task whose worker or node dies (-1: unlimited). Default 3.
    runtime_env : dict, optional
        Ray runtime environment when this call starts or joins the cluster.

    Raises
    ------
    ValueError
        Bad resources, or resources no node of a cluster this call started has (on a shared
        cluster: a warning, the tasks wait for it to grow).
    ImportError
        Ray is not installed.

    Examples
    --------
    >>> with ray_tasks(num_cpus=1) as tasks:                        # doctest: +SKIP
    ...     tasks.map(pow, [(2, 3), (3, 2)], name="pow", labels=["a", "b"])
    [8, 9]
    """
    _check_resources(num_cpus, num_gpus, memory, resources, max_retries)
    with _session(address, runtime_env=runtime_env) as (ray, started_here):
        yield RayTasks(ray, _task_options(ray, started_here, num_cpus, num_gpus, memory, resources, max_retries))
