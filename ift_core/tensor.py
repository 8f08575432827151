"""The interaction tensor of models, data and features (Algorithm 1 of Jiang, Baek & Kolter).

Given the penultimate-layer activations of M models on the same N points, each model's
top-K principal components are candidate features; components of different models that
correlate strongly over the N points are the same feature (greedy clustering, Algorithm 1);
a feature is present in a point when its normalised projection is large. The result is a
boolean tensor ``omega[m, n, t]``: model m uses feature t on point n.

The pipeline is split into public steps so that a notebook can show each one and a sweep
can reuse the expensive ones:

1. :func:`principal_components` -- per-model PCA (in float64, whole models on worker threads)
   with a sign convention that makes the result invariant to any orthogonal rotation of a
   model's activations.
2. :func:`component_correlations` -- the (MK x MK) Pearson correlation matrix, one float32
   matmul of z-scored columns.
3. :func:`correlation_threshold` -- gamma_corr as a quantile over cross-model entries only (or an
   absolute value).
4. :func:`cluster_components` -- the greedy clustering (a loop over openers with vectorised
   updates; never a loop over pairs).
5. :func:`feature_signs` -- orient every member of a feature like the component that opened it
   (PCA signs are arbitrary; presence is tested on the signed tail).
6. :func:`component_presence` -- presence of each component in each point (gamma_data).

:func:`build_interaction_tensor` runs them all and returns an :class:`InteractionTensor`
(:func:`assemble_tensor` runs steps 3-6 on a PCA computed once); :func:`split_frequencies` splits
its features into dominant and rare. Every option lives in one frozen :class:`TensorOptions`
(:data:`PROFILE_OPTIONS`: the book's per profile). Presence rules, presence scales and split
rules are registries (:data:`PRESENCE_RULES`, :data:`PRESENCE_SCALES`, :data:`SPLIT_RULES`):
a new rule is one entry. This module uses numpy, scipy and pandas (scikit-learn for the mixture
split) only.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> acts = rng.standard_normal((3, 200, 16)).astype(np.float32)
>>> it = build_interaction_tensor(acts, n_components=4, gamma_corr=0.5, progress=False)
>>> it.omega.shape[:2]
(3, 200)
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.linalg
from tqdm import tqdm

from .internal import (
    check_bool,
    check_choice,
    check_count,
    check_probability,
    check_real,
    load_npz,
    save_npz_atomic,
)

__all__ = [
    "TensorOptions",
    "PROFILE_OPTIONS",
    "PRESENCE_RULES",
    "PRESENCE_SCALES",
    "SPLIT_RULES",
    "ModelComponents",
    "InteractionTensor",
    "principal_components",
    "numerical_rank",
    "component_correlations",
    "correlation_threshold",
    "cluster_components",
    "feature_signs",
    "component_presence",
    "canonical_correlations",
    "best_match",
    "split_frequencies",
    "resolve_split_rule",
    "assemble_tensor",
    "build_interaction_tensor",
]

_FORMAT_VERSION = 2


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
    if 0 in arr.shape:
        raise ValueError(f"{name} is empty (shape {arr.shape}): every model needs points and units")
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


def _available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable, capped by a cgroup limit (Linux)."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, OSError, ValueError):
            return None
    try:  # a container's limit, when it is lower than the machine's free memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def _check_memory(need: dict[str, int], remedy: str) -> None:
    """Refuse before any work when the arrays that the arguments size will not fit in memory."""
    total = sum(need.values())
    avail = _available_memory()
    if avail is not None and total > avail:
        parts = ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in need.items())
        raise ValueError(f"this needs about {total / 2**30:.1f} GiB ({parts}) but only {avail / 2**30:.1f} GiB "
                         f"of memory is available: {remedy}")


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
    p64 = np.asarray(p, dtype=np.float64)
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
    (measured: 4.6 s instead of 0.03 s for 512 x 512 on 2 loaded cores). The PCA uses the
    cores with whole models on worker threads instead (see ``_per_model``). Entered from one
    thread only: threadpoolctl's limits are process-wide.
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


_F32 = np.finfo(np.float32)
_F32_MAX = float(_F32.max)
_F32_LOW = float(_F32.tiny / _F32.eps)  # below this, float32 scores lose precision (subnormals)


def _too_large(m: int, top: float) -> ValueError:
    return ValueError(
        f"activations[{m}] are too large: their principal-component scores reach {top:.3g}, beyond "
        f"float32's range ({_F32_MAX:.3g}) in which scores are kept: divide the activations by a constant "
        "(that changes no feature, correlation or presence)")


def _too_small(m: int, top: float, j: int | None = None) -> ValueError:
    what = "their scores are" if j is None else f"component {j}'s scores are"
    return ValueError(
        f"activations[{m}] are too small: {what} at most {top:.3g}, below float32's full-precision range "
        f"({_F32_LOW:.3g}) in which scores are kept: multiply the activations by a constant (that changes no "
        "feature, correlation or presence)")


def _pca_one(a: np.ndarray, k: int, center: bool, m: int, buf: np.ndarray | None = None,
             check: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Top-``k`` PCA of one model: (scores (N, k) float64, variances (k,), total variance).

    Every step runs in float64 whatever the input dtype: with a float32 Gram matrix and a
    float32 eigensolver, a direction's error is about eps32 * lambda_1 / (its eigengap), which
    reached 1-5 % of the column's largest score on low-variance components. Squares of float32
    values cannot leave float64's range, so activations whose scores fit float32 need no
    rescaling (a float32 Gram matrix overflowed near 1e19 and underflowed near 1e-19). ``buf``
    (float64, the shape of ``a``) receives the centred data, so that a loop over models does not
    allocate (and page-fault) a fresh copy each time.
    """
    n, d = a.shape
    x = buf if buf is not None else np.empty((n, d))
    if center:
        np.subtract(a, a.mean(axis=0, dtype=np.float64), out=x)
    else:
        x[...] = a
    if check and a.dtype != np.float32:
        # |score| <= sqrt(D) max|x|, and the first column's largest >= max|x| / sqrt(D): outside
        # these bounds no score fits float32 (and the float64 Gram matrix could overflow).
        amax = max(float(x.max()), -float(x.min()))
        if amax / math.sqrt(d) > _F32_MAX:
            raise _too_large(m, amax / math.sqrt(d))
        if 0.0 < amax * math.sqrt(d) < _F32_LOW:
            raise _too_small(m, amax * math.sqrt(d))
    if d <= n:
        gram = x.T @ x  # (D, D), float64 accumulation: the step that sets the accuracy
        total = float(np.trace(gram))
        # (BLAS/LAPACK run single-threaded here: _per_model holds _single_threaded around every call)
        w, v = scipy.linalg.eigh(gram, subset_by_index=[d - k, d - 1], driver="evr",
                                 check_finite=False, overwrite_a=True)
        p = x @ np.ascontiguousarray(v[:, ::-1])
        floor = 0.0
    else:  # fewer points than dimensions: diagonalise the (N, N) Gram matrix instead
        gram = x @ x.T
        total = float(np.trace(gram))
        w, u = scipy.linalg.eigh(gram, subset_by_index=[n - k, n - 1], driver="evr",
                                 check_finite=False, overwrite_a=True)
        w, u = np.clip(w[::-1], 0.0, None), u[:, ::-1]
        p = u * np.sqrt(w)
        # Variances here are eigenvalues, accurate to ~eps64 * lambda_1 only (not squared, as
        # projections of the data are): a null direction must not pass for a component.
        floor = 1e3 * np.finfo(np.float64).eps
    # Variances from the scores themselves: a direction in the null space of the data then has
    # variance at roundoff level (squared) rather than at the eigensolver's accuracy.
    var = p.var(axis=0) if center else (p**2).mean(axis=0)
    low = _low_variance(var, a.dtype, floor=floor)
    if check and low.size:
        r = int(low[0])
        raise ValueError(
            f"activations[{m}] has numerical rank {r} < n_components={k} (component {r} has variance "
            f"{var[r]:.3g} against {var[0]:.3g} for the first; {n} points, {d} units, "
            f"{a.dtype}; constant or dead units lower the rank): pass n_components={r} or smaller, or "
            'n_components="rank" (the smallest rank of all models; see numerical_rank)'
        )
    p *= _sign_convention(p)
    if check:
        top = np.abs(p).max(axis=0)
        if top.max() > _F32_MAX:
            raise _too_large(m, float(top.max()))
        if top.min() < _F32_LOW:
            raise _too_small(m, float(top.min()), int(top.argmin()))
    return p, var, total / n


