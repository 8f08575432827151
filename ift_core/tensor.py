"""The interaction tensor of models, data and features (Algorithm 1 of Jiang, Baek & Kolter).

Given the penultimate-layer activations of M models on the same N points, each model's
top-K principal components are candidate features; components of different models that
correlate strongly over the N points are the same feature (greedy clustering, Algorithm 1);
a feature is present in a point when its normalised projection is large. The result is a
boolean tensor ``omega[m, n, t]``: model m uses feature t on point n.

The pipeline is split into public steps so that a notebook can show each one and a sweep
can reuse the expensive ones:

1. :func:`principal_components` -- per-model PCA with a sign convention that makes the
   result invariant to any orthogonal rotation of a model's activations.
2. :func:`component_correlations` -- the (MK x MK) Pearson correlation matrix, one float32
   matmul of z-scored columns.
3. :func:`correlation_threshold` -- gamma_corr as a quantile over cross-model entries only.
4. :func:`cluster_components` -- the greedy clustering (a loop over openers with vectorised
   updates; never a loop over pairs).
5. :func:`component_presence` -- presence of each component in each point (gamma_data).

:func:`build_interaction_tensor` runs them all and returns an :class:`InteractionTensor`.
This module uses numpy, scipy and pandas only.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> acts = rng.standard_normal((3, 200, 16)).astype(np.float32)
>>> it = build_interaction_tensor(acts, n_components=4, corr_threshold=0.5, progress=False)
>>> it.omega.shape[:2]
(3, 200)
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.linalg
from tqdm import tqdm

from .internal import load_npz, save_npz_atomic

__all__ = [
    "PRESENCE_RULES",
    "PRESENCE_SCALES",
    "SPLIT_METHODS",
    "ModelComponents",
    "InteractionTensor",
    "principal_components",
    "numerical_rank",
    "component_correlations",
    "correlation_threshold",
    "cluster_components",
    "component_presence",
    "canonical_correlations",
    "best_match",
    "split_frequencies",
    "build_interaction_tensor",
]

PRESENCE_RULES = ("signed", "absolute")
PRESENCE_SCALES = ("column", "model")
SPLIT_METHODS = ("gap", "otsu")
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------- input checks
def _as_model_list(activations: Any) -> Sequence[Any]:
    """Per-model access to ``activations`` without copying or materialising them.

    A 3-D array is returned as is (indexing gives views); any other sequence is returned
    itself, so that a lazy sequence produces one model at a time.
    """
    if isinstance(activations, np.ndarray):
        if activations.ndim != 3:
            raise ValueError(
                "activations must be an array (M, N, D) or a list of M arrays (N, D_m); "
                f"got an array of shape {activations.shape}"
                + (" (wrap a single model as [acts])" if activations.ndim == 2 else "")
            )
        if activations.shape[0] == 0:
            raise ValueError("activations holds no models (M = 0)")
        return activations
    if (isinstance(activations, (str, bytes, dict)) or not hasattr(activations, "__len__")
            or not hasattr(activations, "__getitem__")):
        raise ValueError(
            "activations must be an array (M, N, D) or a sequence of M arrays (N, D_m), "
            f"got {type(activations).__name__}"
        )
    if len(activations) == 0:
        raise ValueError("activations holds no models (M = 0)")
    return activations


def _check_model(a: Any, m: int, n_points: int | None) -> np.ndarray:
    """Validate model ``m``'s activations; return them as float32 or float64."""
    arr = np.asarray(a)
    name = f"activations[{m}]"
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {arr.shape}")
    if n_points is not None and arr.shape[0] != n_points:
        raise ValueError(
            f"every model must see the same points: activations[0] has N={n_points}, "
            f"{name} has N={arr.shape[0]}"
        )
    # float32 stays float32 (speed); everything else (ints, bools, float16/64) becomes float64.
    arr = arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite values")
    return arr


def _check_fraction(value: float, name: str, *, closed: bool = True) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 <= v <= 1.0) or not np.isfinite(v):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def _check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {tuple(choices)}")
    return value


# --------------------------------------------------------------------------- step 2: PCA
@dataclass
class ModelComponents:
    """Each model's top-K principal components (step 2 of Algorithm 1).

    Attributes
    ----------
    scores : ndarray (M, N, K) float32
        ``P_m = (A_m - mean) V_m``: projections of the points on the principal directions,
        signed so that every column has positive skewness (sum of cubes > 0).
    explained_variance : ndarray (M, K) float64
        Variance of each column of ``scores`` (second moment when ``center=False``).
    explained_variance_ratio : ndarray (M, K) float64
        ``explained_variance`` over the model's total variance.
    center : bool
        Whether the activations were centred before the PCA.
    """

    scores: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    center: bool = True

    @property
    def n_models(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.scores.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.scores.shape[2])


def _sign_convention(p: np.ndarray) -> np.ndarray:
    """Signs (+1/-1, shape (K,)) that give every column of ``p`` positive skewness.

    Defined on the scores, not the loadings, so rotating the activations (which rotates the
    loadings) cannot change it. Columns whose skewness is numerically zero fall back on the
    sign of their largest-magnitude entry (first such index).
    """
    p64 = p.astype(np.float64)
    cubes = np.einsum("nk,nk,nk->k", p64, p64, p64)
    scale = np.einsum("nk,nk,nk->k", np.abs(p64), p64, p64)
    sign = np.sign(cubes)
    tie = np.abs(cubes) <= 1e-4 * np.maximum(scale, np.finfo(np.float64).tiny)
    if tie.any():
        idx = np.abs(p64[:, tie]).argmax(axis=0)
        sign[tie] = np.sign(p64[idx, np.flatnonzero(tie)])
    sign[sign == 0] = 1.0
    return sign


