"""Seed ensembles on a Ray cluster: one Ray task per seed.

Ray (https://www.ray.io) is an optional extra (``pip install -e .[ray]``).
:func:`run_ray` trains the missing seeds of a :class:`~ift_core.train.TrainConfig`
as Ray tasks with declared resources (CPUs, fractional GPUs); each task runs the
very function the ``sequential`` and ``processes`` backends run
(``ift_core.train._train_one``), so the checkpoints are the same bytes of weights
(bit-identical on CPU: one thread, the same seeds). :func:`extract_activations_ray`
does the same for activation extraction, one task per model.

Where things run

* ``address=None`` and no ``$RAY_ADDRESS``: a private local cluster is started
  for the call, bound to the loopback interface only (``127.0.0.1``; no dashboard,
  no usage statistics), and shut down afterwards.
* ``address="auto"`` (the cluster this machine belongs to), ``"HOST:6379"`` (a
  head node's GCS) or ``"ray://HOST:10001"`` (Ray Client), or ``$RAY_ADDRESS``:
  connect to an existing cluster; it is left running.
* An already initialised Ray session (``ray.init`` by the caller, or
  :func:`ray_session`) is used as it is, whatever ``address`` says.

Shared storage

Every task writes its seed's checkpoint into the ensemble's cache folder
(``ift_core.train.ensemble_dir``), a path computed on the driver. On a
multi-node cluster that folder must be on storage every node mounts at the same
path: set ``IFT_CACHE`` to a folder on NFS (or another shared file system)
before starting Python. :func:`run_ray` checks that the driver sees every
checkpoint the workers wrote and says so when it does not. Every node also needs
``ift_core`` importable (install it in the same environment on each node, or
pass ``runtime_env={"py_modules": [...]}``). The data travel from the driver
through Ray's object store (``ship_data=True``), so the workers need no copy of
the data set.

Failures and resume

A task whose worker process or node dies is rerun up to ``max_retries`` times;
training is deterministic, so a rerun writes the same weights. Checkpoints are
written atomically, one per finished seed, and ``train_ensemble`` only trains
seeds without one, so a run that is killed outright resumes where it stopped.

Examples
--------
>>> from ift_core.train import get_profile, ensemble_dir, load_ensemble
>>> config = get_profile("tiny", n_models=2, epochs=1)
>>> metrics = run_ray(config, [0, 1], ensemble_dir(config), progress=False)  # doctest: +SKIP
>>> len(load_ensemble(config))                                                # doctest: +SKIP
2
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

__all__ = ["RAY_OPTIONS", "ray_session", "resource_options", "run_ray", "extract_activations_ray"]

# The per-task options train_ensemble(ray_resources=...) may set (keywords of run_ray).
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
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
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
    :func:`run_ray` and :func:`extract_activations_ray` use an initialised session as it is.

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


def _task_options(ray: Any, started_here: bool, num_cpus: float, num_gpus: float, memory: float | None,
                  resources: Mapping[str, float] | None, max_retries: int) -> dict[str, Any]:
    """Ray task options; refuses (own cluster) or warns (shared cluster) when no node fits one task."""
    why = _infeasible(ray, float(num_cpus), float(num_gpus), resources)
    if why and started_here:
        raise ValueError(f"{why}; ask for less per task (num_cpus, num_gpus)")
    if why:
        warnings.warn(f"{why}; the tasks wait until the cluster grows", stacklevel=3)
    opts: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": max_retries}
    if memory is not None:
        opts["memory"] = memory
    if resources:
        opts["resources"] = dict(resources)
    return opts


def resource_options(ray_resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``train_ensemble``'s ``ray_resources`` dict and return it as :func:`run_ray` keywords.

    Allowed keys: :data:`RAY_OPTIONS`.

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
    r = ray_resources  # the values too, before any training (run_ray's defaults for the others)
    _check_resources(r.get("num_cpus", 1), r.get("num_gpus", 0.0), r.get("memory"), r.get("resources"),
                     r.get("max_retries", 3))
    return dict(ray_resources)


def _check_resources(num_cpus: Any, num_gpus: Any, memory: Any, resources: Any, max_retries: Any) -> None:
    def real(v):
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)

    if not real(num_cpus) or num_cpus < 0:
        raise ValueError(f"num_cpus must be a number >= 0, got {num_cpus!r}")
    if not real(num_gpus) or num_gpus < 0:
        raise ValueError(f"num_gpus must be a number >= 0, got {num_gpus!r}")
    if num_gpus > 1 and num_gpus != int(num_gpus):
        raise ValueError(f"num_gpus above 1 must be a whole number (Ray's rule), got {num_gpus!r}")
    if memory is not None and (not real(memory) or memory <= 0):
        raise ValueError(f"memory must be None or a number of bytes > 0, got {memory!r}")
    if resources is not None and (not isinstance(resources, Mapping)
                                  or not all(isinstance(k, str) and real(v) and v >= 0
                                             for k, v in resources.items())):
        raise ValueError(f"resources must be None or a dict of name -> amount >= 0, got {resources!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) or max_retries < -1:
        raise ValueError(f"max_retries must be an integer >= -1 (-1: retry forever), got {max_retries!r}")


def _task_device(device: Any, num_gpus: float) -> str:
    """The device each task trains on. Not resolved on the driver: it may have no GPU."""
    if device is None:
        return "cuda" if num_gpus > 0 else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or a torch.device, got {device!r}") from None
    if dev.type == "cuda" and num_gpus <= 0:
        raise ValueError(f"device={device!r} needs num_gpus > 0 (a fraction such as 0.25 puts 4 seeds on a GPU); "
                         "Ray hides GPUs from tasks that do not ask for one")
    if dev.type == "cpu" and num_gpus > 0:
        raise ValueError(f"num_gpus={num_gpus} with device={device!r} would reserve GPUs the tasks do not use")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {device!r}")
    # Ray sets CUDA_VISIBLE_DEVICES per task: the task's GPU is always index 0 there.
    return dev.type


def _infeasible(ray: Any, num_cpus: float, num_gpus: float, resources: Mapping[str, float] | None) -> str | None:
    """Why no node of the cluster could ever run one task, or None."""
    need = {"CPU": num_cpus, "GPU": num_gpus, **(resources or {})}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(res.get(k, 0.0) >= v for k, v in need.items() if v > 0) for res in nodes):
        return None
    return (f"no node of the Ray cluster has {{{', '.join(f'{k}: {v}' for k, v in need.items() if v > 0)}}} "
            f"for one task; nodes have {nodes}")


def _train_seed(config: Any, m: int, directory: str, device: str, data_box: list, own_box: list) -> dict[str, Any]:
    """One seed, inside a Ray worker: install the driver's data (once per worker) and train.

    The data come boxed in lists so Ray passes the object references instead of fetching
    the data for every task; a worker that already holds them skips the fetch.
    """
    import ray

    from . import train as T
    from .internal import config_key

    key = config_key(config.data)
    if data_box and key not in T._DATA_MEMO:
        T._worker_init(key, ray.get(data_box[0]))
    own = ray.get(own_box[0]) if own_box else None
    metrics = T._train_one(config, m, Path(directory), device=device, backend="ray", progress=False, train=own)
    return {**metrics, "node": socket.gethostname(), "pid": os.getpid()}


def _lost_worker_errors(ray: Any) -> tuple[type, ...]:
    names = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "TaskUnschedulableError",
             "ActorUnschedulableError", "LocalRayletDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def _gather(ray: Any, refs: list, labels: list[str], bar: Any, max_retries: int) -> list[Any]:
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
                        "finished seeds keep their checkpoints, so calling again resumes. "
                        "Raise max_retries, or give the tasks more memory.") from err
                bar.update()
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        raise
    return out


def run_ray(config: Any, missing: Sequence[int], directory: str | os.PathLike, *, device: Any = None,
            address: str | None = None, num_cpus: float = 1, num_gpus: float = 0.0, memory: float | None = None,
            resources: Mapping[str, float] | None = None, max_retries: int = 3, ship_data: bool = True,
            runtime_env: Mapping[str, Any] | None = None, progress: bool = True,
            bar: Any = None) -> list[dict[str, Any]]:
    """Train models ``missing`` of ``config`` as Ray tasks, one per seed; the ``"ray"`` backend.

    Each task calls the function every backend uses to train one seed, which writes
    the seed's checkpoint (atomically) to ``directory``; ``train_ensemble(config,
    backend="ray")`` then loads them. Results are bit-identical to the ``sequential``
    backend on CPU.

    Parameters
    ----------
    config : ift_core.train.TrainConfig
    missing : sequence of int
        Model indices ``m`` to train (seed ``config.seed + m``).
    directory : path
        Where the checkpoints go (``ift_core.train.ensemble_dir(config)``). On a
        multi-node cluster it must be on storage every node shares (``IFT_CACHE`` on NFS).
    device : str or torch.device, optional
        ``"cpu"`` or ``"cuda"`` on the *workers* (not checked against the driver's
        hardware). Default ``"cuda"`` when ``num_gpus > 0``, else ``"cpu"``.
    address : str, optional
        Cluster to use (see :func:`ray_session`); default ``$RAY_ADDRESS`` or a private
        local cluster on 127.0.0.1 for this call.
    num_cpus : float
        CPUs reserved per task (training itself is single-threaded). Default 1.
    num_gpus : float
        GPUs per task; a fraction shares a GPU (0.25: four seeds per GPU). Default 0.
    memory : float, optional
        Bytes of RAM reserved per task (Ray schedules by it; it does not cap usage).
    resources : dict, optional
        Custom Ray resources per task (e.g. ``{"big_gpu": 1}``).
    max_retries : int
        Reruns of a task whose worker or node dies (-1: unlimited). Default 3.
    ship_data : bool
        True: the driver loads the data once and sends them through Ray's object
        store, so workers need no data files. False: every worker loads them itself
        (each node then needs the data set, e.g. under ``$IFT_DATA``).
    runtime_env : dict, optional
        Ray runtime environment when this call starts or joins the cluster.
    progress : bool
        A tqdm bar over seeds (when ``bar`` is not given).
    bar : tqdm, optional
        A bar to tick per finished seed (``train_ensemble`` passes its own).

    Returns
    -------
    list of dict
        Each seed's metrics (as in its checkpoint, plus ``node`` and ``pid`` of the
        worker that trained it), in the order of ``missing``.

    Raises
    ------
    ValueError
        Bad arguments, or resources no node of the cluster has.
    RuntimeError
        A seed lost its worker more than ``max_retries`` times, or the driver cannot see
        a checkpoint a worker wrote (``directory`` is not on shared storage).
    ImportError
        Ray is not installed.

    Examples
    --------
    >>> from ift_core.train import get_profile, ensemble_dir
    >>> config = get_profile("tiny", n_models=2, epochs=1)
    >>> [r["seed"] for r in run_ray(config, [0, 1], ensemble_dir(config), progress=False)]  # doctest: +SKIP
    [0, 1]
    """
    from . import train as T

    if not isinstance(config, T.TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    missing = list(missing)
    for m in missing:
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 0 <= m < config.n_models:
            raise ValueError(f"missing must hold model indices in [0, {config.n_models}), got {m!r}")
    if len(set(missing)) != len(missing):
        raise ValueError(f"missing has repeated indices: {missing}")
    _check_resources(num_cpus, num_gpus, memory, resources, max_retries)
    dev = _task_device(device, float(num_gpus))
    directory = Path(directory).absolute()
    if not missing:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(missing), desc=f"{config.arch} x{len(missing)} (ray)", disable=not progress)
    try:
        with _session(address, runtime_env=runtime_env) as (ray, started_here):
            opts = _task_options(ray, started_here, num_cpus, num_gpus, memory, resources, max_retries)
            task = ray.remote(_train_seed).options(name="ift_train_seed", **opts)
            data_box: list = []
            owns: list[list] = [[] for _ in missing]
            if ship_data:
                base = T._base_data(config)
                data_box = [ray.put(base)]
                for j, m in enumerate(missing):
                    own = T._model_train_set(config, m)  # diffdata/alldiff: drawn once, here
                    if own is not base[0]:
                        owns[j] = [ray.put(own)]
            refs = [task.remote(config, m, str(directory), dev, data_box, owns[j]) for j, m in enumerate(missing)]
            labels = [f"seed {config.seed + m}" for m in missing]
            results = _gather(ray, refs, labels, bar, max_retries)
    finally:
        if own_bar:
            bar.close()
    unseen = [r for r in results if not T._checkpoint_path(directory, r["seed"]).exists()]
    if unseen:
        raise RuntimeError(
            f"the workers trained seeds {[r['seed'] for r in unseen]} on nodes "
            f"{sorted({r['node'] for r in unseen})} but their checkpoints are not in {directory} as seen "
            "by this process: the cache folder must be on storage every node shares at the same path "
            "(set IFT_CACHE to a folder on NFS before starting Python)")
    return results


def _cpu_copy(model: Any) -> Any:
    on_cpu = all(t.device.type == "cpu" for t in list(model.parameters()) + list(model.buffers()))
    return model if on_cpu else copy.deepcopy(model).cpu()


def _extract_one(model: Any, x_box: list, layer: str, batch_size: int, device: str,
                 threads: int) -> tuple[np.ndarray, np.ndarray]:
    """One model's activations and logits, inside a Ray worker."""
    import ray

    from .activations import extract_activations

    torch.set_num_threads(threads)
    acts, logits = extract_activations(model, ray.get(x_box[0]), layer=layer, batch_size=batch_size,
                                       device=device)
    return acts[0], logits[0]


