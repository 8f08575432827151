"""Readings of the framework: the variants of Definitions §3, each solved exactly and simulated.

What is verified of the paper's framework (binary classification; dominant and rare features
and points; a dominant (rare) point carries exactly ``n_d`` (``n_r``) features; parameters
``t_d, t_r, n_d, n_r, p_d, p_r``; closed forms for accuracy and agreement) leaves the learning
rule open. This module implements several *readings* of it side by side, each with exact
closed forms for ``E[acc]`` and ``E[agr]`` (any ``K``), a Monte Carlo simulation of the same
story, and the test of every reading against the paper's own statements (Figure 4's caption,
"the model exhibits GDE", GDE-breaking constructions exist): :func:`statements_table`.

The common story
----------------
``K`` classes, each owning ``t_d`` dominant and ``t_r`` rare features. A point has label ``y``
uniform on ``K``; with probability ``alpha_d`` it is a dominant point carrying ``n_d`` features
of class ``y`` (distinct, drawn uniformly without replacement, except in the ``"independent"``
reading), otherwise a rare point carrying ``n_r``. A model predicts ``y`` if it learned at least
one of the point's features; otherwise it answers the point's designated wrong class with
probability ``beta = p_systematic`` and else guesses uniformly among the ``K`` classes. Only
what a model learns differs between readings (``s`` is a point type, ``a_s = alpha_s / K``,
``H_s ~ Hypergeometric(t_s, n_s, n_s)`` the overlap of two points of the same class and type):

``"training_set"`` (Definitions §3, :mod:`ift_core.theory.model`)
    ``N`` training points; a feature seen in training is learned with ``p_s``, independently.
    ``miss_s = E_s(1 - p_s)`` with ``E_s`` of :meth:`ift_core.theory.FeatureModel.E_s`.
``"literal"``
    No training set; each model learns each feature with ``p_s``, independently.
    ``miss_s = (1 - p_s)^n_s``; ``t`` enters only through the weighting.
``"independent"``
    No training set, features learned independently with ``p_s``; a point's ``n_s`` features
    are drawn *with* replacement, so it has ``D_s <= n_s`` distinct ones (``t`` matters through
    repeats). ``miss_s = E[(1 - p_s)^D_s]``, law of ``D_s`` by its exact occupancy recursion.
``"fixed_capacity"``
    No training set; each model learns ``c_s = round(p_s t_s)`` of the ``t_s`` features of
    each class and type, uniformly. ``miss_s = C(t_s - c_s, n_s) / C(t_s, n_s)``.
``"exposure"``
    ``N`` training points; a feature seen ``c`` times is learned with ``1 - (1 - p_s)^c``.
    ``miss_s = (1 - a_s (1 - E[(1 - p_s)^H_s]))^N``.
``"shared_capacity"``
    ``N`` training points; a model makes ``C`` draws, each a uniform training point and a
    uniform one of its features, and learns what it draws (dominant and rare features
    compete for the same draws, in proportion to their frequency in training; exactly so
    when ``n_d = n_r``). ``C = capacity``, by default ``round(K (p_d t_d + p_r t_r))`` (as
    many draws as the literal reading learns features). With ``X_s`` the number of
    occurrences of a point's features in training (a sum of ``N`` i.i.d. copies of
    ``0`` w.p. ``1 - a_s`` and ``H_s`` w.p. ``a_s``): ``miss_s = E[(1 - X_s/(N n_s))^C]``,
    computed exactly from the law of ``X_s`` (inverse DFT of its characteristic function;
    exact up to rounding, ~1e-12, and a tail below 1e-17). Not a closed form: the exact
    frequency-proportional rule with ``n_d != n_r`` (random total of occurrences) is out of
    its reach; this one is exactly that rule when ``n_d = n_r``.

For each reading, ``both_s`` (two models both miss) is ``miss_s`` with ``(1 - p)`` replaced by
``(1 - p)^2`` (or ``C`` by ``2C``) where the two models share the training set, and
``miss_s^2`` where they do not (independent training sets; ``"fixed_capacity"`` and
``"literal"``); in ``"independent"`` the point's repeats are shared:
``both_s = E[(1 - p_s)^(2 D_s)]``. Then, as in Definitions §3::

    E[acc] = sum_s alpha_s [1 - miss_s (1 - (1 - beta)/K)]
    E[agr] = sum_s alpha_s [1 - 2 miss_s + both_s + 2 (miss_s - both_s)(1 - beta)/K
                            + both_s (beta^2 + (1 - beta^2)/K)]

Weightings (how the share of dominant points is set), :data:`WEIGHTINGS`
    ``"free"`` (``alpha_d`` as given), ``"equal_frequency"`` (every feature equally frequent:
    ``alpha_d n_d / t_d = alpha_r n_r / t_r``), ``"frequency_ratio"`` (a dominant feature
    ``r = frequency_ratio`` times as frequent as a rare one:
    ``alpha_d = r n_r t_d / (n_d t_r + r n_r t_d)``), ``"mixture"`` (``p_d, p_r`` are the
    mixture weights, ``alpha_d = p_d / (p_d + p_r)``, and a model learns every feature the
    reading lets it learn: ``p = 1``; degenerate where nothing else makes seeds differ, see
    :func:`statements_table`).

Couplings (how "coupled" is read in Figure 4's right column), :data:`COUPLINGS`
    ``"same_factor"`` (the dominant parameter scaled by the rare one's factor),
    ``"equal_values"`` (the dominant parameter set equal to the rare one),
    ``"inverse_factor"`` (scaled by the inverse factor).

Examples
--------
>>> from ift_core.theory import readings as rd
>>> out = rd.expected_metrics(reading="exposure", t_d=10, t_r=1000, n_d=3, n_r=3, p_d=0.9,
...                           p_r=0.3, alpha_d=0.7, n_train=1000)
>>> round(float(out["accuracy"]), 4), bool(out["gap"] >= 0)
(0.8999, True)
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

from ..internal import check_choice, check_int
from ._common import TRAINING
from .closed_forms import expected_metrics as training_set_metrics
from .model import _acc_agr_per_type
from .simulation import _replicate_summary, _sample_subsets

__all__ = [
    "READINGS",
    "WEIGHTINGS",
    "COUPLINGS",
    "BASE",
    "Criteria",
    "CRITERIA",
    "FACTORS",
    "effective_parameters",
    "expected_metrics",
    "monte_carlo",
    "compare_with_simulation",
    "random_settings",
    "REGION_SIZES",
    "region",
    "bases",
    "sweeps",
    "caption_sweeps",
    "STATEMENTS",
    "statement_details",
    "statements_table",
    "main_reading",
    "shares_by_parameter",
    "verdict_lines",
    "WITH_TRAINING_SET",
]

#: The readings of the learning rule (module docstring).
READINGS = ("training_set", "literal", "independent", "fixed_capacity", "exposure", "shared_capacity")
#: How the share of dominant points is set.
WEIGHTINGS = ("free", "equal_frequency", "frequency_ratio", "mixture")
#: How "coupled" is read: the dominant parameter follows the rare one.
COUPLINGS = ("same_factor", "equal_values", "inverse_factor")
#: Readings with a training set (the only ones where ``n_train`` and ``training`` matter).
WITH_TRAINING_SET = ("training_set", "exposure", "shared_capacity")

#: The default setting (that of :class:`ift_core.theory.FeatureModel`, plus this module's two).
BASE: dict[str, Any] = dict(n_classes=2, t_d=10, t_r=1000, n_d=3, n_r=3, p_d=0.9, p_r=0.3, alpha_d=0.7,
                            n_train=1000, p_systematic=0.0, frequency_ratio=10.0, capacity=None)
_PROBS = ("p_d", "p_r", "alpha_d", "p_systematic")
_METRICS = ("accuracy", "agreement", "error", "disagreement", "gap", "rel_gap")
_ERR_FLOOR = 1e-9  # errors below this count as none (rel_gap = 0)


@dataclass(frozen=True)
class Criteria:
    """Every number that turns the paper's words into a test, defined once.

    The distance from GDE is the relative gap ``rel = (E[dis] - E[err]) / E[err]`` (0 when
    ``E[err] <= 1e-9``: no error to speak of, and the ratio would be rounding noise),
    scale-free like the GDE paper's scatter of disagreement against error.

    Attributes
    ----------
    near : float
        "At (near) GDE": ``|rel| <= near`` (the GDE paper's ResNet18 settings lie within
        0.04-0.10 of it, Definitions §4).
    deviate : float
        "Deviates from GDE": ``|rel| > deviate`` somewhere along a sweep (a margin over
        ``near``, so a sweep that wobbles around the threshold does not count).
    holds : float
        A statement about a region *holds* when it is true on at least this share of it.
    fails : float
        ... and *does not hold* when on less than this share; in between it *holds in part*.
        An existence statement holds when true anywhere.

    Examples
    --------
    >>> CRITERIA.verdict(0.85), CRITERIA.verdict(0.3), CRITERIA.verdict(0.0)
    ('holds', 'holds in part', 'does not hold')
    """

    near: float = 0.10
    deviate: float = 0.20
    holds: float = 0.80
    fails: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.near <= self.deviate:
            raise ValueError(f"Criteria needs 0 < near <= deviate, got near={self.near}, deviate={self.deviate}")
        if not 0 <= self.fails < self.holds <= 1:
            raise ValueError(f"Criteria needs 0 <= fails < holds <= 1, got fails={self.fails}, holds={self.holds}")

    def verdict(self, share: float, *, existence: bool = False) -> str:
        """``"holds"``, ``"holds in part"`` or ``"does not hold"`` for a share of a region."""
        if existence:
            return "holds" if share > 0 else "does not hold"
        if share >= self.holds:
            return "holds"
        return "does not hold" if share < self.fails else "holds in part"


#: The criteria every test of this module uses unless given others.
CRITERIA = Criteria()
#: Factors of the sweeps of Figure 4 (the rare parameter times these), as in chapter 9.
FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got {value!r}; pass numbers (or arrays of numbers)")
    return arr.astype(float)


def _whole(arr: np.ndarray, name: str, minimum: float, *, allow_inf: bool = False) -> None:
    bad = np.isnan(arr) | (np.isinf(arr) if not allow_inf else np.isneginf(arr))
    finite = np.isfinite(arr)
    bad |= finite & (arr != np.round(arr))
    bad |= arr < minimum
    if bad.any():
        raise ValueError(f"{name} must hold whole numbers >= {minimum}{' (or inf)' if allow_inf else ''}, "
                         f"got {arr[bad].ravel()[:3]}; round it or raise it")


def _params(given: Mapping[str, Any], *, validate: bool) -> dict[str, np.ndarray]:
    """All parameters as float arrays broadcast to one shape (``capacity``: NaN = derived)."""
    unknown = set(given) - set(BASE)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; known: {sorted(BASE)}")
    v = {**BASE, **given}
    cap = v.pop("capacity")
    out = {k: _array(x, k) for k, x in v.items()}
    out["capacity"] = np.array(np.nan) if cap is None else _array(cap, "capacity")
    shape = np.broadcast_shapes(*(x.shape for x in out.values()))
    out = {k: np.broadcast_to(x, shape) for k, x in out.items()}
    if validate:
        for k in ("t_d", "t_r", "n_d", "n_r"):
            _whole(out[k], k, 1)
        _whole(out["n_classes"], "n_classes", 2)
        _whole(out["n_train"], "n_train", 0, allow_inf=True)
        cap = out["capacity"]
        _whole(np.where(np.isnan(cap), 0.0, cap), "capacity", 0)
        for k in _PROBS:
            x = out[k]
            bad = np.isnan(x) | (x < 0) | (x > 1)
            if bad.any():
                raise ValueError(f"{k} must be a probability in [0, 1], got {x[bad].ravel()[:3]}")
        for s in ("d", "r"):
            bad = out[f"n_{s}"] > out[f"t_{s}"]
            if bad.any():
                raise ValueError(f"n_{s} must be <= t_{s} (a point carries distinct features of its class), "
                                 f"got n_{s}={out[f'n_{s}'][bad].ravel()[:3]} > t_{s}={out[f't_{s}'][bad].ravel()[:3]}")
        r = out["frequency_ratio"]
        if (~(r > 0) | np.isinf(r)).any():
            raise ValueError(f"frequency_ratio must be a positive finite number, got {r[~(r > 0) | np.isinf(r)][:3]}")
    return out


# --------------------------------------------------------------------------------------
# weighting
# --------------------------------------------------------------------------------------
def effective_parameters(*, weighting: str = "free", t_d: Any, t_r: Any, n_d: Any, n_r: Any, p_d: Any,
                         p_r: Any, alpha_d: Any, frequency_ratio: Any = 10.0
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(alpha_d, p_d, p_r)`` as a weighting reads them (arrays broadcast together).

    A feature's frequency (expected occurrences per point) is ``(alpha_s / K) n_s / t_s``, so a
    dominant feature ``r`` times as frequent as a rare one means
    ``alpha_d n_d / t_d = r (1 - alpha_d) n_r / t_r``, solved for ``alpha_d``;
    ``"equal_frequency"`` is ``r = 1``. ``"mixture"`` reads ``p_d, p_r`` as the shares of the
    point types and learns with probability 1.

    Raises
    ------
    ValueError
        For an unknown weighting, or ``"mixture"`` with ``p_d + p_r = 0``.

    Examples
    --------
    >>> a, pd_, pr_ = effective_parameters(weighting="frequency_ratio", t_d=10, t_r=100, n_d=2, n_r=2,
    ...                                    p_d=0.9, p_r=0.3, alpha_d=0.5, frequency_ratio=10)
    >>> float(a), float(pd_)
    (0.5, 0.9)
    >>> [round(float(x), 12) for x in effective_parameters(weighting="mixture", t_d=10, t_r=100, n_d=2,
    ...                                                    n_r=2, p_d=0.6, p_r=0.2, alpha_d=0.5)]
    [0.75, 1.0, 1.0]
    """
    check_choice(weighting, "weighting", WEIGHTINGS)
    t_d, t_r, n_d, n_r, p_d, p_r, alpha_d, r = np.broadcast_arrays(
        *(np.asarray(x, float) for x in (t_d, t_r, n_d, n_r, p_d, p_r, alpha_d, frequency_ratio)))
    if weighting == "free":
        return alpha_d, p_d, p_r
    if weighting == "mixture":
        total = p_d + p_r
        if (total <= 0).any():
            raise ValueError("weighting='mixture' reads p_d, p_r as mixture weights and needs p_d + p_r > 0, "
                             f"got p_d={p_d[total <= 0].ravel()[:3]}, p_r={p_r[total <= 0].ravel()[:3]}")
        one = np.ones_like(p_d)
        return p_d / total, one, one
    r = np.ones_like(r) if weighting == "equal_frequency" else r
    return r * n_r * t_d / (n_d * t_r + r * n_r * t_d), p_d, p_r


