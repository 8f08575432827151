"""From files to the sets a model sees: whole splits as tensors, deterministic stratified subsets,
normalisation, and the loaders that take a :class:`~ift_core.data.DataConfig`.

Examples
--------
>>> from ift_core.data import DataConfig
>>> train, test = load_data(DataConfig(name="digits", n_train=500, n_test=200))
>>> train.x.shape, test.x.shape
(torch.Size([500, 1, 8, 8]), torch.Size([200, 1, 8, 8]))
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np
import torch

from ..internal import check_bool, check_int, check_real
from .containers import DataConfig, ImageSet, SubpopulationData, _check_positions, _stat_tensors
from .sources import _Raw, _check_name, _raw
from .subpopulations import add_subpopulation, make_subpopulation_data

__all__ = ["load_split", "subset", "normalize", "load_data", "load_subpopulation_data", "as_images"]


def _stratified_positions(labels: np.ndarray, n: int, *, seed: int, stratified: bool,
                          arg: str = "n", what: str = "the set") -> np.ndarray:
    """Sorted positions of a subset of size n; nested in n for a fixed seed."""
    n = check_int(n, arg)
    total = len(labels)
    if n <= 0:
        raise ValueError(f"{arg}={n} must be positive")
    if n > total:
        raise ValueError(f"{arg}={n} exceeds the {total} images available in {what}"
                         f"{'; pass ' + arg + '=None for all of them' if arg != 'n' else ''}")
    rng = np.random.default_rng(check_int(seed, "seed"))
    if not stratified:
        return np.sort(rng.permutation(total)[:n])
    classes, counts = np.unique(labels, return_counts=True)
    if n < len(classes):
        raise ValueError(f"{arg}={n} is smaller than the {len(classes)} classes; a stratified "
                         f"subset needs at least one image per class")
    # Largest-remainder allocation proportional to class frequency (exactly n/K per class when
    # the split is balanced); ties go to the lower class index.
    quota = n * counts / total
    alloc = np.floor(quota).astype(np.int64)
    rest = n - int(alloc.sum())
    order = np.lexsort((np.arange(len(classes)), -(quota - alloc)))
    alloc[order[:rest]] += 1
    picks = []
    for c, k in zip(classes, alloc):
        members = np.flatnonzero(labels == c)
        # One permutation per class, drawn whatever n is: subsets grow by extension.
        picks.append(members[rng.permutation(len(members))[:k]])
    return np.sort(np.concatenate(picks))


def _stats(pixels: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = pixels.to(torch.float64)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), unbiased=False)
    if (std <= 0).any():
        raise ValueError("a channel of the training subset is constant; cannot normalise (normalize=False)")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _make_set(raw: _Raw, positions: np.ndarray, name: str) -> ImageSet:
    x = torch.from_numpy(raw.images[positions].astype(np.float32)).div_(raw.max_value)
    c = x.shape[1]
    return ImageSet(x=x.contiguous(), y=torch.from_numpy(raw.labels[positions].copy()),
                    classes=raw.classes, name=name, indices=positions.astype(np.int64),
                    mean=(0.0,) * c, std=(1.0,) * c)


def load_split(name: str, split: str = "train", *, root: str | os.PathLike | None = None,
               download: bool = False) -> ImageSet:
    """A whole split with pixels in [0, 1] (not normalised).

    Parameters
    ----------
    name : {"fashion_mnist", "cifar10", "digits"}
    split : {"train", "test"}
    root : path, optional
        Data folder; default: search ``$IFT_DATA``, the Debian folder (Fashion-MNIST), ``./data``.
    download : bool
        Fetch the files with torchvision when they are not found (needs internet).

    Examples
    --------
    >>> load_split("digits", "train").x.shape
    torch.Size([1347, 1, 8, 8])
    """
    raw = _raw(name, split, root=root, download=check_bool(download, "download"))
    return _make_set(raw, np.arange(len(raw.labels)), name)


def subset(ds: ImageSet, n: int, *, seed: int, stratified: bool = True) -> ImageSet:
    """A deterministic (stratified) subset of ``n`` images, kept in their original order.

    Classes get images in proportion to their frequency (largest remainder), so a balanced
    set gives exactly ``n / n_classes`` per class. With a fixed seed, a smaller subset is
    contained in a larger one (per class).

    Examples
    --------
    >>> s = subset(load_split("digits", "test"), 100, seed=0)
    >>> len(s), int((s.y == 3).sum())
    (100, 10)
    """
    labels = ds.y.numpy()
    positions = _stratified_positions(labels, n, seed=seed, stratified=check_bool(stratified, "stratified"))
    return ds.take(positions)


def normalize(ds: ImageSet, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None) -> ImageSet:
    """Re-normalise ``ds`` with the given per-channel stats (default: its own pixel stats).

    Useful to evaluate a model on a set with the normalisation of the model's training subset.

    Examples
    --------
    >>> ds = normalize(load_split("digits", "train"))
    >>> abs(float(ds.x.mean())) < 1e-6
    True
    """
    pixels = ds.pixels()
    if mean is None and std is None:
        mean, std = _stats(pixels)
    elif mean is None or std is None:
        raise ValueError("pass both mean and std, or neither")
    stats = {}
    for name, values in (("mean", mean), ("std", std)):
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, torch.Tensor)):
            raise ValueError(f"{name} must be a sequence of {ds.in_channels} per-channel numbers, got {values!r}")
        try:
            stats[name] = tuple(check_real(float(v) if isinstance(v, torch.Tensor) else v, name,
                                           minimum=0 if name == "std" else None, open_low=True)
                                for v in values)
        except ValueError:
            raise ValueError(f"{name} must hold {ds.in_channels} finite per-channel numbers"
                             f"{' > 0' if name == 'std' else ''}, got {values!r}") from None
    mean, std = stats["mean"], stats["std"]
    if len(mean) != ds.in_channels or len(std) != ds.in_channels:
        raise ValueError(f"mean/std need {ds.in_channels} values, got {len(mean)}/{len(std)}")
    m, s = _stat_tensors(mean, std)
    return dataclasses.replace(ds, x=((pixels - m) / s).contiguous(), mean=mean, std=std,
                               y=ds.y.clone(), indices=ds.indices.copy())


def load_data(config: DataConfig) -> tuple[ImageSet, ImageSet]:
    """The training and test sets ``config`` describes.

    Stratified deterministic subsets (``n_train`` with ``subset_seed``, ``n_test`` with
    ``test_seed``) of the two splits, both normalised with the training subset's per-channel
    mean and std when ``config.normalize``. With ``subpopulation_per_class = r > 0`` the
    training set is the sub-population construction's (``r`` images per class transformed,
    :func:`ift_core.data.add_subpopulation`); the test set stays ordinary.

    Raises
    ------
    ValueError
        Unknown name, or a subset size that is not positive, exceeds the split, or is smaller
        than the number of classes.
    FileNotFoundError
        Files missing; the message says how to provide them.

    Examples
    --------
    >>> tr, te = load_data(DataConfig(name="digits", n_train=200, n_test=100))
    >>> len(tr), len(te), tr.mean == te.mean
    (200, 100, True)
    """
    if not isinstance(config, DataConfig):
        raise ValueError(f"config must be a DataConfig, got {type(config).__name__}")
    name = _check_name(config.name)
    out = []
    for split, n, seed, arg in (("train", config.n_train, config.subset_seed, "n_train"),
                                ("test", config.n_test, config.test_seed, "n_test")):
        raw = _raw(name, split, root=config.root)
        if n is None:
            positions = np.arange(len(raw.labels))
        else:
            positions = _stratified_positions(raw.labels, n, seed=seed, stratified=True, arg=arg,
                                              what=f"the {name} {split} split")
        out.append(_make_set(raw, positions, name))
    train, test = out
    if config.normalize:
        mean, std = _stats(train.x)
        train, test = normalize(train, mean, std), normalize(test, mean, std)
    if config.subpopulation_per_class:
        train, _ = add_subpopulation(train, n_per_class=config.subpopulation_per_class,
                                     transform=config.subpopulation_transform, seed=config.subpopulation_seed)
    return train, test


def load_subpopulation_data(config: DataConfig) -> SubpopulationData:
    """The whole sub-population construction ``config`` describes, rich test set included.

    ``train`` is ``load_data(config)[0]`` (``subpopulation_per_class`` images per class
    transformed, none when it is 0), ``test`` the ordinary test set and ``test_sub`` every
    test image under ``config.subpopulation_transform``.

    Examples
    --------
    >>> sub = load_subpopulation_data(DataConfig(name="digits", n_train=500, n_test=200,
    ...                                          subpopulation_per_class=3))
    >>> int(sub.train_mask.sum()), len(sub.test_sub), sub.test_sub.name
    (30, 200, 'digits:rotate90')
    """
    if not isinstance(config, DataConfig):
        raise ValueError(f"config must be a DataConfig, got {type(config).__name__}")
    train, test = load_data(dataclasses.replace(config, subpopulation_per_class=0))
    return make_subpopulation_data(train, test, n_per_class=config.subpopulation_per_class,
                                   transform=config.subpopulation_transform, seed=config.subpopulation_seed)


def as_images(ds: ImageSet, positions: Sequence[int] | None = None) -> np.ndarray:
    """Images as a plain (N, H, W, C) float array in [0, 1], ready for ``imshow``.

    Examples
    --------
    >>> as_images(load_split("digits", "test"), [0, 1]).shape
    (2, 8, 8, 1)
    """
    x = ds.pixels()
    if positions is not None:
        x = x[torch.as_tensor(_check_positions(positions, len(x)))]
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy().copy()
