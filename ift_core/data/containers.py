"""The data containers: :class:`DataConfig` (what to load), :class:`ImageSet` (images as tensors)
and :class:`SubpopulationData` (the sub-population construction).

torch is imported by the methods that need it, so a :class:`DataConfig` (and the training
configs and profiles built on it) can be made and checked without torch.

Examples
--------
>>> DataConfig(name="digits", n_train=500).n_train
500
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..internal import as_int_array, check_bool, check_choice, check_int
from .sources import DATASETS

if TYPE_CHECKING:
    import torch

__all__ = ["DataConfig", "ImageSet", "SubpopulationData"]


@dataclass(frozen=True)
class DataConfig:
    """Which data, how much of it, and how it is normalised.

    Parameters
    ----------
    name : {"fashion_mnist", "cifar10", "digits"}
    n_train, n_test : int or None
        Sizes of the stratified subsets of the training and test splits (None = whole split).
    subset_seed : int
        Seed of the training subset (DiffData ensembles vary it per model).
    root : str or None
        Data folder; None searches the defaults (see :func:`ift_core.data.locate`).
    normalize : bool
        Standardise both splits by the *training subset's* per-channel mean and std.
    test_seed : int
        Seed of the test subset, separate from ``subset_seed`` so that models trained on
        different training subsets are still evaluated on the same test points.
    subpopulation_per_class : int
        The rare sub-population construction: this many training images of every class are
        replaced by their transformed versions (:func:`ift_core.data.add_subpopulation`, after
        normalisation, so the statistics are the ordinary subset's). 0 (default) = the ordinary
        training set.
    subpopulation_transform : str
        The construction: a name from :data:`ift_core.data.SUBPOPULATION_TRANSFORMS`, or several
        joined by ``"+"`` (``"rotate90+invert"``), applied in that order; or the feature-only
        construction ``"texture"`` / ``"texture,key=value,..."`` (:class:`ift_core.data.TextureSpec`:
        ``subpopulation_per_class`` points per class showing only a class-coded texture *join*
        the training set), stored in its canonical spelling.
    subpopulation_seed : int
        Chooses which training images are transformed (nested in ``subpopulation_per_class``).

    Examples
    --------
    >>> DataConfig(name="digits", n_train=None, n_test=None).name
    'digits'
    >>> DataConfig(name="digits", subpopulation_per_class=5, subpopulation_transform="rotate90+invert").subpopulation_per_class
    5
    """

    name: str = "fashion_mnist"
    n_train: int | None = 10_000
    n_test: int | None = 2_000
    subset_seed: int = 0
    root: str | None = None
    normalize: bool = True
    test_seed: int = 0
    subpopulation_per_class: int = 0
    subpopulation_transform: str = "rotate90"
    subpopulation_seed: int = 0

    def __post_init__(self) -> None:
        # Types and the construction's fields are checked here; sizes against the split when loaded.
        check_choice(self.name, "name", DATASETS)
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, remedy="a subset size, or None for the whole split")
        for name in ("subset_seed", "test_seed"):
            check_int(getattr(self, name), name, minimum=0, remedy="a seed is a non-negative integer")
        check_bool(self.normalize, "normalize")
        for name in ("subpopulation_per_class", "subpopulation_seed"):
            check_int(getattr(self, name), name, minimum=0)
        from .subpopulations import check_construction  # torch-free at import

        object.__setattr__(self, "subpopulation_transform", check_construction(self.subpopulation_transform))


def _stat_tensors(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel statistics shaped to broadcast over (N, C, H, W)."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return m, s


def _check_positions(positions: Any, n: int) -> np.ndarray:
    """Positions in a set of ``n`` images: whole numbers in [0, n) (negative ones are not wrapped)."""
    pos = as_int_array(positions, name="positions", ndim=1)
    if pos.size and (pos.min() < 0 or pos.max() >= n):
        raise ValueError(f"positions must lie in [0, {n}) (positions in this set of {n} images), got range "
                         f"[{int(pos.min())}, {int(pos.max())}]")
    return pos.astype(np.int64, copy=False)


@dataclass(eq=False)
class ImageSet:
    """A labelled set of images as tensors.

    Attributes
    ----------
    x : torch.Tensor
        (N, C, H, W) float32, normalised with ``mean``/``std`` (pixels in [0, 1] before that).
    y : torch.Tensor
        (N,) int64 labels in ``[0, n_classes)``.
    classes : tuple of str
        Class names, indexed by label.
    name : str
        Data set name (a shifted set appends ``":<kind><severity>"``).
    indices : np.ndarray
        (N,) int64 indices into the full split the images came from.
    mean, std : tuple of float
        Per-channel normalisation applied (0.0s and 1.0s when not normalised), so
        ``x * std + mean`` gives pixels in [0, 1].

    Examples
    --------
    >>> from ift_core.data import load_split
    >>> ds = load_split("digits", "test")
    >>> len(ds), ds.n_classes, ds.in_channels, ds.image_size
    (450, 10, 1, 8)
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    name: str
    indices: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x.shape[-1])

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def pixels(self) -> torch.Tensor:
        """The images in [0, 1] pixel space (undoes the normalisation), (N, C, H, W) float32."""
        mean, std = _stat_tensors(self.mean, self.std)
        return self.x * std + mean

    def with_pixels(self, pixels: torch.Tensor, *, name: str | None = None) -> "ImageSet":
        """A copy holding ``pixels`` (in [0, 1]) normalised with this set's mean and std."""
        import torch

        if not isinstance(pixels, torch.Tensor):
            raise ValueError(f"pixels must be a torch.Tensor of shape {tuple(self.x.shape)}, got "
                             f"{type(pixels).__name__}; use torch.as_tensor(array)")
        if tuple(pixels.shape) != tuple(self.x.shape):
            raise ValueError(f"pixels must have shape {tuple(self.x.shape)}, got {tuple(pixels.shape)}")
        mean, std = _stat_tensors(self.mean, self.std)
        return dataclasses.replace(self, x=((pixels - mean) / std).to(torch.float32).contiguous(),
                                   y=self.y.clone(), indices=self.indices.copy(),
                                   name=self.name if name is None else name)

    def take(self, positions: Sequence[int] | np.ndarray) -> "ImageSet":
        """The images at ``positions`` (positions in this set, not original indices)."""
        import torch

        pos = torch.as_tensor(_check_positions(positions, len(self.y)))
        return dataclasses.replace(self, x=self.x[pos].clone(), y=self.y[pos].clone(),
                                   indices=self.indices[pos.numpy()].copy())


