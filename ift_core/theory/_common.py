"""What every file of :mod:`ift_core.theory` shares: the parameter names and the checks of them."""
from __future__ import annotations

from typing import Any

from ..internal import check_choice, check_int

#: Training regimes: one shared training set (DiffInit-like) or one per model (DiffData-like).
TRAINING = ("shared", "independent")

#: Parameters of the two-group (dominant / rare) model, in the paper's names.
PARAMETERS = ("n_classes", "t_d", "t_r", "n_d", "n_r", "p_d", "p_r", "alpha_d", "n_train", "p_systematic")

_INT_PARAMS = ("n_classes", "t_d", "t_r", "n_d", "n_r", "n_train")
_METRICS = ("accuracy", "agreement", "error", "disagreement", "gap")


def _check_seed(seed: Any) -> int:
    return check_int(seed, "seed", minimum=0, remedy="a seed is a non-negative integer")


def _check_training(training: Any) -> str:
    return check_choice(training, "training", TRAINING)
