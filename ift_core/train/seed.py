"""One seed: its data, its model, its training loop and its sealed checkpoint.

:func:`train_seed` trains model ``m`` of a :class:`~ift_core.train.TrainConfig` and writes its
checkpoint; every backend that trains seeds one at a time (``sequential``, ``processes``,
``ray``) calls it, so they run identical code. The stacked ``vmap`` backend trains several
models at once but takes the same SGD step (:func:`_sgd_step`) and writes the same checkpoints
(:func:`_save_trained`). :func:`resolve_device` is the one place a device argument is read.

Examples
--------
>>> import tempfile
>>> from ift_core.train import get_profile
>>> metrics = train_seed(get_profile("tiny", epochs=1), 0, tempfile.mkdtemp(), device="cpu")
>>> metrics["seed"], metrics["test_accuracy"] > 0.5
(0, True)
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data import ImageSet, add_subpopulation, load_data, load_split, normalize, subset
from ..integrity import DamagedFileError, read_sealed, write_sealed
from ..internal import check_bool, check_int, check_real, config_key
from ..models import build_model
from .config import TrainConfig, _identity, _trains_channels_last, lr_at, model_seeds

__all__ = ["train_seed", "resolve_device"]


# ------------------------------------------------------------------------------------------
# Devices
# ------------------------------------------------------------------------------------------
def _parse_device(device: Any) -> torch.device:
    """``device`` (a name or a torch.device) as a torch.device, whether or not this machine has it."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be None, a device name ('cpu', 'cuda', 'cuda:1') or a torch.device, "
                         f"got {device!r}") from None


def resolve_device(device: Any = None, *, num_gpus: float | None = None) -> torch.device:
    """The device to compute on, from a ``device`` argument.

    Parameters
    ----------
    device : str or torch.device, optional
        ``None``: CUDA when there is a GPU, else the CPU. A CUDA device where there is none
        is refused.
    num_gpus : float, optional
        For work that runs elsewhere (Ray tasks): the GPUs each task asks for. The GPUs are
        then the tasks', not this process's: ``None`` means CUDA when ``num_gpus > 0``; CUDA
        needs ``num_gpus > 0``, the CPU ``num_gpus == 0``; only CPU and CUDA are accepted, and
        the CUDA index is dropped (Ray shows each task its own GPUs).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device(None, num_gpus=0.25)
    device(type='cuda')
    """
    if num_gpus is not None:
        num_gpus = check_real(num_gpus, "num_gpus", minimum=0)
    gpus = torch.cuda.is_available() if num_gpus is None else num_gpus > 0
    if device is None:
        return torch.device("cuda" if gpus else "cpu")
    dev = _parse_device(device)
    if dev.type == "cuda" and not gpus:
        if num_gpus is None:
            raise ValueError(f"device={device!r} asked for CUDA but torch.cuda.is_available() is False")
        raise ValueError(f"device={device!r} needs num_gpus > 0 (a fraction such as 0.25 puts 4 seeds on a GPU); "
                         "Ray hides GPUs from tasks that do not ask for one")
    if num_gpus is not None:
        if dev.type == "cpu" and gpus:
            raise ValueError(f"num_gpus={num_gpus} with device={device!r} would reserve GPUs the tasks do not use")
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be a CPU or CUDA device, got {device!r}")
        return torch.device(dev.type)
    return dev


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------
_DATA_MEMO: dict[str, tuple[ImageSet, ImageSet]] = {}


def _base_data(config: TrainConfig) -> tuple[ImageSet, ImageSet]:
    """load_data(config.data), memoised per process (worker processes reuse it across seeds)."""
    key = config_key(config.data)
    if key not in _DATA_MEMO:
        _install_data(key, load_data(config.data))
    return _DATA_MEMO[key]


def _install_data(key: str, data: tuple[ImageSet, ImageSet]) -> None:
    """Make ``data`` the memoised data of ``key`` (a worker gets its parent's); at most one set is kept."""
    _DATA_MEMO.clear()
    _DATA_MEMO[key] = data


def _has_data(key: str) -> bool:
    return key in _DATA_MEMO


def _model_train_set(config: TrainConfig, m: int) -> ImageSet:
    """Model m's training set: the common subset, or its own (diffdata/alldiff)."""
    train, _ = _base_data(config)
    sub_seed = model_seeds(config, m)["subset"]
    if sub_seed == config.data.subset_seed:
        return train
    d = config.data
    full = load_split(d.name, "train", root=d.root)
    own = subset(full, d.n_train, seed=sub_seed)
    # Model 0's normalisation for everyone, so all models see the same test tensors.
    own = normalize(own, train.mean, train.std) if d.normalize else own
    if d.subpopulation_per_class:  # the same construction as load_data, on this model's subset
        own, _ = add_subpopulation(own, n_per_class=d.subpopulation_per_class,
                                   transform=d.subpopulation_transform, seed=d.subpopulation_seed)
    return own


# ------------------------------------------------------------------------------------------
# Training, one step and one seed
# ------------------------------------------------------------------------------------------
_INIT, _ORDER = 1, 2