def _resolve_components(models: Sequence[Any], n_components: Any, center: bool, cap_at_rank: bool = False) -> int:
    """K from ``n_components``: a positive integer as given (lowered to the smallest numerical rank
    with ``cap_at_rank``), or ``"rank"`` (the smallest rank)."""
    if isinstance(n_components, str):
        if n_components != "rank":
            raise ValueError(f'n_components must be a positive integer or "rank", got {n_components!r}')
    else:
        k = check_count(n_components, "n_components")
        if not cap_at_rank:
            return k
    ranks = numerical_rank(models, center=center)
    rank = int(ranks.min())
    if rank < 1:
        m = int(ranks.argmin())
        raise ValueError(f"activations[{m}] has numerical rank 0 (constant over the points): "
                         "no principal component to keep; drop that model")
    return rank if isinstance(n_components, str) else min(k, rank)


def principal_components(activations: Any, *, n_components: int | str = 50, cap_at_rank: bool = False,
                         center: bool = True, progress: bool = True) -> ModelComponents:
    """Project each model's activations on its top principal directions.

    Parameters
    ----------
    activations : array (M, N, D) or sequence of M arrays (N, D_m)
        Penultimate-layer activations; models may differ in width. Models are read one at a
        time, so a lazy sequence (e.g. memory-mapped arrays) keeps memory low. Any real dtype;
        the PCA itself runs in float64 (centring, Gram matrix, eigensolver and projection):
        scores are then accurate to about 1e-6 of each column's largest value even on
        low-variance components, where a float32 Gram matrix gave 1-5 %.
    n_components : int or "rank", default 50
        K, the number of components per model. Must be below N and at most every D_m and the
        numerical rank of every model (constant or dead units lower it): a ``ValueError``
        names the offending model otherwise. ``"rank"`` takes the smallest numerical rank of
        all models (:func:`numerical_rank`; that costs one more pass over the models).
    cap_at_rank : bool, default False
        Lower an integer ``n_components`` to the smallest numerical rank of the models where that
        is smaller, instead of refusing it (one more pass over the models, as for ``"rank"``).
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

    Raises
    ------
    ValueError
        Bad shapes or values (naming the model), a rank below K, scores outside float32's
        range (rescale the activations), or arrays that will not fit in memory.

    Examples
    --------
    >>> import numpy as np
    >>> acts = np.random.default_rng(0).standard_normal((2, 100, 8))
    >>> pc = principal_components(acts, n_components=3, progress=False)
    >>> pc.scores.shape
    (2, 100, 3)
    """
    return _principal_components(_as_model_list(activations), n_components=n_components,
                                 cap_at_rank=check_bool(cap_at_rank, "cap_at_rank"),
                                 center=check_bool(center, "center"), progress=check_bool(progress, "progress"))


def _principal_components(models: Sequence[Any], *, n_components: Any, center: bool, progress: bool,
                          cap_at_rank: bool = False, later: Any = None) -> ModelComponents:
    """principal_components on a checked model list; ``later(n, k)`` adds the memory of the steps
    that follow (build_interaction_tensor), so that the size check comes before any work."""
    if not isinstance(n_components, str):
        check_count(n_components, "n_components")  # before reading any model
    first = _check_model(models[0], 0, None)
    n = first.shape[0]
    k = _resolve_components(models, n_components, center, cap_at_rank)
    if k >= n:
        raise ValueError(f"n_components={k} must be below the number of points N={n}: pass a smaller "
                         'n_components or n_components="rank"')
    mm = len(models)
    workers = _n_workers(mm)
    need = _pca_bytes(mm, n, first.shape[1], k, workers)
    remedy = "lower n_components, use fewer models or points, or pass the models as a lazy sequence"
    if later is not None:
        need, remedy = {**need, **later(n, k)}, (f"M*K = {mm * k} candidate features make an {mm * k} x {mm * k} "
                                                 "correlation matrix: lower n_components or use fewer models")
    _check_memory(need, remedy)
    scores = np.empty((mm, n, k), dtype=np.float32)
    var = np.empty((mm, k))
    ratio = np.empty((mm, k))
    widest = [first.shape[1]]

    def read(m: int) -> np.ndarray:
        a = first if m == 0 else _check_model(models[m], m, n)
        if a.shape[1] < k:
            raise ValueError(f"n_components={k} exceeds the width D={a.shape[1]} of activations[{m}]: "
                             f"pass n_components={a.shape[1]} or smaller")
        if a.shape[1] > widest[0]:
            widest[0] = a.shape[1]
            _check_memory(_pca_bytes(mm, n, a.shape[1], k, workers), "lower n_components or use fewer points")
        return a

    work = lambda m, a: _pca_one(a, k, center, m, _buffer(a.shape))  # noqa: E731
    for m, (p, v, total) in tqdm(_per_model(mm, read, work, workers), total=mm, desc="PCA per model",
                                 disable=not progress, leave=False):
        scores[m], var[m] = p, v
        ratio[m] = v / total if total > 0 else np.nan
    return ModelComponents(scores=scores, explained_variance=var, explained_variance_ratio=ratio,
                           center=center)


def _n_workers(n_models: int) -> int:
    """Threads for the per-model PCA: the cores this process may use, at most 4 (and M)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4, n_models))


_LOCAL = threading.local()


def _buffer(shape: tuple[int, int]) -> np.ndarray:
    """This thread's float64 scratch array of ``shape`` (kept between models of one width)."""
    buf = getattr(_LOCAL, "buf", None)
    if buf is None or buf.shape != shape:
        buf = _LOCAL.buf = np.empty(shape)
    return buf


def _per_model(n_models: int, read: Any, work: Any, workers: int):
    """Yield ``(m, work(m, read(m)))`` in model order, ``workers`` models at a time.

    Models are read in this thread, in order and one at a time (a lazy sequence is read once per
    model, at most ``workers`` held at once); ``work`` runs on worker threads with BLAS limited to
    one thread each, so a model's result does not depend on how many run beside it (bit for bit),
    and the cores are used by whole models rather than by BLAS threads waiting for each other.
    """
    with _single_threaded():
        if workers == 1:
            for m in range(n_models):
                yield m, work(m, read(m))
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: collections.deque = collections.deque()
            try:
                for m in range(n_models):
                    a = read(m)
                    if len(pending) >= workers:
                        done, fut = pending.popleft()
                        yield done, fut.result()
                    pending.append((m, pool.submit(work, m, a)))
                while pending:
                    done, fut = pending.popleft()
                    yield done, fut.result()
            finally:
                for _, fut in pending:
                    fut.cancel()


def _pca_bytes(n_models: int, n_points: int, width: int, k: int, workers: int = 1) -> dict[str, int]:
    """Memory of the PCA stage: stored scores, and per worker a model's float64 copy, its Gram
    matrix (with the eigensolver's copy) and projections, plus the model read ahead."""
    g = min(n_points, width)
    return {"scores": 4 * n_models * n_points * k,
            "centred copies": workers * (8 * n_points * width + 8 * n_points * width),
            "Gram matrices": workers * 2 * 8 * g * g, "projections": workers * 2 * 8 * n_points * k}


def _scores_array(scores: Any) -> np.ndarray:
    if isinstance(scores, ModelComponents):
        return scores.scores
    arr = np.asarray(scores)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"scores must have shape (M, N, K) with no empty axis, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"scores must be a float array (M, N, K), got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"scores contains {int((~np.isfinite(arr)).sum())} NaN or infinite values")
    return arr


def _low_variance(var: np.ndarray, dtype: Any, *, floor: float = 0.0) -> np.ndarray:
    """Indices of components whose variance is at roundoff level relative to the first."""
    top = var[0] if var.size else 0.0
    rtol = max((100 * np.finfo(dtype).eps) ** 2, floor)
    return np.flatnonzero(var <= rtol * top) if top > 0 else np.arange(var.size)