def _single_threaded():
    """Limit BLAS/LAPACK to one thread (when threadpoolctl is available).

    LAPACK's symmetric eigensolvers on a few-hundred-wide matrix gain nothing from threads,
    and on a busy machine OpenBLAS threads waiting for each other made them 100x slower
    (measured: 4.6 s instead of 0.03 s for 512 x 512 on 2 loaded cores).
    """
    global _LIMITER
    if _LIMITER is None:
        try:
            from threadpoolctl import ThreadpoolController

            _LIMITER = ThreadpoolController()
        except Exception:  # optional dependency: run with the default threading
            _LIMITER = False
    return _LIMITER.limit(limits=1, user_api="blas") if _LIMITER else contextlib.nullcontext()


_LIMITER: Any = None


def _pca_one(a: np.ndarray, k: int, center: bool, m: int, buf: np.ndarray | None = None,
             check: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Top-``k`` PCA of one model: (scores (N, k) float32, variances (k,), total variance).

    ``buf`` (same shape and dtype as ``a``) receives the centred data, so that a loop over
    models does not allocate (and page-fault) a fresh copy each time.
    """
    dtype = a.dtype
    n, d = a.shape
    x = a
    if center:
        # Mean in float64 so that a large offset does not cost precision in float32.
        mean = a.mean(axis=0, dtype=np.float64).astype(dtype)
        x = np.subtract(a, mean, out=buf) if buf is not None else a - mean
    if d <= n:
        gram = x.T @ x  # (D, D); the costliest step, kept in the input's precision
        total = float(np.trace(gram, dtype=np.float64))
        with _single_threaded():
            w, v = scipy.linalg.eigh(gram, subset_by_index=[d - k, d - 1], driver="evx",
                                     check_finite=False, overwrite_a=True)
        p = x @ np.ascontiguousarray(v[:, ::-1]).astype(dtype)
    else:  # fewer points than dimensions: diagonalise the (N, N) Gram matrix instead
        gram = x @ x.T
        total = float(np.trace(gram, dtype=np.float64))
        with _single_threaded():
            w, u = scipy.linalg.eigh(gram, subset_by_index=[n - k, n - 1], driver="evx",
                                     check_finite=False, overwrite_a=True)
        w, u = np.clip(w[::-1], 0.0, None), u[:, ::-1]
        p = u * np.sqrt(w)
    p = np.ascontiguousarray(p, dtype=np.float32)
    # Variances from the scores themselves (float64): a direction in the null space of the
    # data then has variance at roundoff level, whatever the error of the float32 Gram matrix.
    p64 = p.astype(np.float64)
    var = p64.var(axis=0) if center else (p64**2).mean(axis=0)
    low = _low_variance(var, dtype)
    if check and low.size:
        raise ValueError(
            f"activations[{m}] has numerical rank {int(low[0])} < n_components={k} "
            f"(component {int(low[0])} has variance {var[low[0]]:.3g} against {var[0]:.3g} for the "
            "first; constant or dead units lower the rank): lower n_components (see numerical_rank)"
        )
    p *= _sign_convention(p64).astype(np.float32)
    return p, var, total / n


def principal_components(activations: Any, *, n_components: int = 50, center: bool = True,
                         progress: bool = True) -> ModelComponents:
    """Project each model's activations on its top principal directions.

    Parameters
    ----------
    activations : array (M, N, D) or sequence of M arrays (N, D_m)
        Penultimate-layer activations; models may differ in width. Models are read one at a
        time, so a lazy sequence (e.g. memory-mapped arrays) keeps memory low. float32 input
        is processed in float32 (Gram matrix, projections); any other numeric dtype (ints,
        bools, float16, float64) is converted to float64.
    n_components : int, default 50
        K, the number of components per model. Must be below N and at most every D_m and the
        numerical rank of every model (constant or dead units lower it): a ``ValueError``
        names the offending model otherwise.
    center : bool, default True
        Subtract each unit's mean over the points before the PCA (the paper's text leaves
        this open; ``False`` gives an uncentred PCA whose first direction is near the mean).
    progress : bool, default True
        Show a tqdm progress bar over the models.

    Returns
    -------
    ModelComponents
        Scores (M, N, K) float32 with a deterministic sign (positive skewness per column), so
        rotating a model's activations by any orthogonal matrix leaves them unchanged up to
        roundoff (exactly degenerate eigenvalues excepted: no basis is then preferred).

    Examples
    --------
    >>> import numpy as np
    >>> acts = np.random.default_rng(0).standard_normal((2, 100, 8))
    >>> pc = principal_components(acts, n_components=3, progress=False)
    >>> pc.scores.shape
    (2, 100, 3)
    """
    models = _as_model_list(activations)
    k = int(n_components)
    if k != n_components or k < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    first = _check_model(models[0], 0, None)
    n = first.shape[0]
    if k >= n:
        raise ValueError(f"n_components={k} must be below the number of points N={n}")
    mm = len(models)
    scores = np.empty((mm, n, k), dtype=np.float32)
    var = np.empty((mm, k))
    ratio = np.empty((mm, k))
    buf = None
    for m in tqdm(range(mm), desc="PCA per model", disable=not progress, leave=False):
        a = first if m == 0 else _check_model(models[m], m, n)
        if a.shape[1] < k:
            raise ValueError(f"n_components={k} exceeds the width D={a.shape[1]} of activations[{m}]")
        if center and (buf is None or buf.shape != a.shape or buf.dtype != a.dtype):
            buf = np.empty_like(a)
        scores[m], var[m], total = _pca_one(a, k, bool(center), m, buf)
        ratio[m] = var[m] / total if total > 0 else np.nan
    return ModelComponents(scores=scores, explained_variance=var, explained_variance_ratio=ratio,
                           center=bool(center))


def _scores_array(scores: Any) -> np.ndarray:
    if isinstance(scores, ModelComponents):
        return scores.scores
    arr = np.asarray(scores)
    if arr.ndim != 3:
        raise ValueError(f"scores must have shape (M, N, K), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise ValueError(f"scores must be finite floats, got dtype {arr.dtype} or NaN/inf values")
    return arr


def _low_variance(var: np.ndarray, dtype: Any) -> np.ndarray:
    """Indices of components whose variance is at roundoff level relative to the first."""
    top = var[0] if var.size else 0.0
    rtol = (100 * np.finfo(dtype).eps) ** 2
    return np.flatnonzero(var <= rtol * top) if top > 0 else np.arange(var.size)


def numerical_rank(activations: Any, *, center: bool = True, progress: bool = False) -> np.ndarray:
    """Each model's numerical rank by the criterion :func:`principal_components` enforces.

    ``n_components`` must not exceed the smallest of these (dead ReLU units lower them).

    Parameters
    ----------
    activations : array (M, N, D) or sequence of M arrays (N, D_m)
    center : bool, default True

    Returns
    -------
    ndarray (M,) int

    Examples
    --------
    >>> import numpy as np
    >>> a = np.random.default_rng(0).standard_normal((2, 50, 6))
    >>> a[1, :, 3:] = 0.0  # three dead units
    >>> numerical_rank(a).tolist()
    [6, 3]
    """
    models = _as_model_list(activations)
    out = np.empty(len(models), dtype=np.int64)
    n = None
    for m in tqdm(range(len(models)), desc="rank per model", disable=not progress, leave=False):
        a = _check_model(models[m], m, n)
        n = a.shape[0]
        kmax = min(a.shape[1], n - 1 if center else n)
        if kmax < 1:
            out[m] = 0
            continue
        _, var, _ = _pca_one(a, kmax, bool(center), m, check=False)
        low = _low_variance(var, a.dtype)
        out[m] = int(low[0]) if low.size else kmax
    return out


# --------------------------------------------------------------------------- step 3: correlations
def component_correlations(scores: ModelComponents | np.ndarray) -> np.ndarray:
    """Pearson correlation over the points between every pair of candidate features.

    Parameters
    ----------
    scores : ModelComponents or array (M, N, K)
        Per-model principal-component scores.

    Returns
    -------
    ndarray (M*K, M*K) float32
        ``C[m*K + k, m'*K + k']``; one float32 matmul of the z-scored columns. The diagonal is
        exactly 1. A column that is constant over the points raises ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.random.default_rng(0).standard_normal((2, 50, 3))
    >>> c = component_correlations(s)
    >>> c.shape, float(c[0, 0])
    ((6, 6), 1.0)
    """
    s = _scores_array(scores)
    mm, n, k = s.shape
    z = np.empty((n, mm * k), dtype=np.float32)
    for m in range(mm):  # z-score model by model: float64 temporaries stay (N, K)
        col = s[m].astype(np.float64)
        mean = col.mean(axis=0)
        std = col.std(axis=0)
        if (std <= 0).any():
            j = int(np.flatnonzero(std <= 0)[0])
            raise ValueError(f"scores column (model {m}, component {j}) is constant over the points")
        # Scaling by 1/sqrt(N) here makes Z^T Z the correlation matrix directly.
        z[:, m * k:(m + 1) * k] = (col - mean) / (std * np.sqrt(n))
    corr = z.T @ z
    np.fill_diagonal(corr, 1.0)
    return corr


def _owners(n_models: int, n_components: int) -> np.ndarray:
    return np.repeat(np.arange(n_models), n_components)


def correlation_threshold(corr: np.ndarray, n_models: int, *, quantile: float = 0.99) -> float:
    """gamma_corr: a quantile of |C| over the cross-model entries only.

    Self-correlations and within-model entries are left out (with them, at small M*K the ones
    on the diagonal fill the top quantile). Each unordered pair of components of different
    models enters once (linear interpolation, ``numpy.quantile``'s default).

    Parameters
    ----------
    corr : ndarray (M*K, M*K)
        From :func:`component_correlations`.
    n_models : int
        M; the components of model m are rows ``m*K .. m*K + K - 1``.
    quantile : float, default 0.99

    It is a relative rule: about ``1 - quantile`` of the cross-model pairs exceed it whatever
    the data. When true matches are much rarer than that (few shared features, large K) it
    falls to the noise level of the correlations and merges unrelated components; when they
    are more common it rises towards 1 and splits true matches. An absolute threshold avoids
    both (planted-feature tests recover the features at 0.5 and fail at the quantile).

    Returns
    -------
    float
        The threshold, as the float32 value that the clustering compares against.

    Examples
    --------
    >>> import numpy as np
    >>> c = np.eye(4, dtype=np.float32); c[0, 2] = c[2, 0] = 0.8
    >>> correlation_threshold(c, 2, quantile=1.0)
    0.800000011920929
    """
    q = _check_fraction(quantile, "corr_quantile")
    corr = np.asarray(corr)
    if corr.ndim != 2 or corr.shape[0] != corr.shape[1]:
        raise ValueError(f"corr must be a square matrix, got shape {corr.shape}")
    mk = corr.shape[0]
    if n_models < 2:
        raise ValueError(
            f"a single model (n_models={n_models}) has no cross-model correlations to take "
            "corr_quantile over: pass an absolute corr_threshold instead"
        )
    if mk % n_models:
        raise ValueError(f"corr has {mk} rows, not a multiple of n_models={n_models}")
    own = _owners(n_models, mk // n_models)
    mask = own[:, None] < own[None, :]
    vals = np.minimum(np.abs(corr[mask]), 1.0).astype(np.float32)
    return float(np.float32(np.quantile(vals, q)))


# --------------------------------------------------------------------------- step 5: clustering
def cluster_components(corr: np.ndarray, threshold: float, *, n_models: int | None = None,
                       within_model: bool = True, return_openers: bool = False
                       ) -> tuple[np.ndarray, ...]:
    """Algorithm 1's greedy clustering of candidate features.

    Candidates are visited in order (model by model, component by component). An unassigned
    candidate opens a new cluster c and belongs to it (its self-correlation, 1, is recorded).
    Every candidate whose |C| with the opener exceeds ``threshold`` *and* exceeds the best
    correlation recorded for it so far is (re)assigned to c, and that correlation is
    recorded. The loop runs over openers only; each update is one vectorised row operation.

    Parameters
    ----------
    corr : ndarray (P, P)
        Correlations (signed or absolute; |C| is used, clipped to 1, in float32).
    threshold : float
        gamma_corr in [0, 1]; comparisons are strict and in float32.
    n_models : int, optional
        Needed only when ``within_model=False``.
    within_model : bool, default True
        Whether components of the same model may join each other's cluster (Algorithm 1 as
        written: yes; with a centred PCA their correlations are ~0 anyway).
    return_openers : bool, default False
        Also return the index of the candidate that opened each cluster.

    Returns
    -------
    assignments : ndarray (P,) int64
        Cluster of each candidate, numbered 0..T-1 in order of opening.
    best : ndarray (P,) float32
        The correlation recorded for each candidate (1 for openers).
    openers : ndarray (T,) int64
        Only with ``return_openers=True``. (An opener keeps its cluster, but members of a
        cluster can precede its opener: later openers may take over earlier candidates.)

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[1, .9, .1], [.9, 1, .2], [.1, .2, 1]], dtype=np.float32)
    >>> cluster_components(c, 0.5)[0]
    array([0, 0, 1])
    """
    c = np.asarray(corr)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"corr must be a square matrix, got shape {c.shape}")
    gamma = _check_fraction(threshold, "corr_threshold")
    if not np.isfinite(c).all():
        raise ValueError("corr contains NaN or infinite values")
    absc = np.minimum(np.abs(c).astype(np.float32), np.float32(1.0))
    p = absc.shape[0]
    if not within_model:
        if not n_models or p % n_models:
            raise ValueError(f"within_model=False needs n_models dividing {p}, got {n_models!r}")
        own = _owners(n_models, p // n_models)
        absc[own[:, None] == own[None, :]] = 0.0
        np.fill_diagonal(absc, 1.0)
    assign, best, openers = _greedy(absc, np.float32(gamma))
    return (assign, best, openers) if return_openers else (assign, best)


def _greedy(absc: np.ndarray, gamma: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = absc.shape[0]
    openers = []
    assign = np.full(p, -1, dtype=np.int64)
    best = np.full(p, -np.inf, dtype=np.float32)
    above = absc > gamma  # one pass instead of one comparison per opener
    t = 0
    for i in range(p):
        if assign[i] >= 0:
            continue
        row = absc[i]
        upd = above[i] & (row > best)
        assign[upd] = t
        best[upd] = row[upd]
        assign[i] = t  # the opener belongs to its cluster even when gamma >= 1
        best[i] = max(best[i], row[i])
        openers.append(i)
        t += 1
    return assign, best, np.asarray(openers, dtype=np.int64)


# --------------------------------------------------------------------------- step 6: presence
def component_presence(scores: ModelComponents | np.ndarray, *, quantile: float | None = 0.9,
                       threshold: float | None = None, rule: str = "signed",
                       scale: str = "column") -> tuple[np.ndarray, np.ndarray]:
    """Whether candidate feature (m, k) is present in point n (gamma_data).

    Each column of ``P_m`` is divided by its largest |value| over the points
    (``scale="column"``, the paper's rule) or by the model's largest |value| over all its
    columns (``scale="model"``: high-variance components then occur in more points). The
    feature is present where the normalised value (``rule="signed"``) or its magnitude
    (``rule="absolute"``) exceeds the model's ``quantile`` of all its normalised values
    (or of their magnitudes), or the absolute ``threshold`` when given.

    Parameters
    ----------
    scores : ModelComponents or array (M, N, K)
    quantile : float, default 0.9
        Per-model quantile; ignored when ``threshold`` is given.
    threshold : float, optional
        Absolute threshold on the normalised values (in [-1, 1]).
    rule : {"signed", "absolute"}
    scale : {"column", "model"}

    Returns
    -------
    presence : ndarray (M, N, K) bool
    thresholds : ndarray (M,) float64
        The threshold each model used (as compared, in float32).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.random.default_rng(0).standard_normal((2, 100, 3)).astype(np.float32)
    >>> pres, thr = component_presence(s, quantile=0.9)
    >>> pres.shape, round(float(pres.mean()), 2)
    ((2, 100, 3), 0.1)
    """
    s = _scores_array(scores)
    _check_choice(rule, "presence rule", PRESENCE_RULES)
    _check_choice(scale, "presence_scale", PRESENCE_SCALES)
    if threshold is None:
        if quantile is None:
            raise ValueError("give presence_quantile or presence_threshold")
        quantile = _check_fraction(quantile, "presence_quantile")
    else:
        t = float(threshold)
        if not np.isfinite(t) or not -1.0 <= t <= 1.0:
            raise ValueError(f"presence_threshold must lie in [-1, 1], got {threshold!r}")
    mm = s.shape[0]
    out = np.empty(s.shape, dtype=bool)
    thr = np.empty(mm)
    for m in range(mm):
        v = _normalised(s[m], rule, scale)
        t32 = np.float32(np.quantile(v, quantile) if threshold is None else threshold)
        np.greater(v, t32, out=out[m])
        thr[m] = float(t32)
    return out, thr


def _normalised(p: np.ndarray, rule: str, scale: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float32)
    mag = np.abs(p)
    denom = mag.max(axis=0) if scale == "column" else mag.max()
    denom = np.where(denom > 0, denom, np.float32(1.0)).astype(np.float32)
    return (mag if rule == "absolute" else p) / denom


# --------------------------------------------------------------------------- subspaces
def canonical_correlations(scores: ModelComponents | np.ndarray, *,
                           corr: np.ndarray | None = None) -> np.ndarray:
    """Canonical correlations between every two models' top-K PCA subspaces.

    Single components may stop matching one to one while the subspaces they span still
    overlap (beyond the first ~10-15 components); these numbers show how much. Computed from
    the correlation matrix: with within-model blocks ``C_mm = L_m L_m^T`` (Cholesky), the
    canonical correlations of models m and m' are the singular values of
    ``L_m^{-1} C_mm' L_m'^{-T}`` (with a centred PCA ``C_mm`` is the identity).

    Parameters
    ----------
    scores : ModelComponents or array (M, N, K)
    corr : ndarray (M*K, M*K), optional
        Precomputed :func:`component_correlations` of the same scores.

    Returns
    -------
    ndarray (M, M, K) float64
        Descending canonical correlations; ``[m, m]`` is all ones.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.random.default_rng(0).standard_normal((2, 500, 3))
    >>> canonical_correlations(s).shape
    (2, 2, 3)
    """
    s = _scores_array(scores)
    mm, _, k = s.shape
    c = component_correlations(s) if corr is None else np.asarray(corr, dtype=np.float64)
    if c.shape != (mm * k, mm * k):
        raise ValueError(f"corr must have shape {(mm * k, mm * k)}, got {c.shape}")
    c = c.astype(np.float64)
    inv = []
    for m in range(mm):
        blk = c[m * k:(m + 1) * k, m * k:(m + 1) * k]
        try:
            chol = np.linalg.cholesky(blk)
        except np.linalg.LinAlgError:
            raise ValueError(f"model {m}'s components are linearly dependent") from None
        inv.append(scipy.linalg.solve_triangular(chol, np.eye(k), lower=True))
    out = np.ones((mm, mm, k))
    for m in range(mm):
        for m2 in range(m + 1, mm):
            w = inv[m] @ c[m * k:(m + 1) * k, m2 * k:(m2 + 1) * k] @ inv[m2].T
            sv = np.clip(np.linalg.svd(w, compute_uv=False), 0.0, 1.0)
            out[m, m2] = out[m2, m] = sv
    return out


def best_match(corr: np.ndarray, n_models: int) -> np.ndarray:
    """Each component's largest |correlation| with any single component of another model.

    Parameters
    ----------
    corr : ndarray (M*K, M*K)
    n_models : int

    Returns
    -------
    ndarray (M, K) float32

    Examples
    --------
    >>> import numpy as np
    >>> c = np.eye(4, dtype=np.float32); c[0, 3] = c[3, 0] = -0.7
    >>> best_match(c, 2).tolist()
    [[0.699999988079071, 0.0], [0.0, 0.699999988079071]]
    """
    c = np.abs(np.asarray(corr, dtype=np.float32))
    mk = c.shape[0]
    if c.ndim != 2 or c.shape[1] != mk or n_models < 2 or mk % n_models:
        raise ValueError(f"corr must be square with a multiple of n_models={n_models} >= 2 rows, got {c.shape}")
    own = _owners(n_models, mk // n_models)
    c = np.where(own[:, None] == own[None, :], np.float32(0), c)
    return c.max(axis=1).reshape(n_models, -1)


# --------------------------------------------------------------------------- dominant / rare
def split_frequencies(frequency: np.ndarray, *, threshold: float | None = None,
                      method: str = "gap") -> tuple[np.ndarray, float]:
    """Split features into dominant and rare by their frequency.

    Parameters
    ----------
    frequency : array (T,)
        Number of points in which each feature occurs.
    threshold : float, optional
        Features occurring in more than ``threshold`` points are dominant. When omitted it
        is found on log10 frequency (features that never occur are left out of the search):
        ``method="gap"`` puts it at the middle of the largest gap between consecutive sorted
        values (the paper's picture: two modes of the log-frequency histogram);
        ``method="otsu"`` maximises the between-group variance (Otsu's rule), which a single
        outlier cannot capture. With fewer than two distinct frequencies there is no split:
        the threshold is ``inf`` and no feature is dominant.
    method : {"gap", "otsu"}

    Returns
    -------
    dominant : ndarray (T,) bool
    threshold : float
        In points (the geometric middle of the two frequencies the rule separates).

    Examples
    --------
    >>> dominant, thr = split_frequencies([1, 2, 3, 300, 400])
    >>> dominant.tolist(), round(thr, 6)
    ([False, False, False, True, True], 30.0)
    """
    f = np.asarray(frequency, dtype=np.float64)
    if f.ndim != 1 or (f.size and (not np.isfinite(f).all() or (f < 0).any())):
        raise ValueError(f"frequency must be a 1-D array of non-negative counts, got shape {f.shape}")
    _check_choice(method, "split method", SPLIT_METHODS)
    if threshold is None:
        vals = np.unique(np.log10(f[f > 0]))
        if vals.size < 2:
            return np.zeros(f.shape, dtype=bool), float("inf")
        if method == "gap":
            i = int(np.argmax(np.diff(vals)))
        else:
            logs = np.sort(np.log10(f[f > 0]))
            # Between-group variance for every cut between distinct values.
            cuts = np.searchsorted(logs, vals[1:], side="left")
            csum = np.cumsum(logs)
            n = logs.size
            w0 = cuts / n
            mu0 = csum[cuts - 1] / cuts
            mu1 = (csum[-1] - csum[cuts - 1]) / (n - cuts)
            i = int(np.argmax(w0 * (1 - w0) * (mu0 - mu1) ** 2))
        threshold = float(10 ** ((vals[i] + vals[i + 1]) / 2))
    else:
        threshold = float(threshold)
        if not np.isfinite(threshold) and threshold != float("inf"):
            raise ValueError(f"threshold must be a number, got {threshold!r}")
    return f > threshold, threshold


# --------------------------------------------------------------------------- the tensor
def _segments(assign_flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order, segment starts and cluster ids for a reduceat over components grouped by cluster."""
    order = np.argsort(assign_flat, kind="stable")
    sorted_ids = assign_flat[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    return order, starts, sorted_ids[starts]


@dataclass(eq=False)
class InteractionTensor:
    """The interaction tensor: which model uses which feature on which point.

    Stored compactly: ``presence[m, n, k]`` says whether component k of model m is present
    in point n, and ``assignments[m, k]`` names its feature (cluster). The full boolean
    tensor ``omega`` (M, N, T) is built on first access (it can be large: M*N*T bytes);
    every statistic below is computed from the compact form.

    Attributes
    ----------
    presence : ndarray (M, N, K) bool
    assignments : ndarray (M, K) int64
        Feature of each model component, 0..T-1 in order of opening.
    best_corr : ndarray (M, K) float32
        |correlation| that placed each component in its feature (1 for openers).
    openers : ndarray (T,) int64
        Flat index ``m * K + k`` of the component that opened each feature.
    corr_threshold : float
        gamma_corr used.
    presence_thresholds : ndarray (M,)
        gamma_data used per model (on the normalised scale).
    explained_variance, explained_variance_ratio : ndarray (M, K)
    params : dict
        The options that produced the tensor (JSON-serialisable).
    timings : dict
        Seconds per stage of the build (not saved).

    Examples
    --------
    >>> import numpy as np
    >>> acts = np.random.default_rng(0).standard_normal((3, 300, 10)).astype(np.float32)
    >>> it = build_interaction_tensor(acts, n_components=4, corr_threshold=0.5, progress=False)
    >>> it.n_features, it.feature_frequency().shape
    (12, (12,))
    """

    presence: np.ndarray
    assignments: np.ndarray
    best_corr: np.ndarray
    openers: np.ndarray
    corr_threshold: float
    presence_thresholds: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.presence = np.asarray(self.presence, dtype=bool)
        self.assignments = np.asarray(self.assignments, dtype=np.int64)
        if self.presence.ndim != 3 or self.assignments.shape != (self.presence.shape[0], self.presence.shape[2]):
            raise ValueError(
                f"presence (M, N, K) and assignments (M, K) disagree: {self.presence.shape} "
                f"vs {self.assignments.shape}"
            )
        ids = np.unique(self.assignments)
        if ids.size and (ids[0] != 0 or ids[-1] != ids.size - 1):
            raise ValueError("assignments must number the features 0..T-1 without gaps")
        self.openers = np.asarray(self.openers, dtype=np.int64)
        if self.openers.shape != (ids.size,):
            raise ValueError(f"openers must have shape ({ids.size},), got {self.openers.shape}")
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        m, n, k = self.presence.shape
        return (f"InteractionTensor(M={m}, N={n}, K={k}, T={self.n_features}, "
                f"gamma_corr={self.corr_threshold:.4g})")

    # ---- sizes
    @property
    def n_models(self) -> int:
        return int(self.presence.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.presence.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.presence.shape[2])

    @property
    def n_features(self) -> int:
        """T, the number of features (clusters)."""
        return int(self.assignments.max()) + 1 if self.assignments.size else 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_models, self.n_points, self.n_features)

    # ---- dense views
    @property
    def omega(self) -> np.ndarray:
        """Omega[m, n, t] (bool, M x N x T): some component of model m in feature t is present in n."""
        if "omega" not in self._cache:
            out = np.zeros(self.shape, dtype=bool)
            for m in range(self.n_models):
                order, starts, ids = _segments(self.assignments[m])
                out[m][:, ids] = np.logical_or.reduceat(self.presence[m][:, order], starts, axis=1)
            self._cache["omega"] = out
        return self._cache["omega"]

    def point_feature_matrix(self) -> np.ndarray:
        """(N, T) bool: feature t occurs in point n for at least one model."""
        if "points" not in self._cache:
            flat = self.presence.transpose(1, 0, 2).reshape(self.n_points, -1)
            order, starts, ids = _segments(self.assignments.ravel())
            out = np.zeros((self.n_points, self.n_features), dtype=bool)
            out[:, ids] = np.logical_or.reduceat(flat[:, order], starts, axis=1)
            self._cache["points"] = out
        return self._cache["points"]

    def model_feature_matrix(self) -> np.ndarray:
        """(M, T) bool: model m has a component in feature t."""
        out = np.zeros((self.n_models, self.n_features), dtype=bool)
        out[np.repeat(np.arange(self.n_models), self.n_components), self.assignments.ravel()] = True
        return out

    # ---- statistics
    def feature_frequency(self) -> np.ndarray:
        """(T,) int: the number of points in which each feature occurs (for any model)."""
        return self.point_feature_matrix().sum(axis=0)

    def features_per_point(self, *, per_model: bool = False) -> np.ndarray:
        """Distinct features present in each point.

        Parameters
        ----------
        per_model : bool, default False
            ``False``: (N,) count over the union of models; ``True``: (M, N), each model's own.
        """
        if not per_model:
            return self.point_feature_matrix().sum(axis=1)
        out = np.empty((self.n_models, self.n_points), dtype=np.int64)
        for m in range(self.n_models):
            order, starts, _ = _segments(self.assignments[m])
            out[m] = np.logical_or.reduceat(self.presence[m][:, order], starts, axis=1).sum(axis=1)
        return out

    def models_per_feature(self) -> np.ndarray:
        """(T,) int: how many models have each feature."""
        return self.model_feature_matrix().sum(axis=0)

    def features_per_model(self) -> np.ndarray:
        """(M,) int: how many distinct features each model has."""
        return self.model_feature_matrix().sum(axis=1)

    def overlap(self) -> np.ndarray:
        """(M, M) Jaccard overlap of the models' feature sets (1 on the diagonal)."""
        mf = self.model_feature_matrix().astype(np.int64)
        inter = mf @ mf.T
        size = mf.sum(axis=1)
        union = size[:, None] + size[None, :] - inter
        return np.where(union > 0, inter / np.maximum(union, 1), 1.0)

    def dominant_split(self, *, threshold: float | None = None, method: str = "gap") -> tuple[np.ndarray, float]:
        """Dominant (True) vs rare features by frequency; see :func:`split_frequencies`."""
        return split_frequencies(self.feature_frequency(), threshold=threshold, method=method)

    # ---- tidy tables
    def features_table(self, *, threshold: float | None = None, method: str = "gap") -> pd.DataFrame:
        """One row per feature: frequency, log10 frequency, models, components, dominant."""
        freq = self.feature_frequency()
        dom, _ = split_frequencies(freq, threshold=threshold, method=method)
        flat = self.assignments.ravel()
        first = self.openers
        with np.errstate(divide="ignore"):
            logf = np.log10(freq.astype(np.float64))
        return pd.DataFrame({
            "feature": np.arange(self.n_features),
            "frequency": freq,
            "log10_frequency": logf,
            "n_models": self.models_per_feature(),
            "n_components": np.bincount(flat, minlength=self.n_features),
            "opener_model": first // self.n_components,
            "opener_component": first % self.n_components,
            "dominant": dom,
        })

    def points_table(self, *, threshold: float | None = None, method: str = "gap") -> pd.DataFrame:
        """One row per point: features present (union of models, and mean per model), dominant and rare."""
        pf = self.point_feature_matrix()
        dom, _ = self.dominant_split(threshold=threshold, method=method)
        return pd.DataFrame({
            "point": np.arange(self.n_points),
            "n_features": pf.sum(axis=1),
            "n_dominant": pf[:, dom].sum(axis=1),
            "n_rare": pf[:, ~dom].sum(axis=1),
            "mean_features_per_model": self.features_per_point(per_model=True).mean(axis=0),
        })

    def components_table(self) -> pd.DataFrame:
        """One row per model component: its feature, recorded correlation, variance, presence rate."""
        m, k = np.meshgrid(np.arange(self.n_models), np.arange(self.n_components), indexing="ij")
        return pd.DataFrame({
            "model": m.ravel(),
            "component": k.ravel(),
            "feature": self.assignments.ravel(),
            "best_corr": self.best_corr.ravel().astype(np.float64),
            "explained_variance": self.explained_variance.ravel(),
            "explained_variance_ratio": self.explained_variance_ratio.ravel(),
            "presence_rate": self.presence.mean(axis=1).ravel(),
        })

    # ---- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (.npz): presence bit-packed, atomically, no pickles."""
        return save_npz_atomic(
            path,
            format_version=np.int64(_FORMAT_VERSION),
            presence_bits=np.packbits(self.presence.ravel()),
            presence_shape=np.asarray(self.presence.shape, dtype=np.int64),
            assignments=self.assignments,
            best_corr=np.asarray(self.best_corr, dtype=np.float32),
            openers=self.openers,
            corr_threshold=np.float64(self.corr_threshold),
            presence_thresholds=np.asarray(self.presence_thresholds, dtype=np.float64),
            explained_variance=np.asarray(self.explained_variance, dtype=np.float64),
            explained_variance_ratio=np.asarray(self.explained_variance_ratio, dtype=np.float64),
            params=np.asarray(json.dumps(self.params, sort_keys=True)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "InteractionTensor":
        """Read a file written by :meth:`save`."""
        z = load_npz(path)
        missing = {"presence_bits", "presence_shape", "assignments"} - set(z)
        if missing:
            raise ValueError(f"{path} is not an InteractionTensor file (missing {sorted(missing)})")
        if int(z.get("format_version", -1)) != _FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported format_version {z.get('format_version')!r}")
        shape = tuple(int(s) for s in z["presence_shape"])
        bits = np.unpackbits(z["presence_bits"], count=int(np.prod(shape))).astype(bool)
        return cls(
            presence=bits.reshape(shape),
            assignments=z["assignments"],
            best_corr=z["best_corr"],
            openers=z["openers"],
            corr_threshold=float(z["corr_threshold"]),
            presence_thresholds=z["presence_thresholds"],
            explained_variance=z["explained_variance"],
            explained_variance_ratio=z["explained_variance_ratio"],
            params=json.loads(str(z["params"])),
        )

    def equals(self, other: "InteractionTensor") -> bool:
        """Bit-for-bit equality of every stored array and option (timings excluded)."""
        return (
            isinstance(other, InteractionTensor)
            and np.array_equal(self.presence, other.presence)
            and np.array_equal(self.assignments, other.assignments)
            and np.array_equal(self.best_corr, other.best_corr)
            and np.array_equal(self.openers, other.openers)
            and self.corr_threshold == other.corr_threshold
            and np.array_equal(self.presence_thresholds, other.presence_thresholds)
            and np.array_equal(self.explained_variance, other.explained_variance)
            and np.array_equal(self.explained_variance_ratio, other.explained_variance_ratio)
            and self.params == other.params
        )


def _assemble(pc: ModelComponents, absc_or_corr: np.ndarray, *, corr_quantile: float | None,
              corr_threshold: float | None, presence_quantile: float | None,
              presence_threshold: float | None, presence: str, presence_scale: str,
              within_model: bool, timings: dict, cluster_cache: dict | None = None,
              presence_cache: dict | None = None) -> InteractionTensor:
    """Steps 4-7 on precomputed PCA and correlations (shared by the build and the sweeps)."""
    mm, _, k = pc.scores.shape
    t0 = time.perf_counter()
    if corr_threshold is None:
        if corr_quantile is None:
            raise ValueError("give corr_quantile or corr_threshold")
        gamma = correlation_threshold(absc_or_corr, mm, quantile=corr_quantile)
    else:
        gamma = float(np.float32(_check_fraction(corr_threshold, "corr_threshold")))
    t1 = time.perf_counter()
    key = (gamma, within_model)
    if cluster_cache is not None and key in cluster_cache:
        assign, best, openers = cluster_cache[key]
    else:
        assign, best, openers = cluster_components(absc_or_corr, gamma, n_models=mm, within_model=within_model,
                                                   return_openers=True)
        if cluster_cache is not None:
            cluster_cache[key] = (assign, best, openers)
    t2 = time.perf_counter()
    pkey = (presence_quantile if presence_threshold is None else None, presence_threshold,
            presence, presence_scale)
    if presence_cache is not None and pkey in presence_cache:
        pres, pthr = presence_cache[pkey]
    else:
        pres, pthr = component_presence(pc.scores, quantile=presence_quantile, threshold=presence_threshold,
                                        rule=presence, scale=presence_scale)
        if presence_cache is not None:
            presence_cache[pkey] = (pres, pthr)
    t3 = time.perf_counter()
    timings.update(threshold=t1 - t0, cluster=t2 - t1, presence=t3 - t2)
    params = {
        "n_components": int(k),
        "center": bool(pc.center),
        "corr_quantile": None if corr_threshold is not None else float(corr_quantile),
        "corr_threshold": None if corr_threshold is None else float(corr_threshold),
        "presence_quantile": None if presence_threshold is not None else float(presence_quantile),
        "presence_threshold": None if presence_threshold is None else float(presence_threshold),
        "presence": presence,
        "presence_scale": presence_scale,
        "within_model": bool(within_model),
    }
    return InteractionTensor(
        presence=pres,
        assignments=assign.reshape(mm, k),
        best_corr=best.reshape(mm, k),
        openers=openers,
        corr_threshold=gamma,
        presence_thresholds=pthr,
        explained_variance=pc.explained_variance,
        explained_variance_ratio=pc.explained_variance_ratio,
        params=params,
        timings=timings,
    )


def build_interaction_tensor(activations: Any, *, n_components: int = 50, corr_quantile: float | None = 0.99,
                             corr_threshold: float | None = None, presence_quantile: float | None = 0.9,
                             presence_threshold: float | None = None, center: bool = True,
                             presence: str = "signed", presence_scale: str = "column",
                             within_model: bool = True, progress: bool = True) -> InteractionTensor:
    """Algorithm 1: cluster the models' principal components into features; mark their presence.

    Parameters
    ----------
    activations : array (M, N, D) or sequence of M arrays (N, D_m)
        Penultimate-layer activations of M models on the same N points (models may differ in
        width). float32 stays float32; integer, bool and other inputs are converted to
        float64. NaN or infinite values, differing N, ``n_components >= N`` or above a
        model's width or numerical rank raise ``ValueError`` naming the model. Constant
        (dead) units are allowed: they only lower the rank.
    n_components : int, default 50
        K, principal components per model.
    corr_quantile : float, default 0.99
        gamma_corr as this quantile of |C| over cross-model pairs (see
        :func:`correlation_threshold`). A single model has no such pairs and needs
        ``corr_threshold``.
    corr_threshold : float, optional
        Absolute gamma_corr in [0, 1]; overrides ``corr_quantile``.
    presence_quantile : float, default 0.9
        gamma_data as this per-model quantile of the normalised scores.
    presence_threshold : float, optional
        Absolute gamma_data on the normalised scale; overrides ``presence_quantile``.
    center : bool, default True
        Centred PCA (see :func:`principal_components`).
    presence : {"signed", "absolute"}, default "signed"
        Compare the signed normalised score (the sign convention makes each component's long
        tail positive) or its magnitude.
    presence_scale : {"column", "model"}, default "column"
        Normalise each column by its own max |value| (paper) or by the model's.
    within_model : bool, default True
        Let components of the same model join one feature (see :func:`cluster_components`).
    progress : bool, default True
        tqdm progress bar over the models' PCA.

    Returns
    -------
    InteractionTensor

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> shared = rng.standard_normal((400, 3)) * [5.0, 3.0, 2.0]
    >>> acts = [np.c_[shared, rng.standard_normal((400, 5)) * 0.1] @ np.linalg.qr(rng.standard_normal((8, 8)))[0]
    ...         for _ in range(3)]
    >>> it = build_interaction_tensor(acts, n_components=3, corr_threshold=0.9, progress=False)
    >>> it.n_features, it.models_per_feature().tolist()
    (3, [3, 3, 3])
    """
    _check_choice(presence, "presence rule", PRESENCE_RULES)
    _check_choice(presence_scale, "presence_scale", PRESENCE_SCALES)
    if corr_threshold is None:
        if corr_quantile is None:
            raise ValueError("give corr_quantile or corr_threshold (both are None)")
        _check_fraction(corr_quantile, "corr_quantile")
    if presence_threshold is None:
        if presence_quantile is None:
            raise ValueError("give presence_quantile or presence_threshold (both are None)")
        _check_fraction(presence_quantile, "presence_quantile")
    t0 = time.perf_counter()
    pc = principal_components(activations, n_components=n_components, center=center, progress=progress)
    if pc.n_models == 1 and corr_threshold is None:
        raise ValueError(
            "a single model has no cross-model correlations to take corr_quantile over: "
            "pass an absolute corr_threshold (each component then stays its own feature "
            "unless within_model correlations exceed it)"
        )
    t1 = time.perf_counter()
    corr = component_correlations(pc)
    t2 = time.perf_counter()
    timings = {"pca": t1 - t0, "correlation": t2 - t1}
    it = _assemble(pc, corr, corr_quantile=corr_quantile, corr_threshold=corr_threshold,
                   presence_quantile=presence_quantile, presence_threshold=presence_threshold,
                   presence=presence, presence_scale=presence_scale, within_model=within_model,
                   timings=timings)
    timings["total"] = time.perf_counter() - t0
    return it
