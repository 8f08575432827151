"""Real image data sets as tensors: loaders, deterministic subsets, shifts, sub-populations.

Three data sets, all real:

* ``"fashion_mnist"`` -- Zalando's Fashion-MNIST (60k/10k, 1x28x28), the book's default. Read from
  the IDX files (plain or ``.gz``) found, in this order, under an explicit ``root``; under
  ``$IFT_DATA``; in the Debian package's folder ``/usr/share/datasets/fashion-mnist/``
  (``apt-get install dataset-fashion-mnist``); under ``<repo>/data`` or ``./data``. A folder
  counts when it holds the four files directly or in torchvision's layout
  ``<folder>/FashionMNIST/raw/``. ``download=True`` fetches them with torchvision.
* ``"cifar10"`` -- CIFAR-10 (50k/10k, 3x32x32), the paper's data set, read by
  ``torchvision.datasets.CIFAR10`` from ``<folder>/cifar-10-batches-py/`` (same search order, no
  Debian package). The batches are pickles, so torchvision's md5 check of every file runs before
  any of them is unpickled, always: no file in the folder can switch it off. (The test suite's
  small fixture in CIFAR-10's format passes it because the tests substitute its known md5 sums.)
* ``"digits"`` -- scikit-learn's 8x8 handwritten digits (1797 images, 1x8x8, bundled with
  scikit-learn), split once by a fixed stratified split into 1347 training and 450 test images.
  Tiny: for tests and teaching.

Pixels are scaled to [0, 1]; :func:`load_data` then takes deterministic stratified subsets and
normalises both splits by the training subset's per-channel mean and standard deviation.
:func:`corrupt` makes shifted test sets (noise, blur, contrast, rotation) and
:func:`make_subpopulation_data` builds issue 4's rare sub-population construction. That
construction is also part of the data description: a :class:`DataConfig` with
``subpopulation_per_class = r > 0`` makes :func:`load_data` return the training set in which
``r`` images per class are transformed (the test set stays ordinary), and
:func:`load_subpopulation_data` gives the whole construction, rich test set included.

Examples
--------
>>> from ift_core.data import DataConfig, load_data
>>> train, test = load_data(DataConfig(name="digits", n_train=500, n_test=200))
>>> train.x.shape, test.x.shape
(torch.Size([500, 1, 8, 8]), torch.Size([200, 1, 8, 8]))
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .internal import as_int_array, check_bool, check_choice, check_int, check_real

__all__ = [
    "DATASETS",
    "SHIFTS",
    "SUBPOPULATION_TRANSFORMS",
    "DEBIAN_FASHION_MNIST",
    "FASHION_MNIST_CLASSES",
    "DataConfig",
    "ImageSet",
    "SubpopulationData",
    "locate",
    "default_data_dir",
    "load_split",
    "load_data",
    "subset",
    "normalize",
    "as_images",
    "corrupt",
    "parse_subpopulation_transform",
    "apply_transform",
    "add_subpopulation",
    "make_subpopulation_data",
    "load_subpopulation_data",
    "subpopulation_examples",
    "fetch",
    "data_info",
    "read_idx",
]

DATASETS = ("fashion_mnist", "cifar10", "digits")
SHIFTS = ("gaussian_noise", "blur", "contrast", "rotation")
SUBPOPULATION_TRANSFORMS = ("rotate90", "rotate180", "flip_vertical", "invert", "patch")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FOLDER = "cifar-10-batches-py"
_DIGITS_N_TEST = 450  # 1797 = 1347 + 450, the same 3:1 split as scikit-learn's examples
_DIGITS_SPLIT_SEED = 0
_SPLITS = ("train", "test")

# Shift strengths per severity 1..5 (ImageNet-C's noise and contrast levels; blur sigma in pixels
# for a 28-pixel image, scaled by max(size, 16) / 28; rotation in degrees, random sign per image).
_NOISE_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
_BLUR_SIGMA = (0.5, 0.8, 1.1, 1.5, 2.0)
_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
_ROTATION_DEG = (15.0, 30.0, 45.0, 60.0, 75.0)


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------
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
        Data folder; None searches the defaults (see :func:`locate`).
    normalize : bool
        Standardise both splits by the *training subset's* per-channel mean and std.
    test_seed : int
        Seed of the test subset, separate from ``subset_seed`` so that models trained on
        different training subsets are still evaluated on the same test points.
    subpopulation_per_class : int
        Issue 4's construction: this many training images of every class are replaced by
        their transformed versions (:func:`add_subpopulation`, after normalisation, so the
        statistics are the ordinary subset's). 0 (default) = the ordinary training set.
    subpopulation_transform : str
        The construction: a name from :data:`SUBPOPULATION_TRANSFORMS`, or several joined by
        ``"+"`` (``"rotate90+invert"``), applied in that order.
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
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        parse_subpopulation_transform(self.subpopulation_transform)


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
        pos = torch.as_tensor(_check_positions(positions, len(self.y)))
        return dataclasses.replace(self, x=self.x[pos].clone(), y=self.y[pos].clone(),
                                   indices=self.indices[pos.numpy()].copy())


@dataclass(eq=False)
class SubpopulationData:
    """Issue 4's construction: each class has a rare, transformed sub-population.

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


