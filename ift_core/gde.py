"""Generalization Disagreement Equality: error, disagreement, calibration, label-free estimates.

Everything here works on plain arrays (numpy/scipy/pandas only, never torch), so predictions
from any framework can be analysed:

* ``preds``: integer predictions, shape ``(M, N)`` (M models, N points);
* ``labels``: integer labels, shape ``(N,)``, in ``[0, n_classes)``;
* ``probs``: class probabilities, ``(N, C)`` for one model or ``(M, N, C)`` for an ensemble.

The GDE (Jiang, Nagarajan, Baek & Kolter, ICLR 2022) says that the expected disagreement of two
independently trained models equals their expected test error, so :func:`disagreement` on
unlabeled data estimates :func:`test_error`. The gap is bounded by the class-aggregated
calibration error of the vote ensemble, :func:`cace`. Two diagnostics decide the direction in
which GDE fails on real ensembles: :func:`same_wrong_rate` (models that are both wrong name the
same wrong class: pushes disagreement below error) and :func:`counterfactual_disagreement` (what
disagreement would be if wrong answers were random). Label-free estimators share one interface,
``fit(source_probs, source_labels)`` then ``estimate(target_probs)``: :class:`AverageConfidence`,
:class:`DifferenceOfConfidences`, :class:`ATC` and :class:`GDE`; :func:`compare_estimators` puts
them side by side on shifted targets.

Examples
--------
>>> import numpy as np
>>> preds = np.array([[0, 1, 1, 2], [0, 1, 2, 2], [0, 0, 1, 2]])
>>> labels = np.array([0, 1, 1, 1])
>>> round(test_error(preds, labels), 4), round(disagreement(preds), 4)
(0.4167, 0.3333)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from ift_core.internal import (
    as_float_array,
    as_int_array,
    check_bool,
    check_choice,
    check_int,
    check_labels,
    check_memory,
    check_real,
    pair_agreement,
    pairwise_rate,
    vote_counts,
)

__all__ = [
    "test_error",
    "disagreement",
    "pairwise_disagreement",
    "vote_ensemble",
    "class_aggregated_calibration",
    "cace",
    "ece",
    "ErrorEstimate",
    "estimate_error",
    "same_wrong_rate",
    "counterfactual_disagreement",
    "gde_summary",
    "gap_decomposition",
    "BOOTSTRAP_STATISTICS",
    "two_level_bootstrap",
    "AverageConfidence",
    "DifferenceOfConfidences",
    "ATC",
    "GDE",
    "default_estimators",
    "compare_estimators",
]

_PROBS_ATOL = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; anything further off is not a distribution


# --------------------------------------------------------------------------- validation helpers


def _check_preds(preds: Any, *, name: str = "preds", min_models: int = 1, allow_1d: bool = False) -> np.ndarray:
    arr = as_int_array(preds, name=name)
    if arr.ndim == 1 and allow_1d:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (M models, N points), got shape {arr.shape}")
    m, n = arr.shape
    if m == 0 or n == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if m < min_models:
        raise ValueError(
            f"{name} holds {m} model(s) but this needs at least {min_models} (pairs of models); got shape {arr.shape}"
        )
    if arr.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got minimum {int(arr.min())}")
    return arr.astype(np.int64, copy=False)


def _check_labels(labels: Any, n_points: int, *, name: str = "labels", n_classes: int | None = None) -> np.ndarray:
    arr = as_int_array(labels, name=name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {arr.shape}")
    if arr.shape[0] != n_points:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the predictions cover {n_points} points")
    return check_labels(arr, name, n_classes=n_classes).astype(np.int64, copy=False)


def _check_n_classes(n_classes: Any, preds: np.ndarray, labels: np.ndarray | None = None) -> int:
    k = check_int(n_classes, "n_classes", minimum=2)
    if preds.max() >= k:
        raise ValueError(f"preds must lie in [0, n_classes={k}), got maximum {int(preds.max())}")
    if labels is not None and labels.max() >= k:
        raise ValueError(f"labels must lie in [0, n_classes={k}), got maximum {int(labels.max())}")
    return k


def _compact(preds: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Predictions and labels recoded to 0..K-1 when class ids are sparse, and K.

    Only equality between classes matters where this is used, so a recoding keeps every
    result; it bounds the (N, K) count table when ids are large (e.g. 10**9).
    """
    top = int(preds.max()) if labels is None else max(int(preds.max()), int(labels.max()))
    if top < 1024:
        return preds, labels, max(top + 1, 2)
    both = preds.ravel() if labels is None else np.concatenate([preds.ravel(), labels])
    uniq, inv = np.unique(both, return_inverse=True)
    new_preds = inv[: preds.size].reshape(preds.shape)
    new_labels = None if labels is None else inv[preds.size :]
    return new_preds, new_labels, max(len(uniq), 2)


def _check_probs(probs: Any, *, name: str = "probs") -> np.ndarray:
    """Return probabilities as (M, N, C) float64; (N, C) becomes M = 1."""
    arr = as_float_array(probs, name=name)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (N, C) or (M, N, C), got shape {np.shape(probs)}")
    if 0 in arr.shape:
        raise ValueError(f"{name} is empty: shape {np.shape(probs)}")
    if arr.shape[2] < 2:
        raise ValueError(f"{name} needs at least 2 classes in its last axis, got shape {np.shape(probs)}")
    arr = arr.astype(np.float64, copy=False)
    if arr.min() < -_PROBS_ATOL:
        raise ValueError(f"{name} must be non-negative probabilities, got minimum {arr.min():.4g}")
    sums = arr.sum(axis=-1)
    worst = float(np.abs(sums - 1.0).max())
    if worst > _PROBS_ATOL:
        raise ValueError(
            f"{name} rows must sum to 1 (got a row summing to {1.0 + worst if sums.max() > 1 else 1.0 - worst:.4g}); "
            "pass softmax probabilities, not logits (scipy.special.softmax(logits, axis=-1))"
        )
    return np.clip(arr, 0.0, 1.0)


def _check_level(level: float) -> float:
    return check_real(level, "level", minimum=0, maximum=1, open_low=True, open_high=True,
                      remedy="e.g. level=0.95 for a 95 % interval")