@dataclass(eq=False)
class SubpopulationData:
    """The sub-population construction: each class has a rare, transformed sub-population.

    Attributes
    ----------
    train : ImageSet
        The ordinary training subset in which exactly ``n_per_class`` images of every class were
        *replaced* by their transformed versions (same size for every rarity).
    test : ImageSet
        The ordinary test set, untouched.
    test_sub : ImageSet
        The sub-population test set: every test image transformed (same labels, same indices).
    train_mask, test_mask, test_sub_mask : np.ndarray of bool
        Which points are sub-population points (``test_mask`` is all False, ``test_sub_mask``
        all True; ``train_mask`` has exactly ``n_per_class`` True per class).
    transform : str
    n_per_class : int
    seed : int
    """

    train: ImageSet
    test: ImageSet
    test_sub: ImageSet
    train_mask: np.ndarray
    test_mask: np.ndarray
    test_sub_mask: np.ndarray
    transform: str
    n_per_class: int
    seed: int

    @property
    def rarity(self) -> float:
        """Fraction of training points that are sub-population points."""
        return float(self.train_mask.mean()) if self.train_mask.size else 0.0

    def test_sets(self) -> dict[str, ImageSet]:
        """The two test sets by name: ``{"ordinary": test, "subpopulation": test_sub}``."""
        return {"ordinary": self.test, "subpopulation": self.test_sub}
