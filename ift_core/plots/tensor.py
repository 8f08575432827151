"""Figures for :mod:`ift_core.tensor` and :mod:`ift_core.observations`.

One function per figure; each returns the matplotlib Figure and takes ``ax=None`` where it is
a single panel.
"""
from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ift_core.internal import check_int
from ift_core.observations import Observation
from ift_core.tensor import InteractionTensor, ModelComponents

from ift_core.plots.style import book_figure, use_book_style

use_book_style()

__all__ = [
    "correlation_matrix",
    "correlation_histogram",
    "explained_variance",
    "cluster_structure",
    "subspace_correlations",
    "frequency_histogram",
    "features_vs_confidence",
    "feature_sharing",
    "overlap_vs_agreement",
    "threshold_sweep",
]


def _axes(ax: plt.Axes | None, size: tuple[float, float] = (5.5, 4.5)) -> tuple[Figure, plt.Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax


def _observation(o: Any, name: str) -> Observation:
    if not isinstance(o, Observation) or o.name != name:
        raise ValueError(f"expected the Observation returned by the {name} function, got {o!r:.60}")
    return o


_KIND_ORDER = ["rare", "dominant"]
_KIND_PALETTE = {"rare": "tab:orange", "dominant": "tab:blue"}


def _with_kind(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``kind`` column ("dominant"/"rare") from its ``dominant`` column."""
    return table.assign(kind=lambda d: np.where(d["dominant"], "dominant", "rare"))


def _rho_text(o: Observation) -> str:
    return f"{o.statistic:.3f} [{o.ci[0]:.3f}, {o.ci[1]:.3f}]"


@book_figure
def correlation_matrix(corr: np.ndarray, n_models: int, *, max_models: int | None = 6,
                       max_components: int | None = None, ax: plt.Axes | None = None) -> Figure:
    """Heatmap of |C| between candidate features, with lines between models' blocks.

    Parameters
    ----------
    corr : ndarray (M*K, M*K)
        From :func:`ift_core.tensor.component_correlations`.
    n_models : int
    max_models, max_components : int, optional
        Show only the first models / components of each (the full matrix is unreadable).
    ax : matplotlib Axes, optional

    Examples
    --------
    >>> import numpy as np
    >>> fig = correlation_matrix(np.eye(6), 2)
    """
    n_models = check_int(n_models, "n_models", minimum=1)
    c = np.abs(np.asarray(corr, dtype=np.float64))
    mk = c.shape[0]
    if c.ndim != 2 or c.shape[1] != mk or mk % n_models:
        raise ValueError(f"corr must be square with a multiple of n_models={n_models} rows, got {c.shape}")
    k = mk // n_models
    mm = n_models if max_models is None else min(n_models, max_models)
    kk = k if max_components is None else min(k, max_components)
    idx = np.concatenate([m * k + np.arange(kk) for m in range(mm)])
    fig, ax = _axes(ax, (6.5, 5.5))
    sns.heatmap(c[np.ix_(idx, idx)], ax=ax, cmap="rocket_r", vmin=0, vmax=1, square=True,
                xticklabels=False, yticklabels=False, cbar_kws={"label": "|correlation|"})
    for m in range(1, mm):
        ax.axhline(m * kk, color="tab:blue", lw=0.8)
        ax.axvline(m * kk, color="tab:blue", lw=0.8)
    ticks = (np.arange(mm) + 0.5) * kk
    ax.set_xticks(ticks, [f"model {m}" for m in range(mm)], rotation=90, fontsize=8)
    ax.set_yticks(ticks, [f"model {m}" for m in range(mm)], fontsize=8)
    ax.set_title(f"|C| between principal components ({mm} models x {kk} components)")
    return fig


@book_figure
def correlation_histogram(corr: np.ndarray, n_models: int, *, threshold: float | None = None,
                          ax: plt.Axes | None = None) -> Figure:
    """Histogram (log count) of |C| over cross-model pairs, with gamma_corr marked.

    Examples
    --------
    >>> import numpy as np
    >>> fig = correlation_histogram(np.eye(6), 2, threshold=0.5)
    """
    c = np.abs(np.asarray(corr))
    mk = c.shape[0]
    n_models = check_int(n_models, "n_models", minimum=2)
    if mk % n_models:
        raise ValueError(f"need at least two models dividing {mk} rows, got n_models={n_models}")
    own = np.repeat(np.arange(n_models), mk // n_models)
    vals = c[own[:, None] < own[None, :]]
    fig, ax = _axes(ax)
    # ax.hist with log=True starts its bars below 1; histplot with a log y axis draws none.
    ax.hist(vals, bins=60, range=(0.0, 1.0), log=True, color="0.55", edgecolor="white", linewidth=0.3,
            label="pairs of components of different models")
    if threshold is not None:
        ax.axvline(threshold, color="#d55e00", ls="--", label=rf"$\gamma_{{\rm corr}}$ = {threshold:.3f}")
    ax.legend(loc="upper right")
    ax.set(xlabel="|correlation| between components of different models", ylabel="pairs (log scale)",
           title="Cross-model correlations", xlim=(0, 1))
    return fig


@book_figure
def explained_variance(components: ModelComponents | InteractionTensor, *, ax: plt.Axes | None = None) -> Figure:
    """Explained-variance ratio per component, one line per model.

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import principal_components
    >>> pc = principal_components(np.random.default_rng(0).standard_normal((2, 50, 6)), n_components=3,
    ...                           progress=False)
    >>> fig = explained_variance(pc)
    """
    r = np.asarray(components.explained_variance_ratio)
    df = pd.DataFrame({"model": np.repeat(np.arange(r.shape[0]), r.shape[1]),
                       "component": np.tile(np.arange(r.shape[1]), r.shape[0]), "ratio": r.ravel()})
    fig, ax = _axes(ax)
    sns.lineplot(df, x="component", y="ratio", units="model", estimator=None, alpha=0.4, lw=0.8, ax=ax)
    sns.lineplot(df, x="component", y="ratio", color="black", errorbar=None, ax=ax, label="mean over models")
    ax.set(yscale="log", xlabel="principal component k", ylabel="explained variance ratio",
           title="Per-model PCA spectrum")
    return fig


@book_figure
def cluster_structure(tensor: InteractionTensor, *, max_features: int | None = 200,
                      ax: plt.Axes | None = None) -> Figure:
    """Which model has which feature: the (M x T) model-feature matrix.

    Features are sorted by the number of models that have them (shared on the left,
    singletons on the right); cells are coloured by the model component's index, so that
    shared features made of top components show as dark columns.

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> it = build_interaction_tensor(np.random.default_rng(0).standard_normal((3, 100, 6)),
    ...                               n_components=3, corr_threshold=0.3, progress=False)
    >>> fig = cluster_structure(it)
    """
    it = tensor
    comp = np.full((it.n_models, it.n_features), np.nan)
    for m in range(it.n_models):
        # Where a model has several components in one feature, show its leading one.
        for k in range(it.n_components - 1, -1, -1):
            comp[m, it.assignments[m, k]] = k
    order = np.lexsort((np.arange(it.n_features), -it.models_per_feature()))
    if max_features is not None:
        order = order[:max_features]
    fig, ax = _axes(ax, (9, max(2.5, 0.25 * it.n_models + 1.5)))
    sns.heatmap(comp[:, order], ax=ax, cmap="viridis", cbar_kws={"label": "component index k"},
                xticklabels=False, yticklabels=[f"{m}" for m in range(it.n_models)])
    ax.set(xlabel=f"feature (sorted by models sharing it; {len(order)} of {it.n_features} shown)",
           ylabel="model", title="Cluster structure: blank = model lacks the feature")
    return fig


@book_figure
def subspace_correlations(canonical: np.ndarray, *, best_single: np.ndarray | None = None,
                          ax: plt.Axes | None = None) -> Figure:
    """Canonical correlations between models' top-K subspaces, by index (mean and spread over pairs).

    Parameters
    ----------
    canonical : ndarray (M, M, K)
        From :func:`ift_core.tensor.canonical_correlations`.
    best_single : ndarray (M, K), optional
        For comparison: each component's best |correlation| with any single component of
        another model (:func:`ift_core.tensor.best_match`), drawn sorted in descending order.

    Examples
    --------
    >>> import numpy as np
    >>> fig = subspace_correlations(np.ones((3, 3, 4)))
    """
    cc = np.asarray(canonical)
    mm, _, k = cc.shape
    i, j = np.triu_indices(mm, 1)
    df = pd.DataFrame({"index": np.tile(np.arange(k), i.size), "correlation": cc[i, j].ravel()})
    fig, ax = _axes(ax)
    sns.lineplot(df, x="index", y="correlation", errorbar=("pi", 90), ax=ax, label="canonical (subspaces)")
    if best_single is not None:
        b = -np.sort(-np.asarray(best_single), axis=1)
        dfb = pd.DataFrame({"index": np.tile(np.arange(b.shape[1]), b.shape[0]), "correlation": b.ravel()})
        sns.lineplot(dfb, x="index", y="correlation", errorbar=("pi", 90), ax=ax,
                     label="best single-component match (sorted)")
    ax.set(ylim=(0, 1.02), xlabel="index (descending)", ylabel="correlation",
           title="Do the models' top-K subspaces overlap?")
    return fig


@book_figure
def frequency_histogram(o1: Observation, *, ax: plt.Axes | None = None) -> Figure:
    """O1: histogram of log10 feature frequency, dominant and rare coloured, split marked.

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> from ift_core.observations import o1_long_tail
    >>> it = build_interaction_tensor(np.random.default_rng(0).standard_normal((3, 100, 6)),
    ...                               n_components=3, corr_threshold=0.3, progress=False)
    >>> fig = frequency_histogram(o1_long_tail(it))
    """
    o = _observation(o1, "O1")
    df = _with_kind(o.table[o.table["frequency"] > 0])
    fig, ax = _axes(ax)
    sns.histplot(df, x="log10_frequency", hue="kind", hue_order=_KIND_ORDER, bins=30, ax=ax,
                 multiple="stack", palette=_KIND_PALETTE)
    thr = o.stats["split_threshold"]
    if np.isfinite(thr) and thr > 0:
        ax.axvline(np.log10(thr), color="black", ls="--", lw=1)
        ax.text(np.log10(thr), ax.get_ylim()[1] * 0.95, f" split: {thr:.0f} points", va="top", fontsize=8)
    st = o.stats
    modes = "" if not np.isfinite(st.get("n_modes", np.nan)) else f", {int(st['n_modes'])} mode(s)"
    ax.set(xlabel="log10(number of points in which the feature occurs)", ylabel="features",
           title=f"O1: skewness {o.statistic:.2f}; {st['n_dominant']} dominant of {st['n_features']} "
                 f"({st.get('split_rule', '')}{modes})")
    return fig


@book_figure
def features_vs_confidence(o2: Observation, *, ax: plt.Axes | None = None) -> Figure:
    """O2: mean features per point in confidence bins (with SEM), Spearman rho in the title.

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> from ift_core.observations import o2_features_vs_confidence
    >>> rng = np.random.default_rng(0)
    >>> it = build_interaction_tensor(rng.standard_normal((3, 100, 6)), n_components=3,
    ...                               corr_threshold=0.3, progress=False)
    >>> o = o2_features_vs_confidence(it, rng.dirichlet(np.ones(3), (3, 100)), rng.integers(0, 3, 100))
    >>> fig = features_vs_confidence(o)
    """
    o = _observation(o2, "O2")
    bins = o.tables["bins"]
    fig, ax = _axes(ax)
    sns.scatterplot(o.table, x="confidence", y="features", ax=ax, alpha=0.08, s=8, color="tab:gray",
                    edgecolor=None)
    ax.errorbar(bins["confidence"], bins["features"], yerr=bins["features_sem"], color="tab:red",
                marker="o", lw=1.5, label="mean per confidence decile")
    ax.legend(loc="best")
    ax.set(xlabel="ensemble confidence (mean probability of the true class)", ylabel="features per point",
           title=f"O2: Spearman rho = {_rho_text(o)}")
    return fig


@book_figure
def feature_sharing(o3: Observation) -> Figure:
    """O3: models per feature (dominant vs rare), features per model, and pairwise overlap.

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> from ift_core.observations import o3_feature_sharing
    >>> it = build_interaction_tensor(np.random.default_rng(0).standard_normal((3, 100, 6)),
    ...                               n_components=3, corr_threshold=0.3, progress=False)
    >>> fig = feature_sharing(o3_feature_sharing(it))
    """
    o = _observation(o3, "O3")
    fig, axes = plt.subplot_mosaic([["share", "overlap"], ["models", "models"]], figsize=(9, 7.6),
                                   layout="constrained", height_ratios=[1.15, 1])
    df = _with_kind(o.table)
    n_models = len(o.tables["models"])
    sns.histplot(df, x="n_models", hue="kind", hue_order=_KIND_ORDER, multiple="dodge", shrink=0.8,
                 discrete=True, stat="percent", common_norm=False, ax=axes["share"], palette=_KIND_PALETTE)
    axes["share"].set(xlabel="models that have the feature", ylabel="% of features of its kind",
                      xlim=(0.4, n_models + 0.6), title="Models per feature")
    legend = axes["share"].get_legend()
    if legend is not None:
        legend.set_title("feature")
    names = {"n_dominant": "dominant", "n_rare": "rare", "n_own": "only this model"}
    models = o.tables["models"].melt(id_vars="model", value_vars=list(names), var_name="kind",
                                     value_name="features").assign(kind=lambda d: d["kind"].map(names))
    sns.barplot(models, x="model", y="features", hue="kind", ax=axes["models"],
                palette=[_KIND_PALETTE["dominant"], _KIND_PALETTE["rare"], "0.55"])
    axes["models"].set(xlabel="model (seed)", ylabel="features", title="Features of each model")
    axes["models"].legend(title=None, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    if n_models > 12:
        axes["models"].tick_params(axis="x", labelsize=9)
    ov = o.tables["overlap"]
    mat = np.eye(n_models)
    mat[ov["model_a"], ov["model_b"]] = ov["jaccard"]
    mat[ov["model_b"], ov["model_a"]] = ov["jaccard"]
    sns.heatmap(mat, ax=axes["overlap"], cmap="mako", vmin=0, vmax=1, square=True, annot=n_models <= 6,
                fmt=".2f", cbar_kws={"label": "Jaccard overlap", "shrink": 0.8},
                xticklabels=n_models <= 12, yticklabels=n_models <= 12)
    axes["overlap"].set(xlabel="model", ylabel="model",
                        title=f"Feature overlap of two models (mean {o.stats['mean_jaccard']:.2f})")
    fig.suptitle(f"O3: Spearman correlation of a feature's frequency and its number of models = {_rho_text(o)}",
                 x=0.01, ha="left")
    return fig


@book_figure
def overlap_vs_agreement(o4: Observation, *, ax: plt.Axes | None = None) -> Figure:
    """O4: one point per model pair, feature overlap against prediction agreement.

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> from ift_core.observations import o4_overlap_vs_agreement
    >>> rng = np.random.default_rng(0)
    >>> it = build_interaction_tensor(rng.standard_normal((5, 100, 6)), n_components=3,
    ...                               corr_threshold=0.2, progress=False)
    >>> fig = overlap_vs_agreement(o4_overlap_vs_agreement(it, rng.integers(0, 3, (5, 100)), n_permutations=9))
    """
    o = _observation(o4, "O4")
    fig, ax = _axes(ax)
    sns.regplot(o.table, x="overlap", y="agreement", ax=ax, scatter_kws={"s": 18, "alpha": 0.7},
                line_kws={"color": "tab:red"}, ci=None)
    ax.set(xlabel="feature overlap (Jaccard) of the pair", ylabel="prediction agreement of the pair",
           title=f"O4: Spearman rho = {_rho_text(o)}, "
                 f"Mantel p = {o.stats['p_mantel']:.3f}")
    return fig


@book_figure
def threshold_sweep(sweep: pd.DataFrame, *, x: str = "gamma_corr", hue: str = "presence_value",
                    metrics: Sequence[str] = ("T", "o1_skew", "o2_rho", "o3_rho", "o4_rho"),
                    ) -> Figure:
    """How T and the O1-O4 statistics move with the thresholds (one panel per metric).

    The statistics that decide a verdict (O1's skewness, the correlations) are drawn with their
    CI band (``o*_low``/``o*_high`` columns) and a zero line.

    Parameters
    ----------
    sweep : DataFrame
        From :func:`ift_core.observations.sweep_thresholds`.
    x, hue : str
        Columns for the x axis and the line colour.
    metrics : sequence of str
        Columns to draw (metrics that are all NaN are skipped).

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.observations import sweep_thresholds
    >>> df = sweep_thresholds(np.random.default_rng(0).standard_normal((3, 100, 8)), n_components=3,
    ...                       corr_quantiles=[0.9, 0.99], presence_quantiles=[0.9], progress=False)
    >>> fig = threshold_sweep(df)
    """
    if not isinstance(sweep, pd.DataFrame) or x not in sweep or hue not in sweep:
        raise ValueError(f"sweep must be a DataFrame from sweep_thresholds with columns {x!r} and {hue!r}")
    shown = [m for m in metrics if m in sweep and sweep[m].notna().any()]
    if not shown:
        raise ValueError(f"none of the metrics {tuple(metrics)} has values in the sweep")
    ncols = min(3, len(shown))
    nrows = -(-len(shown) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(9, 3.1 * nrows + 0.6), layout="constrained", squeeze=False)
    palette = sns.color_palette("viridis", sweep[hue].nunique())
    hue_name = SWEEP_LABELS.get(hue, hue.replace("_", " "))
    for ax, metric in zip(axes.flat, shown):
        for color, (h, grp) in zip(palette, sweep.sort_values(x).groupby(hue, sort=True)):
            ax.plot(grp[x], grp[metric], marker="o", color=color, label=f"{hue_name} = {h:g}")
            base = metric.split("_")[0] if metric.endswith("_rho") or metric == "o1_skew" else None
            if base and f"{base}_low" in grp:
                ax.fill_between(grp[x], grp[f"{base}_low"], grp[f"{base}_high"], color=color, alpha=0.15)
        if metric.endswith("_rho") or metric == "o1_skew":
            ax.axhline(0, color="black", lw=0.7)
        ax.set(xlabel=SWEEP_LABELS.get(x, x.replace("_", " ")), title=SWEEP_LABELS.get(metric, metric.replace("_", " ")))
    for ax in list(axes.flat)[len(shown):]:
        ax.remove()  # one panel per metric, nothing else
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), title="presence threshold")
    return fig


#: Words for the columns of :func:`ift_core.observations.sweep_thresholds` in figures.
SWEEP_LABELS = {
    "gamma_corr": r"absolute $\gamma_{\rm corr}$",
    "corr_value": r"$\gamma_{\rm corr}$ as a quantile of cross-model |C|",
    "presence_value": r"$\gamma_{\rm data}$",
    "T": "number of features T",
    "frac_singletons": "share of features one model has",
    "o1_skew": "O1: skewness of log frequency",
    "o1_frac_dominant": "O1: share of dominant features",
    "o2_rho": "O2: features vs confidence (rho)",
    "o3_rho": "O3: frequency vs models (rho)",
    "o4_rho": "O4: overlap vs agreement (rho)",
}
