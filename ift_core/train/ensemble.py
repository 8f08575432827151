"""The ensemble: train the missing seeds of a config (or find them in the cache) and load them.

:func:`train_ensemble` looks up the config's cache folder (:func:`ensemble_dir`, keyed by the
cache identity of :mod:`ift_core.train.config`), checks every seed's sealed checkpoint,
trains the missing or failing ones with the chosen backend (:mod:`ift_core.train.backends`)
and returns an :class:`Ensemble`; :func:`load_ensemble` loads one without training.

Examples
--------
>>> from ift_core.train import get_profile
>>> ens = train_ensemble(get_profile("tiny", n_models=2, epochs=1), progress=False)
>>> len(ens), ens.directory.parent.name
(2, 'ensembles')
"""
from __future__ import annotations

import os
import shutil
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm import tqdm

from .. import locks
from ..cache import entry_dir
from ..data import ImageSet, load_data
from ..distributed import resource_options
from ..integrity import DamagedFileError
from ..internal import check_bool, check_int
from ..models import build_model
from .backends import BACKENDS, _BACKENDS, _choose_backend, _Job, _usable_cores
from .config import TrainConfig, _identity
from .seed import (_base_data, _checkpoint_identity, _checkpoint_path, _checkpoint_problem, _load_checkpoint,
                   _parse_device, resolve_device)

__all__ = ["Ensemble", "train_ensemble", "load_ensemble", "ensemble_dir"]


@dataclass
class Ensemble:
    """M trained models of one :class:`TrainConfig`, in eval mode on the CPU.

    Attributes
    ----------
    config : TrainConfig
    seeds : list of int
        ``config.seed + m`` for each model.
    models : list of torch.nn.Module
    train_accuracy, test_accuracy : np.ndarray
        (M,) accuracy of each model on its own training set and on the common test set.
    directory : Path
        The cache entry folder holding one ``seed_XXXXX.pt`` checkpoint per model.
    n_trained : int
        How many models this call trained (0 on a cache hit; with a concurrent run of the same
        config, the seeds the other run trained count there, not here).

    Examples
    --------
    >>> from ift_core.train import get_profile
    >>> ens = train_ensemble(get_profile("tiny", n_models=2, epochs=1), progress=False)
    >>> len(ens), ens.test_accuracy.shape
    (2, (2,))
    """

    config: TrainConfig
    seeds: list[int]
    models: list[nn.Module]
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    directory: Path
    n_trained: int = 0
    _data: tuple[ImageSet, ImageSet] | None = field(default=None, repr=False, compare=False)
    _device_types: tuple[str, ...] = field(default=("cpu",), repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.models)

    def data(self) -> tuple[ImageSet, ImageSet]:
        """The (train, test) sets: ``load_data(config.data)``; model 0's training set in diffdata/alldiff."""
        if self._data is None:
            self._data = load_data(self.config.data)
        return self._data

    def metrics(self) -> list[dict[str, Any]]:
        """Each seed's checkpoint metadata (seeds used, accuracies, loss per epoch, device, backend)."""
        out = []
        for s in self.seeds:
            ck = _load_checkpoint(_checkpoint_path(self.directory, s),
                                  [_checkpoint_identity(self.config, t, s) for t in self._device_types])
            ck.pop("state_dict")
            out.append(ck)
        return out


def _device_type(device: Any) -> str:
    """The device type a seed trains on, for the cache key. A named device need not be present
    here: a key may be computed for another machine's ensemble."""
    return resolve_device(None).type if device is None else _parse_device(device).type


