"""IFT: the interaction tensor of models, data and features.

Reproducible companion to Jiang, Baek & Kolter, *On the Joint Interaction of
Models, Data, and Features* (ICLR 2024).

The pipeline reads left to right::

    data -> models -> train -> activations -> tensor -> observations
                                   |                       |
                                   +-> gde                 +-> experiments -> plots
    theory (model, closed forms, simulation, fitting, readings) ---^

``ARCHITECTURE.md`` gives each module's one job and the import directions between them.
Submodules are imported lazily, so ``import ift_core`` is cheap and the analysis half
(``tensor``, ``observations``, ``theory``, ``gde``, ``claims``) never pulls in torch.

Examples
--------
>>> import ift_core
>>> ift_core.theory  # doctest: +SKIP
<module 'ift_core.theory' ...>
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "data",
    "models",
    "train",
    "activations",
    "tensor",
    "observations",
    "theory",
    "gde",
    "plots",
    "claims",
    "cache",
    "distributed",
    "experiments",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ift_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
