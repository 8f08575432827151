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
:func:`make_subpopulation_data` builds the rare sub-population construction (a few transformed
images per class, or a few *feature-only* points per class: a class-coded texture on noise or on
images the models never see, :func:`make_texture_points`). That construction is also part of the data description: a
:class:`DataConfig` with ``subpopulation_per_class = r > 0`` makes :func:`load_data` return the
training set in which ``r`` images per class are transformed (the test set stays ordinary), and
:func:`load_subpopulation_data` gives the whole construction, rich test set included.

One file per job; this face re-exports their public names (imported on first use, so that
``from ift_core.data import DataConfig`` needs no torch):

================================  ==============================================================
``ift_core.data.containers``      :class:`DataConfig`, :class:`ImageSet`, :class:`SubpopulationData`
``ift_core.data.sources``         where each data set lives and how it is read or fetched
``ift_core.data.loading``         whole splits, subsets, normalisation, the loaders of a config
``ift_core.data.transforms``      the sub-population transforms
``ift_core.data.subpopulations``  the sub-population construction
``ift_core.data.shifts``          corruptions of graded severity
``python -m ift_core.data``       the command line (``fetch``, ``info``)
================================  ==============================================================

Examples
--------
>>> from ift_core.data import DataConfig, load_data
>>> train, test = load_data(DataConfig(name="digits", n_train=500, n_test=200))
>>> train.x.shape, test.x.shape
(torch.Size([500, 1, 8, 8]), torch.Size([200, 1, 8, 8]))
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..internal import lazy_face

if TYPE_CHECKING:
    from .containers import DataConfig, ImageSet, SubpopulationData
    from .loading import as_images, load_data, load_split, load_subpopulation_data, normalize, subset
    from .shifts import SHIFTS, corrupt
    from .sources import (DATASETS, DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, data_info, default_data_dir,
                          fetch, locate, read_idx)
    from .subpopulations import (TEXTURE_BACKGROUNDS, TEXTURE_POSITIONS, TextureSpec, add_subpopulation,
                                 check_construction, is_texture_construction, make_subpopulation_data,
                                 make_texture_points, parse_texture_construction, subpopulation_examples,
                                 texture_construction, texture_patterns)
    from .transforms import SUBPOPULATION_TRANSFORMS, apply_transform, parse_subpopulation_transform

# Each public name and the file it lives in.
_HOME = {
    "DATASETS": "sources",
    "SHIFTS": "shifts",
    "SUBPOPULATION_TRANSFORMS": "transforms",
    "DEBIAN_FASHION_MNIST": "sources",
    "FASHION_MNIST_CLASSES": "sources",
    "DataConfig": "containers",
    "ImageSet": "containers",
    "SubpopulationData": "containers",
    "locate": "sources",
    "default_data_dir": "sources",
    "load_split": "loading",
    "load_data": "loading",
    "subset": "loading",
    "normalize": "loading",
    "as_images": "loading",
    "corrupt": "shifts",
    "parse_subpopulation_transform": "transforms",
    "apply_transform": "transforms",
    "add_subpopulation": "subpopulations",
    "make_subpopulation_data": "subpopulations",
    "load_subpopulation_data": "loading",
    "subpopulation_examples": "subpopulations",
    "fetch": "sources",
    "data_info": "sources",
    "read_idx": "sources",
    "TEXTURE_POSITIONS": "subpopulations",
    "TEXTURE_BACKGROUNDS": "subpopulations",
    "TextureSpec": "subpopulations",
    "texture_construction": "subpopulations",
    "parse_texture_construction": "subpopulations",
    "is_texture_construction": "subpopulations",
    "check_construction": "subpopulations",
    "texture_patterns": "subpopulations",
    "make_texture_points": "subpopulations",
}

__all__ = list(_HOME)


__getattr__, __dir__ = lazy_face(__name__, _HOME, globals())
