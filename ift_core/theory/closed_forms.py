"""The framework's closed forms for whole arrays of settings: metrics, grids, sweeps, couplings.

:func:`expected_metrics` evaluates ``E[acc]`` and ``E[agr]`` for any number of settings at once
by numpy broadcasting; :func:`evaluate`, :func:`grid`, :func:`sweep`, :func:`sweeps` and
:func:`coupled_sweep` give the two-group model's tables (the paper's Figure 4),
:func:`coupling_study` asks whether coupling two parameters keeps GDE.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..internal import as_float_array, check_bool, check_choice, check_real
from ._common import _INT_PARAMS, _METRICS, PARAMETERS, _check_training
from .model import FeatureModel, _acc_agr_per_type, _E

__all__ = ["expected_metrics", "evaluate", "grid", "sweep", "sweeps", "coupled_sweep", "coupling_study",
           "models_from_grid"]


def _validate_arrays(t: np.ndarray, n: np.ndarray, p: np.ndarray, weight: np.ndarray, n_train: np.ndarray,
                     n_classes: np.ndarray, beta: np.ndarray) -> None:
    def whole(x: np.ndarray, name: str, minimum: float, allow_inf: bool = False) -> None:
        if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{name} must hold whole numbers, got dtype {x.dtype}")
        xf = x.astype(float)
        finite = np.isfinite(xf)
        if np.isnan(xf).any() or (not allow_inf and not finite.all()):
            raise ValueError(f"{name} must be finite whole numbers, got {x.ravel()[~finite.ravel()][:3]}")
        bad = finite & (xf != np.round(xf))
        if bad.any():
            raise ValueError(f"{name} must hold whole numbers, got {xf[bad][:3]}")
        if (xf < minimum).any():
            raise ValueError(f"{name} must be >= {minimum}, got {xf[xf < minimum][:3]}")

    def prob(x: np.ndarray, name: str) -> None:
        xf = np.asarray(x, float)
        if np.isnan(xf).any() or (xf < 0).any() or (xf > 1).any():
            bad = xf[np.isnan(xf) | (xf < 0) | (xf > 1)]
            raise ValueError(f"{name} must be probabilities in [0, 1], got {bad[:3]}")

    whole(t, "t", 1)
    whole(n, "n", 1)
    whole(n_train, "n_train", 0, allow_inf=True)
    whole(n_classes, "n_classes", 2)
    tb, nb = np.broadcast_arrays(t, n)
    if (nb > tb).any():
        raise ValueError(f"n must be <= t, got n={nb[nb > tb][:3]} > t={tb[nb > tb][:3]}")
    prob(p, "p")
    prob(weight, "weight")
    prob(beta, "p_systematic")
    total = np.asarray(weight, float).sum(-1)
    if not np.allclose(total, 1.0, atol=1e-9, rtol=0):
        raise ValueError(f"weights must sum to 1 over the group axis, got sums {np.ravel(total)[:3]}")


def expected_metrics(*, t: Any, n: Any, p: Any, weight: Any, n_train: Any, n_classes: Any = 2,
                     training: str = "shared", p_systematic: Any = 0.0, validate: bool = True
                     ) -> dict[str, np.ndarray]:
    """Closed-form metrics for whole arrays of settings, by numpy broadcasting.

    Parameters
    ----------
    t, n, p, weight : array_like, shape ``(..., G)``
        Per-group parameters; the last axis is the group axis (weights sum to 1 along it).
    n_train, n_classes, p_systematic : array_like, shape broadcastable to ``(...)``
        Per-setting scalars (``n_train`` may be ``inf``).
    training : {"shared", "independent"}
    validate : bool
        Check every entry (set False in inner loops that already validated).

    Returns
    -------
    dict
        ``accuracy, agreement, error, disagreement, gap`` of shape ``(...)`` and
        ``miss, both`` of shape ``(..., G)``.

    Notes
    -----
    The cost is one pass over ``max(n) + 1`` terms per group and setting: 100,000
    two-group settings take well under a second (``benchmarks/bench_theory.py``).

    Examples
    --------
    >>> out = expected_metrics(t=[[10, 1000], [10, 100]], n=[3, 3], p=[0.9, 0.3], weight=[0.7, 0.3],
    ...                        n_train=1000)
    >>> out["accuracy"].shape
    (2,)
    """
    _check_training(training)
    validate = check_bool(validate, "validate")
    t, n, p, weight = (np.asarray(x) for x in (t, n, p, weight))
    if min(x.ndim for x in (t, n, p, weight)) < 1:
        raise ValueError("t, n, p and weight need a trailing group axis (shape (..., G))")
    lead = np.broadcast_shapes(t.shape, n.shape, p.shape, weight.shape)[:-1]
    N, K, beta = (np.asarray(x) for x in (n_train, n_classes, p_systematic))
    if validate:
        _validate_arrays(t, n, p, weight, N, K, beta)
    lead = np.broadcast_shapes(lead, N.shape, K.shape, beta.shape)
    G = np.broadcast_shapes(t.shape, n.shape, p.shape, weight.shape)[-1]
    full = lead + (G,)
    t, n, p, weight = (np.broadcast_to(x.astype(float), full) for x in (t, n, p, weight))
    Ng = np.broadcast_to(N.astype(float), lead)[..., None]
    Kg = np.broadcast_to(K.astype(float), lead)[..., None]
    miss = _E(t, n, 1.0 - p, weight, Ng, Kg)
    if training == "shared":
        both = _E(t, n, (1.0 - p) ** 2, weight, Ng, Kg)
    else:
        both = miss ** 2
    bg = np.broadcast_to(beta.astype(float), lead)[..., None]
    acc_s, agr_s = _acc_agr_per_type(miss, both, Kg, bg)
    acc = (weight * acc_s).sum(-1)
    agr = (weight * agr_s).sum(-1)
    return {"accuracy": acc, "agreement": agr, "error": 1.0 - acc, "disagreement": 1.0 - agr,
            "gap": acc - agr, "miss": miss, "both": both}


def _check_values(values: Any, *, name: str = "values") -> np.ndarray:
    """Sweep values: a non-empty 1-D float array of finite numbers."""
    v = as_float_array(values, name=name).astype(float).ravel()
    if v.size == 0:
        raise ValueError(f"{name} must hold at least one number, got an empty array")
    return v


def _base_params(base: FeatureModel | None) -> dict[str, Any]:
    base = FeatureModel() if base is None else base
    if not isinstance(base, FeatureModel) or len(base.groups) != 2:
        raise ValueError(f"base must be a two-group FeatureModel, got {base!r}")
    return {k: v for k, v in base.params().items() if k != "training"}


def evaluate(*, base: FeatureModel | None = None, training: str | None = None, **params: Any
             ) -> dict[str, np.ndarray]:
    """Closed-form metrics of the two-group model for arrays of its parameters (broadcast).

    Parameters
    ----------
    base : FeatureModel, optional
        Supplies every parameter not given (default: ``FeatureModel()``).
    training : {"shared", "independent"}, optional
        Defaults to the base's.
    **params : array_like
        Any of ``n_classes, t_d, t_r, n_d, n_r, p_d, p_r, alpha_d, n_train, p_systematic``;
        arrays broadcast together.

    Returns
    -------
    dict of ndarray
        ``accuracy, agreement, error, disagreement, gap`` over the broadcast shape.

    Examples
    --------
    >>> out = evaluate(p_r=np.linspace(0, 1, 5))
    >>> out["gap"].shape
    (5,)
    """
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; known: {PARAMETERS}")
    training = training or (base.training if base is not None else "shared")
    v = {**_base_params(base), **{k: np.asarray(x) for k, x in params.items()}}
    shape = np.broadcast_shapes(*(np.shape(x) for x in v.values()))
    b = {k: np.broadcast_to(np.asarray(x), shape) for k, x in v.items()}
    out = expected_metrics(t=np.stack([b["t_d"], b["t_r"]], -1), n=np.stack([b["n_d"], b["n_r"]], -1),
                           p=np.stack([b["p_d"], b["p_r"]], -1),
                           weight=np.stack([b["alpha_d"], 1.0 - b["alpha_d"].astype(float)], -1),
                           n_train=b["n_train"], n_classes=b["n_classes"], training=training,
                           p_systematic=b["p_systematic"])
    return {k: out[k] for k in _METRICS}


def grid(*, base: FeatureModel | None = None, training: str | None = None, **values: Any) -> pd.DataFrame:
    """Tidy table of the closed-form metrics over the cartesian product of parameter values.

    Examples
    --------
    >>> df = grid(p_r=[0.1, 0.5], t_r=[100, 1000])
    >>> len(df), "gap" in df
    (4, True)
    """
    names = list(values)
    arrays = np.meshgrid(*(np.asarray(values[k]).ravel() for k in names), indexing="ij")
    flat = {k: a.ravel() for k, a in zip(names, arrays)}
    out = evaluate(base=base, training=training, **flat)
    df = pd.DataFrame(flat)
    for k in _METRICS:
        df[k] = np.broadcast_to(out[k], (len(df),)) if len(df) else out[k]
    return df


def sweep(parameter: str, values: Any, *, base: FeatureModel | None = None) -> pd.DataFrame:
    """One parameter varied, the others at ``base``: one row per value.

    Columns ``parameter, value, accuracy, agreement, error, disagreement, gap``.

    Examples
    --------
    >>> sweep("p_r", [0.1, 0.5, 0.9])["gap"].shape
    (3,)
    """
    check_choice(parameter, "parameter", PARAMETERS)
    values = _check_values(values)
    out = evaluate(base=base, **{parameter: values})
    df = pd.DataFrame({"parameter": parameter, "value": values.astype(float)})
    for k in _METRICS:
        df[k] = out[k]
    return df


def sweeps(ranges: Mapping[str, Any], *, base: FeatureModel | None = None) -> pd.DataFrame:
    """Several single-parameter sweeps stacked into one long table (Figure 4, left columns).

    Examples
    --------
    >>> df = sweeps({"t_r": [100, 1000], "p_r": [0.2, 0.8]})
    >>> sorted(df["parameter"].unique())
    ['p_r', 't_r']
    """
    if not isinstance(ranges, Mapping) or not ranges:
        raise ValueError(f"ranges must be a non-empty mapping parameter -> values, got {ranges!r}")
    return pd.concat([sweep(k, v, base=base) for k, v in ranges.items()], ignore_index=True)


def coupled_sweep(lead: str, follow: str, values: Any, *, base: FeatureModel | None = None,
                  ratio: float | None = None) -> pd.DataFrame:
    """Two parameters moved together (Figure 4, right column): ``follow = ratio * lead``.

    Parameters
    ----------
    lead, follow : str
        E.g. ``("t_r", "t_d")`` or ``("n_r", "n_d")``.
    values : array_like
        Values of ``lead``.
    ratio : float, optional
        Default: keep the base's ratio ``base.follow / base.lead``. Counts are rounded
        to the nearest integer (at least 1), and clipped so that ``n <= t`` still holds
        for the follower (a coupled ``t_d`` never drops below ``n_d``).

    Returns
    -------
    DataFrame with columns ``lead, follow, <lead>, <follow>, accuracy, ...``, plus the
    uncoupled sweep of ``lead`` alone in rows with ``coupled == False`` for comparison.

    Examples
    --------
    >>> df = coupled_sweep("t_r", "t_d", [100, 200, 400])
    >>> df.groupby("coupled").size().to_dict()
    {False: 3, True: 3}
    """
    check_choice(lead, "lead", PARAMETERS)
    check_choice(follow, "follow", PARAMETERS)
    bp = _base_params(base)
    values = _check_values(values)
    ratio = float(bp[follow]) / float(bp[lead]) if ratio is None else check_real(ratio, "ratio", minimum=0,
                                                                                 open_low=True)
    follow_vals = ratio * values
    if follow in _INT_PARAMS:
        follow_vals = np.maximum(np.round(follow_vals), 1)
    # keep n <= t for the follower: a coupled t never drops below its n, a coupled n never exceeds its t
    if follow in ("t_d", "t_r"):
        follow_vals = np.maximum(follow_vals, bp["n" + follow[1:]])
    elif follow in ("n_d", "n_r"):
        follow_vals = np.minimum(follow_vals, bp["t" + follow[1:]])
    rows = []
    for coupled in (False, True):
        params = {lead: values}
        if coupled:
            params[follow] = follow_vals
        out = evaluate(base=base, **params)
        df = pd.DataFrame({"lead": lead, "follow": follow, "coupled": coupled, lead: values,
                           follow: follow_vals if coupled else np.full(len(values), float(bp[follow]))})
        for k in _METRICS:
            df[k] = out[k]
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def models_from_grid(*, base: FeatureModel | None = None, **values: Any) -> list[FeatureModel]:
    """One two-group :class:`FeatureModel` per combination of parameter values (cartesian product).

    Combinations with ``n > t`` are skipped. Parameters not given come from ``base``.

    Examples
    --------
    >>> ms = models_from_grid(t_r=[2, 100], n_r=[1, 3])
    >>> len(ms)  # (t_r=2, n_r=3) is skipped
    3
    """
    unknown = set(values) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; known: {PARAMETERS}")
    bp = _base_params(base)
    training = base.training if base is not None else "shared"
    names = list(values)
    out = []
    for combo in itertools.product(*(np.asarray(values[k]).ravel().tolist() for k in names)):
        params = {**bp, **dict(zip(names, combo))}
        if params["n_d"] > params["t_d"] or params["n_r"] > params["t_r"]:
            continue
        out.append(FeatureModel(training=training, **params))
    return out


def coupling_study(bases: Sequence[FeatureModel], lead: str = "t_r", follow: str = "t_d", *,
                   factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)) -> pd.DataFrame:
    """Does coupling ``follow`` to ``lead`` keep GDE better than moving ``lead`` alone? One row per base.

    For each base, ``lead`` takes the values ``base.lead * factors`` (rounded; an ``n`` is
    clipped to ``[1, t]``), once alone and once with ``follow`` scaled by the same factor
    (:func:`coupled_sweep`). Reported: the mean and the maximum of ``|E[dis] - E[err]|``
    along each sweep, and whether the coupled sweep stays closer to GDE (smaller mean).

    Examples
    --------
    >>> df = coupling_study([FeatureModel(), FeatureModel(t_d=50, n_train=100)], "t_r", "t_d")
    >>> list(df.columns[-3:])
    ['max_gap_alone', 'max_gap_coupled', 'coupled_closer']
    """
    if isinstance(bases, FeatureModel) or not isinstance(bases, (Sequence, np.ndarray)):
        raise ValueError(f"bases must be a sequence of FeatureModel, got {type(bases).__name__}; "
                         "wrap a single model in a list")
    factors = _check_values(factors, name="factors")
    if factors.min() <= 0:
        raise ValueError(f"factors must be positive (they scale {lead}), got {factors.tolist()}")
    rows = []
    for i, base in enumerate(bases):
        bp = _base_params(base)
        vals = np.maximum(np.round(float(bp[lead]) * factors), 1)
        if lead in ("n_d", "n_r"):
            vals = np.minimum(vals, bp["t" + lead[1:]])
        elif lead in ("t_d", "t_r"):
            vals = np.maximum(vals, bp["n" + lead[1:]])
        vals = np.unique(vals)
        df = coupled_sweep(lead, follow, vals, base=base)
        alone, coupled = df[~df["coupled"]]["gap"].abs(), df[df["coupled"]]["gap"].abs()
        rows.append({"base": i, **{k: v for k, v in base.params().items()}, "lead": lead, "follow": follow,
                     "mean_gap_alone": float(alone.mean()), "mean_gap_coupled": float(coupled.mean()),
                     "max_gap_alone": float(alone.max()), "max_gap_coupled": float(coupled.max()),
                     "coupled_closer": bool(coupled.mean() < alone.mean())})
    return pd.DataFrame(rows)