def ensemble_dir(config: TrainConfig, *, device: Any = None) -> Path:
    """The cache folder of ``config``'s checkpoints (shared by every ``n_models``).

    Parameters
    ----------
    config : TrainConfig
    device : str or torch.device, optional
        The device the seeds train on (default as in :func:`train_ensemble`: CUDA when
        available, else CPU). CPU and GPU ensembles live in separate folders.

    Examples
    --------
    >>> from ift_core.train import get_profile
    >>> ensemble_dir(get_profile("tiny"), device="cpu").parent.name
    'ensembles'
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    return entry_dir("ensembles", _identity(config, _device_type(device)))


def load_ensemble(config: TrainConfig, directory: str | os.PathLike | None = None, *,
                  device: Any = None) -> Ensemble:
    """The ensemble of ``config`` from its checkpoints, without training.

    Parameters
    ----------
    config : TrainConfig
    directory : path, optional
        The checkpoint folder; default :func:`ensemble_dir` of ``config`` and ``device``.
    device : str or torch.device, optional
        Which cache entry to read when ``directory`` is not given: the one trained on this
        device type (default CUDA when available, else CPU). With ``directory`` and no
        ``device``, checkpoints trained on the CPU or on a GPU are both accepted. The models
        are always loaded on the CPU.

    Raises
    ------
    FileNotFoundError
        When a seed's checkpoint is missing (train it with :func:`train_ensemble`).
    ift_core.integrity.DamagedFileError
        When a checkpoint fails its seal: damaged, truncated, or another seed's or config's
        (the message names the file; :func:`train_ensemble` retrains it).

    Examples
    --------
    >>> from ift_core.train import get_profile
    >>> config = get_profile("tiny", n_models=2, epochs=1)
    >>> _ = train_ensemble(config, progress=False)
    >>> load_ensemble(config).seeds
    [0, 1]
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if directory is not None and not isinstance(directory, (str, os.PathLike)):
        raise ValueError(f"directory must be a path (str or os.PathLike) or None, got {directory!r}")
    if directory is None:
        device_types: tuple[str, ...] = (_device_type(device),)
        directory = ensemble_dir(config, device=device)
    else:
        device_types = (_device_type(device),) if device is not None else ("cpu", "cuda")
        directory = Path(directory)
    return _load_ensemble(config, directory, device_types)


def _load_ensemble(config: TrainConfig, directory: Path, device_types: tuple[str, ...]) -> Ensemble:
    models, tr, te = [], [], []
    train_shape = None
    for s in config.seeds:
        path = _checkpoint_path(directory, s)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint for seed {s} in {directory}; run train_ensemble(config)")
        try:
            ck = _load_checkpoint(path, [_checkpoint_identity(config, t, s) for t in device_types])
        except DamagedFileError as err:
            raise DamagedFileError(err.path, f"{err.reason}; train_ensemble(config) retrains seed {s}") from None
        if train_shape is None:
            train, _ = _base_data(config)
            train_shape = (train.in_channels, train.n_classes, train.image_size)
        c, k, size = train_shape
        model = build_model(config.arch, in_channels=c, n_classes=k, image_size=size, width=config.width)
        model.load_state_dict(ck["state_dict"])
        models.append(model.eval())
        tr.append(ck["train_accuracy"])
        te.append(ck["test_accuracy"])
    return Ensemble(config=config, seeds=config.seeds, models=models, train_accuracy=np.asarray(tr),
                    test_accuracy=np.asarray(te), directory=directory, _device_types=device_types)


