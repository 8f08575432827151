"""The rare sub-population constructions, and a test set rich in the sub-population to measure the models on.

Two families, each named by a *construction* string (``DataConfig.subpopulation_transform``):

* **shape-preserving transforms** (``"rotate90"``, ``"rotate90+invert"``, ...): ``r`` training
  images of every class are replaced by transformed versions; the rich test set is every test
  image transformed. A transformed point still carries its shape.
* **feature-only points** (``"texture"``, ``"texture,size=4,background=digits"``, ...): ``r``
  points of every class *join* the training set, each showing only a class-coded texture on a
  background that carries no class information (:func:`make_texture_points`); the rich test set
  is as many fresh points as the test set has images, with the test set's labels.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..internal import as_int_array, check_choice, check_int, check_real
from .containers import ImageSet, SubpopulationData, _stat_tensors
from .transforms import SUBPOPULATION_TRANSFORMS, apply_transform, parse_subpopulation_transform

if TYPE_CHECKING:
    import torch

__all__ = ["add_subpopulation", "make_subpopulation_data", "subpopulation_examples", "TEXTURE_POSITIONS",
           "TEXTURE_BACKGROUNDS", "TextureSpec", "texture_construction", "parse_texture_construction",
           "is_texture_construction", "check_construction", "texture_patterns", "make_texture_points"]


def add_subpopulation(train: ImageSet, *, n_per_class: int, transform: str = "rotate90",
                      seed: int = 0) -> tuple[ImageSet, np.ndarray]:
    """``train`` with its rare sub-population: ``n_per_class`` images of every class replaced by
    their transformed versions, or (a texture construction) ``n_per_class`` feature-only points
    of every class appended after the ordinary images.

    The training half of :func:`make_subpopulation_data` (which documents the construction);
    :func:`ift_core.data.load_data` applies it when ``DataConfig.subpopulation_per_class > 0``.

    Returns
    -------
    train : ImageSet
        Same size, labels, indices and normalisation; only the chosen rows differ.
    mask : np.ndarray of bool
        (N,) True at the chosen rows, exactly ``n_per_class`` per class (a texture
        construction: the appended rows; the set grows by ``n_per_class * n_classes``).

    Examples
    --------
    >>> from ift_core.data import DataConfig, load_data
    >>> tr, _ = load_data(DataConfig(name="digits", n_train=500, n_test=200))
    >>> new, mask = add_subpopulation(tr, n_per_class=2, transform="rotate90+invert")
    >>> int(mask.sum()), new.name
    (20, 'digits+rotate90+invert[r=2]')
    """
    import torch

    if is_texture_construction(transform):
        return _add_texture_points(train, n_per_class=n_per_class, construction=check_construction(transform),
                                   seed=check_int(seed, "seed", minimum=0))
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
        per point); or a texture construction (``"texture"``, :class:`TextureSpec`): then
        ``n_per_class`` feature-only points per class join the training set (any number), and
        ``test_sub`` holds ``len(test)`` fresh feature-only points with the test set's labels
        (indices -1: they come from no split).
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
    transform = check_construction(transform)
    if train.classes != test.classes:
        raise ValueError(f"train and test have different classes: {train.classes} vs {test.classes}")
    new_train, train_mask = add_subpopulation(train, n_per_class=n_per_class, transform=transform, seed=seed)
    r, seed = int(n_per_class), int(seed)
    if is_texture_construction(transform):
        test_sub = _texture_set(test, test.y.numpy(), np.arange(len(test), dtype=np.int64), construction=transform,
                                seed=seed, stream=1, stats_from=train, name=f"{test.name}:{transform}")
    else:
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
                           n: int | None = None, seed: int = 0) -> dict[str, Any]:
    """A few example images of each kind, for the book: ordinary and transformed versions.

    Takes the first image of each class in ``ds`` (up to ``n`` classes, default all). For a
    texture construction the sub-population row shows each class's first training point (its
    noise statistics are ``ds``'s own, its textures those of ``seed``).

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
    import torch

    transform = check_construction(transform)
    labels = ds.y.numpy()
    present = [c for c in range(ds.n_classes) if (labels == c).any()]
    if n is not None:
        n = check_int(n, "n")
        if not 1 <= n <= len(present):
            raise ValueError(f"n={n} must be in 1..{len(present)} (classes present)")
        present = present[:n]
    pos = np.array([int(np.flatnonzero(labels == c)[0]) for c in present], dtype=np.int64)
    pixels = ds.pixels()[torch.from_numpy(pos)].clamp(0, 1)
    if is_texture_construction(transform):
        moved = _texture_set(ds, labels[pos], np.zeros(len(pos), dtype=np.int64), construction=transform,
                             seed=check_int(seed, "seed", minimum=0), stream=0, stats_from=ds, name=ds.name).pixels().clamp(0, 1)
    else:
        moved = apply_transform(pixels, transform).clamp(0, 1)
    return {
        "ordinary": pixels.permute(0, 2, 3, 1).numpy().copy(),
        "subpopulation": moved.permute(0, 2, 3, 1).numpy().copy(),
        "labels": labels[pos].copy(),
        "class_names": [ds.classes[c] for c in present],
        "transform": transform,
    }


