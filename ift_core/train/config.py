"""What an ensemble is: :class:`TrainConfig`, the randomness modes, the named profiles, the seeds
and learning rate of each step, and the cache identity a seed's checkpoint is filed under.

Plain data and arithmetic only: this module imports without torch, so scripts can read the
profile names (:data:`PROFILE_NAMES`) and build configs cheaply.

Examples
--------
>>> PROFILE_NAMES
('tiny', 'cpu', 'paper')
>>> get_profile("tiny").arch
'mlp'
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..data import DataConfig
from ..internal import check_int, check_real, to_jsonable
from ..models import ARCHITECTURES, DEFAULT_WIDTHS, is_conv

__all__ = ["MODES", "SCHEDULES", "TrainConfig", "PROFILES", "PROFILE_NAMES", "get_profile", "model_seeds",
           "lr_at"]

MODES = ("diffinit", "difforder", "diffdata", "alldiff")
SCHEDULES = ("cosine", "constant")
_DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataConfig))


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
        Which sources of randomness differ between models (see :mod:`ift_core.train`).
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
        if self.width is not None:
            check_int(self.width, "width", minimum=1, remedy="or None for the architecture's default")
        for name in ("n_models", "epochs", "batch_size"):
            check_int(getattr(self, name), name, minimum=1)
        check_int(self.seed, "seed", minimum=0)
        check_real(self.lr, "lr", minimum=0, open_low=True)
        check_real(self.momentum, "momentum", minimum=0, maximum=1, open_high=True)
        check_real(self.weight_decay, "weight_decay", minimum=0)
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
    # The book's default, as near the paper as 2 cores allow: the paper's M = 20 seeds and all
    # N = 10,000 test images of Fashion-MNIST; small CNNs on 5k training images (the paper: ResNet18
    # on all of CIFAR-10), trained to near-zero training error (the GDE regime). 20 seeds on 10k
    # training images would double the training time and take `make book` past its 20 minutes.
    "cpu": TrainConfig(data=DataConfig(name="fashion_mnist", n_train=5_000, n_test=10_000), arch="small_cnn",
                       width=None, n_models=20, epochs=20),
    # The paper's setting (Jiang et al. 2024 §5): 20 ResNet18 on all of CIFAR-10, SGD momentum 0.9,
    # lr 0.1 cosine, weight decay 1e-4, batch 100, no augmentation. Epochs are not in the paper:
    # 30 reach ~zero training error without augmentation. Meant for a GPU.
    "paper": TrainConfig(data=DataConfig(name="cifar10", n_train=None, n_test=None), arch="resnet18",
                         width=None, n_models=20, epochs=30),
}
PROFILE_NAMES = tuple(PROFILES)


def get_profile(name: str, /, **overrides: Any) -> TrainConfig:
    """The named profile's config, with ``overrides`` applied (see :meth:`TrainConfig.replace`).

    Examples
    --------
    >>> get_profile("cpu", n_models=4).n_models
    4
    """
    if not isinstance(name, str) or name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {PROFILE_NAMES}")
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
    """Learning rate at ``step`` (0-based) of ``total_steps``: cosine from ``lr`` to 0, or constant.

    Examples
    --------
    >>> lr_at(get_profile("tiny"), 50, 100)
    0.025
    """
    total_steps = check_int(total_steps, "total_steps", minimum=1)
    step = check_int(step, "step", minimum=0, maximum=total_steps)
    if config.schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


# ------------------------------------------------------------------------------------------
# The memory layout a conv net trains in, and the cache identity
# ------------------------------------------------------------------------------------------
# Conv nets that train channels-last on the CPU too: small_cnn is 1.3-1.8x faster per step
# there (benchmarks/bench_channels_last.py) and has no strided 1x1 convolution (see below).
_CPU_CHANNELS_LAST = ("small_cnn",)


def _trains_channels_last(device_type: str, arch: str) -> bool:
    """Whether ``arch`` trains in channels-last memory format on ``device_type`` (model and data).

    Channels-last is a GPU optimisation (tensor cores): every conv net uses it on CUDA. On the
    CPU, oneDNN (torch 2.14.1, oneDNN 3.12) corrupts the heap in the backward pass of the
    ResNets' strided 1x1 shortcut convolutions with 2..7 input channels on its AVX2 code path,
    i.e. on any AVX2-only x86 CPU. There only ``_CPU_CHANNELS_LAST`` use it: measured faster,
    and free of crashes and heap errors (glibc's malloc checks) at widths 1..8, 12, 16 and 32
    under every oneDNN ISA cap from SSE4.1 to AVX-512; the ResNets and the MLP train in the
    standard (NCHW) layout.
    """
    return is_conv(arch) and (device_type == "cuda" or (device_type == "cpu" and arch in _CPU_CHANNELS_LAST))


# Bump when a change to the models or the training loop makes old checkpoints differ.
_CACHE_VERSION = 1
# DataConfig fields that only matter when a sub-population is asked for.
_SUBPOPULATION_FIELDS = ("subpopulation_per_class", "subpopulation_transform", "subpopulation_seed")


def _identity(config: TrainConfig, device_type: str = "cpu") -> dict[str, Any]:
    """What a seed's checkpoint depends on, and so the ensemble's cache key: the config without
    n_models (model m depends only on the rest and on its seed, so a larger ensemble reuses
    a smaller one's seeds), plus the width an unset ``width`` resolves to and the code's cache
    version (so changed defaults never load stale checkpoints).

    Fields that do not change the result are left out, so keys made before they existed
    stay valid: the sub-population fields when ``subpopulation_per_class`` is 0; the device
    type when it is ``"cpu"`` (GPU runs use bf16 and differ from CPU runs, so they get their
    own entry); and the memory format of conv nets while it is channels-last, the layout every
    conv net trained in before the ResNets moved to the standard layout on the CPU (those get
    their own entries)."""
    ident = to_jsonable(config)
    ident.pop("n_models")
    if not config.data.subpopulation_per_class:
        for name in _SUBPOPULATION_FIELDS:
            ident["data"].pop(name)
    ident["resolved_width"] = config.width if config.width is not None else DEFAULT_WIDTHS[config.arch]
    ident["cache_version"] = _CACHE_VERSION
    if device_type != "cpu":
        ident["device_type"] = device_type
    if is_conv(config.arch) and not _trains_channels_last(device_type, config.arch):
        ident["memory_format"] = "contiguous"  # keys without it were trained channels-last
    return ident
