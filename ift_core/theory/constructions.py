"""GDE-breaking constructions: settings at a given accuracy that break GDE the most, or keep it."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..internal import check_choice, check_int, check_real
from ._common import _INT_PARAMS, _METRICS
from .calibration import vote_cace
from .closed_forms import _base_params, evaluate
from .model import FeatureModel

__all__ = ["gde_constructions"]


_DEFAULT_SEARCH = {
    "t_r": [20, 50, 100, 200, 500, 1000, 2000],
    "n_r": [1, 2, 3, 5],
    "p_r": list(np.round(np.linspace(0.05, 0.95, 19), 2)),
    "alpha_d": [0.3, 0.5, 0.6, 0.7, 0.8, 0.9],
}


def gde_constructions(target_accuracy: float, *, base: FeatureModel | None = None,
                      search: Mapping[str, Any] | None = None, solve_for: str = "p_d",
                      n_models: int | None = None, n_best: int = 1, tol: float = 1e-6) -> pd.DataFrame:
    """Settings at a target accuracy that break GDE the most, and ones that keep it.

    For every combination of ``search`` values (default: ``t_r, n_r, p_r, alpha_d``; other
    parameters from ``base``), the parameter ``solve_for`` (default ``p_d``, a probability,
    on which accuracy is monotone) is set by vectorised bisection so that the expected
    accuracy equals ``target_accuracy``; combinations that cannot reach it are dropped.
    Among the rest the function reports:

    * ``"max_gap"``: the largest ``E[dis] - E[err]`` (disagreement above error),
    * ``"min_gap"``: the most negative gap (only when some ``p_systematic > 0``),
    * ``"keeps_gde"``: the smallest ``|gap|``,

    each with its exact vote-ensemble CACE (``n_models`` as in :func:`vote_cace`), which
    bounds ``|gap|`` (Jiang et al. 2022).

    Returns
    -------
    DataFrame, one row per construction (``n_best`` per kind), with the parameters,
    ``accuracy, agreement, error, disagreement, gap, cace``.

    Examples
    --------
    >>> df = gde_constructions(0.8, search={"p_r": [0.2, 0.5, 0.8], "t_r": [100, 1000]})
    >>> list(df["kind"])
    ['max_gap', 'keeps_gde']
    >>> bool(np.allclose(df["accuracy"], 0.8))
    True
    """
    target_accuracy = check_real(target_accuracy, "target_accuracy", minimum=0, maximum=1, open_low=True)
    solve_for = check_choice(solve_for, "solve_for", ("p_d", "p_r", "alpha_d"))
    n_best = check_int(n_best, "n_best", minimum=1)
    tol = check_real(tol, "tol", minimum=0, maximum=1, remedy="an accuracy tolerance such as 1e-6")
    search = dict(_DEFAULT_SEARCH if search is None else search)
    search.pop(solve_for, None)
    bp = _base_params(base)
    names = list(search)
    arrays = np.meshgrid(*(np.asarray(search[k], float).ravel() for k in names), indexing="ij")
    flat = {k: a.ravel() for k, a in zip(names, arrays)}
    size = arrays[0].size if arrays else 1
    # keep valid combinations only (n <= t)
    full = {k: np.broadcast_to(np.asarray(flat.get(k, bp[k]), float), (size,)) for k in bp}
    ok = (full["n_d"] <= full["t_d"]) & (full["n_r"] <= full["t_r"])
    flat = {k: v[ok] for k, v in flat.items()}
    size = int(ok.sum())

    def acc_at(x: np.ndarray) -> np.ndarray:
        return evaluate(base=base, **flat, **{solve_for: x})["accuracy"]

    lo, hi = np.zeros(size), np.ones(size)
    a_lo, a_hi = acc_at(lo), acc_at(hi)
    increasing = a_hi >= a_lo
    reach = (np.minimum(a_lo, a_hi) <= target_accuracy + tol) & (np.maximum(a_lo, a_hi) >= target_accuracy - tol)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = acc_at(mid) < target_accuracy
        go_up = below == increasing
        lo = np.where(go_up, mid, lo)
        hi = np.where(go_up, hi, mid)
    x = 0.5 * (lo + hi)
    flat = {k: v[reach] for k, v in flat.items()}
    x = x[reach]
    if x.size == 0:
        raise ValueError(f"no setting in the search reaches target_accuracy={target_accuracy}")
    out = evaluate(base=base, **flat, **{solve_for: x})
    df = pd.DataFrame({**flat, solve_for: x})
    for k in _METRICS:
        df[k] = out[k]
    df = df[np.abs(df["accuracy"] - target_accuracy) <= max(tol, 1e-6)]
    picks = [("max_gap", df.nlargest(n_best, "gap"))]
    if (df["gap"] < -1e-12).any():
        picks.append(("min_gap", df.nsmallest(n_best, "gap")))
    picks.append(("keeps_gde", df.iloc[np.argsort(np.abs(df["gap"].to_numpy()), kind="stable")[:n_best]]))
    rows = []
    for kind, part in picks:
        for _, r in part.iterrows():
            params = {**bp, **{k: r[k] for k in flat}, solve_for: float(r[solve_for])}
            params = {k: (int(round(v)) if k in _INT_PARAMS and v != math.inf else v) for k, v in params.items()}
            fm = FeatureModel(training=(base.training if base is not None else "shared"), **params)
            rows.append({"kind": kind, **params, **{k: float(r[k]) for k in _METRICS},
                         "cace": vote_cace(fm, n_models=n_models)})
    return pd.DataFrame(rows)