def numerical_rank(activations: Any, *, center: bool = True, progress: bool = False) -> np.ndarray:
    """Each model's numerical rank by the criterion :func:`principal_components` enforces.

    ``n_components`` must not exceed the smallest of these (dead ReLU units lower them);
    ``principal_components(..., n_components="rank")`` takes that smallest value itself.
    A component counts when its variance exceeds ``(100 eps)^2`` times the first one's, eps
    being the input dtype's machine epsilon (float32 input: singular values down to about
    1.2e-5 of the largest). Costs one full float64 PCA per model (all min(N - 1, D) directions).

    Parameters
    ----------
    activations : array (M, N, D) or sequence of M arrays (N, D_m)
    center : bool, default True
    progress : bool, default False

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
    center = check_bool(center, "center")
    progress = check_bool(progress, "progress")
    mm = len(models)
    out = np.empty(mm, dtype=np.int64)
    workers = _n_workers(mm)
    shape = [None]

    def read(m: int) -> np.ndarray:
        a = _check_model(models[m], m, None if shape[0] is None else shape[0][0])
        if shape[0] is None or a.shape[1] > shape[0][1]:
            shape[0] = a.shape
            kmax = min(a.shape[1], a.shape[0] - 1 if center else a.shape[0])
            _check_memory(_pca_bytes(0, a.shape[0], a.shape[1], kmax, workers), "use fewer points or units")
        return a

    def work(m: int, a: np.ndarray) -> int:
        n, d = a.shape
        kmax = min(d, n - 1 if center else n)
        if kmax < 1:
            return 0
        _, var, _ = _pca_one(a, kmax, center, m, _buffer(a.shape), check=False)
        low = _low_variance(var, a.dtype, floor=0.0 if d <= n else 1e3 * np.finfo(np.float64).eps)
        return int(low[0]) if low.size else kmax

    for m, r in tqdm(_per_model(mm, read, work, workers), total=mm, desc="rank per model", disable=not progress,
                     leave=False):
        out[m] = r
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


def _check_corr(corr: Any, name: str = "corr") -> np.ndarray:
    """A finite, real, non-empty square matrix (a correlation matrix from component_correlations)."""
    c = np.asarray(corr)
    if c.dtype == object or c.dtype == bool or not np.issubdtype(c.dtype, np.number) \
            or np.issubdtype(c.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real numeric matrix, got dtype {c.dtype}")
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix (M*K, M*K) from component_correlations, "
                         f"got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(c)).sum())} NaN or infinite values")
    return c


def _check_n_models(n_models: Any, size: int, *, minimum: int = 1) -> int:
    """``n_models`` as an int >= minimum that divides ``size`` (the rows of the correlation matrix)."""
    m = check_count(n_models, "n_models", minimum=minimum)
    if size % m:
        raise ValueError(f"corr has {size} rows, not a multiple of n_models={m}: pass the number of models "
                         "whose components the matrix holds")
    return m


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
    q = check_probability(quantile, "quantile", remedy="e.g. 0.99 for the 99th percentile of |C|")
    corr = _check_corr(corr)
    mk = corr.shape[0]
    n_models = check_count(n_models, "n_models")
    if n_models < 2:
        raise ValueError(
            f"a single model (n_models={n_models}) has no cross-model correlations to take a "
            "quantile over: use an absolute gamma_corr instead"
        )
    n_models = _check_n_models(n_models, mk)
    k = mk // n_models
    # The blocks above the diagonal, model by model: the same values as a boolean mask over the
    # whole matrix, without an (MK x MK) mask (the quantile does not depend on their order).
    vals = np.concatenate([corr[m * k:(m + 1) * k, (m + 1) * k:].ravel() for m in range(n_models - 1)])
    vals = np.minimum(np.abs(vals), 1.0).astype(np.float32)
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
    c = _check_corr(corr)
    gamma = check_real(threshold, "threshold", minimum=0, maximum=1, remedy="gamma_corr is a bound on |correlation|")
    within_model = check_bool(within_model, "within_model")
    return_openers = check_bool(return_openers, "return_openers")
    p = c.shape[0]
    if not within_model:
        if n_models is None:
            raise ValueError(f"within_model=False needs n_models (dividing {p}), got None")
        n_models = _check_n_models(n_models, p)
    absc = np.minimum(np.abs(c).astype(np.float32), np.float32(1.0))
    if not within_model:
        own = _owners(int(n_models), p // int(n_models))
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
def feature_signs(corr: np.ndarray, assignments: np.ndarray, openers: np.ndarray) -> np.ndarray:
    """Orientation of every candidate feature relative to the component that opened its feature.

    Clustering matches components by |C|, but presence is tested on the signed tail and a
    principal direction's sign is arbitrary (the skewness convention of
    :func:`principal_components` leaves nearly symmetric components to chance). A member
    anti-correlated with its feature would mark the *opposite* points. The rule: member j of
    feature t gets the sign of ``C[opener_t, j]`` (+1 when that is 0; openers get +1), and
    :func:`component_presence` multiplies its scores by it before the test, so every member of a
    feature points the way its opener does.

    Parameters
    ----------
    corr : ndarray (P, P)
        The *signed* correlations (:func:`component_correlations`).
    assignments : array (P,) or (M, K) int
        Feature of each candidate (:func:`cluster_components`).
    openers : array (T,) int
        Flat index of the candidate that opened each feature.

    Returns
    -------
    ndarray, the shape of ``assignments``, int8
        +1 or -1.

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[1, -.9, .1], [-.9, 1, .2], [.1, .2, 1]], dtype=np.float32)
    >>> a, _, op = cluster_components(c, 0.5, return_openers=True)
    >>> feature_signs(c, a, op).tolist()
    [1, -1, 1]
    """
    c = _check_corr(corr)
    a = np.asarray(assignments)
    o = np.asarray(openers)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer) or a.size != c.shape[0]:
        raise ValueError(f"assignments must hold one integer feature per row of corr ({c.shape[0]}), "
                         f"got dtype {a.dtype}, shape {a.shape}")
    flat = a.ravel()
    t = int(flat.max()) + 1 if flat.size else 0
    if o.dtype == bool or not np.issubdtype(o.dtype, np.integer) or o.shape != (t,) or flat.min() < 0:
        raise ValueError(f"openers must hold one integer index per feature (T={t}), got dtype {o.dtype}, "
                         f"shape {o.shape}")
    if (o < 0).any() or (o >= flat.size).any() or not np.array_equal(flat[o], np.arange(t)):
        raise ValueError("openers[t] must index a candidate of feature t (from cluster_components)")
    return np.where(c[o[flat], np.arange(flat.size)] < 0, -1, 1).astype(np.int8).reshape(a.shape)


def _check_signs(signs: Any, shape: tuple[int, int]) -> np.ndarray:
    g = np.asarray(signs)
    if g.shape != shape or g.dtype == bool or not np.issubdtype(g.dtype, np.number) \
            or not np.isin(g, (-1, 1)).all():
        raise ValueError(f"signs must be an array {shape} of +1 and -1 (from feature_signs), "
                         f"got shape {g.shape}, dtype {g.dtype}")
    return g.astype(np.int8)


def component_presence(scores: ModelComponents | np.ndarray, *, quantile: float | None = 0.9,
                       threshold: float | None = None, rule: str = "signed",
                       scale: str = "column", signs: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
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
    signs : array (M, K) of +1/-1, optional
        Orientation of each column before the test (:func:`feature_signs`); ``None`` = all +1.
        Only the signed rule depends on it.

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
    values = PRESENCE_RULES[check_choice(rule, "presence", PRESENCE_RULES)]
    normaliser = PRESENCE_SCALES[check_choice(scale, "presence_scale", PRESENCE_SCALES)]
    if threshold is None:
        if quantile is None:
            raise ValueError("give presence_quantile or presence_threshold (both are None)")
        quantile = check_probability(quantile, "presence_quantile")
    else:
        threshold = check_real(threshold, "presence_threshold", minimum=-1, maximum=1,
                               remedy="a threshold on the normalised scores")
    mm, _, k = s.shape
    sg = None if signs is None else _check_signs(signs, (mm, k))
    out = np.empty(s.shape, dtype=bool)
    thr = np.empty(mm)
    for m in range(mm):
        p = np.asarray(s[m], dtype=np.float32)
        denom = normaliser(np.abs(p))
        denom = np.where(denom > 0, denom, np.float32(1.0)).astype(np.float32)
        v = values(p, denom, None if sg is None else sg[m])
        t32 = np.float32(np.quantile(v, quantile) if threshold is None else threshold)
        np.greater(v, t32, out=out[m])
        thr[m] = float(t32)
    return out, thr


def _signed_values(p: np.ndarray, denom: np.ndarray, sign: np.ndarray | None) -> np.ndarray:
    # p / (-d) is exactly -(p / d) in IEEE arithmetic: all-+1 signs reproduce the unsigned rule bit for bit.
    return p / (denom if sign is None else denom * sign.astype(np.float32))


def _absolute_values(p: np.ndarray, denom: np.ndarray, sign: np.ndarray | None) -> np.ndarray:
    return np.abs(p) / denom


#: Presence rules (gamma_data is compared with what they return): name -> function of a model's
#: float32 scores (N, K), their normaliser (see PRESENCE_SCALES) and the members' signs (K,) or None.
#: A new rule is one entry here.
PRESENCE_RULES: Mapping[str, Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]] = MappingProxyType(
    {"signed": _signed_values, "absolute": _absolute_values})

#: Presence scales: name -> the normaliser of a model's |scores| (N, K): each column's maximum, or
#: the model's.
PRESENCE_SCALES: Mapping[str, Callable[[np.ndarray], np.ndarray]] = MappingProxyType(
    {"column": lambda mag: mag.max(axis=0), "model": lambda mag: mag.max()})


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
    c = component_correlations(s) if corr is None else _check_corr(corr)
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
    c = np.abs(_check_corr(corr).astype(np.float32))
    mk = c.shape[0]
    n_models = check_count(n_models, "n_models")
    if n_models < 2:
        raise ValueError(f"best_match compares models: n_models must be >= 2, got {n_models}")
    n_models = _check_n_models(n_models, mk)
    own = _owners(n_models, mk // n_models)
    c = np.where(own[:, None] == own[None, :], np.float32(0), c)
    return c.max(axis=1).reshape(n_models, -1)


# --------------------------------------------------------------------------- dominant / rare
#: Older names of split rules, still accepted (the rule is "largest_spacing": the widest spacing
#: between consecutive sorted log frequencies).
_SPLIT_ALIASES = {"gap": "largest_spacing", "largest_gap": "largest_spacing"}


def resolve_split_rule(rule: str | None = None, *, method: str | None = None, default: str = "mixture") -> str:
    """The registered name (a key of :data:`SPLIT_RULES`) of a dominant/rare split rule.

    ``method`` is the rule's older keyword; older names (``"gap"``, ``"largest_gap"``) give
    ``"largest_spacing"``. Neither given: ``default``.

    Examples
    --------
    >>> resolve_split_rule(method="gap")
    'largest_spacing'
    """
    if method is not None and rule is not None and method != rule:
        raise ValueError(f"give the split rule once: rule={rule!r} and its older keyword method={method!r} differ")
    r = rule if rule is not None else (method if method is not None else default)
    r = _SPLIT_ALIASES.get(r, r) if isinstance(r, str) else r
    return check_choice(r, "split rule", SPLIT_RULES)


def _default_min_group(n: int) -> int:
    return max(3, math.ceil(0.05 * n))


def _mixture_fits(logs: np.ndarray) -> tuple[Any, float, float]:
    """(two-component fit, BIC of one component, BIC of two) on sorted 1-D ``logs``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = logs.reshape(-1, 1)
    # A variance floor of (spread / 20)^2: a "mode" made of a few tied or nearly tied values
    # would otherwise buy an unbounded likelihood, and BIC would call it a second mode.
    reg = max(1e-6, (0.05 * float(logs.std())) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # k-means++ starts (5, seeded): as good as full k-means starts here, and 6x faster.
        one = GaussianMixture(1, reg_covar=reg, init_params="k-means++", random_state=0).fit(x)
        two = GaussianMixture(2, reg_covar=reg, n_init=5, init_params="k-means++", max_iter=500,
                              random_state=0).fit(x)
    return two, float(one.bic(x)), float(two.bic(x))


def _mixture_cut(logs: np.ndarray, min_group: int) -> tuple[int | None, dict]:
    """Index c into sorted ``logs``: ``logs[c:]`` dominant; None when there is no second mode."""
    n = logs.size
    info: dict[str, Any] = {"n_modes": 1, "bic_one": float("nan"), "bic_two": float("nan")}
    if n < 2 * min_group + 2:
        info["reason"] = f"{n} features with non-zero frequency: too few for two groups of {min_group}"
        return None, info
    two, info["bic_one"], info["bic_two"] = _mixture_fits(logs)
    if not info["bic_two"] < info["bic_one"]:
        info["reason"] = "BIC prefers one component: no second mode"
        return None, info
    # The lowest and the highest feature alone must not decide: without them, BIC must still
    # prefer two modes (an outlier can pull a broad second component into the tail).
    _, b1, b2 = _mixture_fits(logs[1:-1])
    if not b2 < b1:
        info["reason"] = ("BIC prefers two components only with the most extreme feature: without the lowest "
                          "and the highest, one component (an outlier, not a mode)")
        return None, info
    x = logs.reshape(-1, 1)
    high = two.predict(x) == int(np.argmax(two.means_.ravel()))
    # The cut between distinct sorted values that disagrees least with the mixture's labels
    # (with unequal variances the labels need not be contiguous).
    below = np.r_[0, np.cumsum(high)]  # dominant labels left of each cut
    cuts = np.arange(n + 1)
    wrong = below + (n - cuts) - (below[-1] - below)
    valid = np.zeros(n + 1, dtype=bool)
    valid[1:n] = logs[1:] > logs[:-1]
    c = int(np.flatnonzero(valid)[np.argmin(wrong[valid])])
    if min(c, n - c) < min_group:
        info["reason"] = (f"the second mode holds {min(c, n - c)} features, fewer than min_group={min_group}: "
                          "an outlying group, not a mode")
        return None, info
    info.update(n_modes=2, reason="two modes (BIC), also without the most extreme features")
    return c, info


def split_frequencies(frequency: np.ndarray, *, threshold: float | None = None, rule: str | None = None,
                      method: str | None = None, min_group: int | None = None,
                      return_info: bool = False) -> tuple[Any, ...]:
    """Split features into dominant and rare by their frequency.

    Parameters
    ----------
    frequency : array (T,)
        Number of points in which each feature occurs.
    threshold : float, optional
        Features occurring in more than ``threshold`` points are dominant. When omitted, a rule
        finds it on log10 frequency (features that never occur are left out of the search and
        count as rare).
    rule : a key of :data:`SPLIT_RULES`: {"mixture", "largest_spacing", "otsu"}, default "mixture"
        ``"mixture"``: fit Gaussian mixtures with one and two components to log10 frequency
        (scikit-learn, fixed seed) and split only when BIC prefers two, still does without the
        lowest and the highest feature, *and* each group holds at least ``min_group`` features;
        the cut is the one between sorted values that disagrees least with the two-component
        labels. It says when there is no second mode (no split, threshold ``inf``), and a single
        outlying feature can neither form a group nor pull a second mode into being.
        ``"largest_spacing"`` (formerly ``"largest_gap"`` and ``"gap"``): the middle of the widest
        spacing between consecutive sorted values; one outlier captures it (on an earlier default
        run of the book it split off 1 feature and called the other 111 dominant). ``"otsu"``:
        maximal between-group variance (Otsu's rule); always splits.
    method : str, optional
        The older keyword of ``rule``, kept for existing callers.
    min_group : int, optional
        Smallest group the mixture rule accepts; default ``max(3, ceil(0.05 * T+))`` with T+
        the features that occur at all.
    return_info : bool, default False
        Also return a dict: ``rule``, ``n_modes`` (mixture: 2 when split, else 1; NaN for the
        other rules), ``bic_one``, ``bic_two``, ``min_group``, ``reason``.

    Returns
    -------
    dominant : ndarray (T,) bool
    threshold : float
        In points (the geometric middle of the two frequencies the rule separates); ``inf``
        when there is no split (fewer than two distinct frequencies, or no second mode).
    info : dict
        Only with ``return_info=True``.

    Examples
    --------
    >>> dominant, thr = split_frequencies([1, 2, 3, 300, 400], rule="largest_spacing")
    >>> dominant.tolist(), round(thr, 6)
    ([False, False, False, True, True], 30.0)
    >>> f = [100, 110, 120, 130, 140] * 3 + [1000, 1100, 1200, 1300, 1400] * 2
    >>> int(split_frequencies(f)[0].sum())
    10
    """
    f = np.asarray(frequency)
    if f.dtype == bool or f.dtype == object or not np.issubdtype(f.dtype, np.number) \
            or np.issubdtype(f.dtype, np.complexfloating):
        raise ValueError(f"frequency must be a 1-D array of non-negative counts, got dtype {f.dtype}")
    f = f.astype(np.float64)
    if f.ndim != 1 or (f.size and (not np.isfinite(f).all() or (f < 0).any())):
        raise ValueError(f"frequency must be a 1-D array of non-negative counts, got shape {f.shape}")
    r = resolve_split_rule(rule, method=method)
    return_info = check_bool(return_info, "return_info")
    pos = np.sort(np.log10(f[f > 0]))
    mg = _default_min_group(pos.size) if min_group is None else check_count(min_group, "min_group")
    info: dict[str, Any] = {"rule": r, "n_modes": float("nan"), "bic_one": float("nan"),
                            "bic_two": float("nan"), "min_group": int(mg), "reason": ""}
    if threshold is None:
        if np.unique(pos).size < 2:
            threshold = float("inf")
            info.update(reason="fewer than two distinct frequencies", n_modes=1 if r == "mixture" else np.nan)
        else:
            threshold, extra = SPLIT_RULES[r](pos, min_group=mg)
            info.update(extra)
    else:
        threshold = check_real(threshold, "threshold", allow_inf=True,
                               remedy="a number of points (or inf: every feature rare)")
        if threshold == -np.inf:
            raise ValueError("threshold must be a number of points (or inf), got -inf")
        info["reason"] = "threshold given"
    dom = f > threshold
    return (dom, threshold, info) if return_info else (dom, threshold)


@functools.lru_cache(maxsize=256)
def _mixture_cut_of_bytes(logs: bytes, min_group: int) -> tuple[int | None, dict]:
    # The mixture fits are the slow part of a split (scikit-learn, ~30 ms) and a threshold sweep
    # asks for the same frequencies' split several times (O1, O2's table, O3): same bytes, same cut.
    return _mixture_cut(np.frombuffer(logs, dtype=np.float64), min_group)


def _mixture_split(logs: np.ndarray, *, min_group: int) -> tuple[float, dict]:
    c, info = _mixture_cut_of_bytes(np.ascontiguousarray(logs, dtype=np.float64).tobytes(), int(min_group))
    return (float("inf") if c is None else float(10 ** ((logs[c - 1] + logs[c]) / 2))), dict(info)


def _largest_spacing_split(logs: np.ndarray, *, min_group: int) -> tuple[float, dict]:
    vals = np.unique(logs)
    i = int(np.argmax(np.diff(vals)))
    return float(10 ** ((vals[i] + vals[i + 1]) / 2)), {}


def _otsu_split(logs: np.ndarray, *, min_group: int) -> tuple[float, dict]:
    vals = np.unique(logs)
    # Between-group variance for every cut between distinct values.
    cuts = np.searchsorted(logs, vals[1:], side="left")
    csum = np.cumsum(logs)
    n = logs.size
    w0 = cuts / n
    mu0 = csum[cuts - 1] / cuts
    mu1 = (csum[-1] - csum[cuts - 1]) / (n - cuts)
    i = int(np.argmax(w0 * (1 - w0) * (mu0 - mu1) ** 2))
    return float(10 ** ((vals[i] + vals[i + 1]) / 2)), {}


#: Dominant/rare split rules: name -> function of the sorted log10 frequencies of the features that
#: occur (at least two distinct values) and ``min_group``, returning the threshold in points (inf:
#: no split) and what the rule reports (``n_modes``, ``bic_one``, ``bic_two``, ``reason``). A new
#: rule is one entry here.
SPLIT_RULES: Mapping[str, Callable[..., tuple[float, dict]]] = MappingProxyType(
    {"mixture": _mixture_split, "largest_spacing": _largest_spacing_split, "otsu": _otsu_split})


# --------------------------------------------------------------------------- options
def _check_gamma(value: Any, name: str, *, low: float) -> float | str:
    """A threshold rule: a number in [low, 1] (absolute) or ``"q<level>"`` (that quantile)."""
    what = (f"{name} must be a number in [{low:g}, 1] (an absolute threshold) or a string such as 'q0.99' "
            f"(that quantile), got {value!r}")
    if isinstance(value, str):
        try:
            level = float(value[1:]) if value[:1] == "q" else math.nan
        except ValueError:
            level = math.nan
        if not 0.0 <= level <= 1.0:
            raise ValueError(what)
        return f"q{level!r}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not low <= float(value) <= 1.0:
        raise ValueError(what)
    return float(value)


def _gamma_rule(gamma: float | str) -> tuple[str, float]:
    """``("quantile", level)`` or ``("absolute", threshold)`` of a checked threshold rule."""
    return ("quantile", float(gamma[1:])) if isinstance(gamma, str) else ("absolute", float(gamma))


@dataclass(frozen=True)
class TensorOptions:
    """Every option of the interaction tensor, checked once, in one frozen object.

    Pass it to :func:`build_interaction_tensor`, :func:`assemble_tensor`,
    :func:`ift_core.observations.sweep_thresholds` and the studies in :mod:`ift_core.experiments`
    (``tensor_options=``), so that every study can vary every option; derive variants with
    :meth:`replace`. :data:`PROFILE_OPTIONS` holds the book's defaults per training profile.

    Parameters
    ----------
    n_components : int or "rank", default 50
        K, principal components per model; ``"rank"`` = the smallest numerical rank over the
        models (:func:`numerical_rank`).
    cap_at_rank : bool, default False
        Lower an integer ``n_components`` to that smallest rank where it is smaller (dead units
        lower a model's rank) instead of refusing it.
    center : bool, default True
        Centred PCA (see :func:`principal_components`).
    gamma_corr : float or str, default "q0.99"
        The correlation rule of the clustering. A number in [0, 1]: absolute threshold on
        |corr|. ``"q0.99"``: that quantile of |C| over pairs of components of different models
        (:func:`correlation_threshold`; the paper's rule; needs two models or more).
    within_model : bool, default True
        Let components of one model join one feature (see :func:`cluster_components`).
    align_signs : bool, default True
        Orient every member of a feature like the component that opened it before the presence
        test (:func:`feature_signs`); ``False`` is Algorithm 1 as written.
    presence : str, default "signed"
        The presence rule, a key of :data:`PRESENCE_RULES`: the signed normalised score
        (``"signed"``) or its magnitude (``"absolute"``).
    gamma_data : float or str, default "q0.9"
        The presence threshold. ``"q0.9"``: each model's quantile of its normalised values; a
        number in [-1, 1]: an absolute threshold on them.
    presence_scale : str, default "column"
        Normalise each component by its own max |value| (``"column"``, the paper's rule) or by
        the model's (``"model"``); a key of :data:`PRESENCE_SCALES`.
    split_rule : str, default "mixture"
        The dominant/rare split of feature frequency the tensor's tables and O1/O3 use; a key of
        :data:`SPLIT_RULES`.

    Raises
    ------
    ValueError
        Naming the option, the value and what it may be.

    Examples
    --------
    >>> opts = TensorOptions(n_components=20, gamma_corr=0.5)
    >>> opts.replace(gamma_corr="q0.99").gamma_corr
    'q0.99'
    >>> TensorOptions(gamma_corr="0.5")
    Traceback (most recent call last):
    ...
    ValueError: gamma_corr must be a number in [0, 1] (an absolute threshold) or a string such as 'q0.99' (that quantile), got '0.5'
    """

    n_components: int | str = 50
    cap_at_rank: bool = False
    center: bool = True
    gamma_corr: float | str = "q0.99"
    within_model: bool = True
    align_signs: bool = True
    presence: str = "signed"
    gamma_data: float | str = "q0.9"
    presence_scale: str = "column"
    split_rule: str = "mixture"

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if isinstance(self.n_components, str):
            if self.n_components != "rank":
                raise ValueError(f'n_components must be a positive integer or "rank", got {self.n_components!r}')
        else:
            put("n_components", check_count(self.n_components, "n_components",
                                            remedy='or "rank" for the smallest numerical rank of the models'))
        for name in ("cap_at_rank", "center", "within_model", "align_signs"):
            put(name, check_bool(getattr(self, name), name))
        put("gamma_corr", _check_gamma(self.gamma_corr, "gamma_corr", low=0.0))
        put("presence", check_choice(self.presence, "presence", PRESENCE_RULES))
        put("gamma_data", _check_gamma(self.gamma_data, "gamma_data", low=-1.0))
        put("presence_scale", check_choice(self.presence_scale, "presence_scale", PRESENCE_SCALES))
        put("split_rule", resolve_split_rule(self.split_rule))

    def replace(self, **changes: Any) -> "TensorOptions":
        """A copy with some options changed (each checked).

        Examples
        --------
        >>> TensorOptions().replace(presence="absolute").presence
        'absolute'
        """
        unknown = sorted(set(changes) - set(self.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown tensor option(s) {unknown}; the options are {list(self.__dataclass_fields__)}")
        return dataclasses.replace(self, **changes)

    @property
    def gamma_corr_rule(self) -> tuple[str, float]:
        """``("quantile", level)`` or ``("absolute", threshold)``."""
        return _gamma_rule(self.gamma_corr)

    @property
    def gamma_data_rule(self) -> tuple[str, float]:
        """``("quantile", level)`` or ``("absolute", threshold)``."""
        return _gamma_rule(self.gamma_data)

    def as_params(self) -> dict[str, Any]:
        """The options as a plain JSON-serialisable dict (what an :class:`InteractionTensor` records)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "TensorOptions":
        """The options a tensor's ``params`` record, also from files written before this object
        existed (``corr_quantile``/``corr_threshold`` and ``presence_quantile``/``presence_threshold``).

        Examples
        --------
        >>> TensorOptions.from_params({"corr_quantile": None, "corr_threshold": 0.5}).gamma_corr
        0.5
        """
        given = {k: v for k, v in params.items() if k in cls.__dataclass_fields__}
        for new, quantile, threshold in (("gamma_corr", "corr_quantile", "corr_threshold"),
                                         ("gamma_data", "presence_quantile", "presence_threshold")):
            if params.get(threshold) is not None:
                given.setdefault(new, params[threshold])
            elif params.get(quantile) is not None:
                given.setdefault(new, f"q{float(params[quantile])!r}")
        return cls(**given)


def _legacy_gammas(changes: dict[str, Any]) -> None:
    """Map the older keyword pairs onto ``gamma_corr`` / ``gamma_data`` in place.

    ``corr_quantile=q`` is ``gamma_corr="q<q>"`` and ``corr_threshold=t`` is ``gamma_corr=t``
    (the same for ``presence_quantile`` / ``presence_threshold`` and ``gamma_data``); both at once
    are refused (the threshold used to win silently). ``None`` means not given.
    """
    for new, quantile, threshold, low in (("gamma_corr", "corr_quantile", "corr_threshold", 0),
                                          ("gamma_data", "presence_quantile", "presence_threshold", -1)):
        q, t = changes.pop(quantile, None), changes.pop(threshold, None)
        if q is None and t is None:
            continue
        if q is not None and t is not None:
            raise ValueError(f"give {new} once: {quantile}={q!r} and {threshold}={t!r} are both set; pass "
                             f"{new}={t!r} (the absolute threshold) or {new}='q{q}' (the quantile)")
        if new in changes:
            old = f"{quantile}={q!r}" if q is not None else f"{threshold}={t!r}"
            raise ValueError(f"give {new} once: {new}={changes[new]!r} and its older keyword {old} are both set")
        if t is not None:
            changes[new] = check_real(t, threshold, minimum=low, maximum=1, remedy=f"it is the absolute {new}")
        else:
            changes[new] = f"q{check_probability(q, quantile)!r}"


def _options(options: Any, overrides: Mapping[str, Any]) -> TensorOptions:
    """``options`` (default :class:`TensorOptions`) with ``overrides`` (older keywords mapped)."""
    if options is None:
        options = TensorOptions()
    elif not isinstance(options, TensorOptions):
        raise ValueError(f"options must be a TensorOptions (or None for the defaults), got {type(options).__name__}")
    changes = dict(overrides)
    _legacy_gammas(changes)
    return options.replace(**changes) if changes else options


#: The book's tensor options per training profile (the parameter cells of chapters 3-7 read them):
#: the paper's K = 50 components for "cpu" and "paper", lowered to the smallest numerical rank of
#: the models where that is lower (chapter 3 states the K used); K = 20 for the small MLPs of
#: "tiny"; an absolute gamma_corr of 0.5 (ours) for "tiny" and "cpu", the paper's 0.99 quantile of
#: cross-model |C| for "paper"; the 0.9 presence quantile everywhere.
PROFILE_OPTIONS: Mapping[str, TensorOptions] = MappingProxyType({
    "tiny": TensorOptions(n_components=20, cap_at_rank=True, gamma_corr=0.5),
    "cpu": TensorOptions(n_components=50, cap_at_rank=True, gamma_corr=0.5),
    "paper": TensorOptions(n_components=50, cap_at_rank=True, gamma_corr="q0.99"),
})


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
    signs : ndarray (M, K) int8
        The orientation each component had in the presence test: the sign of its correlation
        with its feature's opener (:func:`feature_signs`) when built with ``align_signs=True``,
        all +1 otherwise (and by default). :attr:`n_flipped` counts the -1s.
    params : dict
        The options that produced the tensor (JSON-serialisable; :attr:`options` reads them as a
        :class:`TensorOptions`).
    timings : dict
        Seconds per stage of the build (not saved).

    Examples
    --------
    >>> import numpy as np
    >>> acts = np.random.default_rng(0).standard_normal((3, 300, 10)).astype(np.float32)
    >>> it = build_interaction_tensor(acts, n_components=4, gamma_corr=0.5, progress=False)
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
    signs: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        pres = np.asarray(self.presence)
        if pres.dtype != bool and not (np.issubdtype(pres.dtype, np.integer) and np.isin(pres, (0, 1)).all()):
            raise ValueError(f"presence must be a boolean array (M, N, K), got dtype {pres.dtype}")
        self.presence = pres.astype(bool, copy=False)
        assign = np.asarray(self.assignments)
        if assign.dtype == bool or not np.issubdtype(assign.dtype, np.integer):
            raise ValueError(f"assignments must be integers (M, K), got dtype {assign.dtype}")
        self.assignments = assign.astype(np.int64)
        if self.presence.ndim != 3 or self.assignments.shape != (self.presence.shape[0], self.presence.shape[2]):
            raise ValueError(
                f"presence (M, N, K) and assignments (M, K) disagree: {self.presence.shape} "
                f"vs {self.assignments.shape}"
            )
        mm, _, k = self.presence.shape
        ids = np.unique(self.assignments)
        if ids.size and (ids[0] != 0 or ids[-1] != ids.size - 1):
            raise ValueError("assignments must number the features 0..T-1 without gaps")
        self.openers = np.asarray(self.openers, dtype=np.int64)
        if self.openers.shape != (ids.size,):
            raise ValueError(f"openers must have shape ({ids.size},), got {self.openers.shape}")
        flat = self.assignments.ravel()
        if ids.size and ((self.openers < 0).any() or (self.openers >= flat.size).any()
                         or not np.array_equal(flat[self.openers], ids)):
            raise ValueError("openers[t] must be the flat index m * K + k of a component of feature t")
        for name, shape in (("best_corr", (mm, k)), ("explained_variance", (mm, k)),
                            ("explained_variance_ratio", (mm, k)), ("presence_thresholds", (mm,))):
            arr = np.asarray(getattr(self, name))
            if arr.shape != shape or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
                raise ValueError(f"{name} must be a numeric array of shape {shape}, got shape {arr.shape}, "
                                 f"dtype {arr.dtype}")
            setattr(self, name, arr)
        self.signs = np.ones((mm, k), dtype=np.int8) if self.signs is None else _check_signs(self.signs, (mm, k))
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

    @property
    def n_flipped(self) -> int:
        """How many components were flipped to point like their feature's opener (``signs == -1``)."""
        return int((self.signs < 0).sum())

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
            # One row of bits per component (M*K, N/8): OR-ing the rows of a feature is a reduceat
            # over contiguous bytes, ~8x faster than a boolean reduceat across columns.
            rows = np.packbits(self.presence.transpose(0, 2, 1).reshape(-1, self.n_points), axis=1)
            order, starts, ids = _segments(self.assignments.ravel())
            bits = np.zeros((self.n_features, rows.shape[1]), dtype=np.uint8)
            bits[ids] = np.bitwise_or.reduceat(rows[order], starts, axis=0)
            out = np.ascontiguousarray(np.unpackbits(bits, axis=1, count=self.n_points).view(bool).T)
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
        if not check_bool(per_model, "per_model"):
            return self.point_feature_matrix().sum(axis=1)
        # Components present, less the double counts of a feature that holds several components of
        # one model (few: most features hold at most one component per model).
        out = self.presence.sum(axis=2, dtype=np.int64)
        for m in range(self.n_models):
            order, starts, _ = _segments(self.assignments[m])
            sizes = np.diff(np.r_[starts, self.n_components])
            for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
                members = self.presence[m][:, order[start:start + size]]
                out[m] -= members.sum(axis=1) - members.any(axis=1)
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

    @property
    def options(self) -> TensorOptions:
        """The :class:`TensorOptions` that built this tensor (from :attr:`params`; K as used)."""
        return TensorOptions.from_params({"n_components": self.n_components, **self.params})

    def _split_rule(self, rule: str | None, method: str | None) -> str:
        """The split rule asked for, else the one the tensor was built with."""
        return resolve_split_rule(rule, method=method, default=self.params.get("split_rule", "mixture"))

    def dominant_split(self, *, threshold: float | None = None, rule: str | None = None,
                       method: str | None = None) -> tuple[np.ndarray, float]:
        """Dominant (True) vs rare features by frequency; see :func:`split_frequencies` (default rule:
        the options' ``split_rule``)."""
        return split_frequencies(self.feature_frequency(), threshold=threshold, rule=self._split_rule(rule, method))

    # ---- tidy tables
    def features_table(self, *, threshold: float | None = None, rule: str | None = None,
                       method: str | None = None) -> pd.DataFrame:
        """One row per feature: frequency, log10 frequency, models, components, dominant."""
        freq = self.feature_frequency()
        dom, _ = split_frequencies(freq, threshold=threshold, rule=self._split_rule(rule, method))
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
            "n_flipped": np.bincount(flat, weights=(self.signs.ravel() < 0), minlength=self.n_features
                                     ).astype(np.int64),
            "dominant": dom,
        })

    def points_table(self, *, threshold: float | None = None, rule: str | None = None,
                     method: str | None = None) -> pd.DataFrame:
        """One row per point: features present (union of models, and mean per model), dominant and rare."""
        pf = self.point_feature_matrix()
        dom, _ = self.dominant_split(threshold=threshold, rule=rule, method=method)
        return pd.DataFrame({
            "point": np.arange(self.n_points),
            "n_features": pf.sum(axis=1),
            "n_dominant": pf[:, dom].sum(axis=1),
            "n_rare": pf[:, ~dom].sum(axis=1),
            "mean_features_per_model": self.features_per_point(per_model=True).mean(axis=0),
        })

    def components_table(self) -> pd.DataFrame:
        """One row per model component: its feature, recorded correlation, sign, variance, presence
        rate, and ``jaccard_with_opener``: the Jaccard overlap of the points where it is present
        with those where its feature's opener is (1 for openers; near 0 for an anti-aligned
        member when the tensor was built with ``align_signs=False``)."""
        m, k = np.meshgrid(np.arange(self.n_models), np.arange(self.n_components), indexing="ij")
        flat = self.presence.transpose(0, 2, 1).reshape(-1, self.n_points)  # (M*K, N)
        mine, theirs = flat, flat[self.openers[self.assignments.ravel()]]
        inter = (mine & theirs).sum(axis=1)
        union = (mine | theirs).sum(axis=1)
        return pd.DataFrame({
            "model": m.ravel(),
            "component": k.ravel(),
            "feature": self.assignments.ravel(),
            "best_corr": self.best_corr.ravel().astype(np.float64),
            "sign": self.signs.ravel().astype(np.int64),
            "explained_variance": self.explained_variance.ravel(),
            "explained_variance_ratio": self.explained_variance_ratio.ravel(),
            "presence_rate": self.presence.mean(axis=1).ravel(),
            "jaccard_with_opener": np.where(union > 0, inter / np.maximum(union, 1), 1.0),
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
            signs=np.asarray(self.signs, dtype=np.int8),
            params=np.asarray(json.dumps(self.params, sort_keys=True)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "InteractionTensor":
        """Read a file written by :meth:`save` (format 2, or format 1: written before sign
        alignment, read with all signs +1). A truncated or inconsistent file is refused."""
        z = load_npz(path)
        keys = {"presence_bits", "presence_shape", "assignments", "best_corr", "openers", "corr_threshold",
                "presence_thresholds", "explained_variance", "explained_variance_ratio", "params"}
        missing = keys - set(z)
        if missing:
            raise ValueError(f"{path} is not an InteractionTensor file (missing {sorted(missing)})")
        version = int(z["format_version"]) if "format_version" in z and z["format_version"].size == 1 else -1
        if version not in (1, _FORMAT_VERSION) or (version == _FORMAT_VERSION and "signs" not in z):
            raise ValueError(f"{path}: unsupported format_version {z.get('format_version')!r} "
                             f"(this version reads 1 and {_FORMAT_VERSION}); rebuild the tensor")
        shape_arr = z["presence_shape"]
        if shape_arr.shape != (3,) or not np.issubdtype(shape_arr.dtype, np.integer) or (shape_arr < 0).any():
            raise ValueError(f"{path}: presence_shape must be 3 non-negative integers, got {shape_arr!r}")
        shape = tuple(int(s) for s in shape_arr)
        count = math.prod(shape)
        bits = z["presence_bits"]
        if bits.dtype != np.uint8 or bits.ndim != 1 or bits.size != -(-count // 8):
            raise ValueError(f"{path}: presence_bits holds {bits.size} bytes (dtype {bits.dtype}), but presence "
                             f"{shape} needs {-(-count // 8)}: the file is truncated or corrupt; rebuild it")
        try:
            params = json.loads(str(z["params"]))
            scalar = float(z["corr_threshold"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: unreadable params or corr_threshold ({err}); rebuild the tensor") from None
        try:
            return cls(
                presence=np.unpackbits(bits, count=count).astype(bool).reshape(shape),
                assignments=z["assignments"],
                best_corr=z["best_corr"],
                openers=z["openers"],
                corr_threshold=scalar,
                presence_thresholds=z["presence_thresholds"],
                explained_variance=z["explained_variance"],
                explained_variance_ratio=z["explained_variance_ratio"],
                signs=z.get("signs"),
                params=params,
            )
        except ValueError as err:
            raise ValueError(f"{path}: {err}; the file is inconsistent, rebuild the tensor") from None

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
            and np.array_equal(self.signs, other.signs)
            and self.params == other.params
        )


def _tensor_bytes(n_models: int, n_points: int, k: int) -> dict[str, int]:
    """Peak memory of steps 3-7, sized by the arguments (the PCA's own is in _pca_bytes)."""
    mk = n_models * k
    return {"scores": 4 * n_models * n_points * k, "presence": n_models * n_points * k,
            # z-scored columns with the correlation matrix, or the matrix with the clustering's
            # |C| copy and comparison mask and the threshold's gathered pairs (the larger of the two)
            "correlations": max(4 * n_points * mk + 4 * mk * mk, 13 * mk * mk)}


def _assemble(pc: ModelComponents, corr: np.ndarray, options: TensorOptions, *, timings: dict,
              cache: dict | None = None) -> InteractionTensor:
    """Steps 4-7 on precomputed PCA and signed correlations (shared by the build and the sweeps).

    ``cache`` (a dict kept between calls on the same ``pc`` and ``corr``) holds each clustering
    and each presence test, so a sweep computes every distinct one once.
    """
    mm, _, k = pc.scores.shape
    t0 = time.perf_counter()
    kind, value = options.gamma_corr_rule
    if kind == "quantile":
        if mm < 2:
            raise ValueError('a single model has no cross-model correlations to take a quantile over: pass an '
                             'absolute gamma_corr (e.g. gamma_corr=0.5)')
        gamma = correlation_threshold(corr, mm, quantile=value)
    else:
        gamma = float(np.float32(value))
    t1 = time.perf_counter()
    key = ("cluster", gamma, options.within_model)
    if cache is not None and key in cache:
        assign, best, openers = cache[key]
    else:
        assign, best, openers = cluster_components(corr, gamma, n_models=mm, within_model=options.within_model,
                                                   return_openers=True)
        if cache is not None:
            cache[key] = (assign, best, openers)
    signs = (feature_signs(corr, assign, openers).reshape(mm, k) if options.align_signs
             else np.ones((mm, k), np.int8))
    t2 = time.perf_counter()
    pkind, pvalue = options.gamma_data_rule
    pkey = ("presence", pkind, pvalue, options.presence, options.presence_scale,
            signs.tobytes() if options.presence == "signed" else None)
    if cache is not None and pkey in cache:
        pres, pthr = cache[pkey]
    else:
        pres, pthr = component_presence(pc.scores, quantile=pvalue if pkind == "quantile" else None,
                                        threshold=pvalue if pkind == "absolute" else None,
                                        rule=options.presence, scale=options.presence_scale, signs=signs)
        if cache is not None:
            cache[pkey] = (pres, pthr)
    t3 = time.perf_counter()
    timings.update(threshold=t1 - t0, cluster=t2 - t1, presence=t3 - t2)
    params = {**options.as_params(), "n_components": int(k), "center": bool(pc.center)}
    return InteractionTensor(
        presence=pres,
        assignments=assign.reshape(mm, k),
        best_corr=best.reshape(mm, k),
        openers=openers,
        corr_threshold=gamma,
        presence_thresholds=pthr,
        explained_variance=pc.explained_variance,
        explained_variance_ratio=pc.explained_variance_ratio,
        signs=signs,
        params=params,
        timings=timings,
    )


def assemble_tensor(components: ModelComponents, corr: np.ndarray | None = None,
                    options: TensorOptions | None = None, *, cache: dict | None = None,
                    **overrides: Any) -> InteractionTensor:
    """Steps 3-6 of Algorithm 1 on precomputed principal components (and correlations).

    What :func:`build_interaction_tensor` does after the PCA; a study that varies the
    clustering or the presence test computes the PCA and the correlations once and calls this
    for every setting (:func:`ift_core.observations.sweep_thresholds` does).

    Parameters
    ----------
    components : ModelComponents
        From :func:`principal_components`; ``n_components`` and ``center`` come from it (those
        of ``options`` are not used).
    corr : ndarray (M*K, M*K), optional
        Its :func:`component_correlations` (computed when omitted).
    options : TensorOptions, optional
        Default :class:`TensorOptions`; ``**overrides`` change single options (and accept the
        older keywords, as :func:`build_interaction_tensor` does).
    cache : dict, optional
        A dict kept between calls on the same ``components`` and ``corr``: each distinct
        clustering and presence test is then computed once.

    Returns
    -------
    InteractionTensor
        Equal, bit for bit, to :func:`build_interaction_tensor` with the same options.

    Examples
    --------
    >>> import numpy as np
    >>> acts = np.random.default_rng(1).standard_normal((3, 300, 6))
    >>> pc, cache = principal_components(acts, n_components=4, progress=False), {}
    >>> tensors = [assemble_tensor(pc, gamma_corr=g, cache=cache) for g in (0.1, 0.9)]
    >>> tensors[1].equals(build_interaction_tensor(acts, n_components=4, gamma_corr=0.9, progress=False))
    True
    """
    if not isinstance(components, ModelComponents):
        raise ValueError(f"components must be a ModelComponents (from principal_components), got "
                         f"{type(components).__name__}")
    opts = _options(options, overrides)
    if cache is not None and not isinstance(cache, dict):
        raise ValueError(f"cache must be a dict (kept between calls) or None, got {type(cache).__name__}")
    corr = component_correlations(components) if corr is None else _check_corr(corr)
    mk = components.n_models * components.n_components
    if corr.shape != (mk, mk):
        raise ValueError(f"corr must have shape {(mk, mk)} to match the components, got {corr.shape}")
    return _assemble(components, corr, opts, timings={}, cache=cache)


def build_interaction_tensor(activations: Any, options: TensorOptions | None = None, *, progress: bool = True,
                             **overrides: Any) -> InteractionTensor:
    """Algorithm 1: cluster the models' principal components into features; mark their presence.

    Parameters
    ----------
    activations : array (M, N, D) or sequence of M arrays (N, D_m)
        Penultimate-layer activations of M models on the same N points (models may differ in
        width); any real dtype (the PCA runs in float64, see :func:`principal_components`).
        NaN or infinite values, differing N, ``n_components >= N`` or above a model's width or
        numerical rank raise ``ValueError`` naming the model, as do sizes whose arrays (the
        (MK x MK) correlation matrix above all) will not fit in memory, before any work.
        Constant (dead) units are allowed: they only lower the rank.
    options : TensorOptions, optional
        Every option of the tensor (default :class:`TensorOptions`: K = 50, gamma_corr the 0.99
        quantile of cross-model |C|, gamma_data the 0.9 quantile, signed presence on each
        column's scale, aligned signs, centred PCA).
    progress : bool, default True
        tqdm progress bar over the models' PCA.
    **overrides
        Single options changed on ``options`` (``n_components=20``, ``gamma_corr=0.5``, ...; see
        :class:`TensorOptions`). The older keywords still work: ``corr_quantile=q`` is
        ``gamma_corr="q<q>"``, ``corr_threshold=t`` is ``gamma_corr=t``, and
        ``presence_quantile`` / ``presence_threshold`` set ``gamma_data`` the same way; a
        quantile and a threshold together are refused.

    Returns
    -------
    InteractionTensor
        Its ``params`` record the options (:meth:`InteractionTensor.options` gives them back).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> shared = rng.standard_normal((400, 3)) * [5.0, 3.0, 2.0]
    >>> acts = [np.c_[shared, rng.standard_normal((400, 5)) * 0.1] @ np.linalg.qr(rng.standard_normal((8, 8)))[0]
    ...         for _ in range(3)]
    >>> it = build_interaction_tensor(acts, n_components=3, gamma_corr=0.9, progress=False)
    >>> it.n_features, it.models_per_feature().tolist()
    (3, [3, 3, 3])
    >>> opts = TensorOptions(n_components=3, gamma_corr=0.9)
    >>> build_interaction_tensor(acts, opts, progress=False).equals(it)
    True
    """
    opts = _options(options, overrides)
    progress = check_bool(progress, "progress")
    models = _as_model_list(activations)
    mm = len(models)
    if mm == 1 and opts.gamma_corr_rule[0] == "quantile":
        raise ValueError(
            "a single model has no cross-model correlations to take a quantile over: pass an absolute "
            "gamma_corr (e.g. gamma_corr=0.5; each component then stays its own feature unless within_model "
            "correlations exceed it)"
        )
    t0 = time.perf_counter()
    pc = _principal_components(models, n_components=opts.n_components, cap_at_rank=opts.cap_at_rank,
                               center=opts.center, progress=progress, later=lambda n, k: _tensor_bytes(mm, n, k))
    t1 = time.perf_counter()
    corr = component_correlations(pc)
    t2 = time.perf_counter()
    timings = {"pca": t1 - t0, "correlation": t2 - t1}
    it = _assemble(pc, corr, opts, timings=timings)
    timings["total"] = time.perf_counter() - t0
    return it
