"""Train M models that differ only in their seed, with checkpoints, resume and a cache.

One :class:`TrainConfig` describes an ensemble: the data, the architecture, the
optimiser (SGD with momentum, the paper's defaults) and how the models differ
(the *randomness mode*). :func:`train_ensemble` trains the models that are not
yet on disk, one checkpoint per finished seed, and returns an :class:`Ensemble`.

Randomness modes (Jiang et al. 2022, GDE paper; model ``m`` has seed ``s = config.seed + m``)

============  =================  =================  ==========================================
mode          initialisation     data order         training data
============  =================  =================  ==========================================
diffinit      seed ``s``         ``config.seed``    the one subset of ``config.data``
difforder     ``config.seed``    seed ``s``         the one subset
diffdata      ``config.seed``    ``config.seed``    own subset: ``subset_seed + m``
alldiff       seed ``s``         seed ``s``         own subset: ``subset_seed + m``
============  =================  =================  ==========================================

In ``diffdata``/``alldiff`` every model draws its own stratified subset of
``n_train`` images from the full training split (model 0's is the subset of
``config.data``), all normalised with model 0's statistics; all models share the
test subset (``config.data.test_seed``).

Backends

``sequential``
    One seed after another in this process, single-threaded on CPU.
``processes``
    One single-thread worker process per seed (``spawn``), ``n_workers`` at a
    time (default: the usable CPU cores). Bit-identical to ``sequential``: both
    run the same code with one thread and the same seeds. Each worker imports
    torch once (a few seconds), so this pays off for seeds that train longer
    than that. As with any ``spawn`` pool, a *script* that uses it needs the
    ``if __name__ == "__main__":`` guard; notebooks need nothing. On CUDA
    (``device="cuda"``: every visible GPU; ``"cuda:i"``: GPU ``i`` only) each
    GPU gets ``seeds_per_gpu`` workers (default 1), so several seeds share one
    GPU where its memory allows (capped by ``n_workers`` when given).
``vmap``
    All missing seeds as one stacked model (``torch.func.stack_module_state`` +
    ``functional_call`` under ``vmap``), one optimiser step for all. The same
    algorithm as ``sequential`` (SGD is elementwise, the summed loss gives every
    model its own gradient), but batched matmuls sum in another order, so the
    weights agree with ``sequential`` only to float tolerance (~1e-7 absolute
    after a few epochs of a small MLP), not bit for bit. Batch-norm running
    statistics are stacked buffers, updated per model. Meant for MLPs; conv
    nets work but are usually slower than ``processes`` on CPU. Checkpoints
    are written when the stacked run ends.
``ray``
    One Ray task per seed on a Ray cluster (:func:`ift_core.distributed.run_ray`):
    an existing one (``ray_address``, or ``$RAY_ADDRESS``) or a private local one
    on 127.0.0.1. Each task runs the same per-seed code as ``sequential``
    (bit-identical on CPU). ``ray_resources`` declares what each task needs,
    e.g. ``{"num_gpus": 0.25}`` for four seeds per GPU. On several machines the
    cache folder must be on storage every node shares (``IFT_CACHE`` on NFS).
    Needs ``pip install -e '.[ray]'``.
``auto``
    ``sequential`` on a GPU, ``vmap`` for an MLP on CPU, ``processes`` for conv
    nets when more than one core is usable, else ``sequential``.

On a GPU conv nets train in channels-last memory format (tensor cores); on the
CPU only ``small_cnn`` does (faster there), and the ResNets train in the standard
layout (oneDNN's channels-last kernels crash them on AVX2 CPUs; see ``_memory_format``).
On a GPU (``device="cuda"``, the default when one is present) training uses bf16
autocast and keeps the data on the GPU; results are then not bit-identical to CPU runs. ``backend="vmap", device="cuda"`` trains
several seeds at once on one GPU as a stacked model. Deterministic kernels are
requested everywhere (``torch.use_deterministic_algorithms(warn_only=True)``,
cuDNN deterministic, no benchmark mode). Recorded accuracies are computed in
float32 and the standard memory layout, as a loaded checkpoint computes them.

Caching: checkpoints live in ``entry_dir("ensembles", identity)`` where the
identity is the config without ``n_models`` (model ``m`` depends only on the
rest and on its seed), so a larger ensemble reuses the seeds a smaller one
trained. The device *type* is part of the key when it is not the CPU (bf16 GPU
runs differ from CPU runs and must not mix with them silently); the backend
and the exact device are recorded in each checkpoint but are not part of the
key. A sub-population (``DataConfig.subpopulation_per_class > 0``, issue 4) is
part of the data description and so of the key; the sub-population fields are
left out of the key when it is 0, so the ordinary ensemble has one entry.

Checkpoints are sealed (:mod:`ift_core.integrity`): each records the sha256 of its
bytes and the identity it belongs to (the ensemble's key and the seed), checked
before it is used. A checkpoint that fails (damaged, truncated, another seed's)
is reported with its path and retrained by :func:`train_ensemble`, and refused
by :func:`load_ensemble`. The file is still ``torch.save`` output, so
``torch.load(path, weights_only=True)`` opens it too, unchecked.

Concurrent runs of one config (two notebooks, two terminals, a rerun while a
killed run's workers linger) share the work: each seed is claimed before it is
trained (:class:`ift_core.locks.Claims`, a lock file naming its owner), a run
trains the seeds nobody else holds and then waits for the others' checkpoints,
taking a seed over if its owner dies. ``processes`` workers die with the process
that started them.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import os
import random
import shutil
import time
import warnings
import weakref
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .cache import entry_dir
from .data import DataConfig, ImageSet, add_subpopulation, load_data, load_split, normalize, subset
from . import locks
from .integrity import DamagedFileError, read_sealed, write_sealed
from .internal import check_bool, check_int, config_key, to_jsonable
from .models import ARCHITECTURES, DEFAULT_WIDTHS, build_model, is_conv

__all__ = [
    "MODES",
    "SCHEDULES",
    "BACKENDS",
    "TrainConfig",
    "PROFILES",
    "get_profile",
    "Ensemble",
    "train_ensemble",
    "load_ensemble",
    "ensemble_dir",
    "model_seeds",
    "lr_at",
]

MODES = ("diffinit", "difforder", "diffdata", "alldiff")
SCHEDULES = ("cosine", "constant")
BACKENDS = ("auto", "sequential", "processes", "vmap", "ray")
_DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataConfig))


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a seed ensemble (and its cache key).

    Parameters
    ----------
    data : DataConfig
        Data set, subset sizes and seeds, normalisation.
    arch : str
        One of :data:`ift_core.models.ARCHITECTURES`.
    width : int or None
        Channel / hidden-unit scale (None = the architecture's default).
    n_models : int
        Ensemble size M; model ``m`` uses seed ``seed + m``.
    epochs : int
        Passes over the training data.
    lr, momentum, weight_decay, batch_size
        SGD settings (paper: 0.1, 0.9, 1e-4, 100).
    schedule : {"cosine", "constant"}
        Learning rate per step: cosine decay from ``lr`` to 0 over all steps, or constant.
    mode : {"diffinit", "difforder", "diffdata", "alldiff"}
        Which sources of randomness differ between models (see the module docstring).
    seed : int
        Base seed.

    Examples
    --------
    >>> from ift_core.data import DataConfig
    >>> c = TrainConfig(data=DataConfig(name="digits"), arch="mlp", width=None, n_models=3, epochs=2)
    >>> c.replace(n_train=500).data.n_train
    500
    """

    data: DataConfig
    arch: str
    width: int | None
    n_models: int
    epochs: int
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 100
    schedule: str = "cosine"
    mode: str = "diffinit"
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.data, DataConfig):
            raise ValueError(f"data must be a DataConfig, got {type(self.data).__name__}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {ARCHITECTURES}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {MODES}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.width is not None and (not _is_int(self.width) or self.width < 1):
            raise ValueError(f"width must be None or a positive integer, got {self.width!r}")
        for name in ("n_models", "epochs", "batch_size"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not _is_real(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _is_real(self.momentum) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not _is_real(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.mode in ("diffdata", "alldiff") and self.data.n_train is None:
            raise ValueError(f"mode={self.mode!r} draws a training subset per model: set data.n_train "
                             "(it is None, the whole split)")

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes``; data fields may be given bare (``n_train=...``) or dotted
        (``**{"data.n_train": ...}``).

        Examples
        --------
        >>> get_profile("tiny").replace(epochs=3, subset_seed=1).data.subset_seed
        1
        """
        own = {f.name for f in dataclasses.fields(self)}
        top: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for key, value in changes.items():
            name = key[5:] if key.startswith("data.") else key
            if key in own:
                top[key] = value
            elif name in _DATA_FIELDS:
                data[name] = value
            else:
                raise ValueError(f"unknown TrainConfig field {key!r}; fields: {sorted(own)}, "
                                 f"data fields: {list(_DATA_FIELDS)}")
        base = top.pop("data", self.data)
        if data:
            if not isinstance(base, DataConfig):
                raise ValueError(f"data must be a DataConfig, got {type(base).__name__}")
            base = dataclasses.replace(base, **data)
        return dataclasses.replace(self, data=base, **top)

    @property
    def seeds(self) -> list[int]:
        """The seeds of the ``n_models`` models: ``seed, seed + 1, ...``."""
        return [self.seed + m for m in range(self.n_models)]


PROFILES: dict[str, TrainConfig] = {
    # Seconds on one core: 5 MLPs on scikit-learn's digits (1347 train / 450 test).
    "tiny": TrainConfig(data=DataConfig(name="digits", n_train=None, n_test=None), arch="mlp", width=128,
                        n_models=5, epochs=15, lr=0.05, batch_size=50),
    # The book's default: 10 small CNNs on 10k Fashion-MNIST images, a few minutes on 2 cores,
    # trained to near-zero training error (the GDE regime).
    "cpu": TrainConfig(data=DataConfig(name="fashion_mnist", n_train=10_000, n_test=2_000), arch="small_cnn",
                       width=None, n_models=10, epochs=20),
    # The paper's setting (Jiang et al. 2024 §5): 20 ResNet18 on all of CIFAR-10, SGD momentum 0.9,
    # lr 0.1 cosine, weight decay 1e-4, batch 100, no augmentation. Epochs are not in the paper:
    # 30 reach ~zero training error without augmentation. Meant for a GPU.
    "paper": TrainConfig(data=DataConfig(name="cifar10", n_train=None, n_test=None), arch="resnet18",
                         width=None, n_models=20, epochs=30),
}


def get_profile(name: str, /, **overrides: Any) -> TrainConfig:
    """The named profile's config, with ``overrides`` applied (see :meth:`TrainConfig.replace`).

    Examples
    --------
    >>> get_profile("cpu", n_models=4).n_models
    4
    """
    if not isinstance(name, str) or name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {tuple(PROFILES)}")
    return PROFILES[name].replace(**overrides) if overrides else PROFILES[name]


def model_seeds(config: TrainConfig, m: int) -> dict[str, int]:
    """The seeds model ``m`` of ``config`` uses: ``init``, ``order`` and ``subset`` (data).

    Examples
    --------
    >>> model_seeds(get_profile("tiny", mode="difforder"), 2)
    {'seed': 2, 'init': 0, 'order': 2, 'subset': 0}
    """
    m = check_int(m, "m", minimum=0, remedy="m is a model's index in the ensemble")
    s = config.seed + m
    varies_init = config.mode in ("diffinit", "alldiff")
    varies_order = config.mode in ("difforder", "alldiff")
    varies_data = config.mode in ("diffdata", "alldiff")
    return {
        "seed": s,
        "init": s if varies_init else config.seed,
        "order": s if varies_order else config.seed,
        "subset": config.data.subset_seed + (m if varies_data else 0),
    }


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at ``step`` (0-based) of ``total_steps``: cosine from ``lr`` to 0, or constant."""
    total_steps = check_int(total_steps, "total_steps", minimum=1)
    step = check_int(step, "step", minimum=0, maximum=total_steps)
    if config.schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def _stream_seed(seed: int, tag: int) -> int:
    """Independent 63-bit seeds for the init and order streams of one integer seed."""
    return int(np.random.SeedSequence([seed, tag]).generate_state(1, np.uint64)[0] >> np.uint64(1))


_INIT, _ORDER = 1, 2


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------
_DATA_MEMO: dict[str, tuple[ImageSet, ImageSet]] = {}


def _base_data(config: TrainConfig) -> tuple[ImageSet, ImageSet]:
    """load_data(config.data), memoised per process (worker processes reuse it across seeds)."""
    key = config_key(config.data)
    if key not in _DATA_MEMO:
        _DATA_MEMO.clear()  # keep at most one data set in memory
        _DATA_MEMO[key] = load_data(config.data)
    return _DATA_MEMO[key]


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
# One seed
# ------------------------------------------------------------------------------------------
def _resolve_device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for CUDA but torch.cuda.is_available() is False")
    return dev


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


# Conv nets that train channels-last on the CPU too: small_cnn is 1.3-1.8x faster per step
# there (benchmarks/bench_channels_last.py) and has no strided 1x1 convolution (see below).
_CPU_CHANNELS_LAST = ("small_cnn",)


def _memory_format(device: torch.device, arch: str) -> torch.memory_format:
    """The memory format ``arch`` trains in on ``device`` (model and data).

    Channels-last is a GPU optimisation (tensor cores): every conv net uses it on CUDA. On the
    CPU, oneDNN (torch 2.14.1, oneDNN 3.12) corrupts the heap in the backward pass of the
    ResNets' strided 1x1 shortcut convolutions with 2..7 input channels on its AVX2 code path,
    i.e. on any AVX2-only x86 CPU (issue 12). There only ``_CPU_CHANNELS_LAST`` use it:
    measured faster, and free of crashes and heap errors (glibc's malloc checks) at widths
    1..8, 12, 16 and 32 under every oneDNN ISA cap from SSE4.1 to AVX-512; the ResNets and
    the MLP train in the standard (NCHW) layout.
    """
    if is_conv(arch) and (device.type == "cuda" or (device.type == "cpu" and arch in _CPU_CHANNELS_LAST)):
        return torch.channels_last
    return torch.contiguous_format


def _to_device(x: torch.Tensor, device: torch.device, memory_format: torch.memory_format) -> torch.Tensor:
    x = x.to(device)
    if x.dim() == 4:
        x = x.contiguous(memory_format=memory_format)
    return x


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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


def _epoch_orders(config: TrainConfig, n: int, order_seed: int) -> Iterator[torch.Tensor]:
    """The data order of each epoch: one CPU generator per model, drawn epoch after epoch."""
    gen = torch.Generator().manual_seed(_stream_seed(order_seed, _ORDER))
    for _ in range(config.epochs):
        yield torch.randperm(n, generator=gen)


def _checkpoint_path(directory: Path, seed: int) -> Path:
    return Path(directory) / f"seed_{seed:05d}.pt"


def _claim_path(directory: Path, seed: int) -> Path:
    return Path(directory) / f".seed_{seed:05d}.claim"


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


def _train_one(config: TrainConfig, m: int, directory: Path, *, device: torch.device | str = "cpu",
               backend: str = "sequential", progress: bool = False, position: int = 1,
               train: ImageSet | None = None) -> dict[str, Any]:
    """Train model ``m`` of ``config``, write its checkpoint, return its metrics.

    Also the body of each ``processes`` worker, so both backends run identical code.
    ``train`` is model m's training set when the caller has it already.
    """
    device = torch.device(device)
    seeds = model_seeds(config, m)
    train = _model_train_set(config, m) if train is None else train
    _, test = _base_data(config)
    fmt = _memory_format(device, config.arch)
    t0 = time.perf_counter()
    with _reproducible(device):
        model = _new_model(config, train, seeds["init"]).to(device, memory_format=fmt)
        x, y = _to_device(train.x, device, fmt), train.y.to(device)  # data stays on the device
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
        n = len(y)
        steps_per_epoch = math.ceil(n / config.batch_size)
        total = config.epochs * steps_per_epoch
        step = 0
        losses: list[float] = []
        bar = tqdm(total=config.epochs, desc=f"seed {seeds['seed']}", leave=False, position=position,
                   disable=not progress)
        for epoch, perm in enumerate(_epoch_orders(config, n, seeds["order"])):
            model.train()
            perm = perm.to(device)
            loss_sum = torch.zeros((), device=device)
            for i in range(steps_per_epoch):
                idx = perm[i * config.batch_size:(i + 1) * config.batch_size]
                for group in opt.param_groups:
                    group["lr"] = lr_at(config, step, total)
                opt.zero_grad(set_to_none=True)
                with _autocast(device):
                    out = model(x[idx])
                loss = F.cross_entropy(out.float(), y[idx])
                loss.backward()
                opt.step()
                loss_sum += loss.detach()
                step += 1
            mean_loss = float(loss_sum) / steps_per_epoch  # one device sync per epoch
            if not math.isfinite(mean_loss):
                bar.close()
                raise FloatingPointError(
                    f"training diverged: mean loss {mean_loss} in epoch {epoch} of seed {seeds['seed']} "
                    f"(arch={config.arch}, lr={config.lr}); lower lr")
            losses.append(mean_loss)
            bar.set_postfix(loss=f"{mean_loss:.3f}")
            bar.update()
        bar.close()
        metrics = {
            "seed": seeds["seed"], "index": m, "init_seed": seeds["init"], "order_seed": seeds["order"],
            "subset_seed": seeds["subset"],
            "train_accuracy": _accuracy(model, x, y),
            "test_accuracy": _accuracy(model, test.x.to(device), test.y.to(device)),
            "loss_history": losses, "train_indices": train.indices.tolist(),
            "device": str(device), "backend": backend, "wall_s": time.perf_counter() - t0,
            "torch_version": str(torch.__version__),
        }
    _save_checkpoint(_checkpoint_path(directory, seeds["seed"]), model, metrics,
                     _checkpoint_identity(config, device.type, seeds["seed"]))
    return {k: v for k, v in metrics.items() if k not in ("loss_history", "train_indices")}


def _train_if_missing(config: TrainConfig, m: int, directory: Path, **kwargs: Any) -> bool:
    """Train model m unless a sound checkpoint of it appeared meanwhile (another run of the same
    config finished it: both would write bit-identical files, so skipping only saves the work)."""
    device_type = torch.device(kwargs.get("device", "cpu")).type
    if _checkpoint_problem(directory, config, m, device_type) is None:
        return False
    _train_one(config, m, directory, **kwargs)
    return True


def _worker_init(data_key: str, data: tuple[ImageSet, ImageSet], gpu_slots: Any = None,
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
    _DATA_MEMO.clear()
    _DATA_MEMO[data_key] = data
    if gpu_slots is not None:
        index = gpu_slots.get()
        torch.cuda.set_device(index)
        _WORKER_DEVICE = f"cuda:{index}"


_WORKER_DEVICE = "cpu"  # the device of a ``processes`` worker, set by _worker_init


def _train_in_worker(config: TrainConfig, m: int, directory: Path, train: ImageSet | None) -> bool:
    """A ``processes`` task: model m on this worker's device."""
    return _train_if_missing(config, m, directory, device=_WORKER_DEVICE, backend="processes", train=train)


def _gpu_slots(gpus: list[int], seeds_per_gpu: int) -> list[int]:
    """GPU index of each worker, round-robin, so a smaller pool still spreads over the GPUs."""
    return [g for _ in range(seeds_per_gpu) for g in gpus]


# ------------------------------------------------------------------------------------------
# Backends
# ------------------------------------------------------------------------------------------
def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _choose_backend(config: TrainConfig, device: torch.device, n_missing: int, n_workers: int) -> str:
    if device.type == "cuda":
        return "sequential"
    if config.arch == "mlp":
        return "vmap"
    if n_workers > 1 and n_missing > 1:
        return "processes"
    return "sequential"


def _run_sequential(config, missing, directory, device, progress, bar) -> int:
    trained = 0
    for m in missing:
        trained += _train_if_missing(config, m, directory, device=device, backend="sequential",
                                     progress=progress)
        bar.update()
    return trained


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


def _train_claimed(config: TrainConfig, missing: list[int], directory: Path, device_type: str,
                   claims: locks.Claims, bar: Any, train_some: Any, *, one_at_a_time: bool) -> int:
    """Train ``missing`` with ``train_some(ms) -> n trained`` on the seeds this run can claim
    (one at a time, or all it can get), then wait for the seeds other runs hold; a seed whose
    owner dies is taken over. Returns how many this run trained."""
    pending, trained = list(missing), 0
    while pending:
        mine: list[int] = []
        held: list[int] = []
        for m in pending:
            if one_at_a_time and mine:
                held.append(m)
                continue
            got = _claim_seed(claims, config, m, directory, device_type)
            if got is None:
                bar.update()  # trained by another run meanwhile
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


def _run_processes(config, missing, directory, device, n_workers, bar, seeds_per_gpu=None,
                   n_workers_given=False, claims: locks.Claims | None = None) -> int:
    """One spawn worker per seed, ``size`` at a time; each seed is claimed when a worker is free
    for it (``claims``), so a concurrent run of the config trains the others."""
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
        order = _gpu_slots(gpus, seeds_per_gpu or 1)
        size = min(len(order), len(missing), n_workers if n_workers_given else len(order))
        slots = ctx.Queue()
        for g in order[:size]:
            slots.put(g)
    else:
        size = min(n_workers, len(missing))
    own_claims = claims is None
    claims = locks.Claims() if own_claims else claims
    pending, running, trained = list(missing), {}, 0
    # The workers die with this process (parent_pid): a killed run leaves nothing training.
    with contextlib.ExitStack() as stack:
        if own_claims:
            stack.enter_context(claims)
        pool = stack.enter_context(ProcessPoolExecutor(
            max_workers=size, mp_context=ctx, initializer=_worker_init,
            initargs=(config_key(config.data), base, slots, os.getpid())))
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
                                            None if own is base[0] else own)] = m
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
            raise
    return trained


def _run_vmap(config, missing, directory, device, progress, bar) -> int:
    """Train the ``missing`` models as one stacked model under torch.func.vmap."""
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
                for group in opt.param_groups:
                    group["lr"] = lr_at(config, step, total)
                opt.zero_grad(set_to_none=True)
                with _autocast(device):
                    per_model = batched(params, buffers, xb, yb)
                # Sum: each model's gradient is that of its own mean batch loss.
                per_model.sum().backward()
                opt.step()
                loss_sum += per_model.detach()
                step += 1
            mean = (loss_sum / steps_per_epoch).tolist()
            bad = [sd["seed"] for sd, v in zip(seeds, mean) if not math.isfinite(v)]
            if bad:
                ebar.close()
                raise FloatingPointError(f"training diverged in epoch {epoch} for seeds {bad} "
                                         f"(arch={config.arch}, lr={config.lr}); lower lr")
            for l, v in zip(losses, mean):
                l.append(v)
            ebar.update()
        ebar.close()
        xt, yt = test.x.to(device), test.y.to(device)
        wall = time.perf_counter() - t0
        for j, (mod, s, sd) in enumerate(zip(models, sets, seeds)):
            mod.load_state_dict({k: v[j].detach() for k, v in (params | buffers).items()})
            metrics = {
                "seed": sd["seed"], "index": missing[j], "init_seed": sd["init"], "order_seed": sd["order"],
                "subset_seed": sd["subset"],
                "train_accuracy": _accuracy(mod, xs[j], ys[j]),
                "test_accuracy": _accuracy(mod, xt, yt),
                "loss_history": losses[j], "train_indices": s.indices.tolist(),
                "device": str(device), "backend": "vmap", "wall_s": wall / len(missing),
                "torch_version": str(torch.__version__),
            }
            _save_checkpoint(_checkpoint_path(directory, sd["seed"]), mod, metrics,
                             _checkpoint_identity(config, device.type, sd["seed"]))
            bar.update()
    return len(missing)


# ------------------------------------------------------------------------------------------
# The ensemble
# ------------------------------------------------------------------------------------------
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


# Bump when a change to the models or the training loop makes old checkpoints differ.
_CACHE_VERSION = 1
# DataConfig fields that only matter when a sub-population is asked for.
_SUBPOPULATION_FIELDS = ("subpopulation_per_class", "subpopulation_transform", "subpopulation_seed")


def _device_type(device: Any) -> str:
    """The device type a seed trains on, for the cache key: ``device`` as train_ensemble resolves it."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(device).type
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be None, a device name or a torch.device, got {device!r}") from None


def _identity(config: TrainConfig, device_type: str = "cpu") -> dict[str, Any]:
    """What a seed's checkpoint depends on: the config without n_models, plus the width an
    unset ``width`` resolves to and the code's cache version (so changed defaults never
    load stale checkpoints).

    Fields that do not change the result are left out, so keys made before they existed
    stay valid: the sub-population fields when ``subpopulation_per_class`` is 0, and the
    device type when it is ``"cpu"`` (GPU runs use bf16 and differ from CPU runs, so they
    get their own entry), and the memory format of conv nets while it is channels-last, in
    which every conv net trained before issue 12 (the ResNets on the CPU, now in the standard
    layout, get their own entries)."""
    ident = to_jsonable(config)
    ident.pop("n_models")
    if not config.data.subpopulation_per_class:
        for name in _SUBPOPULATION_FIELDS:
            ident["data"].pop(name)
    ident["resolved_width"] = config.width if config.width is not None else DEFAULT_WIDTHS[config.arch]
    ident["cache_version"] = _CACHE_VERSION
    if device_type != "cpu":
        ident["device_type"] = device_type
    if is_conv(config.arch) and _memory_format(torch.device(device_type), config.arch) != torch.channels_last:
        ident["memory_format"] = "contiguous"  # keys without it were trained channels-last (issue 12)
    return ident


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
        How the missing seeds are trained (see the module docstring).
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
        ``ship_data``, ``runtime_env``; see :func:`ift_core.distributed.run_ray`.

    Returns
    -------
    Ensemble

    Examples
    --------
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
    if n_workers is not None and (not _is_int(n_workers) or n_workers < 1):
        raise ValueError(f"n_workers must be None or an integer >= 1, got {n_workers!r}")
    if seeds_per_gpu is not None:
        if not _is_int(seeds_per_gpu) or seeds_per_gpu < 1:
            raise ValueError(f"seeds_per_gpu must be None or an integer >= 1, got {seeds_per_gpu!r}")
        if backend != "processes":
            raise ValueError(f"seeds_per_gpu needs backend='processes', got backend={backend!r} "
                             "(with 'ray', ask for a GPU fraction: ray_resources={'num_gpus': 0.25})")
    if backend != "ray" and (ray_address is not None or ray_resources is not None):
        raise ValueError(f"ray_address and ray_resources need backend='ray', got backend={backend!r}")
    if backend == "ray":
        from .distributed import _task_device, resource_options
        ray_options = resource_options(ray_resources)  # checked before any training
        dev = None  # the workers' device, decided there: this process may have no GPU
        device_type = _task_device(device, float(ray_options.get("num_gpus", 0.0)))
    else:
        dev = _resolve_device(device)
        device_type = dev.type
    if seeds_per_gpu is not None and dev.type != "cuda":
        raise ValueError(f"seeds_per_gpu shares a GPU between seeds; the device is {str(dev)!r}, not CUDA")
    n_workers_given = n_workers is not None
    n_workers = n_workers or _usable_cores()
    if cache:
        directory = entry_dir("ensembles", _identity(config, device_type))
    else:
        locks.remove_stale_temporaries("ift-ensemble-*")  # left by killed runs
        directory = locks.owned_tempdir("ift-ensemble-")
    # What killed runs left: half-written files, claims of dead owners.
    locks.remove_stale_temporaries(".seed_*", dir=directory)
    locks.remove_stale_claims(directory, ".seed_*.claim")
    missing = []
    for m in range(config.n_models):
        problem = _checkpoint_problem(directory, config, m, device_type)
        if problem is not None:
            missing.append(m)
            if problem != "missing":
                warnings.warn(f"checkpoint of seed {config.seed + m} is not used and is retrained: {problem}",
                              stacklevel=2)
    if missing:
        chosen = _choose_backend(config, dev, len(missing), n_workers) if backend == "auto" else backend
        bar = tqdm(total=config.n_models, initial=config.n_models - len(missing),
                   desc=f"{config.arch} x{config.n_models} ({chosen})", disable=not progress)
        try:
            with locks.Claims(message=bar.write if progress else None) as claims:
                if chosen == "processes":
                    trained = _run_processes(config, missing, directory, dev, n_workers, bar, seeds_per_gpu,
                                             n_workers_given, claims)
                else:
                    if chosen == "sequential":
                        def train_some(ms):
                            return _run_sequential(config, ms, directory, dev, progress, bar)
                    elif chosen == "ray":
                        from .distributed import run_ray

                        def train_some(ms):
                            return len(run_ray(config, ms, directory, device=device, address=ray_address,
                                               progress=progress, bar=bar, **ray_options))
                    else:
                        def train_some(ms):
                            return _run_vmap(config, ms, directory, dev, progress, bar)
                    trained = _train_claimed(config, missing, directory, device_type, claims, bar, train_some,
                                             one_at_a_time=chosen == "sequential")
        finally:
            bar.close()
    else:
        trained = 0
    ens = _load_ensemble(config, directory, (device_type,))
    ens.n_trained = trained
    if not cache:  # the scratch folder lives as long as the Ensemble (or the interpreter)
        weakref.finalize(ens, shutil.rmtree, directory, ignore_errors=True)
    return ens
