"""Fitting the framework to a measured interaction tensor and the models' predictions."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..gde import same_wrong_rate
from ..internal import as_int_array, check_count, check_real, pair_agreement, vote_counts
from ..tensor import split_frequencies
from ._common import _check_training
from .model import FeatureModel, Group

__all__ = ["FitResult", "fit", "beta_from_same_wrong_rate"]


def beta_from_same_wrong_rate(rate: float, n_classes: int) -> float:
    """Invert ``P(same | both wrong)`` to ``p_systematic`` (K > 2).

    Given a miss, a model answers ``w`` with ``beta + (1 - beta)/K`` and each other wrong
    class with ``(1 - beta)/K``; conditioned on being wrong, ``w`` has probability
    ``a = (beta + (1-beta)/K) / (beta + (1-beta)(K-1)/K)``. Two independent wrong answers
    coincide with ``s = a^2 + (1 - a)^2/(K - 2)``; solve for ``a >= 1/(K-1)``, then
    ``beta = (a (K-1) - 1) / ((K-1) - a)``. Rates at or below chance give 0. For K = 2 the
    rate is always 1 and says nothing about beta: raises ValueError.

    Examples
    --------
    >>> round(beta_from_same_wrong_rate(1 / 2, 3), 6)  # chance level for K = 3
    0.0
    """
    K = check_count(n_classes, "n_classes", minimum=2)
    if K == 2:
        raise ValueError("n_classes=2: two wrong answers always agree, p_systematic is not identifiable")
    s = check_real(rate, "rate", minimum=0, maximum=1, remedy="a rate is a probability")
    # (1 + 1/(K-2)) a^2 - 2a/(K-2) + 1/(K-2) - s = 0
    A, B, C = 1 + 1 / (K - 2), -2 / (K - 2), 1 / (K - 2) - s
    disc = max(B * B - 4 * A * C, 0.0)
    a = (-B + math.sqrt(disc)) / (2 * A)
    a = min(max(a, 1 / (K - 1)), 1.0)
    return float(min(max((a * (K - 1) - 1) / ((K - 1) - a), 0.0), 1.0))


@dataclass
class FitResult:
    """What :func:`fit` estimated and how well the fitted framework predicts the ensemble.

    Attributes
    ----------
    model : FeatureModel
        The fitted framework.
    params : dict
        The estimates (including intermediate ones: visible features per point, learner
        rates, same-wrong rate).
    measured, predicted : dict
        ``accuracy, agreement, gap`` measured from the predictions and predicted by
        ``model``'s closed forms.
    diagnostics : dict
        ``acc_known`` (accuracy where the tensor shows the model has a feature of the
        point), ``acc_unknown``, ``known_rate``.

    Examples
    --------
    >>> sim = FeatureModel(n_classes=3).simulate(8, 1000, seed=0)
    >>> omega, groups = sim.planted_omega()
    >>> res = fit(omega, sim.predictions, sim.labels, dominant=groups == 0, n_train=1000)
    >>> list(res.table()["quantity"])
    ['accuracy', 'agreement', 'gap']
    """

    model: FeatureModel
    params: dict[str, Any]
    measured: dict[str, float]
    predicted: dict[str, float]
    diagnostics: dict[str, float] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Tidy comparison: ``quantity, measured, predicted, difference``."""
        rows = [{"quantity": k, "measured": self.measured[k], "predicted": self.predicted[k],
                 "difference": self.predicted[k] - self.measured[k]} for k in ("accuracy", "agreement", "gap")]
        return pd.DataFrame(rows)


def _truncated_binomial_p(mean_count: float, M: int) -> float:
    """Solve ``M p / (1 - (1-p)^M) = mean_count`` for p (mean of a zero-truncated binomial)."""
    from scipy.optimize import brentq

    if mean_count <= 1.0 + 1e-12:
        return 0.0 if M > 1 else 1.0
    if mean_count >= M - 1e-12:
        return 1.0
    f = lambda p: M * p / (1.0 - (1.0 - p) ** M) - mean_count  # noqa: E731
    return float(brentq(f, 1e-12, 1.0 - 1e-12))


def _solve_n(vbar: float, x: float) -> float:
    """Solve ``n x / (1 - (1 - x)^n) = vbar`` for n >= 1 (mean of a zero-truncated binomial)."""
    from scipy.optimize import brentq

    if x <= 0 or vbar <= 1.0 + 1e-12:
        return 1.0
    h = lambda n: n * x / -np.expm1(n * np.log1p(-x)) - vbar if x < 1 else n - vbar  # noqa: E731
    hi = 2.0
    while h(hi) < 0 and hi < 1e7:
        hi *= 2
    return float(brentq(h, 1.0, hi)) if h(1.0) < 0 else 1.0