def _capacity(p: dict[str, np.ndarray], p_d: np.ndarray, p_r: np.ndarray) -> np.ndarray:
    """Draws per model of ``"shared_capacity"``: given, or ``round(K (p_d t_d + p_r t_r))``."""
    derived = np.floor(p["n_classes"] * (p_d * p["t_d"] + p_r * p["t_r"]) + 0.5)
    return np.where(np.isnan(p["capacity"]), derived, p["capacity"])


# --------------------------------------------------------------------------------------
# closed forms, per reading: miss_s and both_s on arrays of shape (..., 2)
# --------------------------------------------------------------------------------------
def _overlap_pmf(t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``P(H = h)``, ``h = 0..max n``: overlap of two uniform ``n``-subsets of ``t`` (last axis)."""
    h = np.arange(int(np.max(n)) + 1, dtype=float)
    return hypergeom.pmf(h, t[..., None], n[..., None], n[..., None])


def _poly(pmf: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``sum_h pmf[..., h] z^h`` (all terms non-negative)."""
    h = np.arange(pmf.shape[-1], dtype=float)
    return (pmf * np.power(z[..., None], h)).sum(-1)


def _distinct_pmf(t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Law of the number of distinct values among ``n`` uniform draws with replacement from ``t``.

    Exact occupancy recursion: a draw is new with probability ``(t - j)/t`` when ``j`` values
    are already drawn. All terms non-negative (no alternating Stirling sums).
    """
    nmax = int(np.max(n))
    j = np.arange(nmax + 1, dtype=float)
    P = np.zeros(t.shape + (nmax + 1,))
    P[..., 0] = 1.0
    for k in range(nmax):
        new = np.clip(t[..., None] - j, 0.0, None) / t[..., None]
        step = P * (1.0 - new)
        step[..., 1:] += (P * new)[..., :-1]
        P = np.where((k < n)[..., None], step, P)
    return P


#: Tail mass of the occurrence count that the DFT window may drop (far below rounding).
_TAIL = 1e-17


def _occurrence_moments(t: np.ndarray, n: np.ndarray, a: np.ndarray, N: np.ndarray, C: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``E[(1 - X/(N n))^C]`` and ``E[(1 - X/(N n))^(2C)]`` for 1-d arrays of settings.

    ``X``, the occurrences in training of a point's features, is a sum of ``N`` i.i.d.
    variables ``Y`` in ``[0, n]``, each ``0`` with ``1 - a`` and the overlap ``H`` with ``a``;
    its law is the inverse DFT of the characteristic function ``(1 - a + a phi_H)^N``. The
    window is ``N n + 1`` long (no aliasing at all), or shorter where Bernstein's inequality
    puts less than ``_TAIL = 1e-17`` of the mass beyond it
    (``P(X >= mu + s) <= exp(-s^2 / (2 (sigma^2 + n s / 3)))``): that mass is all the window
    can wrap, so the result is exact up to rounding (~1e-12). Windows are rounded up to powers of two
    and settings of equal window batched. ``N = 0``: nothing to draw from, nothing learned.
    ``N = inf``: ``X/(N n) = a n / t``.
    """
    miss, both = np.ones(t.shape), np.ones(t.shape)
    inf = np.isinf(N)
    u = a[inf] * n[inf] / t[inf]
    miss[inf], both[inf] = (1.0 - u) ** C[inf], (1.0 - u) ** (2 * C[inf])
    finite = np.flatnonzero(~inf & (N > 0))
    if finite.size == 0:
        return miss, both
    Nf, nf = N[finite].astype(np.int64), n[finite].astype(np.int64)
    pmf_h = _overlap_pmf(t[finite], n[finite].astype(float))  # (S, max n + 1)
    h = np.arange(pmf_h.shape[1], dtype=float)
    af = a[finite]
    mean_y = af * (pmf_h * h).sum(1)
    var_y = af * (pmf_h * h ** 2).sum(1) - mean_y ** 2
    lam = -math.log(_TAIL)
    s = lam * nf / 3 + np.sqrt((lam * nf / 3) ** 2 + 2 * lam * Nf * np.maximum(var_y, 0.0))
    window = np.ceil(Nf * mean_y + s) + 1
    L = np.where(window < Nf * nf + 1, 2 ** np.ceil(np.log2(np.maximum(window, 2))), Nf * nf + 1)
    L = np.minimum(L, Nf * nf + 1).astype(np.int64)
    for length in np.unique(L):
        rows = np.flatnonzero(L == length)
        step = max(1, int(4e6 // length))  # a few million entries per batch
        for lo in range(0, rows.size, step):
            r = rows[lo:lo + step]
            idx = finite[r]
            padded = np.zeros((r.size, int(length)))
            k = min(pmf_h.shape[1], int(length))
            padded[:, :k] = pmf_h[r, :k]
            phi = (1.0 - a[idx, None]) + a[idx, None] * np.fft.rfft(padded, axis=1)
            # phi^N in polar form (a few times faster than complex pow, same rounding)
            with np.errstate(divide="ignore"):
                modulus = np.exp(Nf[r, None] * np.log(np.abs(phi)))
            turn = Nf[r, None] * np.angle(phi)
            power = modulus * np.cos(turn) + 1j * (modulus * np.sin(turn))
            law = np.clip(np.fft.irfft(power, int(length), axis=1), 0.0, None)
            law /= law.sum(1, keepdims=True)
            keep = np.clip(1.0 - np.arange(int(length)) / (Nf[r, None] * nf[r, None]), 0.0, 1.0)
            power = np.power(keep, C[idx, None])
            miss[idx] = (law * power).sum(1)
            both[idx] = (law * power * power).sum(1)
    return miss, both


def _miss_both(reading: str, training: str, t: np.ndarray, n: np.ndarray, p: np.ndarray, w: np.ndarray,
               K: np.ndarray, N: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(miss, both)`` of shape ``(..., 2)``; ``t, n, p, w`` are ``(..., 2)``, ``K, N, C`` are ``(..., 1)``."""
    shared = training == "shared"
    q = 1.0 - p
    if reading == "training_set":
        out = training_set_metrics(t=t, n=n, p=p, weight=w, n_train=N[..., 0], n_classes=K[..., 0],
                                  training=training, validate=False)
        return out["miss"], out["both"]
    if reading == "literal":
        miss = q ** n
        return miss, miss ** 2
    if reading == "independent":
        law = _distinct_pmf(t, n)
        return _poly(law, q), _poly(law, q ** 2)
    if reading == "fixed_capacity":
        c = np.floor(p * t + 0.5)
        miss = hypergeom.pmf(0, t, c, n)  # all n features among the t - c unlearned ones
        return miss, miss ** 2
    a = w / K
    if reading == "exposure":
        pmf = _overlap_pmf(t, n)
        h = np.arange(pmf.shape[-1], dtype=float)

        def power_of(z: np.ndarray) -> np.ndarray:
            # (1 - a E[1 - z^H])^N, with 1 - z^h as -expm1(h log z): no cancellation near z = 1
            with np.errstate(divide="ignore", invalid="ignore"):
                one_minus = np.where(z[..., None] > 0, -np.expm1(h * np.log(z)[..., None]), (h > 0) * 1.0)
            lose = a * (pmf * one_minus).sum(-1)
            with np.errstate(invalid="ignore"):
                log_keep = np.where(lose == 0, 0.0, N * np.log1p(-lose))  # 0 * inf: never seen, kept
            return np.exp(log_keep)

        miss = power_of(q)
        return miss, (power_of(q ** 2) if shared else miss ** 2)
    if reading == "shared_capacity":
        shape = np.broadcast_shapes(t.shape, n.shape, w.shape, K.shape, N.shape, C.shape)
        tt, nn, aa, NN, CC = (np.broadcast_to(x, shape).ravel() for x in (t, n, a, N, C))
        keys = np.stack([tt, nn, aa, NN, CC], 1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        m, b2 = _occurrence_moments(*uniq.T)
        miss = m[inverse.ravel()].reshape(shape)
        both = b2[inverse.ravel()].reshape(shape) if shared else miss ** 2
        return miss, both
    raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")


def expected_metrics(*, reading: str = "training_set", weighting: str = "free", training: str = "shared",
                     validate: bool = True, **params: Any) -> dict[str, np.ndarray]:
    """Exact expected accuracy, agreement and gap of a reading, for arrays of settings (broadcast).

    Parameters
    ----------
    reading : one of :data:`READINGS`
    weighting : one of :data:`WEIGHTINGS`
    training : {"shared", "independent"}
        One training set for all models or one each (readings with a training set only:
        :data:`WITH_TRAINING_SET`; the others have none, and ignore it).
    validate : bool
        Check every entry (set False in inner loops that already validated).
    **params : array_like
        Any of :data:`BASE`'s keys (the rest from :data:`BASE`): ``n_classes, t_d, t_r, n_d,
        n_r, p_d, p_r, alpha_d, n_train, p_systematic, frequency_ratio, capacity``.

    Returns
    -------
    dict of ndarray
        ``accuracy, agreement, error, disagreement, gap`` (``= E[dis] - E[err]``), ``rel_gap``
        (``gap / E[err]``, 0 when ``E[err] <= 1e-9``) over the broadcast shape; ``miss, both``
        with a trailing point-type axis (dominant, rare); ``alpha_d`` as the weighting set it.

    Raises
    ------
    ValueError
        Naming the parameter: unknown reading, weighting, training or parameter; counts that
        are not whole; ``n > t``; probabilities outside [0, 1].

    Examples
    --------
    >>> out = expected_metrics(reading="literal", t_r=[100, 1000], p_r=0.5)
    >>> out["gap"].shape, bool(out["gap"][0] == out["gap"][1])  # t does not enter, alpha_d free
    ((2,), True)
    >>> out = expected_metrics(reading="literal", weighting="equal_frequency", t_r=[100, 1000], p_r=0.5)
    >>> bool(out["gap"][0] != out["gap"][1])
    True
    """
    check_choice(reading, "reading", READINGS)
    check_choice(weighting, "weighting", WEIGHTINGS)
    check_choice(training, "training", TRAINING)
    p = _params(params, validate=validate)
    alpha, p_d, p_r = effective_parameters(weighting=weighting, t_d=p["t_d"], t_r=p["t_r"], n_d=p["n_d"],
                                           n_r=p["n_r"], p_d=p["p_d"], p_r=p["p_r"], alpha_d=p["alpha_d"],
                                           frequency_ratio=p["frequency_ratio"])
    t = np.stack([p["t_d"], p["t_r"]], -1)
    n = np.stack([p["n_d"], p["n_r"]], -1)
    lp = np.stack([p_d, p_r], -1)
    w = np.stack([alpha, 1.0 - alpha], -1)
    K, N, beta = (p[k][..., None] for k in ("n_classes", "n_train", "p_systematic"))
    C = _capacity(p, p_d, p_r)[..., None]
    miss, both = _miss_both(reading, training, t, n, lp, w, K, N, C)
    acc_s, agr_s = _acc_agr_per_type(miss, both, K, beta)
    acc, agr = (w * acc_s).sum(-1), (w * agr_s).sum(-1)
    err, gap = 1.0 - acc, acc - agr
    # below _ERR_FLOOR the ratio is rounding noise over rounding noise (seeds that never err)
    rel = np.where(err > _ERR_FLOOR, gap / np.where(err > _ERR_FLOOR, err, 1.0), 0.0)
    return {"accuracy": acc, "agreement": agr, "error": err, "disagreement": 1.0 - agr, "gap": gap,
            "rel_gap": rel, "miss": miss, "both": both, "alpha_d": alpha}


# --------------------------------------------------------------------------------------
# Monte Carlo: the same stories, sampled
# --------------------------------------------------------------------------------------
def _scalar_setting(reading: str, weighting: str, training: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """One validated setting with the weighting applied: plain Python numbers."""
    check_choice(reading, "reading", READINGS)
    check_choice(weighting, "weighting", WEIGHTINGS)
    check_choice(training, "training", TRAINING)
    p = _params(params, validate=True)
    if p["t_d"].shape != ():
        raise ValueError(f"monte_carlo simulates one setting; got parameter arrays of shape {p['t_d'].shape}")
    alpha, p_d, p_r = effective_parameters(weighting=weighting, t_d=p["t_d"], t_r=p["t_r"], n_d=p["n_d"],
                                           n_r=p["n_r"], p_d=p["p_d"], p_r=p["p_r"], alpha_d=p["alpha_d"],
                                           frequency_ratio=p["frequency_ratio"])
    N = float(p["n_train"])
    if reading in WITH_TRAINING_SET and math.isinf(N):
        raise ValueError("monte_carlo needs a finite n_train (the closed forms take inf)")
    return dict(K=int(p["n_classes"]), t=np.array([int(p["t_d"]), int(p["t_r"])]),
                n=np.array([int(p["n_d"]), int(p["n_r"])]), p=np.array([float(p_d), float(p_r)]),
                w=np.array([float(alpha), 1.0 - float(alpha)]), N=int(N) if math.isfinite(N) else 0,
                beta=float(p["p_systematic"]), C=int(_capacity(p, p_d, p_r)))


def _points(rng: np.random.Generator, s: Mapping[str, Any], size: int, *, replace: bool
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, types and feature ids (``-1`` padded, shape ``(size, max n)``) of ``size`` points.

    Feature ids: ``offset_g + class * t_g + index`` with ``offset = (0, K t_d)``.
    """
    K, t, n = s["K"], s["t"], s["n"]
    offset = (0, K * int(t[0]))
    labels = rng.integers(0, K, size=size)
    types = (rng.random(size) >= s["w"][0]).astype(np.int64)  # 0 = dominant with alpha_d
    feats = np.full((size, int(n.max())), -1, np.int64)
    for g in (0, 1):
        idx = np.flatnonzero(types == g)
        tg, ng = int(t[g]), int(n[g])
        local = rng.integers(0, tg, size=(idx.size, ng)) if replace else _sample_subsets(rng, idx.size, tg, ng)
        feats[idx, :ng] = offset[g] + labels[idx, None] * tg + local
    return labels, types, feats


def _learned(rng: np.random.Generator, reading: str, training: str, s: Mapping[str, Any], R: int, M: int
             ) -> np.ndarray:
    """``(R, M, F)`` bool: which features each model of each replicate learned."""
    K, t, n = s["K"], s["t"], s["n"]
    F = K * int(t.sum())
    p_feat = np.repeat(s["p"], K * t)
    if reading in ("literal", "independent"):
        return rng.random((R, M, F)) < p_feat
    if reading == "fixed_capacity":
        parts = []
        for g in (0, 1):  # per model, class and type: a uniform subset of c = round(p t) features
            c = math.floor(s["p"][g] * t[g] + 0.5)
            ranks = rng.random((R, M, K, int(t[g]))).argsort(-1).argsort(-1)
            parts.append((ranks < c).reshape(R, M, -1))
        return np.concatenate(parts, -1)
    sets = R if training == "shared" else R * M
    N = s["N"]
    _, types, tf = _points(rng, s, sets * N, replace=False)
    tf = tf.reshape(sets, N, -1)
    rows = np.repeat(np.arange(sets), N * tf.shape[2])
    flat = tf.reshape(-1)
    ok = flat >= 0
    counts = np.zeros((sets, F), np.int64)
    np.add.at(counts, (rows[ok], flat[ok]), 1)
    counts = np.broadcast_to(counts.reshape(R, -1, F), (R, M, F))
    if reading == "training_set":
        return (counts > 0) & (rng.random((R, M, F)) < p_feat)
    if reading == "exposure":  # each occurrence teaches the feature with p, independently
        return rng.random((R, M, F)) < 1.0 - np.power(1.0 - p_feat, counts)
    # shared_capacity: C draws, each a uniform training point and a uniform one of its features
    C = s["C"]
    learned = np.zeros((R, M, F + 1), bool)
    if N == 0 or C == 0:
        return learned[..., :F]
    j = rng.integers(0, N, size=(R, M, C))
    set_of = np.arange(R)[:, None] if training == "shared" else np.arange(R * M).reshape(R, M)
    set_idx = np.broadcast_to(set_of[..., None], (R, M, C))
    size = n[types.reshape(sets, N)[set_idx, j]]
    slot = (rng.random((R, M, C)) * size).astype(np.int64)
    f = tf[set_idx, j, slot]
    learned[np.arange(R)[:, None, None], np.arange(M)[None, :, None], f] = True
    return learned[..., :F]


def _simulate_batch(rng: np.random.Generator, reading: str, training: str, s: Mapping[str, Any], R: int, M: int,
                    P: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions ``(R, M, P)`` and labels ``(R, P)`` of ``R`` independent experiments."""
    K = s["K"]
    learned = _learned(rng, reading, training, s, R, M)
    labels, _, feats = _points(rng, s, R * P, replace=reading == "independent")
    labels, feats = labels.reshape(R, P), feats.reshape(R, 1, -1)
    F = learned.shape[2]
    lp = np.concatenate([learned, np.zeros((R, M, 1), bool)], -1)
    idx = np.broadcast_to(np.where(feats < 0, F, feats), (R, M, feats.shape[2]))
    knows = np.take_along_axis(lp, idx, axis=2).reshape(R, M, P, -1).any(-1)
    wrong = (labels + 1 + rng.integers(0, K - 1, size=(R, P))) % K
    systematic = rng.random((R, M, P)) < s["beta"]
    guess = rng.integers(0, K, size=(R, M, P))
    preds = np.where(knows, labels[:, None], np.where(systematic, wrong[:, None], guess))
    return preds, labels


def monte_carlo(*, reading: str = "training_set", weighting: str = "free", training: str = "shared",
                n_reps: int = 200, n_models: int = 3, n_points: int = 300, seed: int = 0,
                **params: Any) -> dict[str, float]:
    """Monte Carlo estimates (with standard errors) of a reading's accuracy, agreement and gap.

    Each of ``n_reps`` independent experiments samples what the reading's story samples:
    the training set(s) (readings with one), each model's learned features, ``n_points``
    test points and the models' answers. Points of one experiment share its training set,
    so the standard error is the spread of the replicate means over ``sqrt(n_reps)``.

    Parameters
    ----------
    reading, weighting, training, **params
        As in :func:`expected_metrics` (scalars only; ``n_train`` finite).
    n_reps, n_models, n_points : int
    seed : int
        Same seed, same result (bit for bit).

    Returns
    -------
    dict
        ``accuracy, agreement, gap`` with ``*_se``, and ``n_reps``.

    Examples
    --------
    >>> mc = monte_carlo(reading="fixed_capacity", t_r=100, n_reps=20, n_points=100)
    >>> closed = expected_metrics(reading="fixed_capacity", t_r=100)
    >>> abs(mc["accuracy"] - float(closed["accuracy"])) < 5 * mc["accuracy_se"]
    True
    """
    s = _scalar_setting(reading, weighting, training, params)
    for name, value, minimum in (("n_reps", n_reps, 2), ("n_models", n_models, 2), ("n_points", n_points, 1)):
        check_int(value, name, minimum=minimum)
    rng = np.random.default_rng(seed)
    F = s["K"] * int(s["t"].sum())
    per_rep = n_models * (F + n_points * (int(s["n"].max()) + s["K"])) + n_models * s["C"]
    if reading in WITH_TRAINING_SET:
        per_rep += (n_models if training == "independent" else 1) * (F + s["N"] * (int(s["n"].max()) + 2))
    chunk = max(1, int(3e6 // max(per_rep, 1)))  # a few million array entries per batch
    batches = (_simulate_batch(rng, reading, training, s, min(chunk, n_reps - start), n_models, n_points)
               for start in range(0, n_reps, chunk))
    return _replicate_summary(batches, s["K"])


def compare_with_simulation(settings: Sequence[Mapping[str, Any]], *, n_reps: int = 80, n_models: int = 3,
                            n_points: int = 150, seed: int = 0) -> pd.DataFrame:
    """Closed form against Monte Carlo for each setting: one row per setting and metric.

    Parameters
    ----------
    settings : sequence of dict
        Keyword arguments of :func:`expected_metrics` (``reading``, ``weighting``,
        ``training`` and parameters), e.g. from :func:`random_settings`.

    Returns
    -------
    DataFrame
        ``setting, reading, weighting, training, n_classes, p_systematic, metric, closed,
        simulated, se, z`` with ``z = (simulated - closed) / se``.

    Examples
    --------
    >>> df = compare_with_simulation([dict(reading="literal", t_r=50)], n_reps=10, n_points=50)
    >>> sorted(df["metric"])
    ['accuracy', 'agreement', 'gap']
    """
    rows = []
    resolution = 1.0 / (n_reps * n_models * n_points)
    for i, setting in enumerate(settings):
        setting = dict(setting)
        closed = expected_metrics(**setting)
        mc = monte_carlo(**setting, n_reps=n_reps, n_models=n_models, n_points=n_points, seed=seed + i)
        for k in ("accuracy", "agreement", "gap"):
            c, se = float(closed[k]), mc[f"{k}_se"]
            # se = 0: every replicate gave the same value; the closed form must match it to
            # within the simulation's resolution (one answer of one model in one replicate)
            z = (mc[k] - c) / se if se > 0 else (0.0 if abs(mc[k] - c) <= resolution else math.inf)
            rows.append({"setting": i, "reading": setting.get("reading", "training_set"),
                         "weighting": setting.get("weighting", "free"),
                         "training": setting.get("training", "shared"),
                         "n_classes": setting.get("n_classes", BASE["n_classes"]),
                         "p_systematic": setting.get("p_systematic", BASE["p_systematic"]),
                         "metric": k, "closed": c, "simulated": mc[k], "se": se, "z": z})
    return pd.DataFrame(rows)


def random_settings(n_per: int = 2, *, seed: int = 0, readings: Sequence[str] = READINGS,
                    weightings: Sequence[str] = WEIGHTINGS) -> list[dict[str, Any]]:
    """Random moderate settings, ``n_per`` for every reading and weighting (for tests and the book).

    They cycle through ``K`` in (2, 3, 5), both trainings and ``p_systematic`` in (0, 0.5), so
    every reading meets multi-class, both trainings and systematic answers.

    Examples
    --------
    >>> ss = random_settings(1, seed=0)
    >>> len(ss) == len(READINGS) * len(WEIGHTINGS), {s["reading"] for s in ss} == set(READINGS)
    (True, True)
    """
    rng = np.random.default_rng(seed)
    regimes = list(itertools.product((2, 3, 5), TRAINING, (0.0, 0.5)))
    out = []
    for i, (reading, weighting, _) in enumerate(itertools.product(readings, weightings, range(n_per))):
        K, training, beta = regimes[(i * 5) % len(regimes)]
        t_d, t_r = int(rng.integers(2, 30)), int(rng.integers(10, 120))
        n_d, n_r = int(rng.integers(1, min(t_d, 5) + 1)), int(rng.integers(1, 5))
        out.append(dict(reading=reading, weighting=weighting, training=training, n_classes=K, t_d=t_d, t_r=t_r,
                        n_d=n_d, n_r=n_r, p_d=float(rng.uniform(0.3, 0.95)), p_r=float(rng.uniform(0.05, 0.7)),
                        alpha_d=float(rng.uniform(0.3, 0.9)), n_train=int(rng.choice([20, 60, 200])),
                        p_systematic=beta, frequency_ratio=float(rng.choice([3.0, 10.0]))))
    return out


# --------------------------------------------------------------------------------------
# Figure 4's caption, the paper's other statements, and the table
# --------------------------------------------------------------------------------------
#: The natural region of parameters: the paper's binary case with few dominant and many rare
#: features, points carrying a few features, dominant features learned more often than rare
#: ones, most points dominant, small and realistic training sets. One grid per size.
_REGIONS = {
    "tiny": dict(n_classes=[2], t_d=[10, 50], t_r=[100, 1000], n_d=[2], n_r=[1, 3], p_d=[0.95], p_r=[0.2, 0.5],
                 alpha_d=[0.7], n_train=[100, 1000]),
    "quick": dict(n_classes=[2], t_d=[10, 50], t_r=[100, 1000], n_d=[2], n_r=[1, 3], p_d=[0.7, 0.95],
                  p_r=[0.2, 0.5], alpha_d=[0.7, 0.9], n_train=[100, 1000]),
    "full": dict(n_classes=[2], t_d=[5, 10, 50], t_r=[100, 500, 2000], n_d=[1, 2, 3], n_r=[1, 2, 3],
                 p_d=[0.6, 0.8, 0.95], p_r=[0.1, 0.3, 0.5], alpha_d=[0.6, 0.8, 0.9], n_train=[100, 1000, 5000]),
}
REGION_SIZES = tuple(_REGIONS)


def region(size: str = "quick") -> dict[str, list[Any]]:
    """The grid of base settings on which the paper's statements are tested.

    ``"quick"`` (the book's default): 2 values for most parameters, 128 bases, the table in
    seconds. ``"full"``: 3 values each, 6,561 bases (minutes; ``"shared_capacity"``
    dominates). ``"tiny"``: 32 bases (the test build of the book).

    Examples
    --------
    >>> sorted(region())[:3], len(bases()), len(bases(region("tiny")))
    (['alpha_d', 'n_classes', 'n_d'], 128, 32)
    """
    check_choice(size, "size", REGION_SIZES)
    return {k: list(v) for k, v in _REGIONS[size].items()}


def bases(grid: Mapping[str, Sequence[Any]] | None = None, **fixed: Any) -> pd.DataFrame:
    """The cartesian product of ``grid`` (default :func:`region`), one row per base setting.

    Combinations with ``n > t`` are dropped; ``fixed`` parameters are set on every row.

    Examples
    --------
    >>> len(bases({"t_r": [2, 100], "n_r": [1, 3]}))  # (t_r=2, n_r=3) is dropped
    3
    """
    grid = region() if grid is None else dict(grid)
    unknown = (set(grid) | set(fixed)) - set(BASE)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; known: {sorted(BASE)}")
    names = list(grid)
    combos = list(itertools.product(*(list(np.ravel(grid[k])) for k in names)))
    df = pd.DataFrame(combos, columns=names)
    for k, v in {**BASE, **fixed}.items():
        if k not in grid:
            df[k] = np.nan if v is None else v
    df = df[list(BASE)]
    ok = (df["n_d"] <= df["t_d"]) & (df["n_r"] <= df["t_r"])
    return df[ok].reset_index(drop=True)


def _round(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, float) + 0.5)


def _check_factors(factors: Sequence[float]) -> np.ndarray:
    f = np.asarray(factors, float)
    if f.ndim != 1 or f.size == 0 or not (f > 0).all():
        raise ValueError(f"factors must be a non-empty list of positive numbers, got {factors!r}")
    return f


def _sweep_columns(couplings: Sequence[str], n_factors: int) -> list[tuple[str, str, str, int]]:
    """The settings evaluated from each base: ``(lead, coupling, kind, factor index)``.

    ``kind`` is ``"base"`` (one column), ``"alone"`` (coupling ``""``) or ``"coupled"``.
    """
    cols = [("base", "", "base", 0)]
    for lead in ("t_r", "n_r"):
        cols += [(lead, "", "alone", i) for i in range(n_factors)]
        for c in couplings:
            cols += [(lead, c, "coupled", i) for i in range(n_factors)]
    return cols


def _sweep_params(b: Mapping[str, np.ndarray], couplings: Sequence[str], f: np.ndarray
                  ) -> tuple[dict[str, np.ndarray], list[tuple[str, str, str, int]]]:
    """Parameters of every sweep from every base, shape ``(bases, columns)`` (see :func:`_sweep_columns`).

    The rare parameter takes ``base * f`` (rounded; ``t_r >= n_r``, ``1 <= n_r <= t_r``); a
    coupled dominant parameter follows it (``"same_factor"``: ``base * f``;
    ``"equal_values"``: the rare parameter's value; ``"inverse_factor"``: ``base / f``),
    rounded and kept valid (``t_d >= n_d``, ``1 <= n_d <= t_d``).
    """
    cols = _sweep_columns(couplings, f.size)
    B, S = len(np.asarray(b["t_d"])), len(cols)
    P = {k: np.repeat(np.asarray(v, float).reshape(B, 1), S, 1) for k, v in b.items()}
    for j, (lead, coupling, kind, i) in enumerate(cols):
        if kind == "base":
            continue
        fi = f[i]
        if lead == "t_r":
            P["t_r"][:, j] = np.maximum(_round(b["t_r"] * fi), b["n_r"])
            if kind == "coupled":
                follow = {"same_factor": b["t_d"] * fi, "equal_values": P["t_r"][:, j],
                          "inverse_factor": b["t_d"] / fi}[coupling]
                P["t_d"][:, j] = np.maximum(_round(follow), b["n_d"])
        else:
            P["n_r"][:, j] = np.clip(_round(b["n_r"] * fi), 1, b["t_r"])
            if kind == "coupled":
                follow = {"same_factor": b["n_d"] * fi, "equal_values": P["n_r"][:, j],
                          "inverse_factor": b["n_d"] / fi}[coupling]
                P["n_d"][:, j] = np.clip(_round(follow), 1, b["t_d"])
    return P, cols


def _base_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A table of bases as validated float arrays, every parameter of :data:`BASE` (capacity NaN: derived)."""
    unknown = set(frame.columns) - set(BASE) - {"base"}
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} in base; known: {sorted(BASE)}")
    out = {k: (frame[k].to_numpy(dtype=float) if k in frame else
               np.full(len(frame), np.nan if BASE[k] is None else float(BASE[k]))) for k in BASE}
    _params(out, validate=True)  # n <= t etc., with the parameter named
    return out


def sweeps(ranges: Mapping[str, Any], *, base: Mapping[str, Any] | None = None, reading: str = "training_set",
           weighting: str = "free", training: str = "shared") -> pd.DataFrame:
    """Single-parameter sweeps of a reading (Figure 4, left columns): one row per parameter and value.

    Parameters
    ----------
    ranges : dict
        Parameter name -> values; each is varied alone, the others stay at ``base``.
    base : dict, optional
        The other parameters (default :data:`BASE`).
    reading, weighting, training
        As in :func:`expected_metrics`.

    Returns
    -------
    DataFrame
        ``parameter, value, accuracy, agreement, error, disagreement, gap, rel_gap`` (the
        columns of :func:`ift_core.theory.sweeps`, so its figures draw it).

    Examples
    --------
    >>> df = sweeps({"t_r": [100, 1000], "p_r": [0.2, 0.8]}, reading="exposure")
    >>> df["parameter"].tolist()
    ['t_r', 't_r', 'p_r', 'p_r']
    """
    base = dict(base or {})
    parts = []
    for name, values in ranges.items():
        if name not in BASE:
            raise ValueError(f"unknown parameter {name!r} in ranges; known: {sorted(BASE)}")
        values = np.asarray(values, float).ravel()
        out = expected_metrics(reading=reading, weighting=weighting, training=training, **{**base, name: values})
        df = pd.DataFrame({"parameter": name, "value": values})
        for k in _METRICS:
            df[k] = np.broadcast_to(out[k], values.shape)
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def caption_sweeps(base: Mapping[str, Any] | pd.DataFrame | None = None, *, reading: str = "training_set",
                   weighting: str = "free", coupling: str = "same_factor", training: str = "shared",
                   factors: Sequence[float] = FACTORS) -> pd.DataFrame:
    """The sweeps of Figure 4's caption from one base (or each row of a table of bases).

    ``t_r`` and ``n_r`` each take the base's value times ``factors`` (rounded; ``t_r >= n_r``,
    ``1 <= n_r <= t_r``), once alone and once with the dominant parameter coupled
    (``coupling``: :data:`COUPLINGS`; the follower is rounded and kept valid, ``t_d >= n_d``,
    ``1 <= n_d <= t_d``).

    Returns
    -------
    DataFrame
        ``base, lead, follow, coupled, factor``, the parameters, and the metrics of
        :func:`expected_metrics` (``alpha_d_effective`` is the weighting's ``alpha_d``).

    Examples
    --------
    >>> df = caption_sweeps(dict(t_d=10, t_r=100, n_d=2, n_r=2), reading="literal", factors=(1, 2, 4))
    >>> df.groupby(["lead", "coupled"]).size().tolist()
    [3, 3, 3, 3]
    >>> bool(df[df["coupled"] & (df["lead"] == "t_r")].eval("t_d * 10 == t_r").all())
    True
    """
    check_choice(coupling, "coupling", COUPLINGS)
    f = _check_factors(factors)
    frame = base if isinstance(base, pd.DataFrame) else pd.DataFrame([dict(base or {})])
    P, cols = _sweep_params(_base_arrays(frame), (coupling,), f)
    out = expected_metrics(reading=reading, weighting=weighting, training=training, validate=False, **P)
    keep = [j for j, c in enumerate(cols) if c[2] != "base"]
    B = P["t_d"].shape[0]
    df = pd.DataFrame({"base": np.repeat(np.arange(B), len(keep)),
                       "lead": np.tile([cols[j][0] for j in keep], B),
                       "follow": np.tile(["t_d" if cols[j][0] == "t_r" else "n_d" for j in keep], B),
                       "coupled": np.tile([cols[j][2] == "coupled" for j in keep], B),
                       "factor": np.tile([f[cols[j][3]] for j in keep], B)})
    for k in BASE:
        df[k] = P[k][:, keep].ravel()
    for k in _METRICS:
        df[k] = out[k][:, keep].ravel()
    df["alpha_d_effective"] = out["alpha_d"][:, keep].ravel()
    return df


#: The statements of the paper tested by :func:`statements_table`, in its words.
STATEMENTS = {
    "t_alone_deviates": "Changing t_r alone deviates from GDE (Figure 4)",
    "t_coupled_near": "Coupled with t_d, t_r changes recover GDE (approximately) (Figure 4)",
    "n_alone_deviates": "Changing n_r alone deviates from GDE (Figure 4)",
    "n_coupled_near": "Coupled with n_d, n_r changes recover GDE (approximately) (Figure 4)",
    "caption_t": "Figure 4's caption for t: t_r alone deviates and coupled recovers, from the same base",
    "caption_n": "Figure 4's caption for n: n_r alone deviates and coupled recovers, from the same base",
    "caption": "Figure 4's caption: all four parts above, from the same base",
    "at_gde": "The model exhibits GDE",
    "breaking": "GDE-breaking constructions exist",
}


def statement_details(*, reading: str = "training_set", weighting: str = "free", coupling: str = "same_factor",
                      training: str = "shared", grid: Mapping[str, Sequence[Any]] | None = None, full: bool = False,
                      factors: Sequence[float] = FACTORS, criteria: Criteria = CRITERIA, **fixed: Any
                      ) -> pd.DataFrame:
    """Each statement of :data:`STATEMENTS` at each base of the region, for one reading: where it holds.

    Parameters
    ----------
    reading, weighting, coupling, training
        The variant (:data:`READINGS`, :data:`WEIGHTINGS`, :data:`COUPLINGS`).
    grid : dict, optional
        The bases (default :func:`region`: ``"full"`` if ``full`` else ``"quick"``); ``fixed``
        parameters are set on every base (e.g. ``p_systematic=0.5``).
    factors, criteria
        The sweeps' factors and the numbers that define "near" and "deviate".

    Returns
    -------
    DataFrame
        One row per base: its parameters, ``rel_gap`` at the base, ``at_gde``
        (``|rel_gap| <= near``), the caption's parts (``t_alone_deviates``: ``max |rel_gap| >
        deviate`` along the ``t_r``-alone sweep; ``t_coupled_near``: ``max |rel_gap| <= near``
        along the coupled one; the same for ``n``; ``caption_t``, ``caption_n``: both parts of
        one; ``caption``: all four), ``breaking``
        (some setting among the base and its single-parameter sweeps has
        ``|rel_gap| > deviate``) and ``max_abs_gap`` (over the same settings).

    Examples
    --------
    >>> d = statement_details(reading="literal", grid=dict(t_r=[100, 1000], p_r=[0.2, 0.5]))
    >>> len(d), bool(d["breaking"].all()), bool(d["at_gde"].any())
    (4, True, False)
    """
    return _details(reading, weighting, (coupling,), training, grid, full, factors, criteria, fixed)[coupling]


def _details(reading: str, weighting: str, couplings: Sequence[str], training: str,
             grid: Mapping[str, Sequence[Any]] | None, full: bool, factors: Sequence[float], criteria: Criteria,
             fixed: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """:func:`statement_details` for several couplings at once (one closed-form call per reading)."""
    for c in couplings:
        check_choice(c, "coupling", COUPLINGS)
    f = _check_factors(factors)
    b = bases(region("full" if full else "quick") if grid is None else grid, **fixed)
    if b.empty:
        raise ValueError("the grid of bases is empty (every combination has n > t); widen t or lower n")
    P, cols = _sweep_params(_base_arrays(b), couplings, f)
    out = expected_metrics(reading=reading, weighting=weighting, training=training, validate=False, **P)
    rel, gap = np.abs(out["rel_gap"]), np.abs(out["gap"])

    def worst(lead: str, coupling: str, kind: str) -> np.ndarray:
        idx = [j for j, c in enumerate(cols) if c[0] == lead and c[1] == coupling and c[2] == kind]
        return rel[:, idx].max(1)

    single = [j for j, c in enumerate(cols) if c[2] != "coupled"]  # the base and its one-parameter sweeps
    result = {}
    for c in couplings:
        mine = [j for j, col in enumerate(cols) if col[1] in ("", c)]
        d = b.copy()
        d["rel_gap"] = out["rel_gap"][:, 0]
        d["at_gde"] = rel[:, 0] <= criteria.near
        for lead, s in (("t_r", "t"), ("n_r", "n")):
            d[f"{s}_alone_deviates"] = worst(lead, "", "alone") > criteria.deviate
            d[f"{s}_coupled_near"] = worst(lead, c, "coupled") <= criteria.near
            d[f"caption_{s}"] = d[f"{s}_alone_deviates"] & d[f"{s}_coupled_near"]
        d["caption"] = d["caption_t"] & d["caption_n"]
        d["breaking"] = (rel[:, single] > criteria.deviate).any(1)
        d["max_abs_gap"] = gap[:, mine].max(1)
        result[c] = d
    return result


def statements_table(*, readings: Sequence[str] = READINGS, weightings: Sequence[str] = WEIGHTINGS,
                     couplings: Sequence[str] = COUPLINGS, training: str = "shared",
                     grid: Mapping[str, Sequence[Any]] | None = None, full: bool = False,
                     factors: Sequence[float] = FACTORS, criteria: Criteria = CRITERIA, **fixed: Any
                     ) -> pd.DataFrame:
    """Every reading x weighting x coupling against every statement of the paper: one row each.

    Each statement of :data:`STATEMENTS` is evaluated at every base of the region
    (:func:`statement_details`); the table gives the share of bases where it holds and the
    verdict of ``criteria`` (``"breaking"`` is an existence statement: it holds if true
    anywhere). A variant is ``degenerate`` when no setting it was evaluated at has a
    nonzero gap (the seeds never disagree beyond error: with ``"mixture"`` weighting,
    ``p = 1`` leaves nothing random in the readings without a training set, and with a
    shared training set in ``"training_set"`` and ``"exposure"``). The ``score`` counts the
    three statements ``caption, at_gde, breaking`` (1 for holds, 1/2 for holds in part);
    ``main`` marks the variant :func:`main_reading` picks.

    Parameters
    ----------
    readings, weightings, couplings
        Subsets of :data:`READINGS`, :data:`WEIGHTINGS`, :data:`COUPLINGS`.
    training, grid, full, factors, criteria, **fixed
        As in :func:`statement_details`.

    Returns
    -------
    DataFrame

    Examples
    --------
    >>> tab = statements_table(readings=["literal", "training_set"], weightings=["free"],
    ...                        couplings=["same_factor"])
    >>> tab[["reading", "at_gde", "breaking_verdict"]].round(2).to_dict("list")
    {'reading': ['literal', 'training_set'], 'at_gde': [0.0, 0.26], 'breaking_verdict': ['holds', 'holds']}
    """
    rows = []
    for reading in readings:
        check_choice(reading, "reading", READINGS)
        for weighting in weightings:
            check_choice(weighting, "weighting", WEIGHTINGS)
            per = _details(reading, weighting, couplings, training, grid, full, factors, criteria, fixed)
            for coupling, d in per.items():
                row = {"reading": reading, "weighting": weighting, "coupling": coupling,
                       "degenerate": bool((d["max_abs_gap"] < 1e-12).all()), "bases": len(d)}
                for key in STATEMENTS:
                    row[key] = float(d[key].mean())
                rows.append(row)
    tab = pd.DataFrame(rows)
    score = 0.0
    for key in ("caption", "at_gde", "breaking"):
        tab[f"{key}_verdict"] = [criteria.verdict(s, existence=key == "breaking") for s in tab[key]]
        score = score + tab[f"{key}_verdict"].map({"holds": 1.0, "holds in part": 0.5, "does not hold": 0.0})
    tab["score"] = score
    tab["main"] = False
    tab.loc[main_reading(tab).name, "main"] = True
    return tab


def main_reading(table: pd.DataFrame) -> pd.Series:
    """The variant the table chooses: the non-degenerate row with the highest score.

    Ties are broken by the share of the region where the whole caption holds, then by the
    summed shares of its two halves (``caption_t + caption_n``), then by the share at GDE,
    then by the order of :data:`READINGS`, :data:`WEIGHTINGS`, :data:`COUPLINGS` (so the
    choice is deterministic).

    Examples
    --------
    >>> tab = statements_table(readings=["literal", "training_set"], weightings=["free"],
    ...                        couplings=["same_factor"])
    >>> main_reading(tab)["reading"]
    'training_set'
    """
    need = {"reading", "weighting", "coupling", "degenerate", "score", "caption", "caption_t", "caption_n", "at_gde"}
    if not isinstance(table, pd.DataFrame) or not need <= set(table.columns):
        raise ValueError(f"table must come from statements_table (columns {sorted(need)})")
    live = table[~table["degenerate"]]
    if live.empty:
        raise ValueError("every variant in the table is degenerate; there is nothing to choose")
    order = live.assign(
        _halves=live["caption_t"] + live["caption_n"],
        _r=live["reading"].map(READINGS.index), _w=live["weighting"].map(WEIGHTINGS.index),
        _c=live["coupling"].map(COUPLINGS.index))
    order = order.sort_values(["score", "caption", "_halves", "at_gde", "_r", "_w", "_c"],
                              ascending=[False, False, False, False, True, True, True], kind="stable")
    return table.loc[order.index[0]]


def shares_by_parameter(details: pd.DataFrame, statements: Sequence[str] = ("caption_t", "caption_n", "at_gde"),
                        grid: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """Where in the region each statement holds: its share of bases at each value of each varied parameter.

    Parameters
    ----------
    details : DataFrame
        From :func:`statement_details`.
    statements : keys of :data:`STATEMENTS`
    grid : dict, optional
        The parameters to break down by (default: those that take several values in ``details``).

    Returns
    -------
    DataFrame indexed by ``(parameter, value)`` with one column per statement and ``bases``.

    Examples
    --------
    >>> d = statement_details(reading="exposure", grid=dict(t_r=[100, 1000], n_train=[100, 1000]))
    >>> shares_by_parameter(d, ["at_gde"]).index.tolist()
    [('t_r', 100.0), ('t_r', 1000.0), ('n_train', 100.0), ('n_train', 1000.0)]
    """
    unknown = set(statements) - set(STATEMENTS)
    if unknown:
        raise ValueError(f"unknown statement(s) {sorted(unknown)}; known: {list(STATEMENTS)}")
    names = list(grid) if grid is not None else [k for k in BASE if k in details and details[k].nunique() > 1]
    parts = []
    for k in names:
        g = details.groupby(details[k].astype(float))
        part = g[list(statements)].mean()
        part["bases"] = g.size()
        part.index = pd.MultiIndex.from_product([[k], part.index], names=["parameter", "value"])
        parts.append(part)
    return pd.concat(parts)


def verdict_lines(row: pd.Series, *, criteria: Criteria = CRITERIA) -> list[str]:
    """The closing check of one variant (a row of :func:`statements_table`): one line per statement.

    Each line starts with ``HOLDS``, ``HOLDS IN PART`` or ``DOES NOT HOLD`` (``criteria``), gives
    the share of the region where the statement is true, and names the paper's statement.

    Examples
    --------
    >>> tab = statements_table(readings=["literal"], weightings=["free"], couplings=["same_factor"])
    >>> verdict_lines(tab.iloc[0])[-1]
    'HOLDS (reached from 100% of 128 bases): GDE-breaking constructions exist [literal, free weighting]'
    """
    tag = f"[{row['reading']}, {row['weighting']} weighting]"
    lines = []
    for key, words in STATEMENTS.items():
        share = float(row[key])
        existence = key == "breaking"
        verdict = criteria.verdict(share, existence=existence).upper()
        where = (f"reached from {100 * share:.0f}% of {int(row['bases'])} bases" if existence
                 else f"{100 * share:.0f}% of {int(row['bases'])} bases")
        coupled = f", {row['coupling']} coupling" if key.startswith(("t_c", "n_c", "caption")) else ""
        lines.append(f"{verdict} ({where}): {words} {tag[:-1]}{coupled}]")
    return lines
