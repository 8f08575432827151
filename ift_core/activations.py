"""Penultimate activations and logits of trained models on a data set.

:func:`extract_activations` works for any :class:`torch.nn.Module`: a forward
hook on the named layer records its output (flattened to ``(N, D)``) while the
model's own output gives the logits. :class:`ActivationSet` holds the result
for an ensemble with its labels, seeds and metadata, and stores it as a
compressed ``.npz`` (written atomically, metadata as a JSON string, loaded with
``allow_pickle=False``). :func:`ensemble_activations` caches one such file per
split next to the ensemble's checkpoints, sealed (:mod:`ift_core.integrity`: its
sha256 and the ensemble, split and layer it belongs to, checked before use; a
file that fails is reported and recomputed). Concurrent calls for one ensemble
extract once: the first claims the file, the others wait for it.

Besides the ensemble's own ``"train"`` and ``"test"`` sets there is the
``"subpopulation"`` split: every test image under the data config's
sub-population transform (:func:`ift_core.data.load_subpopulation_data`).

:func:`extract_activations_ray` runs :func:`extract_activations` as one Ray task per model
(:mod:`ift_core.distributed`), with identical results on CPU.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import locks
from .data import load_subpopulation_data
from .distributed import ray_tasks, resource_options
from .integrity import DamagedFileError, read_sealed, write_sealed
from .internal import (as_float_array, as_int_array, check_bool, check_int, config_key, load_npz, save_npz_atomic,
                       to_jsonable)
from .models import PENULTIMATE_LAYER
from .train.seed import resolve_device

__all__ = ["ActivationSet", "extract_activations", "extract_activations_ray", "ensemble_activations",
           "activations_path", "SPLITS"]

SPLITS = ("train", "test", "subpopulation")


def _as_models(models: Any) -> list[nn.Module]:
    if isinstance(models, nn.Module):
        return [models]
    try:
        out = list(models)
    except TypeError:
        raise ValueError(f"models must be an nn.Module or a sequence of them, got {type(models).__name__}") from None
    if not out:
        raise ValueError("models is empty")
    for i, m in enumerate(out):
        if not isinstance(m, nn.Module):
            raise ValueError(f"models[{i}] must be an nn.Module, got {type(m).__name__}")
    return out


def _as_inputs(x: Any) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = as_float_array(x, name="x")
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, ...) with N >= 1, got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"x must be floating point, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    return x


def _check_batch_and_layer(batch_size: Any, layer: Any) -> None:
    check_int(batch_size, "batch_size", minimum=1)
    if not isinstance(layer, str):
        raise ValueError(f"layer must be a module name (str), got {type(layer).__name__}")


def _check_same_widths(acts: np.ndarray, logits: np.ndarray, first_acts: np.ndarray,
                       first_logits: np.ndarray) -> None:
    """One model's (N, D) activations and (N, C) logits must match the first model's D and C."""
    if acts.shape[1] != first_acts.shape[1] or logits.shape[1] != first_logits.shape[1]:
        raise ValueError(f"models disagree on shapes: D={acts.shape[1]} vs {first_acts.shape[1]}, "
                         f"C={logits.shape[1]} vs {first_logits.shape[1]}; extract them separately")


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def _one_model(model: nn.Module, x: torch.Tensor, layer: str, batch_size: int,
               device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n]
        raise ValueError(f"layer {layer!r} not found in {type(model).__name__}; available layers: {names}")
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"layer {layer!r} returns {type(output).__name__}, not a tensor")
        captured.append(output.detach().flatten(1).float().cpu())

    was_training, home = model.training, _model_device(model)
    handle = modules[layer].register_forward_hook(hook)
    acts, logits = [], []
    try:
        model.eval().to(device)
        for i in range(0, x.shape[0], batch_size):
            out = model(x[i:i + batch_size].to(device))
            if not isinstance(out, torch.Tensor) or out.dim() != 2:
                raise ValueError(f"the model must return (N, C) logits, got "
                                 f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
            if len(captured) != 1:
                raise ValueError(f"layer {layer!r} ran {len(captured)} times in one forward pass; "
                                 "hook a layer that runs exactly once")
            acts.append(captured.pop())
            logits.append(out.detach().float().cpu())
    finally:
        handle.remove()
        model.to(home).train(was_training)  # leave the caller's model as it was
    return torch.cat(acts).numpy(), torch.cat(logits).numpy()


def extract_activations(models: nn.Module | Sequence[nn.Module], x: torch.Tensor | np.ndarray, *,
                        layer: str = PENULTIMATE_LAYER, batch_size: int = 512, device: Any = None,
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Activations of ``layer`` and the logits of each model on ``x``.

    Parameters
    ----------
    models : nn.Module or sequence of nn.Module
        Any models returning ``(N, C)`` logits; each is run in eval mode without
        gradients and put back in its former mode and device afterwards.
    x : torch.Tensor or np.ndarray
        Inputs ``(N, ...)``, already preprocessed as the models expect.
    layer : str
        Name of the submodule (as in ``model.named_modules()``) whose output is
        recorded, flattened to ``(N, D)``. Default ``"penultimate"`` (every
        :mod:`ift_core.models` architecture has it).
    batch_size : int
    device : str or torch.device, optional
        Where to run; default CUDA when available, else CPU.
    progress : bool
        A tqdm bar over models.

    Returns
    -------
    activations : np.ndarray
        ``(M, N, D)`` float32 (models must agree on D).
    logits : np.ndarray
        ``(M, N, C)`` float32.

    Raises
    ------
    ValueError
        Unknown layer (the message lists the available names), bad inputs, or
        models whose D or C differ.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> acts, logits = extract_activations(net, torch.randn(5, 4), layer="1")
    >>> acts.shape, logits.shape
    ((1, 5, 3), (1, 5, 2))
    """
    models = _as_models(models)
    x = _as_inputs(x)
    _check_batch_and_layer(batch_size, layer)
    progress = check_bool(progress, "progress")
    dev = resolve_device(device)
    acts, logits = [], []
    for model in tqdm(models, desc=f"activations ({layer})", disable=not progress, leave=False):
        a, lg = _one_model(model, x, layer, batch_size, dev)
        if acts:
            _check_same_widths(a, lg, acts[0], logits[0])
        acts.append(a)
        logits.append(lg)
    return np.stack(acts).astype(np.float32, copy=False), np.stack(logits).astype(np.float32, copy=False)