@dataclass(frozen=True)
class _Raw:
    images: np.ndarray  # (N, C, H, W) uint8, read-only
    labels: np.ndarray  # (N,) int64, read-only
    classes: tuple[str, ...]
    max_value: float    # pixel value that maps to 1.0
    source: str


# --------------------------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------------------------
def _repo_root() -> Path | None:
    repo = Path(__file__).resolve().parent.parent
    return repo if (repo / "pyproject.toml").exists() else None


def default_data_dir() -> Path:
    """Where downloads go: ``$IFT_DATA``, else ``<repo>/data`` in a checkout, else ``./data``.

    Examples
    --------
    >>> default_data_dir().name  # doctest: +SKIP
    'data'
    """
    env = os.environ.get("IFT_DATA")
    if env:
        return Path(env).expanduser()
    repo = _repo_root()
    return repo / "data" if repo is not None else Path.cwd() / "data"


def _candidates(name: str, root: str | os.PathLike | None) -> list[Path]:
    if root is not None:
        return [Path(root).expanduser()]
    out: list[Path] = []
    env = os.environ.get("IFT_DATA")
    if env:
        out.append(Path(env).expanduser())
    if name == "fashion_mnist":
        out.append(DEBIAN_FASHION_MNIST)
    repo = _repo_root()
    if repo is not None:
        out.append(repo / "data")
    out.append(Path.cwd() / "data")
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def _find_file(folder: Path, stem: str) -> Path | None:
    for fname in (stem, stem + ".gz"):
        if (folder / fname).is_file():
            return folder / fname
    return None


def _fashion_folder(folder: Path) -> Path | None:
    for sub in (folder / "FashionMNIST" / "raw", folder):
        if all(_find_file(sub, s) is not None for pair in _FMNIST_FILES.values() for s in pair):
            return sub
    return None


def _cifar_folder(folder: Path) -> Path | None:
    for sub in (folder / _CIFAR_FOLDER, folder):
        if sub.name == _CIFAR_FOLDER and (sub / "test_batch").is_file() and (sub / "batches.meta").is_file():
            return sub
    return None


def _missing_message(name: str, searched: Iterable[Path]) -> str:
    where = ", ".join(str(p) for p in searched)
    if name == "fashion_mnist":
        how = ("Provide them in one of these ways: (1) on Debian/Ubuntu `sudo apt-get install "
               "dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist/); (2) put "
               "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
               "t10k-labels-idx1-ubyte.gz in a folder (flat or as <folder>/FashionMNIST/raw/) and set "
               "IFT_DATA=<folder> or pass root=<folder>; (3) download them with torchvision: "
               "`python -m ift_core.data fetch fashion_mnist` or download=True.")
    else:
        how = ("Provide them in one of these ways: (1) put torchvision's extracted "
               "cifar-10-batches-py/ folder in <folder> and set IFT_DATA=<folder> or pass root=<folder>; "
               "(2) download it with torchvision: `python -m ift_core.data fetch cifar10` or download=True.")
    return f"{name} files not found (searched: {where}). {how}"


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown data set name={name!r}; choose one of {DATASETS}")
    return name


