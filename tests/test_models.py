"""Architectures: shapes, the penultimate/classifier contract, torchvision's ResNet18, bad input."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from ift_core import models
from ift_core.models import ARCHITECTURES, DEFAULT_WIDTHS, PENULTIMATE_LAYER, build_model, feature_dim, is_conv

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("in_channels,image_size", [(1, 8), (1, 28), (3, 32)])
def test_shapes_and_named_layers(arch, in_channels, image_size):
    width = 8 if arch != "mlp" else 16  # small, the contract does not depend on size
    torch.manual_seed(0)
    model = build_model(arch, in_channels=in_channels, n_classes=7, image_size=image_size, width=width)
    seen = []
    model.get_submodule(PENULTIMATE_LAYER).register_forward_hook(lambda m, i, o: seen.append(o))
    model.eval()
    out = model(torch.randn(3, in_channels, image_size, image_size))
    assert out.shape == (3, 7)
    assert isinstance(model.penultimate, nn.Identity)
    assert isinstance(model.classifier, nn.Linear)
    assert seen[0].shape == (3, feature_dim(arch, width)) == (3, model.classifier.in_features)
    # The classifier is applied to exactly the penultimate features.
    assert torch.allclose(model.classifier(seen[0]), out)


def test_resnet18_is_torchvisions_with_cifar_stem():
    ours = build_model("resnet18", in_channels=3, n_classes=10, image_size=32)
    tv = torchvision.models.resnet18(num_classes=10)
    ours_sd, tv_sd = ours.state_dict(), tv.state_dict()
    body = [k for k in tv_sd if k.startswith(("layer", "bn1"))]
    assert body and all(ours_sd[k].shape == tv_sd[k].shape for k in body)
    assert set(ours_sd) - set(tv_sd) == {"classifier.weight", "classifier.bias"}
    assert set(tv_sd) - set(ours_sd) == {"fc.weight", "fc.bias"}
    assert ours.conv1.kernel_size == (3, 3) and ours.conv1.stride == (1, 1)
    assert isinstance(ours.maxpool, nn.Identity)
    assert all(type(b) is torchvision.models.resnet.BasicBlock for b in ours.layer1)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_tv = sum(p.numel() for p in tv.parameters())
    assert n_tv - n_ours == 64 * 3 * (7 * 7 - 3 * 3)  # only the stem kernel differs
    assert ours.classifier.in_features == 512
    # The CIFAR stem keeps 32x32 resolution through layer1 (torchvision's would be 8x8).
    feats = []
    ours.layer1.register_forward_hook(lambda m, i, o: feats.append(o))
    ours.eval()(torch.zeros(1, 3, 32, 32))
    assert feats[0].shape == (1, 64, 32, 32)


def test_resnet18_any_channels_and_width():
    m = build_model("resnet18", in_channels=1, n_classes=3, image_size=28, width=16)
    assert m.conv1.in_channels == 1 and m.conv1.out_channels == 16
    assert m.classifier.in_features == 128 == feature_dim("resnet18", 16)
    assert m.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_default_width_and_same_seed_same_init(arch):
    def make():
        torch.manual_seed(123)
        return build_model(arch, in_channels=1, n_classes=10, image_size=28)

    a, b = make(), make()
    assert a.classifier.in_features == feature_dim(arch) == feature_dim(arch, DEFAULT_WIDTHS[arch])
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    torch.manual_seed(124)
    c = build_model(arch, in_channels=1, n_classes=10, image_size=28)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_is_conv():
    assert [is_conv(a) for a in ARCHITECTURES] == [True, True, True, False]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(arch="vgg"), "unknown arch"),
        (dict(width=0), "width"),
        (dict(width=-3), "width"),
        (dict(width=2.5), "width"),
        (dict(width=True), "width"),
        (dict(in_channels=0), "in_channels"),
        (dict(n_classes=1), "n_classes"),
        (dict(n_classes=2.0), "n_classes"),
        (dict(image_size=0), "image_size"),
        (dict(arch="small_cnn", image_size=3), "image_size"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(arch="mlp", in_channels=1, n_classes=10, image_size=8, width=None) | kwargs
    arch = args.pop("arch")
    with pytest.raises(ValueError, match=match):
        build_model(arch, **args)


def test_bad_input_helpers():
    with pytest.raises(ValueError, match="unknown arch"):
        feature_dim("resnet50")
    with pytest.raises(ValueError, match="width"):
        feature_dim("mlp", 0)
    with pytest.raises(ValueError, match="unknown arch"):
        is_conv("vit")


def test_an_architecture_is_one_registry_entry(monkeypatch):
    """build_model, feature_dim, is_conv and the defaults all read the one entry."""
    assert ARCHITECTURES == tuple(models._REGISTRY)
    assert DEFAULT_WIDTHS == {a: models._REGISTRY[a].default_width for a in ARCHITECTURES}

    class Linear(nn.Module):
        def __init__(self, width, in_channels, n_classes, image_size):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, 2 * width))
            self.penultimate = nn.Identity()
            self.classifier = nn.Linear(2 * width, n_classes)

        def forward(self, x):
            return self.classifier(self.penultimate(self.body(x)))

    monkeypatch.setitem(models._REGISTRY, "linear", models._Architecture(
        Linear, default_width=5, features_per_width=2, conv=False, min_image_size=3))
    m = build_model("linear", in_channels=1, n_classes=4, image_size=6)
    assert m.classifier.in_features == feature_dim("linear") == 10 and feature_dim("linear", 7) == 14
    assert is_conv("linear") is False and m(torch.zeros(2, 1, 6, 6)).shape == (2, 4)
    with pytest.raises(ValueError, match="linear needs image_size >= 3"):
        build_model("linear", in_channels=1, n_classes=4, image_size=2)