# --------------------------------------------------------------------------------------------
# The feature-only construction: class-coded textures on uninformative backgrounds
# --------------------------------------------------------------------------------------------
#: Where a texture goes: ``"center"`` (a fixed central square), ``"jitter"`` (the centre moved by
#: up to 2 pixels each way, per point) or ``"random"`` (anywhere in the image, per point).
TEXTURE_POSITIONS = ("center", "jitter", "random")
#: What a feature-only point shows around its texture: ``"noise"`` (iid pixels with the training
#: subset's per-channel mean and std, clipped to [0, 1]) or ``"digits"`` (scikit-learn's
#: handwritten digits, resized to the image size: images of another data set the models never see).
TEXTURE_BACKGROUNDS = ("noise", "digits")
_TEXTURE_KEYS = ("size", "position", "background", "per_class", "alpha")
_TEXTURE_TAG = 20  # seeds the texture streams apart from every other use of a seed
_JITTER = 2
_DIGITS_MEMO: dict[tuple[int, int, int], Any] = {}


@dataclass(frozen=True)
class TextureSpec:
    """The feature-only construction's parameters (see :func:`make_texture_points`).

    Attributes
    ----------
    size : int
        Side of the square texture, in pixels (>= 2, at most the image size).
    position : {"center", "jitter", "random"}
        Where it is pasted (:data:`TEXTURE_POSITIONS`).
    background : {"noise", "digits"}
        What surrounds it (:data:`TEXTURE_BACKGROUNDS`).
    per_class : int
        Textures per class (>= 1); each point carries one of its class's, drawn uniformly.
    alpha : float
        Opacity in (0, 1]: the pasted square is ``(1 - alpha) * background + alpha * texture``.

    Examples
    --------
    >>> TextureSpec(size=4, per_class=3).construction
    'texture,size=4,per_class=3'
    >>> TextureSpec().construction
    'texture'
    """

    size: int = 6
    position: str = "center"
    background: str = "noise"
    per_class: int = 1
    alpha: float = 1.0

    def __post_init__(self) -> None:
        check_int(self.size, "size", minimum=2, remedy="the texture's side in pixels")
        check_choice(self.position, "position", TEXTURE_POSITIONS)
        check_choice(self.background, "background", TEXTURE_BACKGROUNDS)
        check_int(self.per_class, "per_class", minimum=1, remedy="textures per class")
        object.__setattr__(self, "alpha", check_real(self.alpha, "alpha", minimum=0, maximum=1, open_low=True,
                                                     remedy="the texture's opacity, in (0, 1]"))

    @property
    def construction(self) -> str:
        """The canonical construction string (defaults left out), as ``DataConfig`` stores it."""
        default = TextureSpec.__dataclass_fields__
        parts = [f"{k}={getattr(self, k)!r}" if isinstance(getattr(self, k), float) else f"{k}={getattr(self, k)}"
                 for k in _TEXTURE_KEYS if getattr(self, k) != default[k].default]
        return ",".join(["texture", *parts])


def is_texture_construction(construction: Any) -> bool:
    """Whether ``construction`` names the feature-only (texture) construction.

    Examples
    --------
    >>> is_texture_construction("texture,size=4"), is_texture_construction("rotate90")
    (True, False)
    """
    return isinstance(construction, str) and (construction == "texture" or construction.startswith("texture,"))


