"""The framework's prediction for chapter 11's sweep, and where it agrees with the measurement.

:func:`framework_prediction` gives the framework's numbers for a sub-population sweep (the
sub-population is the rare group), fitting only what it must to the measured errors;
:func:`compare_with_framework` states, row by row, where measurement and prediction agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import theory
from ..internal import check_choice, check_int, check_real
from .subpopulation import TEST_SETS, SweepResult, _check_rarities

__all__ = ["FrameworkPrediction", "framework_prediction", "compare_with_framework"]


@dataclass
class FrameworkPrediction:
    """The framework's numbers for a sweep.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (rarity, test set): ``rarity``, ``test_set``, ``train_share`` (the rare
        group's weight in training), ``alpha_d`` (the test set's share of ordinary-type points),
        ``p_systematic``, ``error``, ``disagreement``, ``gap`` (dis - err) and ``split_fraction``
        (share of points some but not all of ``n_models`` seeds get right).
    params : dict
        The framework's parameters; ``fitted`` lists those fitted to measured *errors*.
    models : dict
        ``rarity -> FeatureModel`` at ``p_systematic = 0`` (the row's beta is applied per row).
    """

    table: pd.DataFrame
    params: dict
    models: dict


def _beta(rate: float, n_classes: int) -> float:
    if rate is None or not np.isfinite(rate) or n_classes < 3:
        return 0.0
    return theory.beta_from_same_wrong_rate(float(rate), n_classes)


def _model_at(share: float, *, n_train: int, n_classes: int, t_d: int, n_d: int, p_d: float, t_r: int,
              n_r: int, p_r: float, beta: float, training: str) -> Any:
    groups = [theory.Group(t_d, n_d, p_d, 1.0 - share, "ordinary"),
              theory.Group(t_r, n_r, p_r, share, "subpopulation")]
    return theory.FeatureModel.from_groups(groups, n_classes=n_classes, n_train=n_train, training=training,
                                           p_systematic=beta)


def _split_fraction(fm: Any, n_models: int) -> np.ndarray:
    """Per group: P(some but not all of ``n_models`` seeds are right), shared training.

    Given the number b of a point's features seen in training, each seed knows the point with
    ``1 - (1 - p)^b`` independently and is right with ``c_b = 1 - (1 - p)^b (1 - (1 - beta)/K)``;
    average ``1 - c_b^M - (1 - c_b)^M`` over the law of b (:meth:`FeatureModel.seen_distribution`).
    (Private here; a candidate for ift_core.theory.)
    """
    law = fm.seen_distribution()
    g = (1.0 - fm.p_systematic) / fm.n_classes
    out = np.empty(len(fm.groups))
    for s, grp in enumerate(fm.groups):
        b = np.arange(law.shape[1])
        c = 1.0 - (1.0 - grp.p) ** b * (1.0 - g)
        out[s] = float(np.sum(law[s] * (1.0 - c ** n_models - (1.0 - c) ** n_models)))
    return out


def _predict_rows(spec: list[dict], *, n_train: int, n_classes: int, n_models: int, t_d: int, n_d: int,
                  p_d: float, t_r: int, n_r: int, p_r: float, transfer: float, training: str,
                  with_split: bool = True) -> list[dict]:
    out = []
    for row in spec:
        fm = _model_at(row["train_share"], n_train=n_train, n_classes=n_classes, t_d=t_d, n_d=n_d, p_d=p_d,
                       t_r=t_r, n_r=n_r, p_r=p_r, beta=row["p_systematic"], training=training)
        pt = fm.point_types()
        alpha = 1.0 if row["test_set"] == "ordinary" else transfer
        w = np.array([alpha, 1.0 - alpha])
        acc = float(w @ pt["accuracy"].to_numpy())
        agr = float(w @ pt["agreement"].to_numpy())
        res = {**row, "alpha_d": alpha, "error": 1.0 - acc, "disagreement": 1.0 - agr, "gap": acc - agr}
        if with_split:
            res["split_fraction"] = (float(w @ _split_fraction(fm, n_models)) if training == "shared"
                                     else float("nan"))
        out.append(res)
    return out


def framework_prediction(sweep: SweepResult | Sequence[int], *, n_train: int | None = None,
                         n_classes: int | None = None, n_models: int | None = None, t_d: int = 10, n_d: int = 3,
                         p_d: float | None = None, t_r: int | None = None, n_r: int = 3, p_r: float | None = None,
                         transfer: float | None = None, p_systematic: float | str = "measured",
                         training: str = "shared",
                         t_r_grid: Sequence[int] = (1, 2, 3, 5, 10, 20, 50, 100, 300, 1000)) -> FrameworkPrediction:
    """The framework's prediction for a sub-population sweep (the sub-population = the rare group).

    Mapping (``book/definitions.md`` §3): the ordinary images are the dominant group (``t_d``, ``n_d``,
    ``p_d``), the sub-population the rare group (``t_r``, ``n_r``, ``p_r``); ``n_train`` is the
    training-set size and rarity ``r`` gives the rare group's training weight ``r K / n_train``
    (so ``r`` sub-population points per class are expected in training, exactly as built). Each
    test set fixes the test mix: ``alpha_d = 1`` on the ordinary test set and ``alpha_d =
    transfer`` on the rich one (the share of transformed test points that still carry ordinary
    features; ``0`` takes the framework literally: a transformed point carries only rare
    features). ``p_systematic`` (beta) comes from the measured same-wrong-class rate
    (:func:`ift_core.theory.beta_from_same_wrong_rate`).

    Parameters left ``None`` are fitted, by least squares, to the measured *test errors* only
    (``p_d`` on the ordinary rows; then ``t_r`` over ``t_r_grid``, ``p_r`` and ``transfer`` on the
    rich rows), so disagreement, the gap and the split fraction are predictions, not fits.

    Parameters
    ----------
    sweep : SweepResult or sequence of int
        A measured sweep, or bare rarities (then ``n_train``, ``n_classes``, ``n_models``,
        ``p_d``, ``t_r``, ``p_r`` must be given, ``transfer`` defaults to 0 and
        ``p_systematic`` must be a number).
    n_train, n_classes, n_models : int, optional
        Taken from the sweep when given one.
    t_d, n_d, n_r : int
        Fixed group sizes (defaults: 10 dominant features per class, 3 per point).
    p_d, t_r, p_r, transfer : optional
        Fixed values, or None to fit.
    p_systematic : float or {"measured", "pooled"}
        A number; ``"measured"``: beta from each row's own same-wrong-class rate; ``"pooled"``:
        one beta from the mean rate over all rows.
    training : {"shared", "independent"}
        DiffInit sweeps share the training set.
    t_r_grid : sequence of int
        Candidates for ``t_r`` when it is fitted.

    Returns
    -------
    FrameworkPrediction

    Examples
    --------
    >>> pred = framework_prediction([0, 10], n_train=1000, n_classes=10, n_models=5, p_d=0.6, t_r=20,
    ...                             p_r=0.5, p_systematic=0.0)
    >>> list(pred.table["test_set"])
    ['ordinary', 'subpopulation', 'ordinary', 'subpopulation']
    >>> float(pred.table["error"].iloc[1]) > float(pred.table["error"].iloc[3])  # rarer is harder
    True
    """
    from scipy.optimize import minimize_scalar

    training = check_choice(training, "training", theory.TRAINING)
    measured = isinstance(sweep, SweepResult)
    if measured:
        tab = sweep.table
        n_train = int(sweep.meta["n_train"]) if n_train is None else n_train
        n_classes = int(sweep.meta["n_classes"]) if n_classes is None else n_classes
        n_models = int(sweep.meta["n_models"]) if n_models is None else n_models
        rates = tab["same_wrong_rate"].to_numpy(float)
        base = tab[["rarity", "test_set", "train_share"]].to_dict("records")
    else:
        rs = _check_rarities(sweep)
        missing = [n for n, v in (("n_train", n_train), ("n_classes", n_classes), ("n_models", n_models),
                                  ("p_d", p_d), ("t_r", t_r), ("p_r", p_r)) if v is None]
        if missing:
            raise ValueError(f"without a measured sweep, give {missing} (nothing to fit them to)")
        if isinstance(p_systematic, str):
            raise ValueError(f"p_systematic={p_systematic!r} needs a measured sweep; give a number")
        transfer = 0.0 if transfer is None else transfer
        n_train, n_classes = check_int(n_train, "n_train", minimum=1), check_int(n_classes, "n_classes", minimum=2)
        base = [{"rarity": r, "test_set": t, "train_share": r * n_classes / n_train} for r in rs for t in TEST_SETS]
        rates = np.full(len(base), np.nan)
    n_train = check_int(n_train, "n_train", minimum=1)
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    n_models = check_int(n_models, "n_models", minimum=2, remedy="disagreement needs pairs of models")
    for name, v in (("p_d", p_d), ("p_r", p_r), ("transfer", transfer)):
        if v is not None:
            check_real(v, name, minimum=0, maximum=1, remedy="a probability, or None to fit it")
    if max(row["train_share"] for row in base) > 1.0:
        raise ValueError(f"a rarity exceeds n_train / n_classes = {n_train / n_classes:g} per class")

    if isinstance(p_systematic, str):
        if p_systematic == "measured":
            betas = [_beta(x, n_classes) for x in rates]
        elif p_systematic == "pooled":
            pooled = float(np.nanmean(rates)) if np.isfinite(rates).any() else float("nan")
            betas = [_beta(pooled, n_classes)] * len(base)
        else:
            raise ValueError(f"p_systematic must be a number, 'measured' or 'pooled', got {p_systematic!r}")
    else:
        b = check_real(p_systematic, "p_systematic", minimum=0, maximum=1,
                       remedy="a probability, 'measured' or 'pooled'")
        betas = [b] * len(base)
    spec = [{**row, "p_systematic": beta} for row, beta in zip(base, betas)]
    fitted: list[str] = []
    common = dict(n_train=n_train, n_classes=n_classes, n_models=n_models, t_d=t_d, n_d=n_d, n_r=n_r,
                  training=training)

    if measured:
        meas = tab["error"].to_numpy(float)
        ordi = [i for i, row in enumerate(spec) if row["test_set"] == "ordinary"]
        rich = [i for i, row in enumerate(spec) if row["test_set"] == "subpopulation"]
        if p_d is None:
            def loss_d(p: float) -> float:
                pr = _predict_rows([spec[i] for i in ordi], p_d=p, t_r=t_r or 10, p_r=p_r if p_r is not None else 0.5,
                                   transfer=1.0, with_split=False, **common)
                return float(sum((row["error"] - meas[i]) ** 2 for row, i in zip(pr, ordi)))
            p_d = float(minimize_scalar(loss_d, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-5}).x)
            fitted.append("p_d")

        def rich_fit(tr: int, pr_: float) -> tuple[float, float]:
            """Loss and best transfer for (t_r, p_r) on the rich rows (transfer in closed form)."""
            rows_r = [spec[i] for i in rich]
            e_r = np.array([x["error"] for x in _predict_rows(rows_r, p_d=p_d, t_r=tr, p_r=pr_, transfer=0.0,
                                                             with_split=False, **common)])
            e_d = np.array([x["error"] for x in _predict_rows(rows_r, p_d=p_d, t_r=tr, p_r=pr_, transfer=1.0,
                                                             with_split=False, **common)])
            y = meas[rich]
            if transfer is None:
                d = e_d - e_r
                phi = float(np.clip(np.dot(y - e_r, d) / np.dot(d, d), 0.0, 1.0)) if np.dot(d, d) > 0 else 0.0
            else:
                phi = float(transfer)
            pred = phi * e_d + (1 - phi) * e_r
            return float(np.sum((pred - y) ** 2)), phi

        if t_r is None or p_r is None or transfer is None:
            t_cands = [int(t_r)] if t_r is not None else [int(t) for t in t_r_grid if t >= n_r]
            p_cands = [float(p_r)] if p_r is not None else list(np.linspace(0.0, 1.0, 21))
            best = (math.inf, None, None, None)
            for tr in t_cands:
                for pr_ in p_cands:
                    loss, phi = rich_fit(tr, pr_)
                    if loss < best[0] - 1e-15:
                        best = (loss, tr, pr_, phi)
            _, tr_best, pr_best, phi_best = best
            if p_r is None:  # refine around the grid optimum
                res = minimize_scalar(lambda x: rich_fit(tr_best, x)[0], bounds=(max(0.0, pr_best - 0.05),
                                      min(1.0, pr_best + 0.05)), method="bounded", options={"xatol": 1e-5})
                if res.fun <= best[0]:
                    pr_best = float(res.x)
                phi_best = rich_fit(tr_best, pr_best)[1]
            fitted += [n for n, v in (("t_r", t_r), ("p_r", p_r), ("transfer", transfer)) if v is None]
            t_r, p_r, transfer = tr_best, pr_best, phi_best

    rows = _predict_rows(spec, p_d=float(p_d), t_r=int(t_r), p_r=float(p_r), transfer=float(transfer), **common)
    table = pd.DataFrame(rows)[["rarity", "test_set", "train_share", "alpha_d", "p_systematic", "error",
                                "disagreement", "gap", "split_fraction"]]
    params = {"n_train": n_train, "n_classes": n_classes, "n_models": n_models, "t_d": t_d, "n_d": n_d,
              "p_d": float(p_d), "t_r": int(t_r), "n_r": n_r, "p_r": float(p_r), "transfer": float(transfer),
              "p_systematic": p_systematic if isinstance(p_systematic, str) else float(p_systematic),
              "training": training, "fitted": fitted}
    models = {int(r): _model_at(share, n_train=n_train, n_classes=n_classes, t_d=t_d, n_d=n_d, p_d=float(p_d),
                                t_r=int(t_r), n_r=n_r, p_r=float(p_r), beta=0.0, training=training)
              for r, share in {row["rarity"]: row["train_share"] for row in spec}.items()}
    return FrameworkPrediction(table=table, params=params, models=models)


def compare_with_framework(sweep: SweepResult, prediction: FrameworkPrediction, *,
                           split_tolerance: float = 0.05) -> tuple[pd.DataFrame, list[str]]:
    """Where measurement and the framework's prediction agree, row by row, and in words.

    A predicted error, disagreement or gap *agrees* when it lies inside the measured
    bootstrap interval; the gap's *sign* agrees when the prediction and the measurement are
    on the same side of 0 (a measured interval that contains 0 counts as either side). The
    split fraction agrees within its interval widened by ``split_tolerance``.

    Returns
    -------
    table : pandas.DataFrame
        ``rarity, test_set`` and for each of ``error, disagreement, gap, split_fraction``:
        ``<m>_measured, <m>_low, <m>_high, <m>_predicted, <m>_agrees``; plus
        ``gap_sign_measured`` (-1, 0 = interval contains 0, +1), ``gap_sign_predicted``,
        ``gap_sign_agrees``.
    lines : list of str
        A plain statement of agreement and disagreement.

    Examples
    --------
    >>> table, lines = compare_with_framework(res, framework_prediction(res))  # doctest: +SKIP
    >>> print("\\n".join(lines))  # doctest: +SKIP
    """
    if not isinstance(sweep, SweepResult) or not isinstance(prediction, FrameworkPrediction):
        raise ValueError("compare_with_framework needs a SweepResult and a FrameworkPrediction")
    m = sweep.table.merge(prediction.table, on=["rarity", "test_set"], suffixes=("", "_pred"))
    if len(m) != len(sweep.table):
        raise ValueError("the prediction does not cover the sweep's (rarity, test_set) rows")
    out = m[["rarity", "test_set"]].copy()
    for k in ("error", "disagreement", "gap", "split_fraction"):
        lo, hi = m[f"{k}_low"].to_numpy(), m[f"{k}_high"].to_numpy()
        pred = m[f"{k}_pred"].to_numpy()
        tol = split_tolerance if k == "split_fraction" else 0.0
        out[f"{k}_measured"], out[f"{k}_low"], out[f"{k}_high"] = m[k], lo, hi
        out[f"{k}_predicted"] = pred
        out[f"{k}_agrees"] = (pred >= lo - tol) & (pred <= hi + tol)
    meas_sign = np.where(m["gap_low"] > 0, 1, np.where(m["gap_high"] < 0, -1, 0))
    pred_sign = np.sign(m["gap_pred"].to_numpy()).astype(int)
    out["gap_sign_measured"] = meas_sign
    out["gap_sign_predicted"] = pred_sign
    out["gap_sign_agrees"] = (meas_sign == 0) | (meas_sign == pred_sign)

    p = prediction.params
    n = len(out)
    lines = [
        f"framework: t_d={p['t_d']} n_d={p['n_d']} p_d={p['p_d']:.3f} | t_r={p['t_r']} n_r={p['n_r']} "
        f"p_r={p['p_r']:.3f} | transfer={p['transfer']:.2f} | beta from same-wrong rate ({p['p_systematic']}); "
        f"fitted to errors: {', '.join(p['fitted']) or 'nothing'}",
    ]
    for k, what in (("error", "error (fitted where parameters were fitted)"), ("disagreement", "disagreement"),
                    ("gap", "gap dis - err"), ("split_fraction", "share of points some-but-not-all seeds get right")):
        ok = out[f"{k}_agrees"].to_numpy()
        worst = int(np.argmax(np.abs(out[f"{k}_predicted"] - out[f"{k}_measured"]).to_numpy()))
        lines.append(f"{what}: prediction inside the measured interval on {int(ok.sum())}/{n} rows; largest miss "
                     f"at r={out['rarity'].iloc[worst]} {out['test_set'].iloc[worst]}: measured "
                     f"{out[f'{k}_measured'].iloc[worst]:.3f}, predicted {out[f'{k}_predicted'].iloc[worst]:.3f}")
    ok_sign = out["gap_sign_agrees"].to_numpy()
    lines.append(f"sign of the gap: agrees on {int(ok_sign.sum())}/{n} rows"
                 + ("" if ok_sign.all() else "; differs at " + ", ".join(
                     f"r={r} {t}" for r, t in zip(out["rarity"][~ok_sign], out["test_set"][~ok_sign]))))
    rich = out[out["test_set"] == "subpopulation"]
    pos_meas = rich[rich["gap_sign_measured"] > 0]["rarity"].tolist()
    pos_pred = rich[rich["gap_sign_predicted"] > 0]["rarity"].tolist()
    lines.append(f"rich test set, disagreement significantly above error (the framework's rare-feature break) at "
                 f"r = {pos_meas or 'none'}; predicted above error at r = {pos_pred or 'none'}")
    return out, lines