def locate(name: str, *, root: str | os.PathLike | None = None) -> Path:
    """The folder that holds ``name``'s files, searched in the documented order.

    Parameters
    ----------
    name : {"fashion_mnist", "cifar10", "digits"}
    root : path, optional
        Look only here (the folder itself, or its ``FashionMNIST/raw`` / ``cifar-10-batches-py``).

    Returns
    -------
    pathlib.Path
        The folder with the IDX files (Fashion-MNIST), the ``cifar-10-batches-py`` folder
        (CIFAR-10), or scikit-learn's data folder (digits).

    Raises
    ------
    FileNotFoundError
        With the searched places and how to provide the files.

    Examples
    --------
    >>> locate("fashion_mnist")  # doctest: +SKIP
    PosixPath('/usr/share/datasets/fashion-mnist')
    """
    _check_name(name)
    if name == "digits":
        from sklearn import datasets as skd  # bundled with scikit-learn, nothing to find
        return Path(skd.__file__).parent / "data"
    finder = _fashion_folder if name == "fashion_mnist" else _cifar_folder
    searched = _candidates(name, root)
    for folder in searched:
        found = finder(folder)
        if found is not None:
            return found
    raise FileNotFoundError(_missing_message(name, searched))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
_IDX_DTYPES = {8: np.uint8, 9: np.int8, 11: np.dtype(">i2"), 12: np.dtype(">i4"),
               13: np.dtype(">f4"), 14: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format), plain or gzip-compressed, into a numpy array.

    Gives the same array as ``torchvision.datasets.mnist.read_sn3_pascalvincent_tensor`` (which
    reads uncompressed files only), but also reads the ``.gz`` files the Debian package ships.

    Examples
    --------
    >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
    (10000,)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file path (str or os.PathLike), got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such IDX file: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise ValueError(f"{path} is not an IDX file (type code {code}, {ndim} dimensions)")
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path} is truncated or padded: header says shape {shape} "
                         f"({expected} bytes), file has {len(data) - header}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=8)
def _read_fashion(folder: str, split: str) -> _Raw:
    img_stem, lab_stem = _FMNIST_FILES[split]
    img_path = _find_file(Path(folder), img_stem)
    lab_path = _find_file(Path(folder), lab_stem)
    images = read_idx(img_path)
    labels = read_idx(lab_path).astype(np.int64)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"Fashion-MNIST files in {folder} have unexpected shapes: images "
                         f"{images.shape} {images.dtype}, labels {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
        raise ValueError(f"Fashion-MNIST labels in {lab_path} outside [0, 10)")
    return _Raw(_readonly(images[:, None].copy()), _readonly(labels), FASHION_MNIST_CLASSES,
                255.0, str(img_path))


@functools.lru_cache(maxsize=4)
def _read_cifar(folder: str, split: str) -> _Raw:
    from torchvision.datasets import CIFAR10

    base = Path(folder)
    try:  # CIFAR10 checks every file's md5 before it unpickles any
        ds = CIFAR10(str(base.parent), train=(split == "train"), download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise ValueError(f"CIFAR-10 files in {base} are incomplete or fail torchvision's md5 check "
                         f"({exc}); delete the folder and fetch it again with "
                         f"`python -m ift_core.data fetch cifar10`") from exc
    images = np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2))
    labels = np.asarray(ds.targets, dtype=np.int64)
    return _Raw(_readonly(images), _readonly(labels), tuple(str(c) for c in ds.classes), 255.0, str(base))


@functools.lru_cache(maxsize=2)
def _read_digits(split: str) -> _Raw:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - scikit-learn is in the pinned environment
        raise ImportError("the 'digits' data set needs scikit-learn: pip install scikit-learn") from exc
    bunch = load_digits()
    images = bunch.images.astype(np.uint8)  # whole numbers 0..16
    labels = bunch.target.astype(np.int64)
    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, test_size=_DIGITS_N_TEST, stratify=labels,
                              random_state=_DIGITS_SPLIT_SEED)
    pick = np.sort(tr if split == "train" else te)
    return _Raw(_readonly(images[pick][:, None].copy()), _readonly(labels[pick].copy()),
                tuple(str(c) for c in bunch.target_names), 16.0, "sklearn.datasets.load_digits")


def _fetch_fashion(target: Path) -> None:
    from torchvision.datasets import FashionMNIST

    for train in (True, False):
        FashionMNIST(str(target), train=train, download=True)


def _fetch_cifar(target: Path) -> None:
    from torchvision.datasets import CIFAR10

    for train in (True, False):
        CIFAR10(str(target), train=train, download=True)