def _solve_r(u: float, n: float, x: float, m: float) -> float:
    """Solve ``(n / r) x (1 - (1 - r)^m) = u`` for the share ``r = n / t`` in (0, 1]."""
    from scipy.optimize import brentq

    g = lambda r: n / r * x * -np.expm1(m * np.log1p(-r)) - u if r < 1 else n * x - u  # noqa: E731
    lo = 1e-12
    if g(1.0) >= 0:
        return 1.0
    if g(lo) <= 0:
        return lo
    return float(brentq(g, lo, 1.0))


def _fit_group(*, f: float, vbar: float, u: float, theta: float, M: int, K: int, n_train: float,
               n_test: int, training: str) -> dict[str, float]:
    """Moment equations of one group (see :func:`fit`, Notes), solved for ``w, n, t, p``.

    With ``x`` the chance that a given feature of a point is visible (seen in training by a
    model that learned it, for some of the M models) and the features of a point treated as
    independently visible:

    * typed share        ``f = w (1 - (1 - x)^n)``
    * visible per point  ``vbar = n x / (1 - (1 - x)^n)``  (typed points have >= 1)
    * distinct per class ``u = t x (1 - (1 - n/t)^m)``, ``m = n_test w / K``

    Independent training or ``n_train = inf``: ``x = 1 - (1 - theta)^M`` is known and the
    three equations are solved one after the other. Shared training with a finite
    ``n_train``: ``x = pi c`` with ``c = 1 - (1 - theta)^M`` and the training coverage
    ``pi = 1 - (1 - w r / K)^N`` depends on ``w`` and ``r = n / t``; the equations are
    then solved jointly for ``(w, r)`` by least squares.
    """
    from scipy.optimize import least_squares

    c = 1.0 - (1.0 - theta) ** M

    def given(w: float, r: float) -> tuple[float, float]:
        pi = 1.0 if n_train == math.inf else 1.0 - (1.0 - w * r / K) ** n_train
        return pi, (pi * c if training == "shared" else c)

    def solve_rest(x: float) -> tuple[float, float, float]:
        n = _solve_n(vbar, x)
        w = min(f / max(-np.expm1(n * np.log1p(-x)) if x < 1 else 1.0, 1e-300), 1.0)
        r = _solve_r(u, n, x, n_test * w / K)
        return n, w, r

    if training == "independent" or n_train == math.inf:
        n, w, r = solve_rest(c)  # x does not depend on pi here: no feedback
    else:
        n0, w0, r0 = solve_rest(c)

        def resid(z: np.ndarray) -> np.ndarray:
            w, r = z[0], math.exp(z[1])
            pi, x = given(w, r)
            n = _solve_n(vbar, x)
            shown = -np.expm1(n * np.log1p(-x)) if x < 1 else 1.0
            m = n_test * w / K
            dist = n / r * x * -np.expm1(m * np.log1p(-r)) if r < 1 else n * x
            return np.array([w * shown / f - 1.0, dist / u - 1.0])

        sol = least_squares(resid, x0=[min(max(w0, f), 1.0), math.log(min(max(r0, 1e-9), 1.0))],
                            bounds=([f, math.log(1e-9)], [1.0, 0.0]), xtol=1e-12, ftol=1e-12)
        w, r = float(sol.x[0]), math.exp(sol.x[1])
        pi, x = given(w, r)
        n = _solve_n(vbar, x)
    pi, _ = given(w, r)
    p = theta if training == "shared" else min(theta / max(pi, 1e-300), 1.0)
    return {"w": w, "n": n, "t": n / r, "p": p, "pi": pi}


