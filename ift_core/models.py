"""Architectures for seed ensembles, each exposing its penultimate features.

Every model built here has two named submodules that the rest of the package
relies on:

``penultimate``
    an :class:`torch.nn.Identity` applied to the ``(N, D)`` penultimate features
    (for the CIFAR ResNet18, the 512-d global-average-pool output). A forward
    hook on it reads the activations the interaction tensor is built from; see
    :func:`ift_core.activations.extract_activations`.
``classifier``
    the final :class:`torch.nn.Linear` mapping the ``D`` features to logits.

Architectures (``width`` scales channels or hidden units; ``None`` = default):

=================  ==============================================  ============  =====
name               what                                            width default  D
=================  ==============================================  ============  =====
``resnet18``       the paper's ResNet18, CIFAR form: torchvision's  64            8*w
                   BasicBlock stages with a 3x3 stride-1 stem and
                   no max-pool (He et al. 2016; Jiang et al. 2024)
``small_resnet``   3 stages of one BasicBlock each (w, 2w, 4w)      16            4*w
``small_cnn``      conv(w)-pool-conv(2w)-pool-fc(8w), ReLU          16            8*w
``mlp``            flatten-fc(w)-fc(w), ReLU                       128           w
=================  ==============================================  ============  =====

Only the ResNets use batch norm; ``small_cnn`` and ``mlp`` have no buffers.

Each architecture is one entry of ``_REGISTRY`` (builder, default width, penultimate
dimension, whether it is convolutional); adding one is adding an entry. torch is imported
when a model is first built, not with this module, so configs and profiles
(:mod:`ift_core.train.config`) can name and check architectures without it.

Examples
--------
>>> ARCHITECTURES
('resnet18', 'small_resnet', 'small_cnn', 'mlp')
>>> feature_dim("small_resnet", 8), is_conv("mlp")
(32, False)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .internal import check_int, check_memory

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ARCHITECTURES", "PENULTIMATE_LAYER", "DEFAULT_WIDTHS", "build_model", "feature_dim", "is_conv"]

PENULTIMATE_LAYER = "penultimate"


@functools.cache
def _cifar_resnet_class() -> type:
    """The CIFAR ResNet class, defined on first use: importing torchvision costs ~1.5 s
    (it pulls in torch._dynamo), which every ``processes`` worker would pay for nothing."""
    import torch
    from torch import nn
    from torchvision.models import resnet as _tv_resnet

    class CifarResNet(_tv_resnet.ResNet):
        """torchvision's ResNet with the CIFAR stem: 3x3 stride-1 conv, no max-pool.

        Built from torchvision's own ``BasicBlock`` and ``ResNet._make_layer`` so the
        residual stages, their initialisation and their state-dict names are
        torchvision's; only the stem, the stage widths and the head differ.
        ``layers=(2, 2, 2, 2)`` with ``width=64`` is the paper's ResNet18.
        """

        def __init__(self, layers: tuple[int, ...], *, width: int, in_channels: int, n_classes: int) -> None:
            nn.Module.__init__(self)  # torchvision's __init__ hard-codes 4 stages of 64..512 channels
            self._norm_layer = nn.BatchNorm2d
            self.inplanes = width
            self.dilation = 1
            self.groups = 1
            self.base_width = 64  # BasicBlock insists on 64; the block width is `planes`
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity()
            stages = []
            for i, n_blocks in enumerate(layers):
                stage = self._make_layer(_tv_resnet.BasicBlock, width * 2**i, n_blocks, stride=1 if i == 0 else 2)
                stages.append(stage)
            self.layers = len(layers)
            for i, stage in enumerate(stages):
                setattr(self, f"layer{i + 1}", stage)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.penultimate = nn.Identity()
            self.classifier = nn.Linear(width * 2 ** (len(layers) - 1), n_classes)
            # torchvision's initialisation (its __init__ loop, zero_init_residual=False).
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
            x = self.relu(self.bn1(self.conv1(x)))
            for i in range(self.layers):
                x = getattr(self, f"layer{i + 1}")(x)
            x = torch.flatten(self.avgpool(x), 1)
            return self.classifier(self.penultimate(x))

    return CifarResNet


@functools.cache
def _small_net_classes() -> tuple[type, type]:
    """``(SmallCNN, MLP)``, defined on first use so that importing this module needs no torch."""
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        """Two 3x3 conv layers with 2x2 max-pooling, then one hidden fully connected layer."""

        def __init__(self, *, width: int, in_channels: int, n_classes: int, image_size: int) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            side = image_size // 4
            # A wide hidden layer is cheap next to the convolutions and lets the net fit its
            # training set fast (the GDE regime), with a 128-d penultimate layer at the default width.
            self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * side * side, 8 * width),
                                    nn.ReLU(inplace=True))
            self.penultimate = nn.Identity()
            self.classifier = nn.Linear(8 * width, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
            return self.classifier(self.penultimate(self.fc(self.features(x))))

    class MLP(nn.Module):
        """Flatten, then two hidden ReLU layers of ``width`` units."""

        def __init__(self, *, width: int, in_features: int, n_classes: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Flatten(),
                nn.Linear(in_features, width),
                nn.ReLU(),
                nn.Linear(width, width),
                nn.ReLU(),
            )
            self.penultimate = nn.Identity()
            self.classifier = nn.Linear(width, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
            return self.classifier(self.penultimate(self.body(x)))

    return SmallCNN, MLP


def _resnet(layers: tuple[int, ...]) -> Callable[..., Any]:
    def build(width: int, in_channels: int, n_classes: int, image_size: int) -> nn.Module:
        return _cifar_resnet_class()(layers, width=width, in_channels=in_channels, n_classes=n_classes)
    return build


def _small_cnn(width: int, in_channels: int, n_classes: int, image_size: int) -> nn.Module:
    return _small_net_classes()[0](width=width, in_channels=in_channels, n_classes=n_classes, image_size=image_size)


def _mlp(width: int, in_channels: int, n_classes: int, image_size: int) -> nn.Module:
    return _small_net_classes()[1](width=width, in_features=in_channels * image_size * image_size,
                                   n_classes=n_classes)


@dataclass(frozen=True)
class _Architecture:
    """One architecture: everything the package needs to know about it."""

    build: Callable[[int, int, int, int], Any]  # (width, in_channels, n_classes, image_size) -> untrained model
    default_width: int
    features_per_width: int  # penultimate dimension D = features_per_width * width
    conv: bool               # convolutional: trains channels-last where that is safe (ift_core.train)
    min_image_size: int = 1  # smallest input side the architecture takes


_REGISTRY: dict[str, _Architecture] = {
    "resnet18": _Architecture(_resnet((2, 2, 2, 2)), default_width=64, features_per_width=8, conv=True),
    "small_resnet": _Architecture(_resnet((1, 1, 1)), default_width=16, features_per_width=4, conv=True),
    "small_cnn": _Architecture(_small_cnn, default_width=16, features_per_width=8, conv=True,
                               min_image_size=4),  # two 2x2 poolings
    "mlp": _Architecture(_mlp, default_width=128, features_per_width=1, conv=False),
}

ARCHITECTURES = tuple(_REGISTRY)
DEFAULT_WIDTHS = {name: a.default_width for name, a in _REGISTRY.items()}


def _architecture(arch: Any) -> _Architecture:
    if not isinstance(arch, str) or arch not in _REGISTRY:
        raise ValueError(f"unknown arch {arch!r}; choose one of {ARCHITECTURES}")
    return _REGISTRY[arch]


def _width(arch: str, width: Any) -> int:
    return _architecture(arch).default_width if width is None else check_int(width, "width", minimum=1)


def is_conv(arch: str) -> bool:
    """Whether ``arch`` is a convolutional net (channels-last helps it on a GPU).

    Examples
    --------
    >>> is_conv("small_cnn")
    True
    """
    return _architecture(arch).conv


def feature_dim(arch: str, width: int | None = None) -> int:
    """The penultimate dimension ``D`` of ``arch`` at ``width``.

    Examples
    --------
    >>> feature_dim("resnet18")
    512
    >>> feature_dim("small_cnn", 16)
    128
    """
    return _architecture(arch).features_per_width * _width(arch, width)


def build_model(
    arch: str, *, in_channels: int, n_classes: int, image_size: int, width: int | None = None
) -> nn.Module:
    """Build an untrained model whose penultimate features are the module ``penultimate``.

    Parameters
    ----------
    arch : str
        One of :data:`ARCHITECTURES`.
    in_channels : int
        Image channels (1 for Fashion-MNIST and digits, 3 for CIFAR-10).
    n_classes : int
        Number of classes (>= 2).
    image_size : int
        Height = width of the (square) input images.
    width : int, optional
        Channel / hidden-unit scale; ``None`` uses :data:`DEFAULT_WIDTHS`.

    Returns
    -------
    torch.nn.Module
        Initialised with torch's global RNG (seed it first for reproducibility).

    Examples
    --------
    >>> import torch
    >>> m = build_model("resnet18", in_channels=3, n_classes=10, image_size=32)
    >>> m(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> type(m.penultimate).__name__, m.classifier.in_features
    ('Identity', 512)
    """
    spec = _architecture(arch)
    in_channels = check_int(in_channels, "in_channels", minimum=1)
    n_classes = check_int(n_classes, "n_classes", minimum=1)
    image_size = check_int(image_size, "image_size", minimum=1)
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    w = _width(arch, width)
    if image_size < spec.min_image_size:
        raise ValueError(f"{arch} needs image_size >= {spec.min_image_size}, got {image_size}")
    import torch

    # Count the parameters on the meta device (no memory) before allocating them.
    with torch.device("meta"):
        n_params = sum(p.numel() for p in _build(arch, w, in_channels, n_classes, image_size).parameters())
    check_memory(4.0 * n_params, f"build_model({arch!r}, width={w}, in_channels={in_channels}, "
                 f"image_size={image_size}, n_classes={n_classes}) with {n_params:,} float32 parameters",
                 remedy="lower width (or image_size for small_cnn and mlp)")
    return _build(arch, w, in_channels, n_classes, image_size)


def _build(arch: str, w: int, in_channels: int, n_classes: int, image_size: int) -> nn.Module:
    """The model, arguments already checked (no memory check)."""
    return _REGISTRY[arch].build(w, in_channels, n_classes, image_size)
