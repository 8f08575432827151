"""Shifted test sets: the same images and labels under a corruption of graded severity.

One entry of ``_SHIFTS`` per kind: its strength at severities 1..5 and the function that
applies a strength to pixels in [0, 1]. :data:`SHIFTS` lists the kinds in a fixed order,
which also seeds each kind's randomness: append new ones at the end.

Examples
--------
>>> SHIFTS
('gaussian_noise', 'blur', 'contrast', 'rotation')
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..internal import check_int
from .containers import ImageSet

__all__ = ["SHIFTS", "corrupt"]


def _noise(pixels: torch.Tensor, sigma: float, rng: np.random.Generator) -> torch.Tensor:
    noise = rng.standard_normal(tuple(pixels.shape), dtype=np.float32) * np.float32(sigma)
    return pixels + torch.from_numpy(noise)


def _blur(pixels: torch.Tensor, sigma: float, rng: np.random.Generator) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    h = pixels.shape[-1]
    # sigma is given for a 28-pixel image: scaled with the size, but not below half
    # (an 8-pixel digit is already coarse)
    sigma = sigma * max(h, 16) / 28.0
    k = 2 * math.ceil(3 * sigma) + 1
    k = min(k, 2 * h - 1)  # odd; reflect padding needs k // 2 < size
    return gaussian_blur(pixels, [k, k], [sigma, sigma])


def _contrast(pixels: torch.Tensor, factor: float, rng: np.random.Generator) -> torch.Tensor:
    m = pixels.mean(dim=(1, 2, 3), keepdim=True)
    return (pixels - m) * factor + m


def _rotation(pixels: torch.Tensor, degrees: float, rng: np.random.Generator) -> torch.Tensor:
    from torchvision.transforms.functional import InterpolationMode, rotate

    angles = rng.choice(np.array([-1.0, 1.0]), size=len(pixels)) * degrees
    out = torch.empty_like(pixels)
    for a in np.unique(angles):  # one call per distinct angle (here: two signs)
        sel = torch.from_numpy(np.flatnonzero(angles == a))
        out[sel] = rotate(pixels[sel], float(a), interpolation=InterpolationMode.BILINEAR, fill=[0.0])
    return out


@dataclass(frozen=True)
class _Shift:
    strengths: tuple[float, float, float, float, float]  # at severity 1..5
    apply: Callable[[torch.Tensor, float, np.random.Generator], torch.Tensor]  # (pixels, strength, rng)


# ImageNet-C's noise and contrast levels; blur sigma in pixels for a 28-pixel image; rotation in
# degrees, random sign per image.
_SHIFTS: dict[str, _Shift] = {
    "gaussian_noise": _Shift((0.08, 0.12, 0.18, 0.26, 0.38), _noise),
    "blur": _Shift((0.5, 0.8, 1.1, 1.5, 2.0), _blur),
    "contrast": _Shift((0.4, 0.3, 0.2, 0.1, 0.05), _contrast),
    "rotation": _Shift((15.0, 30.0, 45.0, 60.0, 75.0), _rotation),
}

SHIFTS = tuple(_SHIFTS)


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
    >>> from ift_core.data import load_split
    >>> ds = load_split("digits", "test")
    >>> shifted = corrupt(ds, "gaussian_noise", 3, seed=0)
    >>> shifted.x.shape == ds.x.shape, bool((shifted.y == ds.y).all())
    (True, True)
    """
    if not isinstance(kind, str) or kind not in _SHIFTS:
        raise ValueError(f"unknown shift kind={kind!r}; choose one of {SHIFTS}")
    s = check_int(severity, "severity")
    if not 0 <= s <= 5:
        raise ValueError(f"severity={s} must be in 1..5 (0 = unchanged)")
    seed = check_int(seed, "seed")
    if s == 0:  # an exact copy, no round trip through pixel space
        return dataclasses.replace(ds, x=ds.x.clone(), y=ds.y.clone(), indices=ds.indices.copy())
    shift = _SHIFTS[kind]
    rng = np.random.default_rng([seed, SHIFTS.index(kind), s])
    out = shift.apply(ds.pixels(), shift.strengths[s - 1], rng)
    return ds.with_pixels(out.clamp_(0.0, 1.0), name=f"{ds.name}:{kind}{s}")