def _raw(name: str, split: str, *, root=None, download: bool = False) -> _Raw:
    _check_name(name)
    if split not in _SPLITS:
        raise ValueError(f"unknown split={split!r}; choose one of {_SPLITS}")
    if name == "digits":
        return _read_digits(split)
    try:
        folder = locate(name, root=root)
    except FileNotFoundError:
        if not download:
            raise
        target = Path(root).expanduser() if root is not None else default_data_dir()
        (_fetch_fashion if name == "fashion_mnist" else _fetch_cifar)(target)
        folder = locate(name, root=target)
    reader = _read_fashion if name == "fashion_mnist" else _read_cifar
    return reader(str(folder.resolve()), split)


# --------------------------------------------------------------------------------------------
# Subsets and normalisation
# --------------------------------------------------------------------------------------------
def _check_positions(positions: Any, n: int) -> np.ndarray:
    """Positions in a set of ``n`` images: whole numbers in [0, n) (negative ones are not wrapped)."""
    pos = as_int_array(positions, name="positions", ndim=1)
    if pos.size and (pos.min() < 0 or pos.max() >= n):
        raise ValueError(f"positions must lie in [0, {n}) (positions in this set of {n} images), got range "
                         f"[{int(pos.min())}, {int(pos.max())}]")
    return pos.astype(np.int64, copy=False)


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _stratified_positions(labels: np.ndarray, n: int, *, seed: int, stratified: bool,
                          arg: str = "n", what: str = "the set") -> np.ndarray:
    """Sorted positions of a subset of size n; nested in n for a fixed seed."""
    n = _check_int(n, arg)
    total = len(labels)
    if n <= 0:
        raise ValueError(f"{arg}={n} must be positive")
    if n > total:
        raise ValueError(f"{arg}={n} exceeds the {total} images available in {what}"
                         f"{'; pass ' + arg + '=None for all of them' if arg != 'n' else ''}")
    rng = np.random.default_rng(_check_int(seed, "seed"))
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