def fit(omega: Any, predictions: Any, labels: Any, *, dominant: Any = None, feature_groups: Any = None,
        n_classes: int | None = None, n_train: int | float | None = None, training: str = "shared"
        ) -> FitResult:
    """Estimate the framework's parameters from an interaction tensor and the models' predictions.

    Parameters
    ----------
    omega : array (M, N, T) bool
        ``omega[m, n, t]``: feature ``t`` of model ``m`` is present in test point ``n``.
    predictions : array (M, N) int
    labels : array (N,) int
    dominant : array (T,) bool, optional
        Which features are dominant (two groups). Default: split log feature frequency
        (points carrying the feature) into two by Otsu's criterion.
    feature_groups : array (T,) int, optional
        Any number of groups instead of ``dominant`` (group 0 first).
    n_classes : int, optional
        Default: ``max(labels, predictions) + 1``.
    n_train : int or inf, optional
        The models' training-set size. ``None`` = ``inf``: every feature the fitted model
        has counts as seen in training (the tensor cannot tell training coverage apart
        from fewer features per point; with ``n_train`` given it can, see Notes).
    training : {"shared", "independent"}

    Returns
    -------
    FitResult

    Notes
    -----
    The estimators are moment matches; each uses only what the tensor shows: a feature
    is *visible* if some model has it in some point, a model *learned* a visible feature
    if the feature is present for that model in some point, and a point's visible
    features are those any model has in it. Nothing is iterated: each group is solved once.

    1. **Groups.** ``dominant`` / ``feature_groups``, or Otsu's split of log feature frequency
       (:func:`ift_core.tensor.split_frequencies` with ``rule="otsu"``).
    2. **Point types.** A point's type is the group holding most of its visible features.
       Points with none ("featureless": every model missed every feature) are left untyped
       (``params["featureless_share"]``); step 4 accounts for them.
    3. **theta_s.** A visible feature's learner count is a zero-truncated
       ``Binomial(M, theta_s)``: its mean ``M theta / (1 - (1-theta)^M)`` is solved for
       ``theta_s``. Shared training: ``p_s = theta_s``; independent: ``p_s = theta_s / pi_s``
       (at most 1), ``pi_s`` the chance that a model's training set holds the feature.
    4. **w_s, n_s, t_s.** With ``x_s`` the chance that a given feature of a type-``s`` point is
       visible (``c_s = 1 - (1 - theta_s)^M``; times the training coverage ``pi_s = 1 - (1 -
       w_s r_s / K)^N`` under shared training with ``n_train`` given) and the point's features
       treated as independently visible, three measured moments are matched: the typed share
       ``f_s = w_s (1 - (1 - x_s)^n_s)`` (a point is typed when one of its features is
       visible: so the featureless points enter), the visible features per typed point
       ``v_s = n_s x_s / (1 - (1 - x_s)^n_s)``, and the distinct visible features per class
       ``u_s = t_s x_s (1 - (1 - r_s)^m_s)`` with ``r_s = n_s / t_s`` and ``m_s = N_test w_s / K``
       points of the type per class in the test set. When ``x_s`` does not depend on ``w_s``
       and ``r_s`` (independent training, or ``n_train=None``) the three are solved one after
       the other (``n_s``, then ``w_s``, then ``r_s``); otherwise jointly for ``(w_s, r_s)`` by
       least squares. ``n_s`` and ``t_s = n_s / r_s`` are rounded and the weights scaled to sum
       to 1.
    5. **p_systematic.** From ``s = P(same answer | both wrong)`` over pairs of models
       (:func:`ift_core.gde.same_wrong_rate`, inverted by :func:`beta_from_same_wrong_rate`);
       for ``K = 2`` (rate always 1) from the accuracy where the tensor shows the model knows
       no feature of the point: ``beta = 1 - K acc_unknown`` (0 when there are none).

    Examples
    --------
    >>> sim = FeatureModel(p_systematic=0.5, n_classes=4).simulate(8, 1000, seed=0)
    >>> omega, groups = sim.planted_omega()
    >>> res = fit(omega, sim.predictions, sim.labels, dominant=groups == 0, n_train=1000)
    >>> abs(res.predicted["accuracy"] - res.measured["accuracy"]) < 0.05
    True
    """
    omega = np.asarray(omega)
    if omega.ndim != 3:
        raise ValueError(f"omega must have shape (M, N, T), got {omega.shape}")
    if omega.dtype != bool:
        if not np.isin(omega, (0, 1)).all():
            raise ValueError(f"omega must be boolean (0/1), got dtype {omega.dtype} with other values")
        omega = omega.astype(bool)
    M, Npts, T = omega.shape
    preds = as_int_array(predictions, name="predictions", ndim=2)
    labels = as_int_array(labels, name="labels", ndim=1)
    if preds.shape != (M, Npts):
        raise ValueError(f"predictions must have shape {(M, Npts)} to match omega, got {preds.shape}")
    if labels.shape != (Npts,):
        raise ValueError(f"labels must have shape {(Npts,)} to match omega, got {labels.shape}")
    if M < 2:
        raise ValueError(f"omega needs at least 2 models to measure agreement, got M={M}")
    _check_training(training)
    K = int(max(preds.max(), labels.max()) + 1) if n_classes is None else check_count(n_classes, "n_classes", minimum=2)
    if max(preds.max(), labels.max()) >= K or min(preds.min(), labels.min()) < 0:
        raise ValueError(f"labels and predictions must lie in [0, {K}), got range "
                         f"[{min(preds.min(), labels.min())}, {max(preds.max(), labels.max())}]")
    N_tr = math.inf if n_train is None else check_count(n_train, "n_train", minimum=1, allow_inf=True)

    # 1. groups
    freq = omega.any(0).sum(0)  # points carrying each feature
    visible = freq > 0
    if feature_groups is not None:
        fg = as_int_array(feature_groups, name="feature_groups", ndim=1)
        if fg.shape != (T,) or fg.min() < 0:
            raise ValueError(f"feature_groups must be (T,)={T} non-negative ints, got shape {fg.shape}")
    elif dominant is not None:
        dm = np.asarray(dominant)
        if dm.shape != (T,) or dm.dtype != bool:
            raise ValueError(f"dominant must be a boolean mask of shape ({T},), got {dm.dtype} {dm.shape}")
        fg = np.where(dm, 0, 1)
    else:
        dom, _ = split_frequencies(freq, rule="otsu")
        fg = np.where(dom, 0, 1)
    G = int(fg.max()) + 1 if T else 1

    # 2. point types from visible features
    present = omega.any(0)  # (N, T)
    per_group = np.stack([present[:, fg == g].sum(1) for g in range(G)], 1)  # (N, G)
    n_vis = per_group.sum(1)
    ptype = np.where(n_vis > 0, per_group.argmax(1), -1)
    f_typed = np.array([(ptype == g).mean() for g in range(G)])
    used = [g for g in range(G) if f_typed[g] > 0 and (visible & (fg == g)).any()]
    if not used:
        raise ValueError("omega shows no feature in any point: nothing to fit")

    # 3. learner counts of visible features -> theta
    learned = omega.any(1)  # (M, T)
    counts = learned.sum(0)
    theta = {g: _truncated_binomial_p(float(counts[visible & (fg == g)].mean()), M) for g in used}
    vbar = {g: float(n_vis[ptype == g].mean()) for g in used}  # among typed points
    distinct = {g: float((visible & (fg == g)).sum()) / K for g in used}

    # 5. p_systematic
    knows = omega.any(2)
    correct = preds == labels[None]
    acc_known = float(correct[knows].mean()) if knows.any() else float("nan")
    acc_unknown = float(correct[~knows].mean()) if (~knows).any() else float("nan")
    rate = same_wrong_rate(preds, labels)
    if K > 2 and np.isfinite(rate):
        beta = beta_from_same_wrong_rate(rate, K)
    elif np.isfinite(acc_unknown):
        beta = float(min(max(1.0 - K * acc_unknown, 0.0), 1.0))
    else:
        beta = 0.0

    # 2./4. per group: weight, n and t from the typed share, visible counts and distinct features
    est = {g: _fit_group(f=float(f_typed[g]), vbar=vbar[g], u=distinct[g], theta=theta[g], M=M, K=K,
                         n_train=N_tr, n_test=Npts, training=training) for g in used}
    names = [("dominant" if g == 0 else "rare") if G == 2 else f"group{g}" for g in used]
    total = sum(est[g]["w"] for g in used)
    groups = []
    for g, name in zip(used, names):
        n_int = max(int(round(est[g]["n"])), 1)
        t_int = max(int(round(est[g]["t"])), n_int)
        groups.append(Group(t_int, n_int, est[g]["p"], est[g]["w"] / total, name))
    groups[-1] = dataclasses.replace(groups[-1], weight=max(0.0, 1.0 - sum(x.weight for x in groups[:-1])))
    model = FeatureModel.from_groups(groups, n_classes=K, n_train=N_tr, training=training, p_systematic=beta)

    # measured
    acc_m = float(correct.mean())
    agr_m = float(pair_agreement(vote_counts(preds, K), M).mean())
    predicted = model.metrics()
    if len(model.groups) == 2:
        params = {k: v for k, v in model.params().items()}
    else:
        params = dict(model.params())
    params.update({"same_wrong_rate": rate, "featureless_share": float((ptype < 0).mean())})
    for i, g in enumerate(used):
        params.update({f"visible_per_point_{i}": vbar[g], f"distinct_per_class_{i}": distinct[g],
                       f"typed_share_{i}": float(f_typed[g]), f"coverage_{i}": est[g]["pi"],
                       f"n_continuous_{i}": est[g]["n"], f"t_continuous_{i}": est[g]["t"]})
    return FitResult(model=model, params=params,
                     measured={"accuracy": acc_m, "agreement": agr_m, "gap": acc_m - agr_m},
                     predicted={k: predicted[k] for k in ("accuracy", "agreement", "gap")},
                     diagnostics={"acc_known": acc_known, "acc_unknown": acc_unknown,
                                  "known_rate": float(knows.mean())})
