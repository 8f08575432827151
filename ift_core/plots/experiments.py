"""Figures for :mod:`ift_core.experiments`: the sub-population sweep against the framework."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ift_core.plots.style import book_figure, use_book_style

use_book_style()

__all__ = [
    "sweep_curves",
    "gap_vs_rarity",
    "sweep_diagnostics",
    "measured_vs_predicted",
    "construction_examples_figure",
    "gap_identity_by_family",
]

_TEST_SETS = ("ordinary", "subpopulation")
_TITLES = {"ordinary": "ordinary test set", "subpopulation": "rich test set (sub-population)"}


def _table(result: Any) -> pd.DataFrame:
    table = getattr(result, "table", result)
    if not isinstance(table, pd.DataFrame) or not {"rarity", "test_set"} <= set(table.columns):
        raise ValueError("expected a SweepResult or its table (columns rarity, test_set, ...)")
    return table


def _axes(ax: plt.Axes | None) -> tuple[Figure, plt.Axes]:
    if ax is None:
        return plt.subplots(figsize=(5.6, 4.2))
    return ax.figure, ax


def _rarity_axis(ax: plt.Axes, rarities: Sequence[int]) -> None:
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xticks(list(rarities))
    ax.set_xticklabels([str(int(r)) for r in rarities])
    ax.set_xlabel("sub-population examples per class in training (r)")


def _with_ci(ax: plt.Axes, df: pd.DataFrame, col: str, *, color: Any, label: str, ls: str = "-",
             marker: str = "o") -> None:
    x = df["rarity"].to_numpy(float)
    y = df[col].to_numpy(float)
    if f"{col}_low" in df and f"{col}_high" in df:
        lo, hi = df[f"{col}_low"].to_numpy(float), df[f"{col}_high"].to_numpy(float)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], color=color, ls=ls, marker=marker, ms=5, capsize=3, label=label)
    else:
        ax.plot(x, y, color=color, ls=ls, marker=marker, ms=5, label=label)


@book_figure
def sweep_curves(result: Any, *, test_sets: Sequence[str] = _TEST_SETS, counterfactual: bool = True) -> Figure:
    """Test error and disagreement against rarity, one panel per test set, with bootstrap intervals.

    Parameters
    ----------
    result : SweepResult or its table
    test_sets : sequence of str
    counterfactual : bool
        Also draw the disagreement the same right/wrong pattern would give with random wrong
        answers (dotted).

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> fig = sweep_curves(res)  # doctest: +SKIP
    """
    table = _table(result)
    fig, axes = plt.subplots(1, len(test_sets), figsize=(5.2 * len(test_sets), 4.2), squeeze=False)
    c = sns.color_palette("colorblind", 3)
    rarities = sorted(table["rarity"].unique())
    for ax, name in zip(axes[0], test_sets):
        df = table[table["test_set"] == name].sort_values("rarity")
        if df.empty:
            raise ValueError(f"no rows for test_set={name!r}")
        _with_ci(ax, df, "error", color=c[0], label="test error")
        _with_ci(ax, df, "disagreement", color=c[1], label="disagreement", marker="s")
        if counterfactual and "counterfactual_disagreement" in df:
            ax.plot(df["rarity"], df["counterfactual_disagreement"], color=c[2], ls=":", marker="^", ms=5,
                    label="disagreement if wrong answers were random")
        _rarity_axis(ax, rarities)
        ax.set(ylabel="rate", title=_TITLES.get(name, name), ylim=(0, None))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@book_figure
def gap_vs_rarity(results: Any, *, test_set: str = "subpopulation", ax: plt.Axes | None = None) -> Figure:
    """The GDE gap (disagreement - error) on one test set against rarity, for one or more constructions.

    Parameters
    ----------
    results : SweepResult, its table, or a mapping name -> SweepResult
    test_set : str
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> fig = gap_vs_rarity({"rotate90": res})  # doctest: +SKIP
    """
    data = dict(results) if isinstance(results, Mapping) else {getattr(results, "transform", "sweep"): results}
    fig, ax = _axes(ax)
    colors = sns.color_palette("colorblind", max(len(data), 1))
    rarities: set[int] = set()
    for color, (name, res) in zip(colors, data.items()):
        df = _table(res)
        df = df[df["test_set"] == test_set].sort_values("rarity")
        rarities |= set(int(r) for r in df["rarity"])
        _with_ci(ax, df, "gap", color=color, label=f"{name}: measured")
        if "counterfactual_disagreement" in df:
            ax.plot(df["rarity"], df["counterfactual_disagreement"] - df["error"], color=color, ls=":", marker="^",
                    ms=5, label=f"{name}: random wrong answers")
    ax.axhline(0.0, color="0.4", lw=1, ls="--")
    _rarity_axis(ax, sorted(rarities))
    ax.set(ylabel="disagreement - test error", title=f"GDE gap, {_TITLES.get(test_set, test_set)}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@book_figure
def sweep_diagnostics(result: Any, *, ax: plt.Axes | None = None) -> Figure:
    """Why the gap has its sign: split points, same-wrong-class rate and the tensor's seed count.

    On the rich test set, against rarity: the share of points some but not all seeds get
    right, P(same wrong class | both wrong) (with chance ``1/(K-1)``) and, if present, the
    share of sub-population features that only some seeds hold.

    Examples
    --------
    >>> fig = sweep_diagnostics(res)  # doctest: +SKIP
    """
    table = _table(result)
    df = table[table["test_set"] == "subpopulation"].sort_values("rarity")
    if df.empty:
        raise ValueError("no rows for the rich test set (test_set='subpopulation')")
    fig, ax = _axes(ax)
    c = sns.color_palette("colorblind", 4)
    _with_ci(ax, df, "split_fraction", color=c[0], label="points some-but-not-all seeds get right")
    ax.plot(df["rarity"], df["same_wrong_rate"], color=c[1], marker="s", ms=5,
            label="P(same wrong class | both wrong)")
    meta = getattr(result, "meta", {})
    if "n_classes" in meta:
        ax.axhline(1.0 / (meta["n_classes"] - 1), color=c[1], ls=":", lw=1, label="same wrong class by chance")
    if "tensor_sub_features_some_seeds" in df and df["tensor_sub_features_some_seeds"].notna().any():
        ax.plot(df["rarity"], df["tensor_sub_features_some_seeds"], color=c[2], marker="D", ms=5, ls="--",
                label="tensor: sub-population features held by only some seeds")
    _rarity_axis(ax, sorted(int(r) for r in df["rarity"]))
    ax.set(ylabel="share", ylim=(0, 1.05), title="rich test set: how the seeds split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@book_figure
def measured_vs_predicted(comparison: pd.DataFrame, *, metrics: Sequence[str] = ("error", "disagreement"),
                          test_sets: Sequence[str] = _TEST_SETS) -> Figure:
    """Measured (with intervals, solid) against the framework's prediction (dashed), per test set.

    Parameters
    ----------
    comparison : DataFrame
        The table of :func:`ift_core.experiments.compare_with_framework`.
    metrics : sequence of {"error", "disagreement", "gap", "split_fraction"}
    test_sets : sequence of str

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> fig = measured_vs_predicted(table)  # doctest: +SKIP
    """
    need = {"rarity", "test_set"} | {f"{m}_{s}" for m in metrics for s in ("measured", "low", "high", "predicted")}
    if not isinstance(comparison, pd.DataFrame) or not need <= set(comparison.columns):
        missing = sorted(need - set(getattr(comparison, "columns", [])))
        raise ValueError(f"comparison must be compare_with_framework's table; missing columns {missing}")
    fig, axes = plt.subplots(1, len(test_sets), figsize=(5.2 * len(test_sets), 4.2), squeeze=False)
    colors = sns.color_palette("colorblind", len(metrics))
    rarities = sorted(comparison["rarity"].unique())
    for ax, name in zip(axes[0], test_sets):
        df = comparison[comparison["test_set"] == name].sort_values("rarity")
        for color, m in zip(colors, metrics):
            x = df["rarity"].to_numpy(float)
            y = df[f"{m}_measured"].to_numpy(float)
            ax.errorbar(x, y, yerr=[y - df[f"{m}_low"], df[f"{m}_high"] - y], color=color, marker="o", ms=5,
                        capsize=3, label=f"{m}: measured")
            ax.plot(x, df[f"{m}_predicted"], color=color, ls="--", marker="x", ms=6, label=f"{m}: framework")
        if "gap" in metrics:
            ax.axhline(0.0, color="0.5", lw=1)
        _rarity_axis(ax, rarities)
        ax.set(ylabel="rate", title=_TITLES.get(name, name))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@book_figure
def construction_examples_figure(examples: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
                                 n: int | None = None) -> Figure:
    """Example images: one row of ordinary images, then one row per construction.

    Parameters
    ----------
    examples : dict or list of dicts
        From :func:`ift_core.data.subpopulation_examples`; several dicts (one per construction) share
        the ordinary row of the first.
    n : int, optional
        Columns to show (default: all classes).

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> from ift_core.data import load_split
    >>> from ift_core.data import subpopulation_examples
    >>> fig = construction_examples_figure(subpopulation_examples(load_split("digits", "test"), n=3))
    """
    exs = [examples] if isinstance(examples, Mapping) else list(examples)
    if not exs or not all(isinstance(e, Mapping) and {"ordinary", "subpopulation"} <= set(e) for e in exs):
        raise ValueError("examples must be subpopulation_examples(...) dicts (keys 'ordinary', 'subpopulation')")
    cols = len(exs[0]["ordinary"]) if n is None else int(n)
    if cols < 1 or cols > len(exs[0]["ordinary"]):
        raise ValueError(f"n={n} must be in 1..{len(exs[0]['ordinary'])}")
    rows = [("ordinary", exs[0]["ordinary"])] + [(e.get("transform", "sub-population"), e["subpopulation"]) for e in exs]
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.2 * cols + 1.2, 1.3 * len(rows)), squeeze=False)
    names = exs[0].get("class_names", [""] * cols)
    for i, (label, imgs) in enumerate(rows):
        for j in range(cols):
            ax = axes[i, j]
            img = np.asarray(imgs[j])
            if img.shape[-1] == 1:
                ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(np.clip(img, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(str(names[j])[:12], fontsize=8)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


def _family_rows(results: Any, test_set: str) -> dict[str, pd.DataFrame]:
    data = dict(results) if isinstance(results, Mapping) else {getattr(results, "transform", "sweep"): results}
    if not data:
        raise ValueError("results must name at least one sweep")
    out = {}
    for name, res in data.items():
        df = _table(res)
        out[str(name)] = df[df["test_set"] == test_set].sort_values("rarity")
    return out


@book_figure
def gap_identity_by_family(results: Any, *, test_set: str = "subpopulation", n_classes: int = 10) -> Figure:
    """Both families on the same axes: the gap with two-level intervals, and the identity behind its sign.

    Left: disagreement - error against rarity, with the intervals over seeds and points
    (``gap_low2``/``gap_high2`` when the table has them, else those over points). Middle: B =
    P(two seeds both wrong) (solid) against the break-even ``err / (1 + s)`` (dashed), since
    ``dis - err = err - (1 + s) B`` exactly: disagreement exceeds error where the solid line lies
    below the dashed one. Right: s = P(same wrong class | both wrong), chance ``1/(K-1)`` dotted.

    Parameters
    ----------
    results : mapping name -> SweepResult (or its table)
        One sweep per family (or construction).
    test_set : str
    n_classes : int
        For the chance line of s, ``1 / (n_classes - 1)``.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> fig = gap_identity_by_family({"rotate90": res_shape, "texture": res_tex})  # doctest: +SKIP
    """
    rows = _family_rows(results, test_set)
    fig, axes = plt.subplots(1, 3, figsize=(14.5, 4.2))
    colors = sns.color_palette("colorblind", len(rows))
    rarities: set[int] = set()
    for color, (name, df) in zip(colors, rows.items()):
        rarities |= set(int(r) for r in df["rarity"])
        x, gap = df["rarity"].to_numpy(float), df["gap"].to_numpy(float)
        lo_col, hi_col = ("gap_low2", "gap_high2") if "gap_low2" in df else ("gap_low", "gap_high")
        if lo_col in df:
            lo, hi = df[lo_col].to_numpy(float), df[hi_col].to_numpy(float)
            axes[0].errorbar(x, gap, yerr=[gap - lo, hi - gap], color=color, marker="o", ms=5, capsize=3, label=name)
        else:
            axes[0].plot(x, gap, color=color, marker="o", ms=5, label=name)
        if {"both_wrong", "same_wrong"} <= set(df.columns):
            axes[1].plot(x, df["both_wrong"], color=color, marker="o", ms=5, label=f"{name}: B")
            axes[1].plot(x, df["error"] / (1 + df["same_wrong"]), color=color, ls="--", marker="s", ms=4,
                         label=f"{name}: err / (1 + s)")
            axes[2].plot(x, df["same_wrong"], color=color, marker="o", ms=5, label=name)
    axes[0].axhline(0.0, color="0.4", lw=1, ls="--")
    axes[0].set(ylabel="disagreement - test error", title="the gap (intervals over seeds and points)")
    axes[1].set(ylabel="probability", title="B against the break-even err / (1 + s)")
    axes[2].set(ylabel="P(same wrong class | both wrong)", title="s: do the seeds share the wrong answer?",
                ylim=(0, 1))
    if n_classes > 2:
        axes[2].axhline(1 / (n_classes - 1), color="0.4", lw=1, ls=":",
                        label=f"random wrong answers (1/{n_classes - 1})")
    for ax in axes:
        _rarity_axis(ax, sorted(rarities))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
