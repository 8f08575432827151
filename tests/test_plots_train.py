"""Figures of ift_core.plots.train: the image grid and the training curves."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ift_core.data import as_images, load_split
from ift_core.plots import train as pt
from ift_core.train import get_profile, train_ensemble

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_image_grid_shows_each_image_with_its_class():
    ds = load_split("digits", "test")
    pos = np.arange(11)
    images = as_images(ds, pos)
    fig = pt.image_grid(images, ds.y[pos].numpy(), ds.classes, cols=4, title="digits")
    assert len(fig.axes) == 11  # 3 rows of 4, the last cell removed
    for ax, p in zip(fig.axes, pos):
        assert ax.get_title() == ds.classes[int(ds.y[p])]
        np.testing.assert_allclose(ax.images[0].get_array(), images[list(pos).index(p)][..., 0])
    assert fig._suptitle.get_text() == "digits"
    rgb = pt.image_grid(np.random.default_rng(0).random((2, 4, 4, 3)), [0, 1], ["a", "b"])
    assert rgb.axes[0].images[0].get_array().shape == (4, 4, 3)


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((2, 4, 4, 2)), [0, 1], "shape"),
    (np.zeros((0, 4, 4, 1)), [], "shape"),
    (np.full((1, 4, 4, 1), np.nan), [0], "NaN"),
    (np.zeros((2, 4, 4, 1)), [0], "labels"),
    (np.zeros((2, 4, 4, 1)), [0, 5], "labels"),
])
def test_image_grid_rejects_bad_input(images, labels, match):
    with pytest.raises(ValueError, match=match):
        pt.image_grid(images, np.asarray(labels, dtype=np.int64), ["a", "b"])


def test_training_curves_one_line_per_seed():
    ens = train_ensemble(get_profile("tiny", n_models=3, epochs=4), backend="sequential", progress=False)
    metrics = ens.metrics()
    fig = pt.training_curves(metrics)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 and ax.get_yscale() == "log"
    got = sorted(tuple(np.round(line.get_ydata(), 6)) for line in ax.lines)
    want = sorted(tuple(np.round(m["loss_history"], 6)) for m in metrics)
    assert got == want
    assert all(list(line.get_xdata()) == [1, 2, 3, 4] for line in ax.lines)
    _, own = plt.subplots()
    assert pt.training_curves(metrics, ax=own, log_scale=False) is own.figure and own.get_yscale() == "linear"
    for bad in ([], [{"seed": 0}], [{"seed": 0, "loss_history": [float("nan")]}]):
        with pytest.raises(ValueError):
            pt.training_curves(bad)
