"""The sub-population transforms: exact, label-preserving changes of (N, C, H, W) pixels in [0, 1].

One entry of ``_TRANSFORMS`` per transform (a function of the pixels);
:data:`SUBPOPULATION_TRANSFORMS` lists their names in a fixed order, which also seeds the
choice of sub-population images (:func:`ift_core.data.add_subpopulation`): append new ones
at the end. A *construction* is one name or several joined by ``"+"``, applied in order.

The transforms use tensor methods only, so this module (and :class:`ift_core.data.DataConfig`,
which checks a construction's names) imports without torch.

Examples
--------
>>> parse_subpopulation_transform("rotate90+invert")
('rotate90', 'invert')
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

__all__ = ["SUBPOPULATION_TRANSFORMS", "parse_subpopulation_transform", "apply_transform"]


def _patch(pixels: torch.Tensor) -> torch.Tensor:
    out = pixels.clone()
    side = max(2, pixels.shape[-1] // 7)
    out[:, :, :side, :side] = 1.0
    return out


_TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "rotate90": lambda p: p.rot90(1, dims=(2, 3)).contiguous(),    # counter-clockwise
    "rotate180": lambda p: p.rot90(2, dims=(2, 3)).contiguous(),
    "flip_vertical": lambda p: p.flip(dims=(2,)).contiguous(),    # upside-down mirror
    "invert": lambda p: 1.0 - p,
    "patch": _patch,                                               # a white square, top left
}

SUBPOPULATION_TRANSFORMS = tuple(_TRANSFORMS)


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
    bad = [p for p in parts if p not in _TRANSFORMS]
    if bad:
        raise ValueError(f"unknown transform {bad[0]!r} in transform={transform!r}; choose one of "
                         f"{SUBPOPULATION_TRANSFORMS}, or several joined by '+'")
    if len(set(parts)) != len(parts):
        raise ValueError(f"transform={transform!r} repeats a transform")
    return parts


def apply_transform(pixels: torch.Tensor, transform: str) -> torch.Tensor:
    """A label-preserving transformation of (N, C, H, W) pixels in [0, 1].

    ``rotate90`` (counter-clockwise), ``rotate180``, ``flip_vertical`` (upside down mirror),
    ``invert`` (1 - x) and ``patch`` (a white square in the top-left corner, side
    ``max(2, size // 7)``). All are exact and need no randomness. Several joined by ``"+"``
    are applied in that order.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 1, 8, 8)
    >>> torch.equal(apply_transform(apply_transform(x, "rotate180"), "rotate180"), x)
    True
    >>> torch.equal(apply_transform(x, "rotate90+invert"), 1 - torch.rot90(x, 1, dims=(2, 3)))
    True
    """
    import torch

    parts = parse_subpopulation_transform(transform)
    if not isinstance(pixels, torch.Tensor):
        raise ValueError(f"pixels must be a torch.Tensor of shape (N, C, H, W), got {type(pixels).__name__}; "
                         "use torch.as_tensor(array)")
    if pixels.ndim != 4:
        raise ValueError(f"pixels must be (N, C, H, W), got shape {tuple(pixels.shape)}")
    for part in parts:
        pixels = _TRANSFORMS[part](pixels)
    return pixels
