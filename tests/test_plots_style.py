"""The book's figure style: every figure legible at the column width, labelled in words.

Each figure function is drawn on small planted inputs; the check is what a reader sees in the
book's column (:data:`ift_core.plots.style.COLUMN_PX` wide): the smallest text is at least
:data:`~ift_core.plots.style.MIN_TEXT_PX` pixels, no figure is wider than
:data:`~ift_core.plots.style.MAX_WIDTH_IN`, and no title, label or legend is a raw column name.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ift_core import observations as obs  # noqa: E402
from ift_core.plots import gde as gplots  # noqa: E402
from ift_core.plots import style  # noqa: E402
from ift_core.plots import tensor as tplots  # noqa: E402
from ift_core.plots import theory as thplots  # noqa: E402
from ift_core.plots import train as trplots  # noqa: E402
from ift_core.tensor import build_interaction_tensor, component_correlations, principal_components  # noqa: E402


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((300, 4))
    acts = np.stack([np.c_[shared + 0.3 * rng.standard_normal((300, 4)), rng.standard_normal((300, 8))]
                     for _ in range(6)]).astype(np.float32)
    it = build_interaction_tensor(acts, n_components=6, gamma_corr=0.5, progress=False)
    labels = rng.integers(0, 3, 300)
    preds = np.where(rng.random((6, 300)) < 0.8, labels, rng.integers(0, 3, (6, 300)))
    probs = rng.dirichlet(np.ones(3), (6, 300))
    sweep = obs.sweep_thresholds(acts, n_components=4, corr_quantiles=[0.9, 0.99], corr_thresholds=[0.3, 0.6],
                                 presence_quantiles=[0.8, 0.9], probs=probs, labels=labels, preds=preds,
                                 n_bootstrap=50, progress=False)
    return dict(acts=acts, it=it, labels=labels, preds=preds, probs=probs, rng=rng, sweep=sweep)


def _figures(p):
    """(name, thunk) for every figure the chapters 2, 3, 5, 6, 7 and 12 draw."""
    it, acts = p["it"], p["acts"]
    pc = principal_components(acts, n_components=6, progress=False)
    corr = component_correlations(pc)
    sweep = p["sweep"]
    shifted = {"clean": (p["preds"], p["labels"])}
    for kind in ("gaussian_noise", "blur", "contrast", "rotation"):
        for level in (1, 3, 5):
            noisy = np.where(p["rng"].random(p["preds"].shape) < 0.1 * level, (p["preds"] + 1) % 3, p["preds"])
            shifted[f"{kind}-{level}"] = (noisy, p["labels"])
    comparison = pd.DataFrame({"target": ["clean", "blur-5"] * 2, "method": ["AC"] * 2 + ["GDE"] * 2,
                               "abs_error": [0.01, 0.2, 0.02, 0.1]})
    metrics = [{"seed": s, "loss_history": [1.0 / (e + 1 + s) for e in range(20)]} for s in range(3)]
    images = p["rng"].random((16, 8, 8, 1))
    return {
        "image_grid": lambda: trplots.image_grid(images, np.arange(16) % 3, ["T-shirt/top", "trouser", "coat"]),
        "training_curves": lambda: trplots.training_curves(metrics),
        "explained_variance": lambda: tplots.explained_variance(pc),
        "correlation_matrix": lambda: tplots.correlation_matrix(corr, 6, max_models=4),
        "correlation_histogram": lambda: tplots.correlation_histogram(corr, 6, threshold=0.5),
        "subspace_correlations": lambda: tplots.subspace_correlations(np.ones((3, 3, 4)) * 0.8),
        "cluster_structure": lambda: tplots.cluster_structure(it),
        "frequency_histogram": lambda: tplots.frequency_histogram(obs.o1_long_tail(it)),
        "features_vs_confidence": lambda: tplots.features_vs_confidence(
            obs.o2_features_vs_confidence(it, p["probs"], p["labels"])),
        "feature_sharing": lambda: tplots.feature_sharing(obs.o3_feature_sharing(it)),
        "overlap_vs_agreement": lambda: tplots.overlap_vs_agreement(
            obs.o4_overlap_vs_agreement(it, p["preds"], n_permutations=9)),
        "threshold_sweep": lambda: tplots.threshold_sweep(sweep[sweep.corr_rule == "absolute"]),
        "threshold_sweep_quantile": lambda: tplots.threshold_sweep(sweep[sweep.corr_rule == "quantile"],
                                                                   x="corr_value"),
        "error_vs_disagreement": lambda: gplots.error_vs_disagreement(shifted, per="ensemble"),
        "error_vs_disagreement_pairs": lambda: gplots.error_vs_disagreement(
            {k: shifted[k] for k in ("clean", "blur-5", "rotation-5")}, per="pair"),
        "vote_reliability_diagram": lambda: gplots.vote_reliability_diagram(p["preds"], p["labels"], 3),
        "estimator_comparison": lambda: gplots.estimator_comparison(comparison),
    }


@pytest.fixture(scope="module")
def figures(planted):
    return _figures(planted)


FIGURES = ["image_grid", "training_curves", "explained_variance", "correlation_matrix", "correlation_histogram",
           "subspace_correlations", "cluster_structure", "frequency_histogram", "features_vs_confidence",
           "feature_sharing", "overlap_vs_agreement", "threshold_sweep", "threshold_sweep_quantile",
           "error_vs_disagreement", "error_vs_disagreement_pairs", "vote_reliability_diagram",
           "estimator_comparison"]


@pytest.mark.parametrize("name", FIGURES)
def test_figure_is_legible_at_the_column_width(figures, name):
    fig = figures[name]()
    try:
        assert fig.get_figwidth() <= style.MAX_WIDTH_IN + 1e-9
        assert style.smallest_text_px(fig) >= style.MIN_TEXT_PX - 1e-6
        assert style.raw_names(fig) == [], f"{name}: raw column names in the figure's text"
    finally:
        plt.close(fig)


def test_the_check_can_fail():
    """A 14-inch figure with 6-point text is too small in the column until fitted."""
    fig, ax = plt.subplots(figsize=(14, 3))
    ax.set_title("o1_frac_dominant", fontsize=6)
    assert style.smallest_text_px(fig) < style.MIN_TEXT_PX
    assert style.raw_names(fig) == ["o1_frac_dominant"]
    style.fit_to_column(fig)
    assert fig.get_figwidth() <= style.MAX_WIDTH_IN
    assert style.smallest_text_px(fig) >= style.MIN_TEXT_PX - 1e-6
    plt.close(fig)


def test_correlation_histogram_draws_bars(planted):
    """Log counts with visible bars: every non-empty bin is a bar of positive height."""
    pc = principal_components(planted["acts"], n_components=6, progress=False)
    corr = component_correlations(pc)
    fig = tplots.correlation_histogram(corr, 6, threshold=0.5)
    ax = fig.axes[0]
    heights = np.array([patch.get_height() for patch in ax.patches])
    own = np.repeat(np.arange(6), 6)
    vals = np.abs(corr)[own[:, None] < own[None, :]]
    counts, _ = np.histogram(vals, bins=60, range=(0, 1))
    assert ax.get_yscale() == "log"
    assert len(heights) == 60 and np.array_equal(heights, counts)
    assert (heights > 0).sum() == (counts > 0).sum() > 5
    plt.close(fig)


def test_many_test_sets_keep_a_short_legend(planted):
    """Thirteen test sets (four shifts at three severities and clean): five legend entries for the
    families plus the GDE line, and every severity written beside its point."""
    figs = _figures(planted)
    fig = figs["error_vs_disagreement"]()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["clean", "gaussian noise", "blur", "contrast", "rotation", "GDE: error = disagreement"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["1", "3", "5"] * 4)
    plt.close(fig)


def test_book_figure_fits_a_figure_drawn_into_given_axes():
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    rng = np.random.default_rng(1)
    gplots.vote_reliability_diagram(rng.integers(0, 3, (4, 60)), rng.integers(0, 3, 60), 3, ax=axes[0])
    assert fig.get_figwidth() <= style.MAX_WIDTH_IN
    assert style.smallest_text_px(fig) >= style.MIN_TEXT_PX - 1e-6
    plt.close(fig)


def test_every_figure_function_is_styled():
    from ift_core.plots import experiments, readings
    for module in (trplots, tplots, thplots, readings, gplots, experiments):
        for name in module.__all__:
            if name.isupper() or not callable(getattr(module, name)):
                continue
            assert getattr(getattr(module, name), "__book_figure__", False), f"{module.__name__}.{name}"
