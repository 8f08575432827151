"""Chapter 12's study: GDE as a label-free estimator of test error, in distribution and under shift.

The clean test set is split once into a labeled *source* part, on which the baselines are
fitted, and an unlabeled *target* part; each shift (:func:`ift_core.data.corrupt`) is applied
to the target part only, so no point a baseline saw with its label is ever scored. For every
test set the study tabulates :func:`ift_core.gde.gde_summary` with the interval of
:func:`ift_core.gde.estimate_error`, and scores the label-free estimators
(:func:`ift_core.gde.compare_estimators`) against the true mean test error of the seeds.

:func:`label_free_tables` does the analysis on plain arrays (numpy only, no torch);
:func:`label_free_study` first computes the arrays from a trained ensemble.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> probs = rng.dirichlet(np.ones(3), size=(4, 200)); labels = rng.integers(0, 3, 200)
>>> source = (probs[:, :100], labels[:100])
>>> tabs = label_free_tables(source, {"clean": (probs[:, 100:], labels[100:])}, full=(probs, labels))
>>> list(tabs.table.index), list(tabs.pivot.index)
(['clean', 'clean (full test set)'], ['clean', 'mean over shifts'])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import gde
from ..internal import check_int, check_probability, check_real

__all__ = ["FULL_TEST_SET", "LabelFreeTables", "LabelFreeStudy", "label_free_tables", "label_free_study"]

#: The row of :attr:`LabelFreeTables.table` for the whole clean test set (GDE needs no source data).
FULL_TEST_SET = "clean (full test set)"


@dataclass
class LabelFreeTables:
    """What :func:`label_free_tables` computed.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per target and one for the full clean test set (:data:`FULL_TEST_SET`): the
        columns of :func:`ift_core.gde.gde_summary` plus ``dis_low``, ``dis_high`` (the interval
        of the disagreement, :func:`ift_core.gde.estimate_error` with ``method="both"``).
    full_interval : ErrorEstimate
        That interval on the full clean test set.
    comparison : pandas.DataFrame
        :func:`ift_core.gde.compare_estimators` on every target (one row per target and method).
    pivot : pandas.DataFrame
        ``|estimate - true error|``, one row per target and a last row ``"mean over shifts"``
        (over the targets other than ``"clean"``), one column per method.
    signed : pandas.DataFrame
        ``estimate - true error``, one row per target.
    """

    table: pd.DataFrame
    full_interval: gde.ErrorEstimate
    comparison: pd.DataFrame
    pivot: pd.DataFrame
    signed: pd.DataFrame


def _check_pair(pair: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise ValueError(f"{name} must be a (probs, labels) tuple, got {type(pair).__name__}")
    probs = np.asarray(pair[0])
    if probs.ndim != 3:
        raise ValueError(f"{name} probs must have shape (M, N, C), got shape {probs.shape}")
    return probs, np.asarray(pair[1])


def label_free_tables(source: tuple[Any, Any], targets: Mapping[str, tuple[Any, Any]], *,
                      full: tuple[Any, Any], n_classes: int | None = None, level: float = 0.95,
                      estimators: Sequence[Any] | None = None) -> LabelFreeTables:
    """GDE and the label-free baselines on every test set: chapter 12's tables from arrays.

    Parameters
    ----------
    source : (probs, labels)
        The labeled source part of the clean test set: probs (M, N_s, C), labels (N_s,).
    targets : mapping name -> (probs, labels)
        The target sets, ``"clean"`` (the unlabeled part of the clean test set) first, then the
        shifted ones; labels are used only to score.
    full : (probs, labels)
        The whole clean test set (its row needs no source data).
    n_classes : int, optional
        Default: the probabilities' last axis.
    level : float, default 0.95
        Coverage of the disagreement's interval.
    estimators : sequence, optional
        Passed to :func:`ift_core.gde.compare_estimators` (default: its default set).

    Returns
    -------
    LabelFreeTables
    """
    level = check_real(level, "level", minimum=0, maximum=1, open_low=True, open_high=True,
                       remedy="e.g. 0.95 for a 95 % interval")
    if not isinstance(targets, Mapping) or not targets:
        raise ValueError("targets must be a non-empty mapping name -> (probs, labels)")
    pairs = {str(name): _check_pair(pair, f"targets[{name!r}]") for name, pair in targets.items()}
    full_probs, full_labels = _check_pair(full, "full")
    k = full_probs.shape[2] if n_classes is None else check_int(n_classes, "n_classes", minimum=2)
    rows = {}
    for name, (p, y) in pairs.items():
        preds = p.argmax(axis=2)
        summary = gde.gde_summary(preds, y, k)
        interval = gde.estimate_error(preds, method="both", level=level)
        summary["dis_low"], summary["dis_high"] = interval.low, interval.high
        rows[name] = summary
    full_preds = full_probs.argmax(axis=2)
    rows[FULL_TEST_SET] = gde.gde_summary(full_preds, full_labels, k)
    full_interval = gde.estimate_error(full_preds, method="both", level=level)
    rows[FULL_TEST_SET]["dis_low"] = full_interval.low
    rows[FULL_TEST_SET]["dis_high"] = full_interval.high
    table = pd.DataFrame(rows).T

    comparison = gde.compare_estimators(source, dict(targets), estimators=estimators)
    names = list(pairs)
    pivot = comparison.pivot(index="target", columns="method", values="abs_error").loc[names]
    shifted = pivot.drop(index=[n for n in names if n == "clean"])
    pivot.loc["mean over shifts"] = shifted.mean() if len(shifted) else pivot.iloc[0]
    signed = comparison.pivot(index="target", columns="method", values="signed_error").loc[names]
    return LabelFreeTables(table=table, full_interval=full_interval, comparison=comparison, pivot=pivot,
                           signed=signed)


@dataclass
class LabelFreeStudy(LabelFreeTables):
    """What :func:`label_free_study` computed: the tables, and the arrays behind them.

    Attributes
    ----------
    source : (probs, labels)
        The labeled source part of the clean test set.
    targets : dict name -> (probs, labels)
        ``"clean"`` (the unlabeled target part) and ``"<shift>-<severity>"`` for each shift.
    probs, labels : ndarray
        The whole clean test set: probabilities (M, N, C) float64 and labels (N,).
    source_points, target_points : ndarray of int
        Positions (sorted) of the source and target parts in the clean test set.
    shifts : tuple of str
    severities : tuple of int
    n_classes : int
    """

    source: tuple[np.ndarray, np.ndarray]
    targets: dict
    probs: np.ndarray
    labels: np.ndarray
    source_points: np.ndarray
    target_points: np.ndarray
    shifts: tuple[str, ...]
    severities: tuple[int, ...]
    n_classes: int

    @property
    def full_predictions(self) -> np.ndarray:
        """(M, N) argmax predictions on the whole clean test set."""
        return self.probs.argmax(axis=2)


def _names(value: Any, name: str) -> list[str]:
    """A comma-separated string or a sequence of names."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a comma-separated string or a sequence, got {value!r}")
    return [str(v) for v in value]