def extract_activations_ray(models: Any, x: Any, *, layer: str = "penultimate", batch_size: int = 512,
                            device: Any = None, address: str | None = None, num_cpus: float = 1,
                            num_gpus: float = 0.0, memory: float | None = None,
                            resources: Mapping[str, float] | None = None, max_retries: int = 3,
                            runtime_env: Mapping[str, Any] | None = None,
                            progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ift_core.activations.extract_activations` with one Ray task per model.

    The inputs go to the object store once; each task gets one model, runs
    ``extract_activations`` on it with ``int(num_cpus)`` threads (at least one) and
    returns its ``(N, D)`` activations and ``(N, C)`` logits. On CPU the result is
    identical to ``extract_activations`` run with the same number of threads.

    Parameters
    ----------
    models : nn.Module or sequence of nn.Module
    x : torch.Tensor or np.ndarray
        Inputs ``(N, ...)``, preprocessed as the models expect.
    layer, batch_size
        As in :func:`ift_core.activations.extract_activations`.
    device : str or torch.device, optional
        On the workers; default ``"cuda"`` when ``num_gpus > 0``, else ``"cpu"``.
    address, num_cpus, num_gpus, memory, resources, max_retries, runtime_env
        As in :func:`run_ray`.
    progress : bool
        A tqdm bar over models.

    Returns
    -------
    activations : np.ndarray
        ``(M, N, D)`` float32.
    logits : np.ndarray
        ``(M, N, C)`` float32.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> acts, logits = extract_activations_ray([net, net], torch.randn(5, 4), layer="1")  # doctest: +SKIP
    >>> acts.shape, logits.shape                                                          # doctest: +SKIP
    ((2, 5, 3), (2, 5, 2))
    """
    from .activations import _as_inputs, _as_models, _check_batch_and_layer, _check_same_widths

    models = _as_models(models)
    x = _as_inputs(x)
    _check_batch_and_layer(batch_size, layer)
    for i, model in enumerate(models):
        if layer not in dict(model.named_modules()):
            names = [n for n, _ in model.named_modules() if n]
            raise ValueError(f"layer {layer!r} not found in models[{i}] ({type(model).__name__}); "
                             f"available layers: {names}")
    _check_resources(num_cpus, num_gpus, memory, resources, max_retries)
    dev = _task_device(device, float(num_gpus))
    bar = tqdm(total=len(models), desc=f"activations ({layer}, ray)", disable=not progress, leave=False)
    try:
        with _session(address, runtime_env=runtime_env) as (ray, started_here):
            opts = _task_options(ray, started_here, num_cpus, num_gpus, memory, resources, max_retries)
            task = ray.remote(_extract_one).options(name="ift_extract", **opts)
            x_box = [ray.put(x.cpu())]
            threads = max(1, int(num_cpus))
            # Models travel as CPU copies; the caller's models stay where they are.
            refs = [task.remote(_cpu_copy(model), x_box, layer, batch_size, dev, threads) for model in models]
            pairs = _gather(ray, refs, [f"model {i}" for i in range(len(models))], bar, max_retries)
    finally:
        bar.close()
    acts = [a for a, _ in pairs]
    logits = [lg for _, lg in pairs]
    for i in range(1, len(acts)):
        _check_same_widths(acts[i], logits[i], acts[0], logits[0])
    return np.stack(acts).astype(np.float32, copy=False), np.stack(logits).astype(np.float32, copy=False)