def parse_texture_construction(construction: str) -> TextureSpec:
    """The :class:`TextureSpec` of ``"texture"`` or ``"texture,key=value,..."``.

    Keys: ``size``, ``position``, ``background``, ``per_class``, ``alpha`` (any subset, any
    order; the rest keep their defaults: 6, center, noise, 1, 1.0).

    Examples
    --------
    >>> parse_texture_construction("texture,background=digits,size=4")
    TextureSpec(size=4, position='center', background='digits', per_class=1, alpha=1.0)
    """
    if not is_texture_construction(construction):
        raise ValueError(f"construction={construction!r} is not a texture construction; write 'texture' or "
                         f"'texture,key=value,...' with keys {_TEXTURE_KEYS}")
    kw: dict[str, Any] = {}
    for item in construction.split(",")[1:]:
        key, sep, value = item.partition("=")
        if not sep or key not in _TEXTURE_KEYS:
            raise ValueError(f"bad item {item!r} in construction={construction!r}; write key=value with a key "
                             f"from {_TEXTURE_KEYS}")
        if key in kw:
            raise ValueError(f"construction={construction!r} sets {key!r} twice")
        if key in ("size", "per_class"):
            try:
                kw[key] = int(value)
            except ValueError:
                raise ValueError(f"{key}={value!r} in construction={construction!r} must be a whole number") from None
        elif key == "alpha":
            try:
                kw[key] = float(value)
            except ValueError:
                raise ValueError(f"alpha={value!r} in construction={construction!r} must be a number in (0, 1]") \
                    from None
        else:
            kw[key] = value
    return TextureSpec(**kw)


def texture_construction(*, size: int = 6, position: str = "center", background: str = "noise",
                         per_class: int = 1, alpha: float = 1.0) -> str:
    """The canonical construction string of the feature-only construction with these parameters.

    Pass it as ``DataConfig.subpopulation_transform`` (or a sweep's ``transform``).

    Examples
    --------
    >>> texture_construction(size=4, background="digits")
    'texture,size=4,background=digits'
    """
    return TextureSpec(size=size, position=position, background=background, per_class=per_class,
                       alpha=alpha).construction


def check_construction(construction: Any) -> str:
    """A sub-population construction, checked, in its canonical spelling.

    Either transforms (``"rotate90"``, ``"rotate90+invert"``:
    :func:`ift_core.data.parse_subpopulation_transform`), returned as given, or the
    feature-only construction (``"texture,..."``), returned canonical (defaults left out, keys
    in a fixed order) so that one construction has one cache key.

    Examples
    --------
    >>> check_construction("texture,per_class=1,size=4")
    'texture,size=4'
    >>> check_construction("rotate90+invert")
    'rotate90+invert'
    """
    if is_texture_construction(construction):
        return parse_texture_construction(construction).construction
    parse_subpopulation_transform(construction)
    return construction