def _point_disagreement(preds: np.ndarray, *, include_self: bool = False) -> np.ndarray:
    """Per-point share of disagreeing model pairs, (N,)."""
    preds, _, k = _compact(preds)
    return pair_agreement(vote_counts(preds, k), preds.shape[0], include_self=include_self, agree=False)


# --------------------------------------------------------------------------- error and disagreement


def test_error(preds: Any, labels: Any, *, per_model: bool = False) -> float | np.ndarray:
    """Test error ``P(h(X) != Y)`` averaged over the models.

    Parameters
    ----------
    preds : array of int, shape (M, N) or (N,)
        Predicted classes of M models on N points (1-D means one model).
    labels : array of int, shape (N,)
        True classes.
    per_model : bool, default False
        Return the (M,) errors of the single models instead of their mean.

    Returns
    -------
    float or ndarray
        Mean error over models, or one error per model.

    Examples
    --------
    >>> test_error([[0, 1, 1], [0, 0, 1]], [0, 1, 1])
    0.16666666666666666
    """
    per_model = check_bool(per_model, "per_model")
    p = _check_preds(preds, allow_1d=True)
    y = _check_labels(labels, p.shape[1])
    errors = (p != y[None, :]).mean(axis=1)
    return errors if per_model else float(errors.mean())


test_error.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported


def disagreement(preds: Any, *, include_self: bool = False) -> float:
    """Mean disagreement ``P(h(X) != h'(X))`` over all pairs of models.

    Computed from per-point class counts in O(M * N): at a point where class k gets c_k votes,
    ``M^2 - sum_k c_k^2`` ordered pairs disagree.

    Parameters
    ----------
    preds : array of int, shape (M, N)
        Predictions of M >= 2 models on N points.
    include_self : bool, default False
        False: mean over the M(M-1)/2 distinct pairs (the unbiased U-statistic for two
        independently trained models). True: h and h' drawn independently *with replacement*
        from the M models (the plug-in V-statistic, ``(M-1)/M`` times the first); this is the
        disagreement for which the CACE bound of :func:`cace` holds exactly.

    Returns
    -------
    float

    Examples
    --------
    >>> disagreement([[0, 1, 2], [0, 1, 1], [1, 1, 2]])
    0.4444444444444444
    """
    include_self = check_bool(include_self, "include_self")
    p = _check_preds(preds, min_models=2)
    return float(_point_disagreement(p, include_self=include_self).mean())


def pairwise_disagreement(preds: Any) -> np.ndarray:
    """Disagreement of every pair of models, an (M, M) symmetric matrix with zero diagonal.

    Parameters
    ----------
    preds : array of int, shape (M, N)

    Returns
    -------
    ndarray of float, shape (M, M)

    Examples
    --------
    >>> pairwise_disagreement([[0, 1], [0, 0], [1, 0]])
    array([[0. , 0.5, 1. ],
           [0.5, 0. , 0.5],
           [1. , 0.5, 0. ]])
    """
    return pairwise_rate(_check_preds(preds, min_models=2), agree=False)


def vote_ensemble(preds: Any, n_classes: int) -> np.ndarray:
    """The vote ensemble ``h~_k(x)``: the fraction of models predicting class k at each point.

    Parameters
    ----------
    preds : array of int, shape (M, N)
    n_classes : int

    Returns
    -------
    ndarray of float, shape (N, n_classes); rows sum to 1 and take values in {0, 1/M, ..., 1}.

    Examples
    --------
    >>> vote_ensemble([[0, 1], [0, 2]], 3)
    array([[1. , 0. , 0. ],
           [0. , 0.5, 0.5]])
    """
    p = _check_preds(preds, allow_1d=True)
    k = _check_n_classes(n_classes, p)
    check_memory(8.0 * p.shape[1] * k, f"the (N, n_classes) = ({p.shape[1]}, {k}) vote table",
                 remedy="n_classes must be the number of classes, not the largest class id (recode sparse ids)")
    return vote_counts(p, k) / p.shape[0]


# --------------------------------------------------------------------------- calibration