def _cpu_copy(model: nn.Module) -> nn.Module:
    on_cpu = all(t.device.type == "cpu" for t in list(model.parameters()) + list(model.buffers()))
    return model if on_cpu else copy.deepcopy(model).cpu()


def _extract_in_task(model: nn.Module, x_box: list, layer: str, batch_size: int, device: str,
                     threads: int) -> tuple[np.ndarray, np.ndarray]:
    """One model's activations and logits, inside a Ray worker."""
    import ray

    torch.set_num_threads(threads)
    acts, logits = extract_activations(model, ray.get(x_box[0]), layer=layer, batch_size=batch_size,
                                       device=device)
    return acts[0], logits[0]


def extract_activations_ray(models: nn.Module | Sequence[nn.Module], x: torch.Tensor | np.ndarray, *,
                            layer: str = PENULTIMATE_LAYER, batch_size: int = 512, device: Any = None,
                            address: str | None = None, num_cpus: float = 1, num_gpus: float = 0.0,
                            memory: float | None = None, resources: Mapping[str, float] | None = None,
                            max_retries: int = 3, runtime_env: Mapping[str, Any] | None = None,
                            progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`extract_activations` with one Ray task per model.

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
        As in :func:`extract_activations`.
    device : str or torch.device, optional
        On the workers; default ``"cuda"`` when ``num_gpus > 0``, else ``"cpu"``.
    address, num_cpus, num_gpus, memory, resources, max_retries, runtime_env
        The cluster and each task's resources, as in :func:`ift_core.distributed.ray_tasks`.
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
    models = _as_models(models)
    x = _as_inputs(x)
    _check_batch_and_layer(batch_size, layer)
    progress = check_bool(progress, "progress")
    for i, model in enumerate(models):
        if layer not in dict(model.named_modules()):
            names = [n for n, _ in model.named_modules() if n]
            raise ValueError(f"layer {layer!r} not found in models[{i}] ({type(model).__name__}); "
                             f"available layers: {names}")
    options = resource_options({"num_cpus": num_cpus, "num_gpus": num_gpus, "memory": memory,
                                "resources": resources, "max_retries": max_retries})
    dev = resolve_device(device, num_gpus=float(num_gpus)).type
    bar = tqdm(total=len(models), desc=f"activations ({layer}, ray)", disable=not progress, leave=False)
    try:
        with ray_tasks(address=address, runtime_env=runtime_env, **options) as tasks:
            x_box = [tasks.put(x.cpu())]
            threads = max(1, int(num_cpus))
            # Models travel as CPU copies; the caller's models stay where they are.
            pairs = tasks.map(_extract_in_task, [(_cpu_copy(model), x_box, layer, batch_size, dev, threads)
                                                 for model in models],
                              name="ift_extract", labels=[f"model {i}" for i in range(len(models))], bar=bar)
    finally:
        bar.close()
    acts = [a for a, _ in pairs]
    logits = [lg for _, lg in pairs]
    for i in range(1, len(acts)):
        _check_same_widths(acts[i], logits[i], acts[0], logits[0])
    return np.stack(acts).astype(np.float32, copy=False), np.stack(logits).astype(np.float32, copy=False)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class ActivationSet:
    """Activations and logits of M models on N labelled points.

    Attributes
    ----------
    activations : np.ndarray
        (M, N, D) float32.
    logits : np.ndarray
        (M, N, C) float32.
    labels : np.ndarray
        (N,) int64 true labels.
    seeds : np.ndarray
        (M,) int64 seed of each model.
    meta : dict
        JSON-able description (config, split, layer, data indices, ...).

    Examples
    --------
    >>> import numpy as np
    >>> s = ActivationSet(np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 5), np.float32),
    ...                   np.array([0, 1, 4]), np.array([0, 1]), {"note": "zeros"})
    >>> s.probs.shape, s.preds.shape
    ((2, 3, 5), (2, 3))
    """

    activations: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    seeds: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.activations = as_float_array(self.activations, name="activations", ndim=3).astype(np.float32, copy=False)
        self.logits = as_float_array(self.logits, name="logits", ndim=3).astype(np.float32, copy=False)
        self.labels = as_int_array(self.labels, name="labels", ndim=1).astype(np.int64, copy=False)
        self.seeds = as_int_array(self.seeds, name="seeds", ndim=1).astype(np.int64, copy=False)
        m, n, _ = self.activations.shape
        if self.logits.shape[:2] != (m, n):
            raise ValueError(f"logits shape {self.logits.shape} does not match activations {self.activations.shape} "
                             "in (M, N)")
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {self.labels.shape}")
        if self.seeds.shape != (m,):
            raise ValueError(f"seeds must have shape ({m},), got {self.seeds.shape}")
        c = self.logits.shape[2]
        if n and (self.labels.min() < 0 or self.labels.max() >= c):
            raise ValueError(f"labels must lie in [0, {c}), got range [{self.labels.min()}, {self.labels.max()}]")
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be a dict, got {type(self.meta).__name__}")
        self.meta = to_jsonable(self.meta)
        try:  # fail now, not at save time, if something is not JSON
            json.dumps(self.meta)
        except (TypeError, ValueError) as err:
            raise ValueError(f"meta must be JSON-serialisable: {err}") from None

    @property
    def n_models(self) -> int:
        return int(self.activations.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.activations.shape[1])

    @property
    def probs(self) -> np.ndarray:
        """(M, N, C) softmax of the logits (float32)."""
        return _softmax(self.logits.astype(np.float64)).astype(np.float32)

    @property
    def preds(self) -> np.ndarray:
        """(M, N) predicted class of each model (argmax of the logits)."""
        return self.logits.argmax(axis=-1).astype(np.int64)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"activations": self.activations, "logits": self.logits, "labels": self.labels,
                "seeds": self.seeds, "meta": np.asarray(json.dumps(self.meta, sort_keys=True))}

    def save(self, path: str | os.PathLike) -> Path:
        """Write a compressed ``.npz`` atomically (metadata as a JSON string). Returns the path."""
        return save_npz_atomic(path, **self._arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ActivationSet":
        """Read a file written by :meth:`save`, never unpickling."""
        return cls._from_arrays(load_npz(path), path)

    def _to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self._arrays())
        return buffer.getvalue()

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray], path: Any) -> "ActivationSet":
        missing = {"activations", "logits", "labels", "seeds", "meta"} - set(arrays)
        if missing:
            raise ValueError(f"{path} is not an ActivationSet file: missing {sorted(missing)}")
        meta = arrays["meta"]
        if meta.dtype.kind != "U" or meta.ndim != 0:
            raise ValueError(f"{path}: meta must be a JSON string, got dtype {meta.dtype} shape {meta.shape}")
        return cls(activations=arrays["activations"], logits=arrays["logits"], labels=arrays["labels"],
                   seeds=arrays["seeds"], meta=json.loads(str(meta)))