def _stream_seed(seed: int, tag: int) -> int:
    """Independent 63-bit seeds for the init and order streams of one integer seed."""
    return int(np.random.SeedSequence([seed, tag]).generate_state(1, np.uint64)[0] >> np.uint64(1))


@contextlib.contextmanager
def _reproducible(device: torch.device) -> Iterator[None]:
    """One CPU thread and deterministic kernels while training; restores the caller's settings."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_det, cudnn_bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if device.type == "cuda":
        # cuBLAS needs this set before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_det, cudnn_bench


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _new_model(config: TrainConfig, train: ImageSet, init_seed: int) -> nn.Module:
    _seed_everything(_stream_seed(init_seed, _INIT))
    return build_model(config.arch, in_channels=train.in_channels, n_classes=train.n_classes,
                       image_size=train.image_size, width=config.width)


def _memory_format(device: torch.device, arch: str) -> torch.memory_format:
    """The memory format ``arch`` trains in on ``device`` (model and data); see
    :func:`ift_core.train.config._trains_channels_last` for the rule and why."""
    return torch.channels_last if _trains_channels_last(device.type, arch) else torch.contiguous_format


def _to_device(x: torch.Tensor, device: torch.device, memory_format: torch.memory_format) -> torch.Tensor:
    x = x.to(device)
    if x.dim() == 4:
        x = x.contiguous(memory_format=memory_format)
    return x


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _epoch_orders(config: TrainConfig, n: int, order_seed: int) -> Iterator[torch.Tensor]:
    """The data order of each epoch: one CPU generator per model, drawn epoch after epoch."""
    gen = torch.Generator().manual_seed(_stream_seed(order_seed, _ORDER))
    for _ in range(config.epochs):
        yield torch.randperm(n, generator=gen)


def _sgd_step(opt: torch.optim.Optimizer, lr: float, device: torch.device,
              losses: Callable[[], torch.Tensor]) -> torch.Tensor:
    """One SGD step at learning rate ``lr``; returns the detached losses.

    ``losses()`` runs the forward pass (bf16 autocast on CUDA) and returns each model's mean
    batch loss: a scalar for one model, ``(M,)`` for a stacked one. Their sum is minimised, so
    each model gets the gradient of its own loss.
    """
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    with _autocast(device):
        loss = losses()
    loss.sum().backward()
    opt.step()
    return loss.detach()


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Accuracy as a loaded checkpoint computes it: eval mode, float32, standard memory format,
    the batch size of extract_activations (so recorded accuracies match the activations' argmax)."""
    model.eval().to(memory_format=torch.contiguous_format)
    x = x.contiguous()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(len(y), 1)


def _diverged(config: TrainConfig, epoch: int, seeds: list[int], mean_losses: list[float]) -> None:
    bad = [s for s, v in zip(seeds, mean_losses) if not math.isfinite(v)]
    if bad:
        what = f"mean loss {mean_losses[0]} in epoch {epoch} of seed {bad[0]}" if len(seeds) == 1 else \
            f"in epoch {epoch} for seeds {bad}"
        raise FloatingPointError(f"training diverged: {what} (arch={config.arch}, lr={config.lr}); lower lr")


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------
def _checkpoint_path(directory: Path, seed: int) -> Path:
    return Path(directory) / f"seed_{seed:05d}.pt"


def _checkpoint_identity(config: TrainConfig, device_type: str, seed: int) -> dict[str, Any]:
    """What a checkpoint belongs to: its ensemble's cache key and its seed."""
    return {"kind": "checkpoint", "ensemble": config_key(_identity(config, device_type)), "seed": int(seed)}