def texture_patterns(n_classes: int, *, construction: str = "texture", seed: int = 0) -> np.ndarray:
    """The class-coded textures: ``(n_classes, per_class, size, size)`` black-and-white (0/1) squares.

    Each pixel is black or white with probability 1/2, drawn from ``seed`` alone (the textures do
    not depend on the rarity or on the data); all textures differ from each other.

    Examples
    --------
    >>> t = texture_patterns(10, construction="texture,size=4,per_class=2")
    >>> t.shape, sorted(set(t.ravel().tolist()))
    ((10, 2, 4, 4), [0.0, 1.0])
    """
    spec = parse_texture_construction(construction)
    k = check_int(n_classes, "n_classes", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    if k * spec.per_class > 2 ** (spec.size * spec.size):
        raise ValueError(f"{k * spec.per_class} distinct textures do not fit in {spec.size}x{spec.size} "
                         "black-and-white squares; use a larger size")
    rng = np.random.default_rng([seed, _TEXTURE_TAG, 0])
    out = np.empty((k, spec.per_class, spec.size, spec.size), dtype=np.float32)
    seen: set[bytes] = set()
    for c in range(k):
        for j in range(spec.per_class):
            while True:  # redraw on a repeat (only matters for tiny sizes)
                t = rng.integers(0, 2, size=(spec.size, spec.size)).astype(np.float32)
                if t.tobytes() not in seen:
                    break
            seen.add(t.tobytes())
            out[c, j] = t
    return out


def _digit_backgrounds(channels: int, height: int, width: int) -> Any:
    """scikit-learn's 1797 handwritten digits in [0, 1], resized (bilinear) to (channels, height, width)."""
    import torch

    key = (channels, height, width)
    if key not in _DIGITS_MEMO:
        from .loading import load_split

        both = torch.cat([load_split("digits", s).x for s in ("train", "test")])
        big = torch.nn.functional.interpolate(both, size=(height, width), mode="bilinear", align_corners=False)
        _DIGITS_MEMO.clear()
        _DIGITS_MEMO[key] = big.clamp_(0.0, 1.0).expand(-1, channels, -1, -1).contiguous()
    return _DIGITS_MEMO[key]


def make_texture_points(labels: Any, ids: Any, *, construction: str = "texture", seed: int = 0, stream: int = 0,
                        mean: Sequence[float], std: Sequence[float], image_shape: Sequence[int]) -> dict[str, Any]:
    """Feature-only points: a class-coded texture on a background that carries no class information.

    Point ``i`` shows one of its class's textures (:func:`texture_patterns`) pasted on a
    background. Everything random about it (which texture, where, the background's pixels) is
    drawn from its own generator, seeded by ``(seed, stream, labels[i], ids[i])``: the same
    point comes out bit for bit whatever else is generated with it, so the training points of
    rarity r are among those of any r' > r. The background never depends on the label: iid pixel
    noise with the given per-channel ``mean`` and ``std`` clipped to [0, 1] (``"noise"``), or a
    handwritten digit drawn uniformly (``"digits"``); the only thing that tells the classes
    apart is the texture.

    Parameters
    ----------
    labels, ids : array of int, shape (N,)
        Each point's class and its number within (stream, class).
    construction : str
        ``"texture"`` or ``"texture,key=value,..."`` (:class:`TextureSpec`).
    seed : int
        The textures and the points.
    stream : int
        Separates point sets made from one seed (0: training points, 1: test points).
    mean, std : sequence of float
        The noise background's per-channel statistics, in pixel space.
    image_shape : (C, H, W)

    Returns
    -------
    dict
        ``"pixels"``: (N, C, H, W) float32 tensor in [0, 1]; ``"offset"``: (N, 2) int array,
        the texture's top-left (row, column); ``"texture"``: (N,) int array, which of its
        class's textures each point carries.

    Examples
    --------
    >>> pts = make_texture_points([0, 1, 1], [0, 0, 1], mean=[0.3], std=[0.3], image_shape=(1, 28, 28))
    >>> tuple(pts["pixels"].shape), pts["offset"][0].tolist()
    ((3, 1, 28, 28), [11, 11])
    """
    import torch

    spec = parse_texture_construction(construction)
    seed, stream = check_int(seed, "seed", minimum=0), check_int(stream, "stream", minimum=0)
    y = as_int_array(labels, name="labels", ndim=1)
    ids = as_int_array(ids, name="ids", ndim=1)
    if ids.shape != y.shape:
        raise ValueError(f"labels and ids must have the same length, got {y.shape[0]} and {ids.shape[0]}")
    if y.size and (y.min() < 0 or ids.min() < 0):
        raise ValueError("labels and ids must be non-negative integers")
    try:
        c, h, w = (check_int(v, "image_shape", minimum=1) for v in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}") from None
    if spec.size > min(h, w):
        raise ValueError(f"size={spec.size} exceeds the {h}x{w} image; use a smaller texture")
    mean_a = np.asarray([check_real(v, "mean", minimum=0, maximum=1) for v in mean], dtype=np.float64)
    std_a = np.asarray([check_real(v, "std", minimum=0) for v in std], dtype=np.float64)
    if len(mean_a) != c or len(std_a) != c:
        raise ValueError(f"mean and std need {c} values (one per channel), got {len(mean_a)} and {len(std_a)}")
    n_classes = int(y.max()) + 1 if y.size else 1
    patterns = texture_patterns(max(n_classes, 2), construction=construction, seed=seed)
    digits = _digit_backgrounds(c, h, w) if spec.background == "digits" else None
    centre = ((h - spec.size) // 2, (w - spec.size) // 2)
    pixels = np.empty((len(y), c, h, w), dtype=np.float32)
    offsets = np.empty((len(y), 2), dtype=np.int64)
    which = np.empty(len(y), dtype=np.int64)
    for i, (label, pid) in enumerate(zip(y.tolist(), ids.tolist())):
        rng = np.random.default_rng([seed, _TEXTURE_TAG, 1 + stream, label, pid])
        t = int(rng.integers(spec.per_class)) if spec.per_class > 1 else 0
        if spec.position == "center":
            r0, c0 = centre
        elif spec.position == "jitter":
            r0, c0 = (int(np.clip(centre[k] + rng.integers(-_JITTER, _JITTER + 1), 0, (h, w)[k] - spec.size))
                      for k in (0, 1))
        else:
            r0, c0 = int(rng.integers(0, h - spec.size + 1)), int(rng.integers(0, w - spec.size + 1))
        if digits is None:
            bg = np.clip(rng.normal(mean_a[:, None, None], std_a[:, None, None], size=(c, h, w)), 0.0, 1.0)
        else:
            bg = digits[int(rng.integers(len(digits)))].numpy().astype(np.float64)
        region = bg[:, r0:r0 + spec.size, c0:c0 + spec.size]
        bg[:, r0:r0 + spec.size, c0:c0 + spec.size] = (1.0 - spec.alpha) * region + spec.alpha * patterns[label, t]
        pixels[i], offsets[i], which[i] = bg, (r0, c0), t
    return {"pixels": torch.from_numpy(pixels), "offset": offsets, "texture": which}


def _pixel_stats(ds: ImageSet) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``ds``'s pixels (the noise background's statistics)."""
    p = ds.pixels().to(dtype=__import__("torch").float64)
    return p.mean(dim=(0, 2, 3)).tolist(), p.std(dim=(0, 2, 3), unbiased=False).tolist()


def _texture_set(like: ImageSet, labels: np.ndarray, ids: np.ndarray, *, construction: str, seed: int,
                 stream: int, stats_from: ImageSet, name: str) -> ImageSet:
    """Feature-only points as an :class:`ImageSet` normalised like ``like``."""
    import torch

    spec = parse_texture_construction(construction)
    if spec.background == "digits" and like.name.split(":")[0].split("+")[0] == "digits":
        raise ValueError("background='digits' on the digits data set would show the models images of their "
                         "own data set; use background='noise'")
    mean, std = _pixel_stats(stats_from)
    pts = make_texture_points(labels, ids, construction=construction, seed=seed, stream=stream, mean=mean, std=std,
                              image_shape=tuple(like.x.shape[1:]))
    m, s = _stat_tensors(like.mean, like.std)
    return ImageSet(x=((pts["pixels"] - m) / s).to(torch.float32).contiguous(),
                    y=torch.as_tensor(labels, dtype=torch.int64).clone(), classes=like.classes, name=name,
                    indices=np.full(len(labels), -1, dtype=np.int64), mean=like.mean, std=like.std)


def _add_texture_points(train: ImageSet, *, n_per_class: int, construction: str,
                        seed: int) -> tuple[ImageSet, np.ndarray]:
    """``train`` followed by ``n_per_class`` feature-only points of every class (class by class)."""
    import torch

    r = check_int(n_per_class, "n_per_class", minimum=0, remedy="feature-only points per class")
    if r == 0:
        return dataclasses.replace(train, x=train.x.clone(), y=train.y.clone(),
                                   indices=train.indices.copy()), np.zeros(len(train), dtype=bool)
    k = train.n_classes
    labels = np.repeat(np.arange(k, dtype=np.int64), r)
    ids = np.tile(np.arange(r, dtype=np.int64), k)
    extra = _texture_set(train, labels, ids, construction=construction, seed=seed, stream=0, stats_from=train,
                         name=train.name)
    new = dataclasses.replace(train, x=torch.cat([train.x, extra.x]), y=torch.cat([train.y, extra.y]),
                              indices=np.concatenate([train.indices, extra.indices]),
                              name=f"{train.name}+{construction}[r={r}]")
    return new, np.concatenate([np.zeros(len(train), dtype=bool), np.ones(len(extra), dtype=bool)])
