"""Figures for :mod:`ift_core.train`: sample training images and the seeds' training curves."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ift_core.internal import check_bool

from ift_core.plots.style import book_figure, use_book_style

use_book_style()

__all__ = ["image_grid", "training_curves"]


@book_figure
def image_grid(images: Any, labels: Sequence[int] | np.ndarray, class_names: Sequence[str], *,
               cols: int = 8, title: str | None = None, cell_size: float = 1.1) -> Figure:
    """A grid of images, each titled with its class name.

    Parameters
    ----------
    images : array-like
        ``(N, H, W, C)`` floats in [0, 1] with ``C`` 1 or 3 (as :func:`ift_core.data.as_images`
        returns them), or ``(N, H, W)`` grey images.
    labels : sequence of int
        ``(N,)`` class of each image, an index into ``class_names``.
    class_names : sequence of str
    cols : int
        Images per row.
    title : str, optional
        Figure title.
    cell_size : float
        Width of one cell in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per grid cell (unused cells are blank).

    Examples
    --------
    >>> from ift_core.data import as_images, load_split
    >>> ds = load_split("digits", "test")
    >>> fig = image_grid(as_images(ds, range(10)), ds.y[:10].numpy(), ds.classes, cols=5)
    >>> len(fig.axes)
    10
    """
    imgs = np.asarray(images, dtype=float)
    if imgs.ndim == 3:
        imgs = imgs[..., None]
    if imgs.ndim != 4 or imgs.shape[-1] not in (1, 3) or imgs.shape[0] == 0:
        raise ValueError(f"images must be (N, H, W, C) with N >= 1 and C in (1, 3), or (N, H, W); "
                         f"got shape {np.asarray(images).shape}")
    if not np.isfinite(imgs).all():
        raise ValueError("images contain NaN or infinite values")
    labels = np.asarray(labels)
    if labels.shape != (imgs.shape[0],):
        raise ValueError(f"labels must have shape ({imgs.shape[0]},), got {labels.shape}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() >= len(class_names)):
        raise ValueError(f"labels must be integers in [0, {len(class_names)}) (indices into class_names), "
                         f"got {labels.dtype} in [{labels.min()}, {labels.max()}]")
    if isinstance(cols, bool) or not isinstance(cols, (int, np.integer)) or cols < 1:
        raise ValueError(f"cols must be a positive integer, got {cols!r}")
    n = imgs.shape[0]
    cols = min(int(cols), n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell_size, rows * cell_size * 1.2), squeeze=False)
    grey = imgs.shape[-1] == 1
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            img = np.clip(imgs[i], 0.0, 1.0)
            ax.imshow(img[..., 0] if grey else img, cmap="gray_r" if grey else None, vmin=0.0, vmax=1.0)
            ax.set_title(str(class_names[int(labels[i])]), fontsize=7)
    for ax in axes.ravel()[n:]:
        fig.delaxes(ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@book_figure
def training_curves(metrics: Sequence[Mapping[str, Any]], *, log_scale: bool = True,
                    ax: plt.Axes | None = None) -> Figure:
    """Mean training loss per epoch, one line per seed.

    Parameters
    ----------
    metrics : sequence of dict
        :meth:`ift_core.train.Ensemble.metrics`: each needs ``"seed"`` and ``"loss_history"``.
    log_scale : bool
        Logarithmic loss axis (the loss falls by orders of magnitude towards zero training error).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = training_curves([{"seed": 0, "loss_history": [1.0, 0.5]}, {"seed": 1, "loss_history": [1.1, 0.4]}])
    >>> len(fig.axes[0].lines)
    2
    """
    log_scale = check_bool(log_scale, "log_scale")
    rows = []
    for i, m in enumerate(metrics):
        if not isinstance(m, Mapping) or "seed" not in m or "loss_history" not in m:
            raise ValueError(f"metrics[{i}] must be a dict with 'seed' and 'loss_history' "
                             "(as Ensemble.metrics() returns)")
        losses = np.asarray(m["loss_history"], dtype=float)
        if losses.ndim != 1 or losses.size == 0 or not np.isfinite(losses).all():
            raise ValueError(f"metrics[{i}]['loss_history'] must be a non-empty list of finite numbers")
        rows += [{"seed": int(m["seed"]), "epoch": e + 1, "training loss": v} for e, v in enumerate(losses)]
    if not rows:
        raise ValueError("metrics is empty")
    curves = pd.DataFrame(rows)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    n_seeds = curves["seed"].nunique()
    sns.lineplot(data=curves, x="epoch", y="training loss", hue="seed", palette="viridis", ax=ax, legend=False)
    if log_scale and (curves["training loss"] > 0).all():
        ax.set_yscale("log")
    ax.set_title(f"Training loss of the {n_seeds} seeds (one line each)")
    return fig
