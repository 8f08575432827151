"""Seaborn figures, one function per figure, grouped by the module whose output they draw.

``ift_core.plots.train`` (images and training curves), ``.tensor`` (interaction tensor and
observations O1-O4), ``.theory`` (the framework), ``.readings`` (its readings side by side), ``.gde`` (error, disagreement, calibration,
estimators) and ``.experiments`` (breaking GDE on real images); ``.style`` is the one figure style
they all share (legible at the book's column width). Every figure function is also
reachable as ``ift_core.plots.<name>``; submodules load on first use, so matplotlib is imported
only when a figure is drawn.

One convention for all of them: a figure function returns its ``matplotlib.figure.Figure``. One
that draws a single panel takes ``ax=`` (an Axes to draw into, default a new figure) and then
returns ``ax.figure``; one that draws several panels makes its own figure. Notebooks end such a
line with ``;`` (or keep the figure in a variable), so that Jupyter does not show it twice.

Examples
--------
>>> from ift_core import plots
>>> fig = plots.plot_sweeps  # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = ("train", "tensor", "theory", "readings", "gde", "experiments", "style")

__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    for sub in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{sub}")
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module 'ift_core.plots' has no figure or submodule {name!r}")


def __dir__() -> list[str]:
    names = set(__all__)
    for sub in _SUBMODULES:
        names.update(getattr(importlib.import_module(f"{__name__}.{sub}"), "__all__", ()))
    return sorted(names)
