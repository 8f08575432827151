"""The conceptual framework of Jiang, Baek & Kolter (ICLR 2024, §5), solved exactly.

This package implements the framework as ``book/definitions.md`` §3 formalises it, plus the
extensions that page asks for (any number of classes, any number of feature
groups, systematic wrong answers), one file per job:

* :mod:`~ift_core.theory.model`: :class:`Group`, :class:`FeatureModel` and its closed forms;
* :mod:`~ift_core.theory.closed_forms`: the closed forms for whole arrays of settings, grids
  and sweeps (the paper's Figure 4), couplings;
* :mod:`~ift_core.theory.simulation`: a vectorised Monte Carlo simulation of the same story;
* :mod:`~ift_core.theory.calibration`: the vote ensemble's calibration, exactly;
* :mod:`~ift_core.theory.constructions`: settings that break GDE the most, or keep it;
* :mod:`~ift_core.theory.fitting`: a moment-matching :func:`fit` to a measured interaction tensor;
* :mod:`~ift_core.theory.readings`: the other readings of the framework's learning rule, side by
  side, tested against the paper's statements.

Every public name of the files is importable from ``ift_core.theory`` itself.

The generative story
--------------------
* ``K`` classes. Feature *group* ``g`` (``g = 0`` "dominant", ``g = 1`` "rare"
  in the paper's two-group case) owns ``t_g`` features per class, so there are
  ``K * sum_g t_g`` features in all, each belonging to one class and one group.
* A point has label ``y`` uniform on the ``K`` classes. With probability
  ``w_g`` (the group's ``weight``; ``alpha_d`` and ``alpha_r = 1 - alpha_d`` in
  the paper) it is a point of type ``g``: it carries ``n_g`` distinct features of
  group ``g`` and class ``y``, drawn uniformly without replacement.
* A model is trained on ``N = n_train`` such points. It learns every feature of
  group ``g`` that occurs at least once in its training set with probability
  ``p_g``, independently. Models share one training set (``training="shared"``,
  like DiffInit) or each draw their own (``"independent"``, like DiffData).
* A model predicts the true label of a test point if it learned at least one of
  the point's features. Otherwise it answers the point's designated wrong class
  ``w != y`` (uniform over the other ``K - 1`` classes, fixed per point) with
  probability ``beta = p_systematic``, and else a class drawn uniformly from all
  ``K``, independently between models.

Closed forms (derived in :meth:`FeatureModel.E_s` and :func:`expected_metrics`)
-------------------------------------------------------------------------------
For a point of type ``s`` with ``n = n_s``, ``t = t_s``::

    rho_s(b) = (w_s / K) (1 - C(t - b, n) / C(t, n))
    E_s(z)   = sum_b C(n, b) (1 - z)^b z^(n - b) (1 - rho_s(b))^N
    miss_s   = E_s(1 - p_s)
    both_s   = E_s((1 - p_s)^2)  (shared)   or   miss_s^2  (independent)
    E[acc]   = sum_s w_s [1 - miss_s (1 - (1 - beta)/K)]
    E[agr]   = sum_s w_s [1 - 2 miss_s + both_s + 2 (miss_s - both_s)(1 - beta)/K
                          + both_s (beta^2 + (1 - beta^2)/K)]

The *gap* reported everywhere is ``E[dis] - E[err] = E[acc] - E[agr]``: positive
when disagreement exceeds test error (the vote ensemble is under-confident),
zero under GDE, negative only when ``p_systematic > 0``.

Examples
--------
>>> from ift_core.theory import FeatureModel
>>> fm = FeatureModel(n_classes=2, t_d=10, t_r=1000, n_d=3, n_r=3, p_d=0.9, p_r=0.3,
...                   alpha_d=0.7, n_train=1000)
>>> round(fm.expected_accuracy(), 4), round(fm.expected_agreement(), 4)
(0.8934, 0.8682)
>>> fm.gde_gap() >= 0
True
"""
from __future__ import annotations

import importlib
from typing import Any

from ..gde import same_wrong_rate  # re-exported: the framework reads p_systematic from it
from ._common import PARAMETERS, TRAINING
from .calibration import empirical_vote_calibration, vote_cace, vote_calibration
from .closed_forms import (
    coupled_sweep,
    coupling_study,
    evaluate,
    expected_metrics,
    grid,
    models_from_grid,
    sweep,
    sweeps,
)
from .constructions import gde_constructions
from .fitting import FitResult, beta_from_same_wrong_rate, fit
from .model import FeatureModel, Group
from .simulation import Simulation, compare_with_simulation, monte_carlo, random_models, simulate

__all__ = [
    "Group",
    "FeatureModel",
    "Simulation",
    "FitResult",
    "TRAINING",
    "PARAMETERS",
    "expected_metrics",
    "evaluate",
    "grid",
    "sweep",
    "sweeps",
    "coupled_sweep",
    "coupling_study",
    "models_from_grid",
    "simulate",
    "monte_carlo",
    "compare_with_simulation",
    "random_models",
    "vote_calibration",
    "vote_cace",
    "empirical_vote_calibration",
    "gde_constructions",
    "same_wrong_rate",
    "beta_from_same_wrong_rate",
    "fit",
    "readings",
]


def __getattr__(name: str) -> Any:
    # ``theory.readings`` loads on first use (it imports scipy.stats).
    if name == "readings":
        return importlib.import_module(f"{__name__}.readings")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