def label_free_study(ensemble: Any, *, shifts: str | Sequence[str] = ("gaussian_noise", "blur", "contrast",
                                                                      "rotation"),
                     severities: str | Sequence[int] = (1, 3, 5), source_fraction: float = 0.5,
                     split_seed: int = 0, shift_seed: int = 0, level: float = 0.95,
                     estimators: Sequence[Any] | None = None) -> LabelFreeStudy:
    """Chapter 12's study on a trained ensemble: targets in and out of distribution, then the tables.

    The ensemble's cached logits on the clean test set give its probabilities; a seeded
    permutation gives the labeled source part (``source_fraction`` of the points) and the
    target part; every shift at every severity is applied to the target images
    (:func:`ift_core.data.corrupt`, seeded) and the models' logits on them computed
    (:func:`ift_core.activations.extract_activations`). Then :func:`label_free_tables`.

    Parameters
    ----------
    ensemble : ift_core.train.Ensemble
    shifts : str or sequence of str
        Kinds of :func:`ift_core.data.corrupt` (a comma-separated string is split).
    severities : str or sequence of int
        1 (mild) .. 5 (strong).
    source_fraction : float in [0, 1]
        Share of the clean test set given to the baselines with labels.
    split_seed, shift_seed : int
        Seeds of the source/target split and of the corruptions.
    level : float
        Coverage of the disagreement's interval.
    estimators : sequence, optional
        Passed to :func:`ift_core.gde.compare_estimators`.

    Returns
    -------
    LabelFreeStudy

    Examples
    --------
    >>> from ift_core import train
    >>> study = label_free_study(train.train_ensemble(train.get_profile("tiny"), progress=False),
    ...                          shifts="rotation", severities="5")  # doctest: +SKIP
    >>> study.pivot.loc["mean over shifts"].idxmin()  # doctest: +SKIP
    """
    from scipy.special import softmax

    from .. import activations, data

    kinds = _names(shifts, "shifts")
    if isinstance(severities, str):
        try:
            severities = [int(v) for v in _names(severities, "severities")]
        except ValueError:
            raise ValueError(f"severities must be whole numbers such as '1,3,5', got {severities!r}") from None
    levels = [check_int(v, "severities", minimum=1, remedy="1 (mild) .. 5 (strong)") for v in severities]
    source_fraction = check_probability(source_fraction, "source_fraction")
    split_seed = check_int(split_seed, "split_seed", minimum=0)
    shift_seed = check_int(shift_seed, "shift_seed", minimum=0)

    _, test_set = ensemble.data()
    clean = activations.ensemble_activations(ensemble, split="test", progress=False)
    probs_all, labels_all = clean.probs.astype(np.float64), np.asarray(clean.labels)
    n_test = len(labels_all)
    order = np.random.default_rng(split_seed).permutation(n_test)
    n_source = int(round(source_fraction * n_test))
    source_pos, target_pos = np.sort(order[:n_source]), np.sort(order[n_source:])
    source = (probs_all[:, source_pos], labels_all[source_pos])
    target_images = test_set.take(target_pos)
    targets = {"clean": (probs_all[:, target_pos], labels_all[target_pos])}
    for kind in kinds:
        for severity in levels:
            shifted = data.corrupt(target_images, kind, severity, seed=shift_seed)
            _, logits = activations.extract_activations(ensemble.models, shifted.x)
            targets[f"{kind}-{severity}"] = (softmax(logits.astype(np.float64), axis=-1), shifted.y.numpy())
    k = int(test_set.n_classes)
    tabs = label_free_tables(source, targets, full=(probs_all, labels_all), n_classes=k, level=level,
                             estimators=estimators)
    return LabelFreeStudy(**vars(tabs), source=source, targets=targets, probs=probs_all, labels=labels_all,
                          source_points=source_pos, target_points=target_pos, shifts=tuple(kinds),
                          severities=tuple(levels), n_classes=k)
