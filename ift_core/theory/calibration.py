"""The vote ensemble's calibration in the framework, exactly (and its CACE).

:func:`vote_calibration` enumerates the law of the vote share of a size-``M`` (or infinite)
ensemble; its columns are those of the measured table,
:func:`ift_core.gde.class_aggregated_calibration` (also reachable here as
``empirical_vote_calibration``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..gde import class_aggregated_calibration as empirical_vote_calibration
from ..internal import check_count, check_int
from .model import FeatureModel, _check_model

__all__ = ["vote_calibration", "vote_cace", "empirical_vote_calibration"]


def _binom_pmf(k: np.ndarray, n: Any, q: Any) -> np.ndarray:
    from scipy.stats import binom

    return binom.pmf(k, n, q)


def _vote_masses(model: FeatureModel, n_models: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atoms of the vote share: ``(value, sum_k P(Y=k, h_k=value), sum_k P(h_k=value))`` (unmerged).

    The vote share of class ``k`` is ``h_k = (votes for k) / M``. Condition on the point's
    type and on ``J``, the number of models that know it: under shared training, given
    ``|B| = j`` seen features each model knows independently with ``q_j = 1 - (1-p)^j``
    (law of ``|B|`` from :meth:`FeatureModel.seen_distribution`), so ``J | j ~
    Binomial(M, q_j)``; under independent training ``J ~ Binomial(M, 1 - miss_s)``. The
    ``L = M - J`` others vote ``w`` with ``beta + (1 - beta)/K``, and ``y`` or each of the
    other ``K - 2`` classes with ``(1 - beta)/K`` each, so votes for ``y`` are
    ``J + Binomial(L, (1-beta)/K)``, for ``w`` ``Binomial(L, beta + (1-beta)/K)``, and for
    any other class ``Binomial(L, (1-beta)/K)``. ``n_models=None`` is the infinite
    ensemble: ``h_y = q + (1 - q)(1 - beta)/K`` etc., with ``q`` the knowing probability.
    """
    K, beta = model.n_classes, model.p_systematic
    g_other = (1.0 - beta) / K
    g_wrong = beta + g_other
    w = np.array([g.weight for g in model.groups])
    vals, m_true, m_all = [], [], []
    if model.training == "shared":
        law = model.seen_distribution()
        per_type = []
        for s, g in enumerate(model.groups):
            j = np.arange(g.n + 1)
            per_type.append((w[s] * law[s, : g.n + 1], 1.0 - (1.0 - g.p) ** j))
    else:
        miss = model.miss_s()
        per_type = [(np.array([w[s]]), np.array([1.0 - miss[s]])) for s in range(len(model.groups))]
    for mass, q in per_type:
        if n_models is None:
            hy = q + (1 - q) * g_other
            hw = (1 - q) * g_wrong
            ho = (1 - q) * g_other
            vals += [hy, hw, ho]
            m_true += [mass, 0 * mass, 0 * mass]
            m_all += [mass, mass, (K - 2) * mass]
            continue
        M = n_models
        Jv = np.arange(M + 1)
        pJ = mass[:, None] * _binom_pmf(Jv[None, :], M, q[:, None])  # (atoms, M+1)
        pJ = pJ.sum(0)  # law of J (times the type's weight)
        v = np.arange(M + 1)
        L = M - Jv  # (M+1,)
        # votes for y = J + Binomial(L, g_other)
        py = np.zeros(M + 1)
        pw = np.zeros(M + 1)
        po = np.zeros(M + 1)
        for J in range(M + 1):
            if pJ[J] == 0:
                continue
            ext = _binom_pmf(v - J, L[J], g_other) * (v >= J)
            py += pJ[J] * ext
            pw += pJ[J] * _binom_pmf(v, L[J], g_wrong)
            po += pJ[J] * _binom_pmf(v, L[J], g_other)
        vals += [v / M] * 3
        m_true += [py, 0 * pw, 0 * po]
        m_all += [py, pw, (K - 2) * po]
    return np.concatenate(vals), np.concatenate(m_true), np.concatenate(m_all)


def vote_calibration(model: FeatureModel, *, n_models: int | None = None, decimals: int = 12) -> pd.DataFrame:
    """Exact class-aggregated calibration table of the vote ensemble.

    The vote ensemble ``h_k(x)`` is the share of models predicting class ``k``. For every
    value ``q`` the vote share takes, the table gives ``mass_true = sum_k P(Y = k, h_k =
    q)`` and ``mass = sum_k P(h_k = q)`` (averaged over the training set and the points),
    the class-aggregated accuracy ``mass_true / mass`` at confidence ``q``, and the CACE
    term ``|mass_true - q mass|``. See :func:`_vote_masses` for the enumeration.

    Parameters
    ----------
    model : FeatureModel
    n_models : int, optional
        Size of the vote ensemble; ``None`` = infinitely many models (the quantity whose
        CACE bounds the closed-form gap exactly, Jiang et al. 2022, Thm 4.2).
    decimals : int
        Values equal to this many decimals are one atom.

    Returns
    -------
    DataFrame with columns ``confidence, mass, mass_true, accuracy, cace_term``.

    Examples
    --------
    >>> tab = vote_calibration(FeatureModel(), n_models=5)
    >>> bool(np.isclose(tab["mass"].sum(), 2))  # K = 2 vote shares per point
    True
    """
    _check_model(model)
    if n_models is not None:
        n_models = check_count(n_models, "n_models")
    decimals = check_int(decimals, "decimals")
    vals, mt, ma = _vote_masses(model, n_models)
    key = np.round(vals, decimals)
    uniq, inv = np.unique(key, return_inverse=True)
    mass = np.bincount(inv, weights=ma, minlength=uniq.size)
    mass_true = np.bincount(inv, weights=mt, minlength=uniq.size)
    keep = mass > 0
    uniq, mass, mass_true = uniq[keep], mass[keep], mass_true[keep]
    return pd.DataFrame({"confidence": uniq, "mass": mass, "mass_true": mass_true,
                         "accuracy": mass_true / mass, "cace_term": np.abs(mass_true - uniq * mass)})


def vote_cace(model: FeatureModel, *, n_models: int | None = None) -> float:
    """Class-aggregated calibration error (Jiang et al. 2022) of the vote ensemble, exactly.

    ``CACE = sum_q |sum_k P(Y = k, h_k = q) - q sum_k P(h_k = q)|`` over the (finitely
    many) values ``q`` of the vote share. With ``n_models=None`` (infinite ensemble),
    ``|E[dis] - E[err]| <= CACE`` holds exactly for :meth:`FeatureModel.gde_gap`; with a
    finite ``M`` it is the CACE a size-``M`` vote ensemble shows in expectation over the
    pooled points (it bounds the gap measured with replacement, ``(1 - 1/M) E[dis] -
    E[err]``).

    Examples
    --------
    >>> fm = FeatureModel(p_r=0.5)
    >>> fm.gde_gap() <= vote_cace(fm) + 1e-12
    True
    """
    return float(vote_calibration(model, n_models=n_models)["cace_term"].sum())