def _stat_tensors(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return m, s


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
    mean and std when ``config.normalize``.

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


# --------------------------------------------------------------------------------------------
# Shifts (issue 8)
# --------------------------------------------------------------------------------------------
def _check_severity(severity: Any) -> int:
    s = _check_int(severity, "severity")
    if not 0 <= s <= 5:
        raise ValueError(f"severity={s} must be in 1..5 (0 = unchanged)")
    return s


def _blur(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    h = pixels.shape[-1]
    k = 2 * math.ceil(3 * sigma) + 1
    k = min(k, 2 * h - 1)  # odd; reflect padding needs k // 2 < size
    return gaussian_blur(pixels, [k, k], [sigma, sigma])


def _rotate(pixels: torch.Tensor, angles: np.ndarray) -> torch.Tensor:
    from torchvision.transforms.functional import InterpolationMode, rotate

    out = torch.empty_like(pixels)
    for a in np.unique(angles):  # one call per distinct angle (here: two signs)
        sel = torch.from_numpy(np.flatnonzero(angles == a))
        out[sel] = rotate(pixels[sel], float(a), interpolation=InterpolationMode.BILINEAR, fill=[0.0])
    return out


def corrupt(ds: ImageSet, kind: str, severity: int, *, seed: int = 0) -> ImageSet:
    """A shifted copy of ``ds``: the same images and labels under a corruption.

    Applied in [0, 1] pixel space (the normalisation is undone, the corruption applied, the
    result clipped to [0, 1] and normalised again with ``ds.mean``/``ds.std``), so a model
    sees shifted images on the scale it was trained on.

    Parameters
    ----------
    kind : {"gaussian_noise", "blur", "contrast", "rotation"}
        ``gaussian_noise``: additive N(0, sigma^2), sigma = 0.08, 0.12, 0.18, 0.26, 0.38.
        ``blur``: Gaussian blur (torchvision) with sigma = 0.5, 0.8, 1.1, 1.5, 2.0 pixels for a
        28-pixel image, scaled by ``max(size, 16) / 28`` for other sizes. ``contrast``: each
        image pulled towards its mean, factor 0.4, 0.3, 0.2, 0.1, 0.05. ``rotation``: 15, 30,
        45, 60, 75 degrees, random sign per image (bilinear, black fill).
    severity : int
        1 (mild) to 5 (strong); 0 returns an unchanged copy.
    seed : int
        Seeds the noise and the rotation signs; same seed, same result.

    Examples
    --------
    >>> ds = load_split("digits", "test")
    >>> shifted = corrupt(ds, "gaussian_noise", 3, seed=0)
    >>> shifted.x.shape == ds.x.shape, bool((shifted.y == ds.y).all())
    (True, True)
    """
    if kind not in SHIFTS:
        raise ValueError(f"unknown shift kind={kind!r}; choose one of {SHIFTS}")
    s = _check_severity(severity)
    seed = _check_int(seed, "seed")
    if s == 0:  # an exact copy, no round trip through pixel space
        return dataclasses.replace(ds, x=ds.x.clone(), y=ds.y.clone(), indices=ds.indices.copy())
    pixels = ds.pixels()
    rng = np.random.default_rng([seed, SHIFTS.index(kind), s])
    if kind == "gaussian_noise":
        noise = rng.standard_normal(tuple(pixels.shape), dtype=np.float32) * np.float32(_NOISE_SIGMA[s - 1])
        out = pixels + torch.from_numpy(noise)
    elif kind == "blur":
        # scaled with the image size, but not below half (an 8-pixel digit is already coarse)
        out = _blur(pixels, _BLUR_SIGMA[s - 1] * max(ds.image_size, 16) / 28.0)
    elif kind == "contrast":
        m = pixels.mean(dim=(1, 2, 3), keepdim=True)
        out = (pixels - m) * _CONTRAST[s - 1] + m
    else:
        signs = rng.choice(np.array([-1.0, 1.0]), size=len(ds))
        out = _rotate(pixels, signs * _ROTATION_DEG[s - 1])
    return ds.with_pixels(out.clamp_(0.0, 1.0), name=f"{ds.name}:{kind}{s}")


# --------------------------------------------------------------------------------------------
# Sub-populations (issue 4)
# --------------------------------------------------------------------------------------------
def parse_subpopulation_transform(transform: str) -> tuple[str, ...]:
    """Split a construction ``"a+b"`` into its transforms, checking each name.

    Examples
    --------
    >>> parse_subpopulation_transform("rotate90+invert")
    ('rotate90', 'invert')
    """
    if not isinstance(transform, str) or not transform:
        raise ValueError(f"transform must be a non-empty string, got {transform!r}")
    parts = tuple(transform.split("+"))
    bad = [p for p in parts if p not in SUBPOPULATION_TRANSFORMS]
    if bad:
        raise ValueError(f"unknown transform {bad[0]!r} in transform={transform!r}; choose one of "
                         f"{SUBPOPULATION_TRANSFORMS}, or several joined by '+'")
    if len(set(parts)) != len(parts):
        raise ValueError(f"transform={transform!r} repeats a transform")
    return parts


def _apply_one(pixels: torch.Tensor, transform: str) -> torch.Tensor:
    if transform == "rotate90":
        return torch.rot90(pixels, 1, dims=(2, 3)).contiguous()
    if transform == "rotate180":
        return torch.rot90(pixels, 2, dims=(2, 3)).contiguous()
    if transform == "flip_vertical":
        return torch.flip(pixels, dims=(2,)).contiguous()
    if transform == "invert":
        return 1.0 - pixels
    out = pixels.clone()
    side = max(2, pixels.shape[-1] // 7)
    out[:, :, :side, :side] = 1.0
    return out


def apply_transform(pixels: torch.Tensor, transform: str) -> torch.Tensor:
    """A label-preserving transformation of (N, C, H, W) pixels in [0, 1].

    ``rotate90`` (counter-clockwise), ``rotate180``, ``flip_vertical`` (upside down mirror),
    ``invert`` (1 - x) and ``patch`` (a white square in the top-left corner, side
    ``max(2, size // 7)``). All are exact and need no randomness. Several joined by ``"+"``
    are applied in that order.

    Examples
    --------
    >>> x = torch.rand(2, 1, 8, 8)
    >>> torch.equal(apply_transform(apply_transform(x, "rotate180"), "rotate180"), x)
    True
    >>> torch.equal(apply_transform(x, "rotate90+invert"), 1 - torch.rot90(x, 1, dims=(2, 3)))
    True
    """
    parts = parse_subpopulation_transform(transform)
    if pixels.ndim != 4:
        raise ValueError(f"pixels must be (N, C, H, W), got shape {tuple(pixels.shape)}")
    for part in parts:
        pixels = _apply_one(pixels, part)
    return pixels


def add_subpopulation(train: ImageSet, *, n_per_class: int, transform: str = "rotate90",
                      seed: int = 0) -> tuple[ImageSet, np.ndarray]:
    """``train`` with ``n_per_class`` images of every class replaced by their transformed versions.

    The training half of :func:`make_subpopulation_data` (which documents the construction);
    :func:`load_data` applies it when ``DataConfig.subpopulation_per_class > 0``.

    Returns
    -------
    train : ImageSet
        Same size, labels, indices and normalisation; only the chosen rows differ.
    mask : np.ndarray of bool
        (N,) True at the chosen rows, exactly ``n_per_class`` per class.

    Examples
    --------
    >>> tr, _ = load_data(DataConfig(name="digits", n_train=500, n_test=200))
    >>> new, mask = add_subpopulation(tr, n_per_class=2, transform="rotate90+invert")
    >>> int(mask.sum()), new.name
    (20, 'digits+rotate90+invert[r=2]')
    """
    r = _check_int(n_per_class, "n_per_class")
    seed = _check_int(seed, "seed")
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
    config through :func:`load_subpopulation_data` (and, training set only, :func:`load_data`).

    Parameters
    ----------
    train, test : ImageSet
        The ordinary sets (for example from :func:`load_data`).
    n_per_class : int
        Sub-population size per class in training, 0 .. smallest class size.
    transform : str
        One of ``"rotate90", "rotate180", "flip_vertical", "invert", "patch"`` (see
        :func:`apply_transform`), or several joined by ``"+"`` (more rare features per point).
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
    >>> ex = subpopulation_examples(load_split("digits", "test"), n=3)
    >>> ex["ordinary"].shape, ex["subpopulation"].shape
    ((3, 8, 8, 1), (3, 8, 8, 1))
    """
    parse_subpopulation_transform(transform)
    labels = ds.y.numpy()
    present = [c for c in range(ds.n_classes) if (labels == c).any()]
    if n is not None:
        n = _check_int(n, "n")
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


# --------------------------------------------------------------------------------------------
# Command line: python -m ift_core.data {fetch,info}
# --------------------------------------------------------------------------------------------
def fetch(name: str, *, root: str | os.PathLike | None = None) -> Path:
    """Make ``name``'s files available, downloading with torchvision if they are not found.

    Returns the folder holding them. Digits ship with scikit-learn; nothing to fetch.

    Examples
    --------
    >>> fetch("fashion_mnist")  # doctest: +SKIP
    PosixPath('/usr/share/datasets/fashion-mnist')
    """
    _check_name(name)
    if name == "digits":
        return locate(name)
    try:
        return locate(name, root=root)
    except FileNotFoundError:
        target = Path(root).expanduser() if root is not None else default_data_dir()
        target.mkdir(parents=True, exist_ok=True)
        (_fetch_fashion if name == "fashion_mnist" else _fetch_cifar)(target)
        return locate(name, root=target)


def data_info(*, root: str | os.PathLike | None = None) -> dict[str, str]:
    """Where each data set was found, or why not (one line per data set).

    Examples
    --------
    >>> sorted(data_info())
    ['cifar10', 'digits', 'fashion_mnist']
    """
    out = {}
    for name in DATASETS:
        try:
            out[name] = str(locate(name, root=root))
        except FileNotFoundError as exc:
            out[name] = f"MISSING: {exc}"
        except ImportError as exc:  # pragma: no cover
            out[name] = f"MISSING: {exc}"
    return out


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ift_core.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="find or download a data set (torchvision download)")
    p_fetch.add_argument("name", choices=DATASETS)
    p_fetch.add_argument("--root", default=None, help="folder to look in / download to "
                         "(default: the search order, then $IFT_DATA or <repo>/data)")
    p_info = sub.add_parser("info", help="print where each data set was found")
    p_info.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        try:
            print(f"{args.name}: {fetch(args.name, root=args.root)}")
        except Exception as exc:  # a network failure gets the same advice as missing files
            print(f"could not fetch {args.name}: {exc}\n"
                  f"{_missing_message(args.name, _candidates(args.name, args.root))}", file=sys.stderr)
            return 1
        return 0
    for name, where in data_info(root=args.root).items():
        print(f"{name}: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