def train_ensemble(config: TrainConfig, *, backend: str = "auto", device: Any = None, cache: bool = True,
                   progress: bool = True, n_workers: int | None = None, ray_address: str | None = None,
                   ray_resources: dict[str, Any] | None = None, seeds_per_gpu: int | None = None) -> Ensemble:
    """Train (or load) the ``config.n_models`` seeds of ``config``.

    Finished seeds are checkpointed one by one in the cache entry folder, so an
    interrupted run resumes where it stopped, and a repeated call trains nothing.
    A checkpoint that fails its seal (damaged, truncated, another seed's) is reported
    (a warning naming the file and the reason) and retrained. Concurrent calls with
    the same config split the seeds between them and all return the full ensemble.

    Parameters
    ----------
    config : TrainConfig
    backend : {"auto", "sequential", "processes", "vmap", "ray"}
        How the missing seeds are trained (see :mod:`ift_core.train`).
    device : str or torch.device, optional
        Default: CUDA when available, else CPU. With ``backend="ray"`` the device of
        the workers, default ``"cuda"`` when ``ray_resources`` asks for GPUs, else CPU.
    cache : bool
        False trains every seed afresh into a new temporary folder, leaving the cache alone;
        the folder (``Ensemble.directory``) is deleted when the returned Ensemble is
        garbage-collected or the interpreter exits.
    progress : bool
        tqdm bars over seeds (and over epochs within a seed for ``sequential``/``vmap``).
    n_workers : int, optional
        Worker processes for ``processes`` (default: the usable CPU cores; on CUDA,
        ``seeds_per_gpu`` per GPU).
    seeds_per_gpu : int, optional
        ``backend="processes"`` on CUDA: worker processes (seeds training at once) per GPU,
        default 1. Raise it while the GPU's memory and compute allow: small models leave
        most of a large GPU idle.
    ray_address : str, optional
        ``backend="ray"``: the cluster, ``"auto"``, ``"HOST:6379"`` or ``"ray://HOST:10001"``
        (default ``$RAY_ADDRESS``, else a private local cluster for this call).
    ray_resources : dict, optional
        ``backend="ray"``: per-task ``num_cpus`` (default 1), ``num_gpus`` (default 0;
        fractions share a GPU), ``memory``, ``resources``, ``max_retries`` (default 3),
        ``ship_data``, ``runtime_env``; see :func:`ift_core.train.run_ray`.

    Returns
    -------
    Ensemble

    Examples
    --------
    >>> from ift_core.train import get_profile
    >>> ens = train_ensemble(get_profile("tiny"), progress=False)
    >>> bool(ens.test_accuracy.min() > 0.85)
    True
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    cache = check_bool(cache, "cache")
    progress = check_bool(progress, "progress")
    if n_workers is not None:
        check_int(n_workers, "n_workers", minimum=1, remedy="or None for the usable CPU cores")
    if seeds_per_gpu is not None:
        check_int(seeds_per_gpu, "seeds_per_gpu", minimum=1, remedy="or None for one per GPU")
        if backend != "processes":
            raise ValueError(f"seeds_per_gpu needs backend='processes', got backend={backend!r} "
                             "(with 'ray', ask for a GPU fraction: ray_resources={'num_gpus': 0.25})")
    if backend != "ray" and (ray_address is not None or ray_resources is not None):
        raise ValueError(f"ray_address and ray_resources need backend='ray', got backend={backend!r}")
    ray_options: dict[str, Any] = {}
    if backend == "ray":
        ray_options = resource_options(ray_resources)  # checked before any training
        # The workers' device, decided by the GPUs they ask for: this process may have none.
        dev = resolve_device(device, num_gpus=float(ray_options.get("num_gpus", 0.0)))
    else:
        dev = resolve_device(device)
    if seeds_per_gpu is not None and dev.type != "cuda":
        raise ValueError(f"seeds_per_gpu shares a GPU between seeds; the device is {str(dev)!r}, not CUDA")
    n_workers_given = n_workers is not None
    n_workers = n_workers or _usable_cores()
    if cache:
        directory = entry_dir("ensembles", _identity(config, dev.type))
    else:
        locks.remove_stale_temporaries("ift-ensemble-*")  # left by killed runs
        directory = locks.owned_tempdir("ift-ensemble-")
    # What killed runs left: half-written files, claims of dead owners.
    locks.remove_stale_temporaries(".seed_*", dir=directory)
    locks.remove_stale_claims(directory, ".seed_*.claim")
    missing = []
    for m in range(config.n_models):
        problem = _checkpoint_problem(directory, config, m, dev.type)
        if problem is not None:
            missing.append(m)
            if problem != "missing":
                warnings.warn(f"checkpoint of seed {config.seed + m} is not used and is retrained: {problem}",
                              stacklevel=2)
    trained = 0
    if missing:
        chosen = _choose_backend(config, dev, len(missing), n_workers) if backend == "auto" else backend
        bar = tqdm(total=config.n_models, initial=config.n_models - len(missing),
                   desc=f"{config.arch} x{config.n_models} ({chosen})", disable=not progress)
        try:
            with locks.Claims(message=bar.write if progress else None) as claims:
                job = _Job(config=config, directory=directory, device=dev, claims=claims, bar=bar,
                           progress=progress, n_workers=n_workers, n_workers_given=n_workers_given,
                           seeds_per_gpu=seeds_per_gpu, ray_address=ray_address, ray_options=ray_options)
                trained = _BACKENDS[chosen](job, missing)
        finally:
            bar.close()
    ens = _load_ensemble(config, directory, (dev.type,))
    ens.n_trained = trained
    if not cache:  # the scratch folder lives as long as the Ensemble (or the interpreter)
        weakref.finalize(ens, shutil.rmtree, directory, ignore_errors=True)
    return ens
