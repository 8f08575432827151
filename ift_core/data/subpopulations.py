"""The rare sub-population construction: a few training images of every class replaced by
transformed versions, and a test set of transformed images to measure the models on.

Examples
--------
>>> from ift_core.data import DataConfig, load_data
>>> tr, te = load_data(DataConfig(name="digits", n_train=500, n_test=200))
>>> sub = make_subpopulation_data(tr, te, n_per_class=3, transform="invert", seed=0)
>>> int(sub.train_mask.sum()), sub.test_sub.name
(30, 'digits:invert')
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..internal import check_int
from .containers import ImageSet, SubpopulationData
from .transforms import SUBPOPULATION_TRANSFORMS, apply_transform, parse_subpopulation_transform

__all__ = ["add_subpopulation", "make_subpopulation_data", "subpopulation_examples"]


def add_subpopulation(train: ImageSet, *, n_per_class: int, transform: str = "rotate90",
                      seed: int = 0) -> tuple[ImageSet, np.ndarray]:
    """``train`` with ``n_per_class`` images of every class replaced by their transformed versions.

    The training half of :func:`make_subpopulation_data` (which documents the construction);
    :func:`ift_core.data.load_data` applies it when ``DataConfig.subpopulation_per_class > 0``.

    Returns
    -------
    train : ImageSet
        Same size, labels, indices and normalisation; only the chosen rows differ.
    mask : np.ndarray of bool
        (N,) True at the chosen rows, exactly ``n_per_class`` per class.

    Examples
    --------
    >>> from ift_core.data import DataConfig, load_data
    >>> tr, _ = load_data(DataConfig(name="digits", n_train=500, n_test=200))
    >>> new, mask = add_subpopulation(tr, n_per_class=2, transform="rotate90+invert")
    >>> int(mask.sum()), new.name
    (20, 'digits+rotate90+invert[r=2]')
    """
    r = check_int(n_per_class, "n_per_class")
    seed = check_int(seed, "seed")
    parts = parse_subpopulation_transform(transform)
    labels = train.y.numpy()
    counts = np.bincount(labels, minlength=train.n_classes)
    if r < 0 or r > counts.min():
        raise ValueError(f"n_per_class={r} must be in 0..{int(counts.min())} (the smallest class "
                         f"in the training set has {int(counts.min())} images)")
    # Seeded by the first transform, so "a" and "a+b" mark the same images.
    rng = np.random.default_rng([seed, SUBPOPULATION_TRANSFORMS.index(parts[0])])
    chosen = []
    for c in range(train.n_classes):
        members = np.flatnonzero(labels == c)
        chosen.append(members[rng.permutation(len(members))[:r]])  # drawn whatever r is: nested
    chosen_pos = np.sort(np.concatenate(chosen)).astype(np.int64)
    mask = np.zeros(len(train), dtype=bool)
    mask[chosen_pos] = True

    # Only the chosen rows change, so every other image stays bit-identical (r = 0: the ordinary set).
    x = train.x.clone()
    if r > 0:
        sel = torch.from_numpy(chosen_pos)
        part = train.take(chosen_pos)
        x[sel] = part.with_pixels(apply_transform(part.pixels(), transform).clamp_(0.0, 1.0)).x
    new = dataclasses.replace(train, x=x, y=train.y.clone(), indices=train.indices.copy(),
                              name=train.name if r == 0 else f"{train.name}+{transform}[r={r}]")
    return new, mask


def make_subpopulation_data(train: ImageSet, test: ImageSet, *, n_per_class: int,
                            transform: str = "rotate90", seed: int = 0) -> SubpopulationData:
    """Give every class a rare sub-population: ``n_per_class`` transformed training images.

    In the training set, exactly ``n_per_class`` images of every class (chosen at random given
    ``seed``) are **replaced** by their transformed versions, so the training set keeps its
    size for every rarity and the sub-population carries features (say, rotated shapes) the
    rest of its class lacks. ``n_per_class = 0`` gives the ordinary training set. For a fixed
    seed the chosen images are nested: those for r are among those for any r' > r. The
    transform is applied in [0, 1] pixel space and renormalised with each set's own mean/std,
    so the normalisation does not vary with the rarity. The same construction comes from a
    config through :func:`ift_core.data.load_subpopulation_data` (and, training set only,
    :func:`ift_core.data.load_data`).

    Parameters
    ----------
    train, test : ImageSet
        The ordinary sets (for example from :func:`ift_core.data.load_data`).
    n_per_class : int
        Sub-population size per class in training, 0 .. smallest class size.
    transform : str
        One of ``"rotate90", "rotate180", "flip_vertical", "invert", "patch"`` (see
        :func:`ift_core.data.apply_transform`), or several joined by ``"+"`` (more rare features
        per point).
    seed : int
        Chooses which training images are transformed (seeded by the first transform, so
        ``"a"`` and ``"a+b"`` transform the same images).

    Returns
    -------
    SubpopulationData
        ``train`` (with the sub-population), ``test`` (ordinary), ``test_sub`` (every test image
        transformed) and boolean masks marking sub-population points.

    Examples
    --------
    >>> from ift_core.data import DataConfig, load_data
    >>> tr, te = load_data(DataConfig(name="digits", n_train=500, n_test=200))
    >>> sub = make_subpopulation_data(tr, te, n_per_class=3, seed=0)
    >>> int(sub.train_mask.sum()), bool(sub.test_sub_mask.all())
    (30, True)
    """
    parse_subpopulation_transform(transform)
    if train.classes != test.classes:
        raise ValueError(f"train and test have different classes: {train.classes} vs {test.classes}")
    new_train, train_mask = add_subpopulation(train, n_per_class=n_per_class, transform=transform, seed=seed)
    r, seed = int(n_per_class), int(seed)
    test_sub = test.with_pixels(apply_transform(test.pixels(), transform).clamp_(0.0, 1.0),
                                name=f"{test.name}:{transform}")
    return SubpopulationData(
        train=new_train,
        test=dataclasses.replace(test, x=test.x.clone(), y=test.y.clone(), indices=test.indices.copy()),
        test_sub=test_sub,
        train_mask=train_mask,
        test_mask=np.zeros(len(test), dtype=bool),
        test_sub_mask=np.ones(len(test), dtype=bool),
        transform=transform, n_per_class=r, seed=seed,
    )


def subpopulation_examples(ds: ImageSet, *, transform: str = "rotate90",
                           n: int | None = None) -> dict[str, Any]:
    """A few example images of each kind, for the book: ordinary and transformed versions.

    Takes the first image of each class in ``ds`` (up to ``n`` classes, default all).

    Returns
    -------
    dict
        ``"ordinary"`` and ``"subpopulation"``: (n, H, W, C) float arrays in [0, 1];
        ``"labels"``: (n,) int array; ``"class_names"``: list of str.

    Examples
    --------
    >>> from ift_core.data import load_split
    >>> ex = subpopulation_examples(load_split("digits", "test"), n=3)
    >>> ex["ordinary"].shape, ex["subpopulation"].shape
    ((3, 8, 8, 1), (3, 8, 8, 1))
    """
    parse_subpopulation_transform(transform)
    labels = ds.y.numpy()
    present = [c for c in range(ds.n_classes) if (labels == c).any()]
    if n is not None:
        n = check_int(n, "n")
        if not 1 <= n <= len(present):
            raise ValueError(f"n={n} must be in 1..{len(present)} (classes present)")
        present = present[:n]
    pos = np.array([int(np.flatnonzero(labels == c)[0]) for c in present], dtype=np.int64)
    pixels = ds.pixels()[torch.from_numpy(pos)].clamp(0, 1)
    moved = apply_transform(pixels, transform).clamp(0, 1)
    return {
        "ordinary": pixels.permute(0, 2, 3, 1).numpy().copy(),
        "subpopulation": moved.permute(0, 2, 3, 1).numpy().copy(),
        "labels": labels[pos].copy(),
        "class_names": [ds.classes[c] for c in present],
        "transform": transform,
    }