def _save_checkpoint(path: Path, model: nn.Module, metrics: dict[str, Any], identity: dict[str, Any]) -> None:
    """Write a sealed checkpoint atomically (serialised in memory first: a full disk is an OSError
    naming the path, never torch's half-written zip)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"state_dict": state, **metrics}, buffer)
    write_sealed(path, buffer.getvalue(), identity)


def _load_checkpoint(path: Path, identities: list[dict[str, Any]]) -> dict[str, Any]:
    """The checkpoint at ``path`` after checking its seal against one of ``identities``.

    Raises FileNotFoundError when absent, DamagedFileError (naming the path and the reason) when
    it fails; never hands a failing file to torch."""
    payload, error = None, None
    for identity in identities:
        try:
            payload = read_sealed(path, identity)
            break
        except DamagedFileError as err:
            error = error or err
    if payload is None:
        raise error
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # sealed but unreadable: written by a broken writer
        raise DamagedFileError(path, f"sealed but not a loadable checkpoint ({type(err).__name__}: "
                                     f"{str(err).splitlines()[0] if str(err) else ''})") from err


def _checkpoint_problem(directory: Path, config: TrainConfig, m: int, device_type: str) -> str | None:
    """None when model m's checkpoint is there and passes its seal, else what is wrong (a checked
    hash and identity; the weights are loaded later, once)."""
    seed = config.seed + m
    path = _checkpoint_path(directory, seed)
    try:
        read_sealed(path, _checkpoint_identity(config, device_type, seed))
    except FileNotFoundError:
        return "missing"
    except DamagedFileError as err:
        return str(err)
    return None


def _save_trained(config: TrainConfig, m: int, model: nn.Module, train: ImageSet, x: torch.Tensor,
                  y: torch.Tensor, test: ImageSet, losses: list[float], directory: Path, device: torch.device,
                  backend: str, wall_s: float) -> dict[str, Any]:
    """Measure model ``m`` (trained on ``x, y``, which are ``train`` on the device) and write its
    checkpoint; returns its metrics without the loss history and the training indices."""
    seeds = model_seeds(config, m)
    metrics = {
        "seed": seeds["seed"], "index": m, "init_seed": seeds["init"], "order_seed": seeds["order"],
        "subset_seed": seeds["subset"],
        "train_accuracy": _accuracy(model, x, y),
        "test_accuracy": _accuracy(model, test.x.to(device), test.y.to(device)),
        "loss_history": losses, "train_indices": train.indices.tolist(),
        "device": str(device), "backend": backend, "wall_s": wall_s,
        "torch_version": str(torch.__version__),
    }
    _save_checkpoint(_checkpoint_path(directory, seeds["seed"]), model, metrics,
                     _checkpoint_identity(config, device.type, seeds["seed"]))
    return {k: v for k, v in metrics.items() if k not in ("loss_history", "train_indices")}


def train_seed(config: TrainConfig, m: int, directory: str | os.PathLike, *, device: Any = None,
               backend: str = "sequential", progress: bool = False, position: int = 1,
               train_set: ImageSet | None = None) -> dict[str, Any]:
    """Train model ``m`` of ``config`` and write its sealed checkpoint into ``directory``.

    The per-seed function of every backend that trains one seed at a time (``sequential``,
    each ``processes`` worker, each Ray task), so they give bit-identical weights on the CPU:
    one thread, deterministic kernels, the seeds of :func:`ift_core.train.model_seeds`.

    Parameters
    ----------
    config : TrainConfig
    m : int
        The model's index, ``0 <= m < config.n_models`` (seed ``config.seed + m``).
    directory : path
        Where the checkpoint ``seed_XXXXX.pt`` goes (usually :func:`ift_core.train.ensemble_dir`).
        An existing checkpoint of the seed is replaced.
    device : str or torch.device, optional
        Default CUDA when available, else the CPU (see :func:`resolve_device`).
    backend : str
        The name recorded in the checkpoint.
    progress : bool
        A tqdm bar over epochs, at row ``position``.
    train_set : ImageSet, optional
        Model m's training set when the caller has it already (default: drawn here).

    Returns
    -------
    dict
        The seed's metrics as recorded in the checkpoint (seeds, accuracies, device, backend,
        wall time), without the loss history and the training indices.

    Raises
    ------
    FloatingPointError
        When the mean loss of an epoch is not finite (lower ``lr``).
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    m = check_int(m, "m", maximum=config.n_models - 1, minimum=0,
                  remedy="m is a model's index in the ensemble, below config.n_models")
    if not isinstance(directory, (str, os.PathLike)):
        raise ValueError(f"directory must be a path (str or os.PathLike), got {directory!r}")
    device = resolve_device(device)
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a name (str), got {backend!r}")
    progress = check_bool(progress, "progress")
    position = check_int(position, "position", minimum=0)
    if train_set is not None and not isinstance(train_set, ImageSet):
        raise ValueError(f"train_set must be an ImageSet or None, got {type(train_set).__name__}")

    seeds = model_seeds(config, m)
    train = _model_train_set(config, m) if train_set is None else train_set
    _, test = _base_data(config)
    fmt = _memory_format(device, config.arch)
    t0 = time.perf_counter()
    with _reproducible(device):
        model = _new_model(config, train, seeds["init"]).to(device, memory_format=fmt)
        x, y = _to_device(train.x, device, fmt), train.y.to(device)  # data stay on the device
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
        n = len(y)
        steps_per_epoch = math.ceil(n / config.batch_size)
        total = config.epochs * steps_per_epoch
        step = 0
        losses: list[float] = []
        bar = tqdm(total=config.epochs, desc=f"seed {seeds['seed']}", leave=False, position=position,
                   disable=not progress)
        try:
            for epoch, perm in enumerate(_epoch_orders(config, n, seeds["order"])):
                model.train()
                perm = perm.to(device)
                loss_sum = torch.zeros((), device=device)
                for i in range(steps_per_epoch):
                    idx = perm[i * config.batch_size:(i + 1) * config.batch_size]
                    loss_sum += _sgd_step(opt, lr_at(config, step, total), device,
                                          lambda: F.cross_entropy(model(x[idx]).float(), y[idx]))
                    step += 1
                mean_loss = float(loss_sum) / steps_per_epoch  # one device sync per epoch
                _diverged(config, epoch, [seeds["seed"]], [mean_loss])
                losses.append(mean_loss)
                bar.set_postfix(loss=f"{mean_loss:.3f}")
                bar.update()
        finally:
            bar.close()
        return _save_trained(config, m, model, train, x, y, test, losses, Path(directory), device, backend,
                             time.perf_counter() - t0)