def _vote_levels(preds: np.ndarray, labels: np.ndarray, n_classes: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every level ``q = j/M`` of the vote share with ``sum_k P(h~_k = q)`` and ``sum_k P(Y = k, h~_k = q)``.

    Only the classes that occur get a column (as in :func:`disagreement`), so the (N, K) vote
    table stays small for any ``n_classes``; each absent class has ``h~_k = 0`` at every point:
    mass 1 at ``q = 0``.
    """
    m, n = preds.shape
    cp, cy, k_used = _compact(preds, labels)
    counts = vote_counts(cp, k_used)
    mass = np.bincount(counts.ravel(), minlength=m + 1) / n
    mass[0] += n_classes - k_used
    mass_true = np.bincount(counts[np.arange(n), cy], minlength=m + 1) / n
    return np.arange(m + 1) / m, mass, mass_true


def _calibration_inputs(preds: Any, labels: Any, n_classes: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated (M, N) predictions, (N,) labels and K; stacked replicates (R, M, N) with labels
    (R, N) have their points pooled (the table is an average over points)."""
    arr = as_int_array(preds, name="preds")
    if arr.ndim == 3:
        ys = as_int_array(labels, name="labels")
        if ys.shape != (arr.shape[0], arr.shape[2]):
            raise ValueError(f"labels must have shape (R, N) = {(arr.shape[0], arr.shape[2])} to match stacked "
                             f"predictions (R, M, N) = {arr.shape}, got shape {ys.shape}")
        arr, labels = arr.transpose(1, 0, 2).reshape(arr.shape[1], -1), ys.ravel()
    p = _check_preds(arr, allow_1d=True)
    k = None if n_classes is None else _check_n_classes(n_classes, p)
    y = _check_labels(labels, p.shape[1], n_classes=k)
    return p, y, (max(int(max(p.max(), y.max())) + 1, 2) if k is None else k)


def class_aggregated_calibration(preds: Any, labels: Any, n_classes: int | None = None) -> pd.DataFrame:
    """Class-aggregated reliability table of the vote ensemble, one row per level its vote share takes.

    For each level ``q = j/M`` (j = 0..M) that some vote share takes, the table gives
    ``mass = sum_k P(h~_k(X) = q)`` (P is the empirical distribution over the N points; the
    masses sum to ``n_classes``), ``mass_true = sum_k P(Y = k, h~_k(X) = q)``,
    ``accuracy = mass_true / mass`` and ``cace_term = |mass_true - q * mass|``; the sum of
    ``cace_term`` is :func:`cace`. The framework's exact table
    (:func:`ift_core.theory.vote_calibration`) has the same columns.

    Parameters
    ----------
    preds : array of int, shape (M, N), or (R, M, N) for R stacked replicates
        Replicates are pooled: their points together form the distribution P.
    labels : array of int, shape (N,), or (R, N) with stacked replicates
    n_classes : int, optional
        Default ``max(preds, labels) + 1`` (at least 2).

    Returns
    -------
    pandas.DataFrame with columns confidence, mass, mass_true, accuracy, cace_term.

    Examples
    --------
    >>> class_aggregated_calibration([[0, 0], [0, 0]], [0, 1], 2).round(3)
       confidence  mass  mass_true  accuracy  cace_term
    0         0.0   1.0        0.5       0.5        0.5
    1         1.0   1.0        0.5       0.5        0.5
    """
    p, y, k = _calibration_inputs(preds, labels, n_classes)
    q, mass, mass_true = _vote_levels(p, y, k)
    keep = mass > 0
    q, mass, mass_true = q[keep], mass[keep], mass_true[keep]
    return pd.DataFrame({"confidence": q, "mass": mass, "mass_true": mass_true, "accuracy": mass_true / mass,
                         "cace_term": np.abs(mass_true - q * mass)})


def cace(preds: Any, labels: Any, n_classes: int) -> float:
    r"""Class-aggregated calibration error (CACE) of the vote ensemble (Jiang et al., 2022, Def. 4.3).

    The vote ensemble ``h~_k(x)`` (fraction of the M models predicting k) takes values
    ``q in {0, 1/M, ..., 1}``, so the paper's integral over q becomes a sum over these M + 1
    levels. With P the empirical distribution of (X, Y) over the N points:

    .. math::

        \mathrm{CACE} = \sum_{q} \Big| \sum_k P(Y = k, \tilde h_k(X) = q)
                                     - q \sum_k P(\tilde h_k(X) = q) \Big|

    i.e. the paper's ``|P(Y = k | h~_k = q, aggregated over k) - q|`` weighted by
    ``sum_k P(h~_k = q)``. The level q = 0 is included, as in the paper's integral over [0, 1].

    Why the bound holds exactly for this form: with h, h' drawn independently and uniformly
    from the M models (``disagreement(preds, include_self=True)``),
    ``E[err] = 1 - E[h~_Y(X)]`` and ``E[dis] = 1 - E[sum_k h~_k(X)^2]``, so
    ``E[dis] - E[err] = sum_q q (sum_k P(Y=k, h~_k=q) - q sum_k P(h~_k=q))``, whose absolute
    value is at most CACE because 0 <= q <= 1 (Theorem 4.3). The mean over *distinct* pairs,
    :func:`disagreement` with its default, is ``M/(M-1)`` times that, so for it only
    ``|dis - err| <= CACE + dis / M`` is guaranteed.

    Parameters
    ----------
    preds : array of int, shape (M, N)
    labels : array of int, shape (N,)
    n_classes : int

    Returns
    -------
    float in [0, 2]

    Examples
    --------
    >>> cace([[0, 0], [0, 0]], [0, 1], 2)  # error 0.5, disagreement 0: the bound is 1.0
    1.0
    """
    p, y, k = _calibration_inputs(preds, labels, n_classes)
    q, mass, mass_true = _vote_levels(p, y, k)
    return float(np.abs(mass_true - q * mass).sum())


def ece(probs: Any, labels: Any, *, n_bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence, with equal-width bins.

    ``ECE = sum_b (|B_b| / N) |accuracy(B_b) - mean confidence(B_b)|`` where bin b holds the
    points whose max probability lies in ``((b-1)/n_bins, b/n_bins]`` (the first bin includes 0).
    The predicted class is the argmax (ties go to the lowest index).

    Parameters
    ----------
    probs : array of float, shape (N, C)
        Probabilities of one model (for an ensemble, pass the mean over models, or
        :func:`vote_ensemble`).
    labels : array of int, shape (N,)
    n_bins : int, default 15

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> ece([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], [0, 1, 1], n_bins=10)
    0.3
    """
    arr = as_float_array(probs, name="probs")
    if arr.ndim != 2:
        raise ValueError(
            f"probs must have shape (N, C) for ece, got shape {arr.shape}; average an ensemble's probabilities first"
        )
    pr = _check_probs(arr)[0]
    y = _check_labels(labels, pr.shape[0], n_classes=pr.shape[1])
    # float64 confidences resolve bins down to ~1e-16; beyond 2**40 bins the edges blur
    n_bins = check_int(n_bins, "n_bins", minimum=1, maximum=2**40)
    conf = pr.max(axis=1)
    correct = (pr.argmax(axis=1) == y).astype(np.float64)
    # bin b (0-based) holds conf in (b/n_bins, (b+1)/n_bins]; conf = 0 goes to bin 0
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    _, occupied = np.unique(bins, return_inverse=True)  # only non-empty bins: nothing sized by n_bins
    deviation = np.bincount(occupied.ravel(), weights=correct - conf)  # per bin: sum of (correct - confidence)
    return float(np.abs(deviation).sum() / pr.shape[0])


# --------------------------------------------------------------------------- GDE estimate with uncertainty


@dataclasses.dataclass(frozen=True)
class ErrorEstimate:
    """A label-free error estimate with its confidence interval.

    Attributes
    ----------
    estimate : float
        The GDE estimate of test error (mean disagreement over distinct pairs).
    low, high : float
        Confidence interval for the expected disagreement, within [0, 1].
    se : float
        Standard error used (bootstrap standard deviation for ``method="bootstrap"``).
    level : float
        Coverage of the interval.
    method : str
        ``"bootstrap"``, ``"jackknife"`` or ``"both"``.
    n_models, n_points : int
    """

    estimate: float
    low: float
    high: float
    se: float
    level: float
    method: str
    n_models: int
    n_points: int


def _jackknife_models_se(preds: np.ndarray) -> float:
    """Jackknife (leave one model out) standard error of the mean pairwise disagreement."""
    m = preds.shape[0]
    pw = pairwise_disagreement(preds)
    row = pw.sum(axis=1)
    total = pw.sum() / 2.0
    loo = (total - row) / ((m - 1) * (m - 2) / 2.0)  # U-statistic without model i
    return float(np.sqrt((m - 1) / m * np.sum((loo - loo.mean()) ** 2)))


def estimate_error(
    preds: Any,
    *,
    method: str = "both",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> ErrorEstimate:
    """GDE estimate of test error from unlabeled predictions, with a confidence interval.

    The estimate is :func:`disagreement` (mean over distinct pairs). It is a two-way average,
    over points and over pairs of models, and pairs that share a model or a point are
    dependent; treating the M(M-1)/2 pair disagreements as independent would give an interval
    far too narrow. The methods respect that dependence:

    * ``"bootstrap"``: percentile bootstrap over points. Each replicate resamples points and
      recomputes the all-pairs disagreement (= the mean of the per-point disagreement over the
      resampled points), so all pairs move together. Uncertainty from the test sample only,
      for these M models.
    * ``"jackknife"``: leave-one-model-out jackknife of the pairwise U-statistic (Arvesen, 1969),
      interval ``estimate +- t_{M-1} se``. Uncertainty from which seeds were trained, on this
      test set. Needs M >= 3.
    * ``"both"`` (default): ``estimate +- t_{M-1} se`` with ``se^2 = se_points^2 + se_models^2``,
      where ``se_points`` is the standard deviation of the per-point disagreement over sqrt(N)
      (the bootstrap's large-N limit). Both sources of randomness (a new test sample *and*
      new seeds); slightly conservative because the point-level term already contains part of
      the model variation. Needs M >= 3. With few seeds, a seed-level effect (some seeds
      systematically different) makes the point bootstrap alone far too narrow.

    The interval is for the expected *disagreement*; GDE's own bias (``E[dis] - E[err]``, at
    most :func:`cace`) is not in it.

    Parameters
    ----------
    preds : array of int, shape (M, N)
    method : {"both", "bootstrap", "jackknife"}
    level : float, default 0.95
    n_boot : int, default 2000
        Bootstrap replicates (``method="bootstrap"``).
    seed : int, default 0
        Seed of the bootstrap; the result is deterministic.

    Returns
    -------
    ErrorEstimate

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> est = estimate_error(rng.integers(0, 3, size=(5, 400)))
    >>> est.low < est.estimate < est.high
    True
    """
    p = _check_preds(preds, min_models=2)
    level = _check_level(level)
    method = check_choice(method, "method", ("both", "bootstrap", "jackknife"))
    seed = check_int(seed, "seed", minimum=0)
    m, n = p.shape
    d = _point_disagreement(p)
    estimate = float(d.mean())
    if method == "bootstrap":
        n_boot = check_int(n_boot, "n_boot", minimum=2)
        check_memory(8.0 * n_boot, f"n_boot={n_boot} bootstrap replicates", remedy="lower n_boot")
        rng = np.random.default_rng(seed)
        boot = np.empty(n_boot)
        chunk = max(1, 2_000_000 // n)  # bound memory to ~16 MB of indices per chunk
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            boot[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
        low, high = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2])
        return ErrorEstimate(estimate, float(low), float(high), float(boot.std(ddof=1)), level, method, m, n)
    if m < 3:
        raise ValueError(f"method={method!r} needs at least 3 models (leave-one-out pairs), got preds shape {p.shape}")
    se_models = _jackknife_models_se(p)
    # Student t with M - 1 degrees of freedom: the model term rests on only M seeds
    z = float(stats.t.ppf(0.5 + level / 2, df=m - 1))
    if method == "jackknife":
        se = se_models
    else:
        se_points = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        se = float(np.hypot(se_points, se_models))
    # a disagreement rate lies in [0, 1]; the normal interval is clipped to it
    low, high = max(0.0, estimate - z * se), min(1.0, estimate + z * se)
    return ErrorEstimate(estimate, low, high, se, level, method, m, n)


# --------------------------------------------------------------------------- diagnostics (book/definitions.md section 6)


def same_wrong_rate(preds: Any, labels: Any) -> float:
    """P(two models give the same wrong class | both are wrong), pooled over pairs and points.

    Counts, over all distinct pairs of models and all points, the pairs in which both models
    are wrong, and among them those naming the same class; from per-point class counts
    (at a point with w wrong models, C(w, 2) pairs are both wrong, ``sum_{k != y} C(c_k, 2)``
    name the same wrong class). Random wrong answers over K classes give ``1 / (K - 1)``.

    Parameters
    ----------
    preds : array of int, shape (M, N)
    labels : array of int, shape (N,)

    Returns
    -------
    float
        NaN when no pair of models is ever wrong on the same point.

    Examples
    --------
    >>> same_wrong_rate([[1, 0], [1, 2], [2, 2]], [0, 0])
    0.5
    """
    p = _check_preds(preds, min_models=2)
    y = _check_labels(labels, p.shape[1])
    n = p.shape[1]
    p, y, k = _compact(p, y)
    counts = vote_counts(p, k).astype(np.float64)
    right = counts[np.arange(n), y]
    wrong = p.shape[0] - right
    both_wrong = np.sum(wrong * (wrong - 1) / 2)
    same = np.sum(counts * (counts - 1) / 2) - np.sum(right * (right - 1) / 2)
    return float(same / both_wrong) if both_wrong > 0 else float("nan")


def counterfactual_disagreement(preds: Any, labels: Any, n_classes: int) -> float:
    """Expected disagreement if every wrong answer were a uniform draw over the K - 1 wrong classes.

    Each model keeps its right/wrong pattern; each wrong answer is replaced, independently over
    models and points, by a class drawn uniformly among the ``n_classes - 1`` wrong ones. The
    expectation is exact: at a point where r of the M models are right and w = M - r wrong,
    a right-right pair always agrees, a right-wrong pair always disagrees and a wrong-wrong pair
    disagrees with probability ``1 - 1/(K-1)``, so the expected share of disagreeing distinct
    pairs is ``(r w + C(w, 2) (1 - 1/(K-1))) / C(M, 2)``. Test error is unchanged by the
    replacement, so comparing this with :func:`test_error` asks whether GDE would hold if errors
    were not systematic.

    Parameters
    ----------
    preds : array of int, shape (M, N)
    labels : array of int, shape (N,)
    n_classes : int
        K >= 2 (with K = 2 the wrong class is forced, so wrong models always agree).

    Returns
    -------
    float

    Examples
    --------
    >>> round(counterfactual_disagreement([[1, 0], [1, 2], [0, 2]], [0, 0], 3), 4)
    0.8333
    """
    p = _check_preds(preds, min_models=2)
    y = _check_labels(labels, p.shape[1])
    k = _check_n_classes(n_classes, p, y)
    m = p.shape[0]
    right = (p == y[None, :]).sum(axis=0).astype(np.float64)
    wrong = m - right
    per_point = (right * wrong + wrong * (wrong - 1) / 2 * (1 - 1 / (k - 1))) / (m * (m - 1) / 2)
    return float(per_point.mean())


def gde_summary(preds: Any, labels: Any, n_classes: int) -> pd.Series:
    """Everything GDE needs about one ensemble on one labeled test set, in one Series.

    Parameters
    ----------
    preds : array of int, shape (M >= 2, N)
    labels : array of int, shape (N,)
    n_classes : int

    Returns
    -------
    pandas.Series with ``n_models``, ``n_points``, ``error`` (mean over models), ``error_min``,
    ``error_max``, ``disagreement`` (distinct pairs), ``disagreement_iid`` (with replacement),
    ``dis_over_err``, ``gap_iid`` (``|dis_iid - err|``), ``cace``, ``bound_holds`` (``gap_iid <=
    cace``), ``same_wrong_rate``, ``random_same_wrong_rate`` (``1/(K-1)``),
    ``counterfactual_disagreement``, ``all_wrong`` (share of points every model gets wrong) and
    ``vote_ensemble_error`` (plurality vote, ties to the lowest class).

    Examples
    --------
    >>> s = gde_summary([[0, 1, 1], [0, 1, 2], [1, 1, 2]], [0, 1, 1], 3)
    >>> float(s["error"]), bool(s["bound_holds"])
    (0.3333333333333333, True)
    """
    p = _check_preds(preds, min_models=2)
    y = _check_labels(labels, p.shape[1])
    k = _check_n_classes(n_classes, p, y)
    errors = test_error(p, y, per_model=True)
    err = float(errors.mean())
    dis = disagreement(p)
    dis_iid = disagreement(p, include_self=True)
    bound = cace(p, y, k)
    cp, cy, k_used = _compact(p, y)  # bounded (N, K) table; np.unique keeps the class order for ties
    votes_error = float(np.mean(vote_counts(cp, k_used).argmax(axis=1) != cy))
    return pd.Series(
        {
            "n_models": p.shape[0],
            "n_points": p.shape[1],
            "error": err,
            "error_min": float(errors.min()),
            "error_max": float(errors.max()),
            "disagreement": dis,
            "disagreement_iid": dis_iid,
            "dis_over_err": dis / err if err > 0 else float("nan"),
            "gap_iid": abs(dis_iid - err),
            "cace": bound,
            "bound_holds": bool(abs(dis_iid - err) <= bound + 1e-12),
            "same_wrong_rate": same_wrong_rate(p, y),
            "random_same_wrong_rate": 1.0 / (k - 1),
            "counterfactual_disagreement": counterfactual_disagreement(p, y, k),
            "all_wrong": float(np.mean((p != y[None, :]).all(axis=0))),
            "vote_ensemble_error": votes_error,
        },
        dtype=object,
    )


# --------------------------------------------------------------------------- label-free estimators


class _ErrorEstimator:
    """Shared interface: ``fit(probs, labels)`` on labeled source data, then ``estimate(probs)``.

    Ensembles, probs of shape (M, N, C), are handled model by model: every learned attribute is
    an (M,) array and :meth:`estimate` returns the mean over models of the per-model estimates,
    which targets the same quantity as :func:`test_error` (the mean single-model error).
    """

    name: str = "estimator"
    min_models: int = 1

    def _check(self, probs: Any, name: str) -> np.ndarray:
        pr = _check_probs(probs, name=name)
        if pr.shape[0] < self.min_models:
            raise ValueError(
                f"{type(self).__name__} needs an ensemble of at least {self.min_models} models, "
                f"probs shape (M, N, C); got {np.shape(probs)}"
            )
        return pr

    def fit(self, probs: Any, labels: Any) -> "_ErrorEstimator":
        """Fit on labeled source data.

        Parameters
        ----------
        probs : array of float, shape (N, C) or (M, N, C)
        labels : array of int, shape (N,)

        Returns
        -------
        self
        """
        pr = self._check(probs, "probs")
        y = _check_labels(labels, pr.shape[1], n_classes=pr.shape[2])
        self.n_models_ = pr.shape[0]
        self.n_classes_ = pr.shape[2]
        self.source_errors_ = (pr.argmax(axis=2) != y[None, :]).mean(axis=1)
        self._fit(pr, y)
        return self

    def _fit(self, probs: np.ndarray, labels: np.ndarray) -> None:
        pass

    def estimate(self, probs: Any) -> float:
        """Estimated test error (mean over models) on unlabeled target data.

        Parameters
        ----------
        probs : array of float, shape (N, C) or (M, N, C), same M and C as in :meth:`fit`.

        Returns
        -------
        float
        """
        return float(np.mean(self._estimate(self._check_target(probs))))

    def _check_target(self, probs: Any) -> np.ndarray:
        """Validated target probabilities, with the M and C seen in :meth:`fit`."""
        if not hasattr(self, "n_models_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet: call fit(source_probs, source_labels) first")
        pr = self._check(probs, "probs")
        if pr.shape[0] != self.n_models_ or pr.shape[2] != self.n_classes_:
            raise ValueError(
                f"probs has {pr.shape[0]} models and {pr.shape[2]} classes (shape {np.shape(probs)}) but the "
                f"estimator was fitted on {self.n_models_} models and {self.n_classes_} classes"
            )
        return pr

    def _estimate(self, probs: np.ndarray) -> np.ndarray | float:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


def _mean_confidence(probs: np.ndarray) -> np.ndarray:
    """Per-model mean max probability, (M,)."""
    return probs.max(axis=2).mean(axis=1)


class _ConfidenceEstimator(_ErrorEstimator):
    """Base of AC and DoC: :meth:`fit` records ``source_confidences_`` (mean max probability per model)."""

    def _fit(self, probs: np.ndarray, labels: np.ndarray) -> None:
        self.source_confidences_ = _mean_confidence(probs)


class AverageConfidence(_ConfidenceEstimator):
    """Average confidence (AC): estimated error = 1 - mean max probability on the target.

    Uses no source information; :meth:`fit` only records shapes and ``source_errors_`` and
    ``source_confidences_`` (mean max probability per model) for comparison.

    Examples
    --------
    >>> src = np.array([[0.9, 0.1], [0.7, 0.3]]); tgt = np.array([[0.6, 0.4], [0.8, 0.2]])
    >>> round(AverageConfidence().fit(src, [0, 0]).estimate(tgt), 4)
    0.3
    """

    name = "AC"

    def _estimate(self, probs: np.ndarray) -> np.ndarray:
        return 1.0 - _mean_confidence(probs)


class DifferenceOfConfidences(_ConfidenceEstimator):
    """Difference of confidences (DoC; Guillory et al., 2021).

    Estimated target error = source error + (source mean confidence - target mean confidence),
    per model: the drop in average confidence under shift is read as the rise in error.

    Examples
    --------
    >>> src = np.array([[0.9, 0.1], [0.7, 0.3]]); tgt = np.array([[0.6, 0.4], [0.8, 0.2]])
    >>> round(DifferenceOfConfidences().fit(src, [0, 1]).estimate(tgt), 4)
    0.6
    """

    name = "DoC"

    def _estimate(self, probs: np.ndarray) -> np.ndarray:
        return self.source_errors_ + self.source_confidences_ - _mean_confidence(probs)


_ATC_SCORES = ("max_confidence", "negative_entropy")


def _atc_score(probs: np.ndarray, score: str) -> np.ndarray:
    if score == "max_confidence":
        return probs.max(axis=-1)
    return special.xlogy(probs, probs).sum(axis=-1)  # negative entropy, 0 log 0 = 0


class ATC(_ErrorEstimator):
    """Average thresholded confidence (ATC; Garg et al., ICLR 2022).

    Fit: a threshold t on a confidence score s(x) such that the fraction of *source* points
    with ``s < t`` equals the source error. With the scores sorted ascending and e errors
    among the N source points, ``t = s_(e+1)`` (the (e+1)-th smallest score; ``+inf`` when every
    point is wrong), so exactly e source points fall below t when scores are distinct.
    Estimate: the fraction of *target* points with ``s < t``. Per model for an ensemble.

    Parameters
    ----------
    score : {"max_confidence", "negative_entropy"}
        ``max_k p_k`` (ATC-MC) or ``sum_k p_k log p_k`` (ATC-NE, the paper's better variant).

    Attributes
    ----------
    thresholds_ : ndarray, shape (M,)

    Examples
    --------
    >>> src = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    >>> atc = ATC(score="max_confidence").fit(src, [0, 0, 1, 0])  # one error -> t = 0.6
    >>> atc.thresholds_
    array([0.6])
    >>> atc.estimate(np.array([[0.58, 0.42], [0.7, 0.3]]))
    0.5
    """

    def __init__(self, score: str = "negative_entropy") -> None:
        self.score = check_choice(score, "score", _ATC_SCORES)

    @property
    def name(self) -> str:  # type: ignore[override]
        return {"max_confidence": "ATC-MC", "negative_entropy": "ATC-NE"}.get(self.score, "ATC")

    def _fit(self, probs: np.ndarray, labels: np.ndarray) -> None:
        if self.score not in _ATC_SCORES:
            raise ValueError(f"score must be one of {_ATC_SCORES}, got {self.score!r}")
        scores = np.sort(_atc_score(probs, self.score), axis=1)
        n = scores.shape[1]
        n_wrong = np.rint(self.source_errors_ * n).astype(np.int64)
        padded = np.concatenate([scores, np.full((scores.shape[0], 1), np.inf)], axis=1)
        self.thresholds_ = padded[np.arange(scores.shape[0]), n_wrong]

    def _estimate(self, probs: np.ndarray) -> np.ndarray:
        return (_atc_score(probs, self.score) < self.thresholds_[:, None]).mean(axis=1)


class GDE(_ErrorEstimator):
    """Generalization disagreement equality: estimated error = mean pairwise disagreement on the target.

    Needs an ensemble (M >= 2) and uses only the argmax predictions. :meth:`fit` records the
    source disagreement (``source_disagreement_``) beside ``source_errors_``, so the source gap
    shows how far GDE is off in distribution.

    Parameters
    ----------
    include_self : bool, default False
        Passed to :func:`disagreement`.

    Examples
    --------
    >>> p = np.eye(3)[[[0, 1, 2], [0, 1, 1], [0, 2, 2]]]  # (M=3, N=3, C=3) one-hot probs
    >>> round(GDE().fit(p, [0, 1, 2]).estimate(p), 4)
    0.4444
    """

    name = "GDE"
    min_models = 2

    def __init__(self, include_self: bool = False) -> None:
        self.include_self = check_bool(include_self, "include_self")

    def _fit(self, probs: np.ndarray, labels: np.ndarray) -> None:
        self.source_disagreement_ = disagreement(probs.argmax(axis=2), include_self=self.include_self)

    def _estimate(self, probs: np.ndarray) -> float:
        return disagreement(probs.argmax(axis=2), include_self=self.include_self)

    def estimate_interval(self, probs: Any, **kwargs: Any) -> ErrorEstimate:
        """:func:`estimate_error` on the target's argmax predictions (keywords passed on)."""
        return estimate_error(self._check_target(probs).argmax(axis=2), **kwargs)


def default_estimators(n_models: int = 2) -> list[_ErrorEstimator]:
    """AC, DoC, ATC-MC, ATC-NE, and GDE when ``n_models >= 2``; fresh, unfitted instances.

    Examples
    --------
    >>> [e.name for e in default_estimators(5)]
    ['AC', 'DoC', 'ATC-MC', 'ATC-NE', 'GDE']
    """
    n_models = check_int(n_models, "n_models", minimum=1)
    out: list[_ErrorEstimator] = [
        AverageConfidence(),
        DifferenceOfConfidences(),
        ATC(score="max_confidence"),
        ATC(score="negative_entropy"),
    ]
    if n_models >= 2:
        out.append(GDE())
    return out


def compare_estimators(
    source: tuple[Any, Any],
    targets: Mapping[str, tuple[Any, Any]],
    *,
    estimators: Sequence[_ErrorEstimator] | None = None,
) -> pd.DataFrame:
    """Fit label-free estimators on a labeled source and score them on labeled targets.

    Labels of the targets are used only to compute the true error the estimates are scored
    against; the estimators see target probabilities only.

    Parameters
    ----------
    source : (probs, labels)
        probs (N, C) or (M, N, C) and labels (N,) of the source (in-distribution) data.
    targets : mapping name -> (probs, labels)
        Target sets (e.g. shifted test sets), same M and C as the source.
    estimators : sequence of estimators, optional
        Default: :func:`default_estimators` (GDE only when M >= 2). Each is fitted in place.

    Returns
    -------
    pandas.DataFrame
        One row per (target, method): ``target``, ``method``, ``estimate``, ``true_error``
        (mean over models of the error of the argmax predictions), ``signed_error``
        (estimate - true error) and ``abs_error``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.ones(3), size=(3, 50)); y = rng.integers(0, 3, 50)
    >>> df = compare_estimators((p, y), {"same": (p, y)})
    >>> list(df.columns), len(df)
    (['target', 'method', 'estimate', 'true_error', 'signed_error', 'abs_error'], 5)
    """
    if not isinstance(source, tuple) or len(source) != 2:
        raise ValueError(f"source must be a (probs, labels) tuple, got {type(source).__name__}")
    if not isinstance(targets, Mapping) or not targets:
        raise ValueError("targets must be a non-empty mapping name -> (probs, labels)")
    src_probs = _check_probs(source[0], name="source probs")
    if estimators is not None and (isinstance(estimators, (str, bytes)) or not isinstance(estimators, Sequence)):
        raise ValueError(f"estimators must be a sequence of estimators (e.g. default_estimators()), got {estimators!r}")
    ests = list(estimators) if estimators is not None else default_estimators(src_probs.shape[0])
    if not ests:
        raise ValueError("estimators is empty")
    for i, est in enumerate(ests):
        if not isinstance(est, _ErrorEstimator):
            raise ValueError(f"estimators[{i}] must be an estimator (AverageConfidence, DifferenceOfConfidences, ATC, "
                             f"GDE), got {est!r}")
    for est in ests:
        est.fit(src_probs, source[1])
    rows = []
    for tname, pair in targets.items():
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"targets[{tname!r}] must be a (probs, labels) tuple")
        tp = _check_probs(pair[0], name=f"targets[{tname!r}] probs")
        ty = _check_labels(pair[1], tp.shape[1], name=f"targets[{tname!r}] labels", n_classes=tp.shape[2])
        true = test_error(tp.argmax(axis=2), ty)
        for est in ests:
            value = est.estimate(tp)
            rows.append(
                {
                    "target": str(tname),
                    "method": est.name,
                    "estimate": value,
                    "true_error": true,
                    "signed_error": value - true,
                    "abs_error": abs(value - true),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- why the gap has its sign


def gap_decomposition(preds: Any, labels: Any, n_classes: int | None = None) -> dict[str, float]:
    """Disagreement minus error, taken apart: ``dis - err = err - (1 + s) B``, exactly.

    For two models, disagreeing = not (both right) and not (both wrong with the same answer), so
    ``dis = 2 err - B - s B`` with ``err`` their mean error, ``B = P(both wrong)`` and ``s =
    P(same class | both wrong)``. Averaged over the distinct pairs of an ensemble it stays exact
    with ``B`` the mean over pairs and ``s`` pooled over pairs (:func:`same_wrong_rate`).
    Disagreement exceeds error exactly when ``B < err / (1 + s)``: wrong answers that are rarely
    shared (small ``B``: seeds miss different points) or seldom the same class (small ``s``).

    Parameters
    ----------
    preds : array of int, shape (M >= 2, N)
    labels : array of int, shape (N,)
    n_classes : int, optional
        Needed for the counterfactual (``s`` replaced by ``1 / (K - 1)``, random wrong answers).

    Returns
    -------
    dict
        ``error``, ``disagreement``, ``gap`` (dis - err), ``both_wrong`` (B), ``same_wrong`` (s,
        NaN when no pair is ever wrong together), ``gap_identity`` (``err - (1 + s) B``, equal to
        ``gap`` up to rounding), ``both_wrong_independent`` (B if the models erred independently
        of each other: the mean over pairs of ``err_i err_j``), ``dependence`` (``B`` over that),
        ``break_even_both_wrong`` (``err / (1 + s)``: dis > err iff ``B`` is below it) and, with
        ``n_classes``, ``counterfactual_gap`` (``err - (1 + 1/(K-1)) B``, as
        :func:`counterfactual_disagreement` minus the error).

    Examples
    --------
    >>> d = gap_decomposition([[1, 0, 2], [2, 2, 2], [0, 2, 1]], [0, 0, 1], 3)
    >>> round(d["both_wrong"], 4), round(d["same_wrong"], 4)
    (0.3333, 0.6667)
    >>> round(d["gap"], 6) == round(d["error"] - (1 + d["same_wrong"]) * d["both_wrong"], 6)
    True
    """
    p = _check_preds(preds, min_models=2)
    y = _check_labels(labels, p.shape[1])
    m, n = p.shape
    errors = test_error(p, y, per_model=True)
    err = float(errors.mean())
    cp, cy, k_used = _compact(p, y)
    counts = vote_counts(cp, k_used).astype(np.float64)
    right = counts[np.arange(n), cy]
    wrong = m - right
    pairs = m * (m - 1) / 2
    both = float(np.sum(wrong * (wrong - 1) / 2) / (pairs * n))
    same_pairs = float((np.sum(counts * (counts - 1) / 2) - np.sum(right * (right - 1) / 2)) / (pairs * n))
    s = same_pairs / both if both > 0 else float("nan")
    indep = float((errors.sum() ** 2 - np.sum(errors ** 2)) / (m * (m - 1)))
    out = {
        "error": err,
        "disagreement": disagreement(p),
        "both_wrong": both,
        "same_wrong": s,
        "gap_identity": err - both - same_pairs,
        "both_wrong_independent": indep,
        "dependence": both / indep if indep > 0 else float("nan"),
        "break_even_both_wrong": err / (1 + s) if both > 0 else float("nan"),
    }
    out["gap"] = out["disagreement"] - err
    if n_classes is not None:
        k = _check_n_classes(n_classes, p, y)
        out["counterfactual_gap"] = err - (1 + 1 / (k - 1)) * both if k > 2 else err - 2 * both
    return out


#: The statistics :func:`two_level_bootstrap` gives intervals for.
BOOTSTRAP_STATISTICS = ("error", "disagreement", "gap", "both_wrong", "same_wrong", "split_fraction")


def two_level_bootstrap(preds: Any, labels: Any, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                        resample: str = "both", chunk: int = 100) -> pd.DataFrame:
    """Percentile intervals over seeds *and* points: resample the models, then the points.

    An ensemble's numbers vary with the seeds drawn as well as with the test points. Each
    replicate draws M models with replacement (``resample="both"`` or ``"seeds"``) and N points
    with replacement (``"both"`` or ``"points"``, one draw shared by all models), and recomputes
    every statistic on it, so intervals of related statistics (the gap and its parts) come from
    the same replicates. Pair statistics use the distinct pairs of the *drawn* models (a model
    drawn twice is never paired with its own copy): pair ``(i, j)`` counts ``w_i w_j`` times
    for a model drawn ``w_i`` times. ``split_fraction`` is the share of points on which some
    but not all of the drawn models are right. A replicate that draws a single model has no
    pairs and is left out of the pair statistics.

    Parameters
    ----------
    preds : array of int, shape (M >= 2, N)
    labels : array of int, shape (N,)
    n_boot : int
        Replicates (>= 10).
    level : float
        Coverage of the intervals, in (0, 1).
    seed : int
        Seeds the replicates (the same seed gives the same intervals).
    resample : {"both", "seeds", "points"}
        Which level to resample; ``"points"`` holds the seeds fixed (intervals over test points only).
    chunk : int
        Replicates computed at once (memory: about ``chunk * N`` floats).

    Returns
    -------
    pandas.DataFrame
        Index :data:`BOOTSTRAP_STATISTICS`; columns ``estimate`` (on the data as given), ``low``,
        ``high`` and ``se`` (the replicates' standard deviation).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 200)
    >>> preds = np.where(rng.random((4, 200)) < 0.7, y, rng.integers(0, 3, (4, 200)))
    >>> ci = two_level_bootstrap(preds, y, n_boot=200)
    >>> bool(ci.loc["error", "low"] < ci.loc["error", "estimate"] < ci.loc["error", "high"])
    True
    """
    p = _check_preds(preds, min_models=2)
    y = _check_labels(labels, p.shape[1])
    n_boot = check_int(n_boot, "n_boot", minimum=10, remedy="e.g. 1000 replicates")
    level = _check_level(level)
    seed = check_int(seed, "seed", minimum=0)
    resample = check_choice(resample, "resample", ("both", "seeds", "points"))
    chunk = check_int(chunk, "chunk", minimum=1)
    m, n = p.shape
    right = (p == y[None, :])
    wrong = (~right).astype(np.float64)
    ii, jj = np.triu_indices(m, k=1)
    differ = (p[ii] != p[jj]).astype(np.float64)
    both = wrong[ii] * wrong[jj]
    same = both * (p[ii] == p[jj])
    d = gap_decomposition(p, y)
    correct = right.sum(axis=0)
    estimate = {"error": d["error"], "disagreement": d["disagreement"], "gap": d["gap"], "both_wrong": d["both_wrong"],
                "same_wrong": d["same_wrong"], "split_fraction": float(np.mean((correct > 0) & (correct < m)))}
    # Seeds and points from two streams, the points drawn replicate by replicate: chunk changes nothing.
    seeds_rng, points_rng = np.random.default_rng([seed, 2, 0]), np.random.default_rng([seed, 2, 1])
    w_all = (seeds_rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(np.float64) if resample != "points"
             else np.ones((n_boot, m)))
    reps = {k: [] for k in BOOTSTRAP_STATISTICS}
    right_f = right.astype(np.float64)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = w_all[start:start + b]
        if resample != "seeds":  # point counts of b replicates at once (the stream does not depend on chunk)
            idx = points_rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
            v = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        else:
            v = np.ones((b, n))
        err = ((w @ wrong) * v).sum(axis=1) / (m * n)
        pw = w[:, ii] * w[:, jj]                              # (b, pairs)
        norm = pw.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            dis = ((pw @ differ) * v).sum(axis=1) / (norm * n)
            bw = ((pw @ both) * v).sum(axis=1) / (norm * n)
            sw = ((pw @ same) * v).sum(axis=1) / (norm * n)
            s = sw / bw
        drawn = (w > 0).astype(np.float64)
        any_right = (drawn @ right_f) > 0
        any_wrong = (drawn @ wrong) > 0
        split = ((any_right & any_wrong) * v).sum(axis=1) / n
        ok = norm > 0
        dis, bw, s = np.where(ok, dis, np.nan), np.where(ok, bw, np.nan), np.where(ok, s, np.nan)
        for key, val in (("error", err), ("disagreement", dis), ("gap", dis - err), ("both_wrong", bw),
                         ("same_wrong", s), ("split_fraction", split)):
            reps[key].append(val)
    lo, hi = 0.5 - level / 2, 0.5 + level / 2
    rows = {}
    for key in BOOTSTRAP_STATISTICS:
        r = np.concatenate(reps[key])
        r = r[np.isfinite(r)]
        rows[key] = {"estimate": estimate[key],
                     "low": float(np.quantile(r, lo)) if r.size else float("nan"),
                     "high": float(np.quantile(r, hi)) if r.size else float("nan"),
                     "se": float(r.std(ddof=1)) if r.size > 1 else float("nan")}
    return pd.DataFrame.from_dict(rows, orient="index")[["estimate", "low", "high", "se"]]
