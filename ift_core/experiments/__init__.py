"""Studies that run the whole pipeline on real data, one file per study.

* :mod:`~ift_core.experiments.subpopulation` (chapter 11): a rare sub-population swept from
  absent to common on real images, GDE measured on the ordinary and the rich test set
  (:func:`subpopulation_sweep`, :func:`gde_breaks`);
* :mod:`~ift_core.experiments.prediction` (chapter 11): the framework's prediction for that
  sweep and where it agrees with the measurement (:func:`framework_prediction`,
  :func:`compare_with_framework`);
* :mod:`~ift_core.experiments.label_free` (chapter 12): GDE as a label-free estimator of test
  error against the baselines, in distribution and under shift (:func:`label_free_study`,
  :func:`label_free_tables`).
* :mod:`~ift_core.experiments.factors` (the scorecard): each claim's verdict recomputed with one
  factor moved toward the paper's setting (:func:`factor_study`, :func:`flipping_factors`).

Every study that builds an interaction tensor takes ``tensor_options=`` (a
:class:`ift_core.tensor.TensorOptions`), so any option of the tensor can be varied. Training
and data are imported only when a study runs them, so importing this package does not load
torch.

Examples
--------
>>> from ift_core import experiments as ex
>>> ex.get_sweep_profile("tiny").rarities
(0, 2, 10)
"""
from __future__ import annotations

# The face: every public name of the study files (their __all__), importable from here.
from . import factors, label_free, prediction, subpopulation
from .label_free import (  # noqa: F401
    FULL_TEST_SET,
    LabelFreeStudy,
    LabelFreeTables,
    label_free_study,
    label_free_tables,
)
from .prediction import FrameworkPrediction, compare_with_framework, framework_prediction  # noqa: F401
from .subpopulation import (  # noqa: F401
    SWEEP_PROFILES,
    SWEEP_TENSOR_OPTIONS,
    TEST_SETS,
    SweepProfile,
    SweepResult,
    gde_breaks,
    get_sweep_profile,
    subpopulation_sweep,
)

from .factors import factor_study, flipping_factors  # noqa: F401

__all__ = [*subpopulation.__all__, *prediction.__all__, *label_free.__all__, "factor_study", "flipping_factors"]