def activations_path(ensemble: Any, split: str = "test", layer: str = PENULTIMATE_LAYER) -> Path:
    """Where :func:`ensemble_activations` caches ``ensemble``'s activations on ``split``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    seeds = list(ensemble.seeds)
    if split == "subpopulation":
        # The transform is not in the ensemble's key when it trained without a sub-population.
        split = f"subpopulation-{ensemble.config.data.subpopulation_transform}"
    # Seeds are consecutive (config.seed + m), so first and count name the set.
    return Path(ensemble.directory) / f"activations_{split}_{layer}_s{seeds[0]}_n{len(seeds)}.npz"


def _cache_identity(ensemble: Any, split: str, layer: str) -> dict[str, Any]:
    """What a cached activations file belongs to: the ensemble's config, its seeds, the split and layer.

    Without a sub-population (``subpopulation_per_class = 0``) the construction's other fields
    change neither the ensemble nor its train and test sets, so they are set to their defaults
    here: two sweeps over different constructions share the r = 0 ensemble and its files."""
    config = ensemble.config
    if split != "subpopulation" and not config.data.subpopulation_per_class:
        defaults = {f.name: f.default for f in dataclasses.fields(config.data)
                    if f.name in ("subpopulation_transform", "subpopulation_seed")}
        config = config.replace(**defaults)
    return {"kind": "activations", "config": config_key(config), "seeds": [int(s) for s in ensemble.seeds],
            "split": split, "layer": layer}


def _read_cache(path: Path, identity: dict[str, Any], *, report: bool) -> ActivationSet | None:
    """The cached set at ``path`` if it passes its seal, else None (reporting a failing file)."""
    try:
        payload = read_sealed(path, identity)
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            return ActivationSet._from_arrays({k: z[k] for k in z.files}, path)
    except FileNotFoundError:
        return None
    except (DamagedFileError, ValueError, OSError) as err:  # ValueError: sealed, yet not an ActivationSet
        if report:
            # The file's name only: no machine's folders in a chapter's output.
            reason = str(err).replace(str(path), path.name).replace(str(path.parent), "<ensemble folder>")
            # Attributed to this module by its package path (warn would print the file's absolute path).
            warnings.warn_explicit(f"cached activations are not used and are recomputed: {reason}", UserWarning,
                                   filename="ift_core/activations.py", lineno=0, module=__name__)
        return None


def ensemble_activations(ensemble: Any, *, split: str = "test", layer: str = PENULTIMATE_LAYER,
                         batch_size: int = 512, device: Any = None, progress: bool = True,
                         cache: bool = True, backend: str = "local", ray_address: str | None = None,
                         ray_resources: dict | None = None) -> ActivationSet:
    """Activations and logits of every model of ``ensemble`` on its train or test set, cached.

    The file lives next to the ensemble's checkpoints (see :func:`activations_path`);
    a second call reads it instead of running the models.

    Parameters
    ----------
    ensemble : ift_core.train.Ensemble
    split : {"train", "test", "subpopulation"}
        ``"train"`` is model 0's training set in the diffdata/alldiff modes; ``"subpopulation"``
        the rich test set of the sub-population construction: every test image under
        ``ensemble.config.data.subpopulation_transform``.
    layer, batch_size, device
        As in :func:`extract_activations`.
    progress : bool
    cache : bool
        False recomputes and does not write the file.
    backend : {"local", "ray"}
        ``"ray"``: one Ray task per model (:func:`extract_activations_ray`),
        on the cluster ``ray_address`` with per-task ``ray_resources`` (as in
        :func:`ift_core.train.train_ensemble`); identical results on CPU.

    Examples
    --------
    >>> from ift_core.train import get_profile, train_ensemble
    >>> acts = ensemble_activations(train_ensemble(get_profile("tiny"), progress=False), progress=False)
    >>> acts.activations.shape
    (5, 450, 128)
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    progress, cache = check_bool(progress, "progress"), check_bool(cache, "cache")
    if backend not in ("local", "ray"):
        raise ValueError(f"unknown backend {backend!r}; choose 'local' or 'ray'")
    if backend != "ray" and (ray_address is not None or ray_resources is not None):
        raise ValueError(f"ray_address and ray_resources need backend='ray', got backend={backend!r}")
    path = activations_path(ensemble, split, layer)
    if not cache:
        return _compute_activations(ensemble, split, layer, batch_size, device, progress, backend, ray_address,
                                    ray_resources)
    identity = _cache_identity(ensemble, split, layer)
    found = _read_cache(path, identity, report=True)
    if found is not None:
        return found
    # One extraction across concurrent runs: claim the file, look again (another run may have
    # written it while this one waited), else compute and write it.
    with locks.exclusive(path.with_name(f".{path.name}.claim"), what=path.name):
        found = _read_cache(path, identity, report=False)
        if found is not None:
            return found
        out = _compute_activations(ensemble, split, layer, batch_size, device, progress, backend, ray_address,
                                   ray_resources)
        write_sealed(path, out._to_bytes(), identity)
    return out


