"""Figures for :mod:`ift_core.theory`: closed form vs simulation, Figure-4 sweeps, GDE plane, calibration.

Each function draws one figure from the tidy tables that :mod:`ift_core.theory` returns and
returns its matplotlib Figure (a single-panel function draws into ``ax`` when given one, and
returns that axes' figure), the convention of every module of :mod:`ift_core.plots`.

Examples
--------
>>> from ift_core import theory as th
>>> from ift_core.plots.theory import plot_sweeps
>>> fig = plot_sweeps(th.sweeps({"p_r": [0.1, 0.5, 0.9], "t_r": [100, 1000]}))
>>> len(fig.axes)
2
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ift_core.internal import check_bool, check_int, check_real

from ift_core.plots.style import book_figure, use_book_style

use_book_style()

__all__ = [
    "plot_closed_vs_simulation",
    "plot_sweeps",
    "plot_coupled_sweep",
    "plot_accuracy_agreement",
    "plot_vote_reliability",
    "plot_gap_map",
]

_LABELS = {
    "t_d": r"$t_d$ (dominant features per class)", "t_r": r"$t_r$ (rare features per class)",
    "n_d": r"$n_d$ (features per dominant point)", "n_r": r"$n_r$ (features per rare point)",
    "p_d": r"$p_d$ (P learn dominant)", "p_r": r"$p_r$ (P learn rare)",
    "alpha_d": r"$\alpha_d$ (share of dominant points)", "n_train": r"$N$ (training points)",
    "n_classes": r"$K$ (classes)", "p_systematic": r"$\beta$ (systematic wrong answers)",
}
_LOG_PARAMS = {"t_d", "t_r", "n_train"}


def _require(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; has {list(df.columns)}")


@book_figure
def plot_closed_vs_simulation(df: pd.DataFrame, *, ax: plt.Axes | None = None, n_se: float = 4.0) -> plt.Figure:
    """Closed form (x) against Monte Carlo (y) for every setting and metric, with ``n_se`` error bars.

    Parameters
    ----------
    df : DataFrame
        From :func:`ift_core.theory.compare_with_simulation` (columns ``metric, closed,
        simulated, se``).
    ax : Axes, optional
    n_se : float
        Half-width of the error bars in standard errors.

    Examples
    --------
    >>> from ift_core import theory as th
    >>> df = th.compare_with_simulation(th.random_models(3), n_reps=10, n_points=50, progress=False)
    >>> plot_closed_vs_simulation(df).axes[0].get_xlabel()
    'closed form'
    """
    _require(df, ["metric", "closed", "simulated", "se"], "df")
    n_se = check_real(n_se, "n_se", minimum=0, remedy="error bars are n_se standard errors wide")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    palette = dict(zip(sorted(df["metric"].unique()), sns.color_palette("deep")))
    for metric, part in df.groupby("metric"):
        ax.errorbar(part["closed"], part["simulated"], yerr=n_se * part["se"], fmt="o", ms=3.5, lw=0.8,
                    alpha=0.8, color=palette[metric], label=metric)
    lo = float(min(df["closed"].min(), df["simulated"].min()))
    hi = float(max(df["closed"].max(), df["simulated"].max()))
    pad = 0.02 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.3", lw=1, ls="--", zorder=0)
    inside = float((df["z"].abs() <= n_se).mean()) if "z" in df else float("nan")
    ax.set(xlabel="closed form", ylabel="Monte Carlo",
           title=f"{df['setting'].nunique() if 'setting' in df else len(df)} settings; "
                 f"{100 * inside:.0f}% within {n_se:g} se")
    ax.legend(frameon=False)
    return ax.figure


@book_figure
def plot_sweeps(df: pd.DataFrame, *, ncols: int = 3, show_gap: bool = False) -> plt.Figure:
    """The paper's Figure 4 (left columns): accuracy and agreement as one parameter varies.

    Parameters
    ----------
    df : DataFrame
        From :func:`ift_core.theory.sweeps` (columns ``parameter, value, accuracy, agreement``).
    ncols : int
        Panels per row.
    show_gap : bool
        Also draw ``E[dis] - E[err]`` on a twin axis.

    Examples
    --------
    >>> from ift_core import theory as th
    >>> fig = plot_sweeps(th.sweeps({"p_r": [0.1, 0.9]}), show_gap=True)
    >>> fig.axes[0].get_ylabel()
    'expected value'
    """
    _require(df, ["parameter", "value", "accuracy", "agreement"], "df")
    params = list(dict.fromkeys(df["parameter"]))
    ncols = min(check_int(ncols, "ncols", minimum=1), len(params))
    show_gap = check_bool(show_gap, "show_gap")
    nrows = math.ceil(len(params) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False)
    colors = sns.color_palette("deep")
    for ax, param in zip(axes.ravel(), params):
        part = df[df["parameter"] == param].sort_values("value")
        ax.plot(part["value"], part["accuracy"], "-o", ms=3, color=colors[0], label="accuracy")
        ax.plot(part["value"], part["agreement"], "--s", ms=3, color=colors[1], label="agreement")
        if param in _LOG_PARAMS and (part["value"] > 0).all():
            ax.set_xscale("log")
        ax.set(xlabel=_LABELS.get(param, param), ylabel="expected value")
        if show_gap and "gap" in part:
            twin = ax.twinx()
            twin.plot(part["value"], part["gap"], ":", color=colors[3], label="dis - err")
            twin.axhline(0, color=colors[3], lw=0.5)
            twin.set_ylabel("dis - err", color=colors[3])
    for ax in axes.ravel()[len(params):]:
        ax.set_visible(False)
    axes[0, 0].legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


@book_figure
def plot_coupled_sweep(df: pd.DataFrame, *, ax: plt.Axes | None = None) -> plt.Figure:
    """The paper's Figure 4 (right column): ``lead`` alone (dashed) vs ``lead`` and ``follow`` coupled.

    Draws the gap ``E[dis] - E[err]`` against the lead parameter: the coupled curve stays
    nearer zero when dominant features scale with rare ones.

    Parameters
    ----------
    df : DataFrame
        From :func:`ift_core.theory.coupled_sweep`.

    Examples
    --------
    >>> from ift_core import theory as th
    >>> fig = plot_coupled_sweep(th.coupled_sweep("t_r", "t_d", [100, 300, 1000]))
    >>> fig.axes[0].get_ylabel()
    'E[dis] - E[err]'
    """
    _require(df, ["lead", "follow", "coupled", "gap"], "df")
    lead, follow = df["lead"].iloc[0], df["follow"].iloc[0]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    colors = sns.color_palette("deep")
    for coupled, part in df.groupby("coupled"):
        part = part.sort_values(lead)
        label = f"{lead} with {follow}" if coupled else f"{lead} alone"
        ax.plot(part[lead], part["gap"], "-o" if coupled else "--s", ms=3,
                color=colors[2] if coupled else colors[3], label=label)
    ax.axhline(0, color="0.3", lw=0.8)
    if lead in _LOG_PARAMS and (df[lead] > 0).all():
        ax.set_xscale("log")
    ax.set(xlabel=_LABELS.get(lead, lead), ylabel="E[dis] - E[err]", title="coupled sweep")
    ax.legend(frameon=False, fontsize="small")
    return ax.figure


@book_figure
def plot_accuracy_agreement(df: pd.DataFrame, *, hue: str | None = None, ax: plt.Axes | None = None,
                            **scatter: Any) -> plt.Figure:
    """Accuracy (x) against agreement (y) with the GDE diagonal ``agreement = accuracy``.

    Points above the diagonal have disagreement below test error; below it, above.

    Parameters
    ----------
    df : DataFrame
        Any table with ``accuracy`` and ``agreement`` (sweeps, grids, measurements).
    hue : str, optional
        Column to colour by.
    **scatter
        Passed to :func:`seaborn.scatterplot`.

    Examples
    --------
    >>> from ift_core import theory as th
    >>> fig = plot_accuracy_agreement(th.grid(p_r=[0.1, 0.5, 0.9], t_r=[100, 1000]), hue="p_r")
    >>> fig.axes[0].get_xlabel()
    'expected accuracy'
    """
    _require(df, ["accuracy", "agreement"], "df")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    sns.scatterplot(data=df, x="accuracy", y="agreement", hue=hue, ax=ax, s=scatter.pop("s", 25), **scatter)
    lo = float(min(df["accuracy"].min(), df["agreement"].min()))
    hi = float(max(df["accuracy"].max(), df["agreement"].max()))
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.3", ls="--", lw=1, label="GDE", zorder=0)
    ax.set(xlabel="expected accuracy", ylabel="expected agreement", title="accuracy vs agreement")
    ax.set_aspect("equal", adjustable="datalim")
    return ax.figure


@book_figure
def plot_vote_reliability(table: pd.DataFrame, *, empirical: pd.DataFrame | None = None,
                          ax: plt.Axes | None = None, label: str | None = None) -> plt.Figure:
    """Class-aggregated reliability diagram of the vote ensemble (marker area = probability mass).

    Parameters
    ----------
    table : DataFrame
        From :func:`ift_core.theory.vote_calibration` (exact).
    empirical : DataFrame, optional
        From :func:`ift_core.theory.empirical_vote_calibration`, drawn as crosses.
    label : str, optional
        Legend label of the exact curve.

    Examples
    --------
    >>> from ift_core import theory as th
    >>> fig = plot_vote_reliability(th.vote_calibration(th.FeatureModel(), n_models=5))
    >>> fig.axes[0].get_xlabel()
    'vote share of class k'
    """
    _require(table, ["confidence", "mass", "accuracy", "cace_term"], "table")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    colors = sns.color_palette("deep")
    cace = float(table["cace_term"].sum())
    size = 20 + 400 * table["mass"] / table["mass"].max()
    ax.plot(table["confidence"], table["accuracy"], "-", color=colors[0], lw=1)
    ax.scatter(table["confidence"], table["accuracy"], s=size, color=colors[0], alpha=0.6,
               label=(label or "exact") + f" (CACE {cace:.3f})")
    if empirical is not None:
        _require(empirical, ["confidence", "accuracy", "cace_term"], "empirical")
        ax.plot(empirical["confidence"], empirical["accuracy"], "x", color=colors[3], ms=8,
                label=f"simulated (CACE {float(empirical['cace_term'].sum()):.3f})")
    ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1, zorder=0)
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="vote share of class k",
           ylabel="P(Y = k | vote share)", title="vote-ensemble calibration")
    ax.legend(frameon=False, fontsize="small", loc="upper left")
    return ax.figure


@book_figure
def plot_gap_map(df: pd.DataFrame, x: str, y: str, *, ax: plt.Axes | None = None, value: str = "gap") -> plt.Figure:
    """Heat map of ``E[dis] - E[err]`` over two parameters, with the GDE contour (gap = 0).

    Parameters
    ----------
    df : DataFrame
        From :func:`ift_core.theory.grid` over (at least) ``x`` and ``y``.
    x, y : str
        Parameter columns for the axes.
    value : str
        Column to colour (default ``gap``); a diverging palette centred on 0.

    Examples
    --------
    >>> from ift_core import theory as th
    >>> fig = plot_gap_map(th.grid(p_r=[0.1, 0.5, 0.9], p_systematic=[0.0, 0.5, 1.0]), "p_r", "p_systematic")
    >>> fig.axes[0].get_xlabel()
    'p_r'
    """
    _require(df, [x, y, value], "df")
    table = df.pivot_table(index=y, columns=x, values=value, aggfunc="mean").sort_index()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.4))
    lim = float(np.nanmax(np.abs(table.to_numpy()))) or 1.0
    X, Y = np.meshgrid(table.columns.to_numpy(float), table.index.to_numpy(float))
    mesh = ax.pcolormesh(X, Y, table.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
    plt.colorbar(mesh, ax=ax, label="E[dis] - E[err]" if value == "gap" else value)
    Z = table.to_numpy()
    if Z.shape[0] > 1 and Z.shape[1] > 1 and np.nanmin(Z) < 0 < np.nanmax(Z):
        ax.contour(X, Y, Z, levels=[0.0], colors="k", linewidths=1.2)
    ax.set(xlabel=x, ylabel=y, title="GDE holds on the black curve")
    return ax.figure
