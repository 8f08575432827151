"""Where each data set lives on disk, how it is read, and how it is fetched.

One entry of ``_SOURCES`` per data set (how to find its folder, read a split, fetch it,
and what to tell a user who has not got it); :data:`DATASETS` lists their names.

* ``"fashion_mnist"`` -- IDX files (plain or ``.gz``), read by :func:`read_idx`.
* ``"cifar10"`` -- the pickled batches, read by ``torchvision.datasets.CIFAR10``, whose md5 check of
  every file runs before any of them is unpickled, always: no file in the folder can switch it off.
* ``"digits"`` -- scikit-learn's bundled 8x8 digits, split once by a fixed stratified split.

A reader returns the split as read-only uint8 arrays (``_Raw``); turning them into tensors,
subsets and normalised sets is :mod:`ift_core.data.loading`'s job. Nothing here imports torch
(torchvision is imported by the CIFAR-10 reader and the fetchers, when they run).

Examples
--------
>>> DATASETS
('fashion_mnist', 'cifar10', 'digits')
>>> locate("digits").name
'data'
"""
from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["DATASETS", "DEBIAN_FASHION_MNIST", "FASHION_MNIST_CLASSES", "locate", "default_data_dir",
           "read_idx", "fetch", "data_info"]

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
    repo = Path(__file__).resolve().parents[2]
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
    system = _SOURCES[name].system_folder
    if system is not None:
        out.append(system)
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


def _digits_folder() -> Path:
    from sklearn import datasets as skd  # bundled with scikit-learn, nothing to find

    return Path(skd.__file__).parent / "data"


def _missing_message(name: str, searched: Iterable[Path]) -> str:
    where = ", ".join(str(p) for p in searched)
    return f"{name} files not found (searched: {where}). {_SOURCES[name].how_to_provide}"


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name not in _SOURCES:
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
    source = _SOURCES[_check_name(name)]
    if source.bundled is not None:
        return source.bundled()
    searched = _candidates(name, root)
    for folder in searched:
        found = source.find(folder)
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
def _read_digits(folder: str, split: str) -> _Raw:
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


# --------------------------------------------------------------------------------------------
# The data sets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """One data set: how to find, read and fetch it."""

    read: Callable[[str, str], _Raw]  # (folder, split) -> the split; memoised by the reader
    how_to_provide: str               # the remedy a "files not found" error ends with
    find: Callable[[Path], Path | None] | None = None  # a candidate folder -> the folder with the files
    fetch: Callable[[Path], None] | None = None         # download into a folder
    system_folder: Path | None = None                   # searched after $IFT_DATA (a system package)
    bundled: Callable[[], Path] | None = None           # installed with a library: nothing to search


_SOURCES: dict[str, _Source] = {
    "fashion_mnist": _Source(
        read=_read_fashion, find=_fashion_folder, fetch=_fetch_fashion, system_folder=DEBIAN_FASHION_MNIST,
        how_to_provide=(
            "Provide them in one of these ways: (1) on Debian/Ubuntu `sudo apt-get install "
            "dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist/); (2) put "
            "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
            "t10k-labels-idx1-ubyte.gz in a folder (flat or as <folder>/FashionMNIST/raw/) and set "
            "IFT_DATA=<folder> or pass root=<folder>; (3) download them with torchvision: "
            "`python -m ift_core.data fetch fashion_mnist` or download=True.")),
    "cifar10": _Source(
        read=_read_cifar, find=_cifar_folder, fetch=_fetch_cifar,
        how_to_provide=(
            "Provide them in one of these ways: (1) put torchvision's extracted "
            "cifar-10-batches-py/ folder in <folder> and set IFT_DATA=<folder> or pass root=<folder>; "
            "(2) download it with torchvision: `python -m ift_core.data fetch cifar10` or download=True.")),
    "digits": _Source(read=_read_digits, bundled=_digits_folder, how_to_provide="Install scikit-learn."),
}

DATASETS = tuple(_SOURCES)


def _raw(name: str, split: str, *, root: str | os.PathLike | None = None, download: bool = False) -> _Raw:
    """Split ``split`` of data set ``name`` as read-only arrays, fetched first when asked and missing."""
    source = _SOURCES[_check_name(name)]
    if split not in _SPLITS:
        raise ValueError(f"unknown split={split!r}; choose one of {_SPLITS}")
    try:
        folder = locate(name, root=root)
    except FileNotFoundError:
        if not download or source.fetch is None:
            raise
        target = Path(root).expanduser() if root is not None else default_data_dir()
        source.fetch(target)
        folder = locate(name, root=target)
    return source.read(str(folder.resolve()), split)


def fetch(name: str, *, root: str | os.PathLike | None = None) -> Path:
    """Make ``name``'s files available, downloading with torchvision if they are not found.

    Returns the folder holding them. Digits ship with scikit-learn; nothing to fetch.

    Examples
    --------
    >>> fetch("fashion_mnist")  # doctest: +SKIP
    PosixPath('/usr/share/datasets/fashion-mnist')
    """
    source = _SOURCES[_check_name(name)]
    try:
        return locate(name, root=root)
    except FileNotFoundError:
        if source.fetch is None:
            raise
        target = Path(root).expanduser() if root is not None else default_data_dir()
        target.mkdir(parents=True, exist_ok=True)
        source.fetch(target)
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