def _compute_activations(ensemble: Any, split: str, layer: str, batch_size: int, device: Any, progress: bool,
                         backend: str, ray_address: str | None, ray_resources: dict | None) -> ActivationSet:
    train, test = ensemble.data()
    if split == "subpopulation":
        ds = load_subpopulation_data(ensemble.config.data).test_sub
    else:
        ds = train if split == "train" else test
    if backend == "ray":
        opts = {k: v for k, v in resource_options(ray_resources).items() if k != "ship_data"}
        acts, logits = extract_activations_ray(ensemble.models, ds.x, layer=layer, batch_size=batch_size,
                                               device=device, address=ray_address, progress=progress, **opts)
    else:
        acts, logits = extract_activations(ensemble.models, ds.x, layer=layer, batch_size=batch_size,
                                           device=device, progress=progress)
    meta = {
        "config": to_jsonable(ensemble.config), "split": split, "layer": layer, "data_name": ds.name,
        "classes": list(ds.classes), "indices": ds.indices.tolist(), "mean": list(ds.mean), "std": list(ds.std),
        "train_accuracy": np.asarray(ensemble.train_accuracy).tolist(),
        "test_accuracy": np.asarray(ensemble.test_accuracy).tolist(),
    }
    return ActivationSet(activations=acts, logits=logits, labels=ds.y.numpy().astype(np.int64),
                         seeds=np.asarray(ensemble.seeds, dtype=np.int64), meta=meta)
