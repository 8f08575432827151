"""How the missing seeds of an ensemble are trained: one function per backend, in a registry.

Every backend is called as ``backend(job, missing) -> number of seeds trained`` with the
run's :class:`_Job` and the model indices still missing; it claims each seed before training
it (``ift_core.locks.Claims``), so concurrent runs of one config share the work. The ones
that train one seed at a time call :func:`ift_core.train.train_seed`; adding a backend is one
function and one entry of ``_BACKENDS``.

``sequential``
    One seed after another in this process.
``processes``
    One single-thread ``spawn`` worker per seed, ``n_workers`` at a time; on CUDA
    ``seeds_per_gpu`` workers per GPU.
``vmap``
    All missing seeds as one stacked model under ``torch.func.vmap``.
``ray``
    One Ray task per seed (:func:`run_ray`).

Examples
--------
>>> BACKENDS
('auto', 'sequential', 'processes', 'vmap', 'ray')
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import math
import os
import socket
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import locks
from ..data import ImageSet
from ..distributed import ray_tasks, resource_options
from ..internal import check_bool, check_int, config_key
from .config import TrainConfig, lr_at, model_seeds
from .seed import (_base_data, _checkpoint_path, _checkpoint_problem, _diverged, _epoch_orders, _has_data,
                   _install_data, _model_train_set, _new_model, _parse_device, _reproducible, _save_trained, _sgd_step,
                   resolve_device, train_seed)

__all__ = ["BACKENDS", "run_ray"]


@dataclass
class _Job:
    """One ``train_ensemble`` call as a backend sees it."""

    config: TrainConfig
    directory: Path
    device: torch.device  # where the seeds train; for "ray" the tasks' device type
    claims: locks.Claims
    bar: Any              # tqdm over seeds, ticked per finished seed
    progress: bool
    n_workers: int = 1
    n_workers_given: bool = False
    seeds_per_gpu: int | None = None
    ray_address: str | None = None
    ray_options: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# Claims: which run trains which seed
# ------------------------------------------------------------------------------------------
def _claim_path(directory: Path, seed: int) -> Path:
    return Path(directory) / f".seed_{seed:05d}.claim"


def _claim_seed(claims: locks.Claims, config: TrainConfig, m: int, directory: Path, device_type: str) -> bool | None:
    """Claim model m: True when this run holds it and must train it, None when a sound checkpoint
    is there by now (another run trained it), False while another live run holds it."""
    claim = _claim_path(directory, config.seed + m)
    if not claims.acquire(claim):
        return False
    if _checkpoint_problem(directory, config, m, device_type) is None:
        claims.release(claim)
        return None
    return True


def _wait_for_others(claims: locks.Claims, config: TrainConfig, held: list[int], directory: Path) -> None:
    """Block until another run releases (or dies holding) one of the seeds in ``held``."""
    claims.wait_any([_claim_path(directory, config.seed + m) for m in held],
                    what=lambda p: f"seed {int(p.stem[len('.seed_'):])}")


def _train_claimed(job: _Job, missing: list[int], train_some: Callable[[list[int]], int], *,
                   one_at_a_time: bool) -> int:
    """Train ``missing`` with ``train_some(ms) -> n trained`` on the seeds this run can claim
    (one at a time, or all it can get), then wait for the seeds other runs hold; a seed whose
    owner dies is taken over. Returns how many this run trained."""
    config, directory, claims = job.config, job.directory, job.claims
    pending, trained = list(missing), 0
    while pending:
        mine: list[int] = []
        held: list[int] = []
        for m in pending:
            if one_at_a_time and mine:
                held.append(m)
                continue
            got = _claim_seed(claims, config, m, directory, job.device.type)
            if got is None:
                job.bar.update()  # trained by another run meanwhile
            elif got:
                mine.append(m)
            else:
                held.append(m)
        if mine:
            try:
                trained += train_some(mine)
            finally:
                for m in mine:
                    claims.release(_claim_path(directory, config.seed + m))
        elif held:
            _wait_for_others(claims, config, held, directory)
        pending = held
    return trained


def _train_if_missing(config: TrainConfig, m: int, directory: Path, *, device: Any, **kwargs: Any) -> bool:
    """Train model m unless a sound checkpoint of it appeared meanwhile (another run of the same
    config finished it: both would write bit-identical files, so skipping only saves the work)."""
    if _checkpoint_problem(directory, config, m, _parse_device(device).type) is None:
        return False
    train_seed(config, m, directory, device=device, **kwargs)
    return True


# ------------------------------------------------------------------------------------------
# sequential
# ------------------------------------------------------------------------------------------
def _run_sequential(config: TrainConfig, missing: list[int], directory: Path, device: torch.device,
                    progress: bool, bar: Any) -> int:
    trained = 0
    for m in missing:
        trained += _train_if_missing(config, m, directory, device=device, backend="sequential",
                                     progress=progress)
        bar.update()
    return trained


def _sequential(job: _Job, missing: list[int]) -> int:
    return _train_claimed(job, missing, lambda ms: _run_sequential(job.config, ms, job.directory, job.device,
                                                                   job.progress, job.bar), one_at_a_time=True)


# ------------------------------------------------------------------------------------------
# processes
# ------------------------------------------------------------------------------------------
_WORKER_DEVICE = "cpu"  # the device of a ``processes`` worker, set by _worker_init


def _worker_init(data_key: str | None, data: tuple[ImageSet, ImageSet] | None, gpu_slots: Any = None,
                 parent_pid: int | None = None) -> None:
    """Runs once in each worker: one thread, and the parent's data (saves every worker
    from reading and decoding the data set again). With ``gpu_slots`` (a queue of GPU
    indices) the worker takes one GPU for its lifetime. With ``parent_pid`` the worker
    dies with that process (a killed run leaves no workers training on)."""
    global _WORKER_DEVICE
    if parent_pid is not None:
        locks.die_with_parent(parent_pid)
    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # only settable before any inter-op work
        torch.set_num_interop_threads(1)
    if data_key is not None:
        _install_data(data_key, data)
    if gpu_slots is not None:
        index = gpu_slots.get()
        torch.cuda.set_device(index)
        _WORKER_DEVICE = f"cuda:{index}"


def _train_in_worker(config: TrainConfig, m: int, directory: Path, train: ImageSet | None,
                     data: tuple[str, tuple[ImageSet, ImageSet]] | None = None) -> bool:
    """A ``processes`` task: model m on this worker's device. ``data`` (key, sets): the parent's
    data, for a worker of the shared CPU pool, which may have trained on other data before."""
    if data is not None and not _has_data(data[0]):
        _install_data(*data)
    return _train_if_missing(config, m, directory, device=_WORKER_DEVICE, backend="processes", train_set=train)


# The CPU workers outlive one train_ensemble call: starting a spawn worker (a fresh interpreter
# importing torch) takes ~4 s, which a sweep of many small ensembles (chapter 11: 13 of them)
# would pay at every call. One pool at a time, of this process only; its workers still die
# with it (parent_pid), and a call that fails or is interrupted shuts it down.
_CPU_POOL: dict[str, Any] = {"pid": None, "size": None, "pool": None}


def _shared_cpu_pool(ctx: Any, size: int) -> ProcessPoolExecutor:
    if _CPU_POOL["pid"] != os.getpid():  # a forked child inherits its parent's pool: not its to shut
        _CPU_POOL.update(pid=os.getpid(), size=None, pool=None)
    if _CPU_POOL["size"] != size:
        close_cpu_pool()
        _CPU_POOL.update(size=size, pool=ProcessPoolExecutor(max_workers=size, mp_context=ctx,
                                                             initializer=_worker_init,
                                                             initargs=(None, None, None, os.getpid())))
    return _CPU_POOL["pool"]


def close_cpu_pool() -> None:
    """Shut the shared CPU workers of the ``processes`` backend down (they are started again when
    needed); called at exit, and after a run that failed or was interrupted."""
    pool = _CPU_POOL["pool"] if _CPU_POOL["pid"] == os.getpid() else None
    _CPU_POOL.update(size=None, pool=None)
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(close_cpu_pool)


def _gpu_slots(gpus: list[int], seeds_per_gpu: int) -> list[int]:
    """GPU index of each worker, round-robin, so a smaller pool still spreads over the GPUs."""
    return [g for _ in range(seeds_per_gpu) for g in gpus]


def _processes(job: _Job, missing: list[int]) -> int:
    """One spawn worker per seed, ``size`` at a time; each seed is claimed when a worker is free
    for it, so a concurrent run of the config trains the others."""
    config, directory, device, claims, bar = job.config, job.directory, job.device, job.claims, job.bar
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"backend='processes' trains on CPU or CUDA; got device={str(device)!r}")
    # spawn, not fork: a forked child inherits the parent's thread pools and locks (and CUDA
    # cannot be used in a forked child). torch's multiprocessing context moves tensors
    # through shared memory, not pipes.
    ctx = torch.multiprocessing.get_context("spawn")
    base = _base_data(config)
    slots = None
    if device.type == "cuda":
        gpus = [device.index] if device.index is not None else list(range(torch.cuda.device_count()))
        order = _gpu_slots(gpus, job.seeds_per_gpu or 1)
        size = min(len(order), len(missing), job.n_workers if job.n_workers_given else len(order))
        slots = ctx.Queue()
        for g in order[:size]:
            slots.put(g)
    else:
        size = min(job.n_workers, len(missing))
    pending, running, trained = list(missing), {}, 0
    # The workers die with this process (parent_pid): a killed run leaves nothing training.
    if device.type == "cuda":  # each worker holds one GPU slot for its life: a pool per call
        pool_context = ProcessPoolExecutor(max_workers=size, mp_context=ctx, initializer=_worker_init,
                                           initargs=(config_key(config.data), base, slots, os.getpid()))
        data = None
    else:
        pool_context = contextlib.nullcontext(_shared_cpu_pool(ctx, size))
        data = (config_key(config.data), base)
    with pool_context as pool:
        try:
            while pending or running:
                held = []
                for m in pending:
                    if len(running) >= size:
                        held.append(m)
                        continue
                    got = _claim_seed(claims, config, m, directory, device.type)
                    if got is None:
                        bar.update()
                    elif got:
                        own = _model_train_set(config, m)  # diffdata: drawn here, once, not in every worker
                        running[pool.submit(_train_in_worker, config, m, directory,
                                            None if own is base[0] else own, data)] = m
                    else:
                        held.append(m)
                pending = held
                if not running:
                    _wait_for_others(claims, config, pending, directory)
                    continue
                # With seeds held elsewhere, look again now and then: their owner may finish or die.
                done, _ = wait(list(running), timeout=locks.POLL_S * 4 if pending else None,
                               return_when=FIRST_COMPLETED)
                for fut in done:
                    m = running.pop(fut)
                    claims.release(_claim_path(directory, config.seed + m))
                    trained += fut.result()  # re-raises a worker's error here
                    bar.update()
        except BaseException:
            for fut in running:
                fut.cancel()
            if device.type != "cuda":  # as leaving the pool's with-block did: wait for the running seeds
                close_cpu_pool()
            raise
    return trained


# ------------------------------------------------------------------------------------------
# vmap
# ------------------------------------------------------------------------------------------
def _run_vmap(config: TrainConfig, missing: list[int], directory: Path, device: torch.device, progress: bool,
              bar: Any) -> int:
    """Train the ``missing`` models as one stacked model under torch.func.vmap: the single-seed
    loop's SGD step on stacked parameters, each model with its own data order."""
    from torch.func import functional_call, stack_module_state, vmap

    _, test = _base_data(config)
    sets = [_model_train_set(config, m) for m in missing]
    seeds = [model_seeds(config, m) for m in missing]
    t0 = time.perf_counter()
    with _reproducible(device):
        models = [_new_model(config, s, sd["init"]).to(device) for s, sd in zip(sets, seeds)]
        params, buffers = stack_module_state(models)
        params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        # Buffers (batch-norm running statistics) are stacked too and mapped over with
        # in_dims=0, so each model's running stats are updated in place from its own batch.
        base = copy.deepcopy(models[0]).to("meta")

        def loss_fn(p, b, xb, yb):
            out = functional_call(base, (p, b), (xb,))
            return F.cross_entropy(out.float(), yb)

        # All models see the same batches in diffinit: broadcast them instead of stacking copies.
        shared = all(sd["order"] == seeds[0]["order"] and sd["subset"] == seeds[0]["subset"] for sd in seeds)
        batched = vmap(loss_fn, in_dims=(0, 0, None, None) if shared else (0, 0, 0, 0))
        xs = [s.x.to(device) for s in sets]
        ys = [s.y.to(device) for s in sets]
        opt = torch.optim.SGD(list(params.values()), lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
        n = len(ys[0])
        steps_per_epoch = math.ceil(n / config.batch_size)
        total = config.epochs * steps_per_epoch
        orders = [_epoch_orders(config, n, sd["order"]) for sd in seeds]
        losses: list[list[float]] = [[] for _ in missing]
        step = 0
        ebar = tqdm(total=config.epochs, desc=f"vmap x{len(missing)}", leave=False, position=1,
                    disable=not progress)
        try:
            for epoch in range(config.epochs):
                perms = [next(o).to(device) for o in orders]
                loss_sum = torch.zeros(len(missing), device=device)
                for i in range(steps_per_epoch):
                    sl = slice(i * config.batch_size, (i + 1) * config.batch_size)
                    if shared:
                        idx = perms[0][sl]
                        xb, yb = xs[0][idx], ys[0][idx]
                    else:
                        xb = torch.stack([x[p[sl]] for x, p in zip(xs, perms)])
                        yb = torch.stack([y[p[sl]] for y, p in zip(ys, perms)])
                    loss_sum += _sgd_step(opt, lr_at(config, step, total), device,
                                          lambda: batched(params, buffers, xb, yb))
                    step += 1
                mean = (loss_sum / steps_per_epoch).tolist()
                _diverged(config, epoch, [sd["seed"] for sd in seeds], mean)
                for l, v in zip(losses, mean):
                    l.append(v)
                ebar.update()
        finally:
            ebar.close()
        wall = time.perf_counter() - t0
        for j, (mod, s) in enumerate(zip(models, sets)):
            mod.load_state_dict({k: v[j].detach() for k, v in (params | buffers).items()})
            _save_trained(config, missing[j], mod, s, xs[j], ys[j], test, losses[j], directory, device, "vmap",
                          wall / len(missing))
            bar.update()
    return len(missing)


def _vmap(job: _Job, missing: list[int]) -> int:
    return _train_claimed(job, missing, lambda ms: _run_vmap(job.config, ms, job.directory, job.device,
                                                             job.progress, job.bar), one_at_a_time=False)


# ------------------------------------------------------------------------------------------
# ray
# ------------------------------------------------------------------------------------------
def _ray_task(config: TrainConfig, m: int, directory: str, device: str, data_box: list, own_box: list) -> dict:
    """One seed, inside a Ray worker: install the driver's data (once per worker) and train.

    The data come boxed in lists so Ray passes the object references instead of fetching
    the data for every task; a worker that already holds them skips the fetch.
    """
    import ray

    key = config_key(config.data)
    if data_box and not _has_data(key):
        _worker_init(key, ray.get(data_box[0]))
    own = ray.get(own_box[0]) if own_box else None
    metrics = train_seed(config, m, Path(directory), device=device, backend="ray", progress=False, train_set=own)
    return {**metrics, "node": socket.gethostname(), "pid": os.getpid()}


def run_ray(config: TrainConfig, missing: Sequence[int], directory: str | os.PathLike, *, device: Any = None,
            address: str | None = None, num_cpus: float = 1, num_gpus: float = 0.0, memory: float | None = None,
            resources: Mapping[str, float] | None = None, max_retries: int = 3, ship_data: bool = True,
            runtime_env: Mapping[str, Any] | None = None, progress: bool = True,
            bar: Any = None) -> list[dict[str, Any]]:
    """Train models ``missing`` of ``config`` as Ray tasks, one per seed; the ``"ray"`` backend.

    Each task calls :func:`ift_core.train.train_seed`, the function every one-seed-at-a-time
    backend uses, which writes the seed's checkpoint (atomically) to ``directory``;
    ``train_ensemble(config, backend="ray")`` then loads them. Results are bit-identical to the
    ``sequential`` backend on CPU (one thread, the same seeds).

    Shared storage: every task writes into ``directory``, a path computed on the driver. On a
    multi-node cluster it must be on storage every node mounts at the same path (set
    ``IFT_CACHE`` to a folder on NFS before starting Python); the driver checks that it sees
    every checkpoint the workers wrote and says so when it does not. Every node also needs
    ``ift_core`` importable (the same environment on each node, or
    ``runtime_env={"py_modules": [...]}``).

    Failures and resume: a task whose worker or node dies is rerun up to ``max_retries`` times;
    training is deterministic, so a rerun writes the same weights. Checkpoints are written one
    per finished seed, and ``train_ensemble`` only trains seeds without one, so a run that is
    killed outright resumes where it stopped.

    Parameters
    ----------
    config : ift_core.train.TrainConfig
    missing : sequence of int
        Model indices ``m`` to train (seed ``config.seed + m``).
    directory : path
        Where the checkpoints go (``ift_core.train.ensemble_dir(config)``).
    device : str or torch.device, optional
        ``"cpu"`` or ``"cuda"`` on the *workers* (not checked against the driver's
        hardware). Default ``"cuda"`` when ``num_gpus > 0``, else ``"cpu"``.
    address, num_cpus, num_gpus, memory, resources, max_retries, runtime_env
        The cluster and the resources of each task: see :func:`ift_core.distributed.ray_tasks`
        (training itself is single-threaded, so one CPU per task is enough).
    ship_data : bool
        True: the driver loads the data once and sends them through Ray's object
        store, so workers need no data files. False: every worker loads them itself
        (each node then needs the data set, e.g. under ``$IFT_DATA``).
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
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    missing = list(missing)
    for m in missing:
        try:
            check_int(m, "m", minimum=0, maximum=config.n_models - 1)
        except ValueError:
            raise ValueError(f"missing must hold model indices in [0, {config.n_models}), got {m!r}") from None
    if len(set(missing)) != len(missing):
        raise ValueError(f"missing has repeated indices: {missing}")
    options = resource_options({"num_cpus": num_cpus, "num_gpus": num_gpus, "memory": memory,
                                "resources": resources, "max_retries": max_retries})
    dev = resolve_device(device, num_gpus=float(num_gpus)).type
    ship_data, progress = check_bool(ship_data, "ship_data"), check_bool(progress, "progress")
    directory = Path(directory).absolute()
    if not missing:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(missing), desc=f"{config.arch} x{len(missing)} (ray)", disable=not progress)
    try:
        with ray_tasks(address=address, runtime_env=runtime_env, **options) as tasks:
            data_box: list = []
            owns: list[list] = [[] for _ in missing]
            if ship_data:
                base = _base_data(config)
                data_box = [tasks.put(base)]
                for j, m in enumerate(missing):
                    own = _model_train_set(config, m)  # diffdata/alldiff: drawn once, here
                    if own is not base[0]:
                        owns[j] = [tasks.put(own)]
            results = tasks.map(_ray_task, [(config, m, str(directory), dev, data_box, owns[j])
                                            for j, m in enumerate(missing)],
                                name="ift_train_seed", labels=[f"seed {config.seed + m}" for m in missing],
                                bar=bar, lost_hint="finished seeds keep their checkpoints, so calling again "
                                                   "resumes.")
    finally:
        if own_bar:
            bar.close()
    unseen = [r for r in results if not _checkpoint_path(directory, r["seed"]).exists()]
    if unseen:
        raise RuntimeError(
            f"the workers trained seeds {[r['seed'] for r in unseen]} on nodes "
            f"{sorted({r['node'] for r in unseen})} but their checkpoints are not in {directory} as seen "
            "by this process: the cache folder must be on storage every node shares at the same path "
            "(set IFT_CACHE to a folder on NFS before starting Python)")
    return results


def _ray(job: _Job, missing: list[int]) -> int:
    def train_some(ms: list[int]) -> int:
        return len(run_ray(job.config, ms, job.directory, device=job.device.type, address=job.ray_address,
                           progress=job.progress, bar=job.bar, **job.ray_options))
    return _train_claimed(job, missing, train_some, one_at_a_time=False)


# ------------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------------
_BACKENDS: dict[str, Callable[[_Job, list[int]], int]] = {
    "sequential": _sequential,
    "processes": _processes,
    "vmap": _vmap,
    "ray": _ray,
}
BACKENDS = ("auto", *_BACKENDS)


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _choose_backend(config: TrainConfig, device: torch.device, n_missing: int, n_workers: int) -> str:
    """What ``backend="auto"`` picks: sequential on a GPU, vmap for an MLP on the CPU, processes
    for conv nets when more than one core is usable, else sequential."""
    if device.type == "cuda":
        return "sequential"
    if config.arch == "mlp":
        return "vmap"
    if n_workers > 1 and n_missing > 1:
        return "processes"
    return "sequential"
