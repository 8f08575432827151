"""Figures for :mod:`ift_core.gde`: error against disagreement, vote-ensemble calibration, estimators."""
from __future__ import annotations

from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ift_core import gde
from ift_core.internal import check_choice

from ift_core.plots.style import book_figure, use_book_style

use_book_style()

__all__ = ["error_vs_disagreement", "vote_reliability_diagram", "estimator_comparison"]


def _as_sets(sets: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if isinstance(sets, tuple) and len(sets) == 2:
        return {"test": sets}
    if isinstance(sets, Mapping) and sets:
        return dict(sets)
    raise ValueError("sets must be a (preds, labels) tuple or a non-empty mapping name -> (preds, labels)")


def _axes(ax: plt.Axes | None, size: tuple[float, float] = (5.0, 4.5)) -> tuple[Figure, plt.Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        return fig, ax
    return ax.figure, ax


@book_figure
def error_vs_disagreement(
    sets: Any,
    *,
    per: str = "pair",
    ax: plt.Axes | None = None,
) -> Figure:
    """Test error against disagreement, with the diagonal where GDE holds.

    Parameters
    ----------
    sets : (preds, labels) or mapping name -> (preds, labels)
        Predictions (M, N) of an ensemble on one or several test sets (e.g. shifts).
    per : {"pair", "ensemble"}
        ``"pair"``: one point per pair of models (x: their disagreement, y: the mean of their
        two test errors). ``"ensemble"``: one point per set (x: mean disagreement, y: mean
        error, with bars spanning the single models' errors).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> fig = error_vs_disagreement((rng.integers(0, 3, (4, 50)), rng.integers(0, 3, 50)))
    """
    per = check_choice(per, "per", ("pair", "ensemble"))
    data = _as_sets(sets)
    fig, ax = _axes(ax)
    # Many sets (a shift at several severities): one colour per family ("blur" for "blur-3"),
    # the severity written beside each point, so the legend stays short and readable.
    families = {name: _family(name, len(data)) for name in data}
    names = list(dict.fromkeys(family for family, _ in families.values()))
    palette = dict(zip(names, sns.color_palette("colorblind" if len(names) <= 10 else "husl", len(names))))
    top = 0.0
    labelled: set[str] = set()
    for name, (preds, labels) in data.items():
        family, level = families[name]
        color = palette[family]
        label = None if family in labelled else family
        labelled.add(family)
        errors = gde.test_error(preds, labels, per_model=True)
        if per == "pair":
            pw = gde.pairwise_disagreement(preds)
            i, j = np.triu_indices(len(errors), 1)
            x, y = pw[i, j], (errors[i] + errors[j]) / 2
            ax.scatter(x, y, s=14, alpha=0.6, color=color, label=label)
        else:
            x, y = np.array([gde.disagreement(preds)]), np.array([errors.mean()])
            ax.errorbar(x, y, yerr=[[y[0] - errors.min()], [errors.max() - y[0]]], fmt="none", color=color, alpha=0.6)
            ax.scatter(x, y, s=40, color=color, label=label, zorder=3)
            if level:
                ax.annotate(level, (x[0], y[0]), xytext=(4, -10), textcoords="offset points", fontsize=9,
                            color=color)
        top = max(top, float(np.max(x)), float(np.max(errors)))
    lim = top * 1.08 + 1e-3
    ax.plot([0, lim], [0, lim], ls="--", color="0.4", lw=1, label="GDE: error = disagreement")
    ax.set(xlim=(0, lim), ylim=(0, lim), xlabel="disagreement (no labels needed)", ylabel="test error")
    ax.set_aspect("equal")
    title = "test set (number: severity)" if any(level for _, level in families.values()) and per == "ensemble" \
        else None
    ax.legend(frameon=False, title=title, loc="best")
    return fig


def _family(name: str, n_sets: int) -> tuple[str, str]:
    """``("gaussian noise", "3")`` for ``"gaussian_noise-3"`` when there are many sets, else ``(name, "")``."""
    words = str(name).replace("_", " ")
    head, _, tail = words.rpartition("-")
    if n_sets > 6 and head and tail.isdigit():
        return head, tail
    return words, ""


@book_figure
def vote_reliability_diagram(
    preds: Any,
    labels: Any,
    n_classes: int,
    *,
    ax: plt.Axes | None = None,
) -> Figure:
    """Class-aggregated reliability diagram of the vote ensemble (the calibration behind GDE).

    Bars: for each vote share ``q = j/M``, ``sum_k P(Y=k, h~_k=q) / sum_k P(h~_k=q)``; the
    diagonal is perfect class-aggregated calibration. Bar labels give the mass
    ``sum_k P(h~_k = q)``; the title gives :func:`ift_core.gde.cace`.

    Parameters
    ----------
    preds : array of int, shape (M, N)
    labels : array of int, shape (N,)
    n_classes : int
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> fig = vote_reliability_diagram(rng.integers(0, 3, (4, 50)), rng.integers(0, 3, 50), 3)
    """
    table = gde.class_aggregated_calibration(preds, labels, n_classes)  # validates the arrays
    m = np.atleast_2d(np.asarray(preds)).shape[0]
    fig, ax = _axes(ax)
    bars = ax.bar(table["confidence"], table["accuracy"], width=0.8 / m, color=sns.color_palette("colorblind")[0],
                  alpha=0.8, label="observed")
    ax.bar_label(bars, labels=[f"{w:.2f}" for w in table["mass"]], fontsize=9, padding=2)
    ax.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1, label="calibrated")
    ax.set(xlim=(-0.6 / m, 1 + 0.6 / m), ylim=(0, 1.1), xlabel="vote share q (share of models predicting class k)",
           ylabel="P(Y = k | vote share q), aggregated over k")
    ax.set_title(f"vote ensemble of {m} models, CACE = {gde.cace(preds, labels, n_classes):.3f}")
    ax.legend(frameon=False, loc="upper left")
    return fig


@book_figure
def estimator_comparison(
    df: pd.DataFrame,
    *,
    value: str = "abs_error",
    ax: plt.Axes | None = None,
) -> Figure:
    """Bar chart of estimator error per method and target, from :func:`ift_core.gde.compare_estimators`.

    Parameters
    ----------
    df : DataFrame
        Columns ``target``, ``method`` and ``value``.
    value : str, default "abs_error"
        Column to plot (``"abs_error"`` or ``"signed_error"``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"target": ["a", "a"], "method": ["AC", "GDE"], "abs_error": [0.1, 0.05]})
    >>> fig = estimator_comparison(df)
    """
    missing = {"target", "method", value} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}; pass the output of gde.compare_estimators")
    n_targets = df["target"].nunique()
    fig, ax = _axes(ax, size=(max(5.0, 1.2 * n_targets + 2), 4.0))
    sns.barplot(data=df, x="target", y=value, hue="method", ax=ax, palette="colorblind")
    label = {"abs_error": "|estimate - true error|", "signed_error": "estimate - true error"}.get(value, value)
    ax.set(xlabel="test set", ylabel=label)
    if value == "signed_error":
        ax.axhline(0, color="0.3", lw=0.8)
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(title="method", frameon=False)
    return fig
