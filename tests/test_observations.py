"""Tests for ift_core.observations: O1-O4 on tensors with known structure, statistics against
brute force, and threshold sweeps against direct builds."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ift_core import observations as obs
from ift_core.observations import (
    Observation,
    ensemble_confidence,
    o1_long_tail,
    o2_features_vs_confidence,
    o3_feature_sharing,
    o4_overlap_vs_agreement,
    pairwise_agreement,
    spearman_ci,
    sweep_thresholds,
)
from ift_core.tensor import InteractionTensor, TensorOptions, build_interaction_tensor


def make_tensor(presence, assignments):
    """An InteractionTensor with the given compact structure (openers: first members)."""
    presence = np.asarray(presence, dtype=bool)
    assignments = np.asarray(assignments, dtype=np.int64)
    m, _, k = presence.shape
    flat = assignments.ravel()
    openers = np.array([np.flatnonzero(flat == t)[0] for t in range(flat.max() + 1)])
    return InteractionTensor(presence=presence, assignments=assignments, best_corr=np.ones((m, k), np.float32),
                             openers=openers, corr_threshold=0.5, presence_thresholds=np.zeros(m),
                             explained_variance=np.ones((m, k)), explained_variance_ratio=np.full((m, k), 1 / k))


def long_tail_tensor(seed=0, n_models=6, n_points=1000, n_dominant=3):
    """Features 0..n_dominant-1 are dominant (every model, in 40% of points); the others are
    rare (two per model, each in one model, ~1% of points)."""
    rng = np.random.default_rng(seed)
    d = n_dominant
    k = d + 2  # d shared + 2 own components per model
    assign = np.array([list(range(d)) + [d + 2 * m, d + 1 + 2 * m] for m in range(n_models)])
    pres = np.zeros((n_models, n_points, k), dtype=bool)
    pres[:, :, :d] = rng.random((1, n_points, d)) < 0.4
    pres[:, :, d:] = rng.random((n_models, n_points, 2)) < 0.01
    return make_tensor(pres, assign)


# --------------------------------------------------------------------------- helpers
def test_ensemble_confidence_and_errors():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=(3, 50))
    y = rng.integers(0, 4, 50)
    ref = [np.mean([p[m, n, y[n]] for m in range(3)]) for n in range(50)]
    np.testing.assert_allclose(ensemble_confidence(p, y), ref)
    with pytest.raises(ValueError, match="labels must lie in"):
        ensemble_confidence(p, np.full(50, 4))
    with pytest.raises(ValueError, match="labels has 49 points"):
        ensemble_confidence(p, y[:49])
    with pytest.raises(ValueError, match="probs contains"):
        ensemble_confidence(np.where(p > 0.9, np.nan, p), y)


def test_pairwise_agreement_brute_force():
    rng = np.random.default_rng(1)
    preds = rng.integers(0, 3, (5, 40))
    ref = np.array([[np.mean([preds[i, n] == preds[j, n] for n in range(40)]) for j in range(5)] for i in range(5)])
    np.testing.assert_allclose(pairwise_agreement(preds), ref)
    with pytest.raises(ValueError, match="preds"):
        pairwise_agreement(preds[0])


def test_spearman_ci_matches_scipy_and_covers():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(80), rng.standard_normal(80)
    r = spearman_ci(x, y)
    assert r["rho"] == pytest.approx(sps.spearmanr(x, y).statistic)
    assert r["low"] < r["rho"] < r["high"] and r["n"] == 80
    # Coverage by simulation: bivariate normal, population Spearman = 6/pi asin(r/2).
    r_pop = 0.5
    rho_pop = 6 / np.pi * np.arcsin(r_pop / 2)
    cov = [[1, r_pop], [r_pop, 1]]
    hits = 0
    for _ in range(300):
        z = rng.multivariate_normal([0, 0], cov, size=60)
        s = spearman_ci(z[:, 0], z[:, 1])
        hits += s["low"] <= rho_pop <= s["high"]
    assert 0.90 <= hits / 300 <= 0.99
    assert np.isnan(spearman_ci([1, 1, 1, 1], [1, 2, 3, 4])["rho"])
    with pytest.raises(ValueError, match="same length"):
        spearman_ci([1, 2, 3], [1, 2])


# --------------------------------------------------------------------------- O1
def frequency_tensor(freq, n_points=None, seed=0):
    """One model, one component per feature; feature t present in exactly ``freq[t]`` points."""
    freq = np.asarray(freq, dtype=int)
    n = int(freq.max()) + 1 if n_points is None else n_points
    rng = np.random.default_rng(seed)
    pres = np.zeros((1, n, freq.size), dtype=bool)
    for t, f in enumerate(freq):
        pres[0, rng.choice(n, f, replace=False), t] = True
    return make_tensor(pres, np.arange(freq.size)[None, :])


def test_o1_long_tail_holds_on_long_tail():
    it = long_tail_tensor(n_models=10, n_dominant=5)  # 5 dominant features, 20 rare
    o = o1_long_tail(it)
    assert isinstance(o, Observation) and o.name == "O1" and o.stats["decided_by"] == "skew_frequency"
    assert o.statistic == pytest.approx(sps.skew(it.feature_frequency()))
    assert o.ci[0] > 0 and o.holds
    # The mixture split finds the planted groups: 5 dominant features in every model.
    assert o.stats["n_modes"] == 2 and o.stats["n_dominant"] == 5 and o.stats["frac_dominant"] == 0.2
    assert o.stats["dominant_share_of_occurrences"] > 0.8
    assert o.summary().startswith("HOLDS O1")
    assert list(o.table["frequency"]) == list(it.feature_frequency())
    assert o.table["dominant"].tolist() == [True] * 5 + [False] * 20
    # Deterministic (seeded bootstrap), and the old rule still selectable by name (and its older names).
    assert o1_long_tail(it).ci == o.ci
    assert o1_long_tail(it, split_rule="largest_spacing").stats["n_dominant"] == 5
    assert o1_long_tail(it, split_method="gap").stats["split_rule"] == "largest_spacing"
    assert o1_long_tail(it, split_rule="largest_spacing").stats["split_rule"] == "largest_spacing"
    # Three dominant features are as many as the bootstrap's lower end ignores (each resample
    # misses all three with probability ~e^-3 > 2.5 %): 3 of 15 is no established tail.
    small = o1_long_tail(long_tail_tensor())
    assert small.statistic > 1 and small.ci[0] < 0 and not small.holds


def test_o1_on_planted_frequency_sets():
    rng = np.random.default_rng(1)
    n = 5000
    long_tail = np.clip(np.round(10 ** rng.normal(2.0, 0.4, 120)), 1, n)
    symmetric = np.round(rng.normal(800, 60, 120))
    bimodal = np.r_[np.round(rng.normal(150, 20, 100)), np.round(rng.normal(2500, 300, 12))]
    cases = {
        "log-normal": (long_tail, True),
        "few dominant, many rare (bimodal)": (bimodal, True),
        "symmetric": (symmetric, False),
        "mirrored (left tail)": (n - long_tail, False),
        # One outlying feature cannot decide: not one far above a symmetric set ...
        "symmetric + one at N": (np.r_[symmetric, n], False),
        # ... nor one far below a long tail (the book's run had one feature at < 54 points).
        "log-normal + one at 1": (np.r_[long_tail, 1], True),
    }
    for name, (freq, expected) in cases.items():
        o = o1_long_tail(frequency_tensor(freq, n))
        assert o.holds == expected, (name, o.statistic, o.ci)
        assert o.statistic == pytest.approx(sps.skew(freq)), name
    # The outlier makes the skewness itself huge: the bootstrap's lower end is what ignores it.
    sym_out = o1_long_tail(frequency_tensor(np.r_[symmetric, n], n))
    assert sym_out.statistic > 5 and sym_out.ci[0] < 0 < sym_out.ci[1]
    # Mixture split: no second mode in the log-normal (the largest gap isolates the outlier),
    # two modes in the bimodal set, with its planted dominant group.
    o = o1_long_tail(frequency_tensor(np.r_[long_tail, 1], n))
    assert o.stats["n_modes"] == 1 and o.stats["n_dominant"] == 0
    gap = o1_long_tail(frequency_tensor(np.r_[long_tail, 1], n), split_rule="largest_spacing")
    assert gap.stats["n_dominant"] in (1, long_tail.size)
    o = o1_long_tail(frequency_tensor(bimodal, n))
    assert o.stats["n_modes"] == 2 and o.table["dominant"].tolist() == [False] * 100 + [True] * 12


def test_o1_statistics_against_definitions():
    rng = np.random.default_rng(0)
    pres = rng.random((3, 500, 4)) < 0.2  # every feature in ~20% of points
    it = make_tensor(pres, np.arange(12).reshape(3, 4))
    o = o1_long_tail(it, split_threshold=1000)  # nothing above: no dominant features
    assert o.stats["n_dominant"] == 0 and o.stats["split_rule"] == "threshold"
    f = it.feature_frequency().astype(float)
    # Gini against its definition (mean absolute difference over twice the mean).
    gini = np.abs(f[:, None] - f[None, :]).sum() / (2 * f.size**2 * f.mean())
    assert o.stats["gini"] == pytest.approx(gini)
    # Top 10 % share by brute force: ceil(0.1 * 12) = 2 largest.
    assert o.stats["top10_share_of_occurrences"] == pytest.approx(sum(sorted(f)[-2:]) / f.sum())
    # The bootstrap interval by a plain loop over resamples drawn the same way.
    rng = np.random.default_rng(0)
    skews = []
    for start in range(0, 2000, 250):
        idx = rng.integers(0, f.size, size=(250, f.size))
        skews += [sps.skew(f[row]) for row in idx if np.ptp(f[row]) > 0]
    assert o.ci == pytest.approx((np.quantile(skews, 0.025), np.quantile(skews, 0.975)))


def test_o1_error_rates_by_simulation():
    # Under no long tail (normal frequencies) the claim is accepted rarely; under a log-normal
    # tail almost always.
    rng = np.random.default_rng(2)
    kw = dict(n_bootstrap=400, split_threshold=np.inf)  # the verdict needs no split
    false_pos = sum(o1_long_tail(frequency_tensor(np.round(rng.normal(800, 60, 100)), 2000, seed=r),
                                 seed=r, **kw).holds for r in range(60))
    power = sum(o1_long_tail(frequency_tensor(np.round(10 ** rng.normal(2.0, 0.3, 100)), 2000, seed=r),
                             seed=r, **kw).holds for r in range(30))
    assert false_pos / 60 <= 0.1 and power / 30 >= 0.9


def test_o1_option_errors():
    it = long_tail_tensor()
    with pytest.raises(ValueError, match="n_bootstrap must be a whole number >= 1, got True"):
        o1_long_tail(it, n_bootstrap=True)
    with pytest.raises(ValueError, match="split rule must be one of .*got 'median'"):
        o1_long_tail(it, split_rule="median")
    with pytest.raises(ValueError, match="confidence_level"):
        o1_long_tail(it, confidence_level=1.5)
    with pytest.raises(ValueError, match="tensor must be an InteractionTensor"):
        o1_long_tail(it.presence)


# --------------------------------------------------------------------------- O2
def _probs_with_confidence(conf, n_models=6, n_classes=3, seed=0):
    """probs (M, N, C) whose true-class probability averages to ``conf``; labels all 0."""
    rng = np.random.default_rng(seed)
    n = conf.size
    p_true = np.clip(conf[None, :] + 0.02 * rng.standard_normal((n_models, n)), 0.01, 0.99)
    probs = np.empty((n_models, n, n_classes))
    probs[:, :, 0] = p_true
    probs[:, :, 1:] = ((1 - p_true) / (n_classes - 1))[:, :, None]
    return probs, np.zeros(n, dtype=int)


@pytest.mark.parametrize("direction", [-1, 1])
def test_o2_sign_follows_the_data(direction):
    it = long_tail_tensor(seed=3)
    feats = it.features_per_point()
    conf = 0.5 + direction * 0.04 * (feats - feats.mean()) + 0.01 * np.random.default_rng(0).standard_normal(feats.size)
    probs, labels = _probs_with_confidence(np.clip(conf, 0.05, 0.95))
    o = o2_features_vs_confidence(it, probs, labels)
    ref = sps.spearmanr(ensemble_confidence(probs, labels), feats).statistic
    assert o.statistic == pytest.approx(ref)
    assert np.sign(o.statistic) == direction and o.ci[0] < o.statistic < o.ci[1]
    assert o.holds == (direction < 0)
    bins = o.tables["bins"]
    assert bins["n_points"].sum() == it.n_points and len(bins) == 10
    assert (bins["features"].iloc[-1] < bins["features"].iloc[0]) == (direction < 0)
    per_model = o2_features_vs_confidence(it, probs, labels, per_model=True)
    assert np.allclose(per_model.table["features"], it.features_per_point(per_model=True).mean(axis=0))


def test_o2_input_errors():
    it = long_tail_tensor()
    probs, labels = _probs_with_confidence(np.full(it.n_points, 0.5))
    with pytest.raises(ValueError, match="5 models"):
        o2_features_vs_confidence(it, probs[:5], labels)
    with pytest.raises(ValueError, match="points"):
        o2_features_vs_confidence(it, probs[:, :10], labels[:10])
    with pytest.raises(ValueError, match="InteractionTensor"):
        o2_features_vs_confidence(probs, probs, labels)


# --------------------------------------------------------------------------- O3
def test_o3_feature_sharing():
    it = long_tail_tensor()
    o = o3_feature_sharing(it)
    assert o.holds and o.statistic > 0 and o.ci[0] > 0
    assert o.stats["mean_models_dominant"] == 6 and o.stats["mean_models_rare"] == 1
    assert o.stats["frac_features_one_model"] == pytest.approx(12 / 15)
    ov = o.tables["overlap"]
    assert len(ov) == 15
    assert np.allclose(ov["jaccard"], 3 / 7)  # 3 shared of 5 + 5 - 3 = 7
    models = o.tables["models"]
    assert models["n_features"].tolist() == [5] * 6 and models["n_own"].tolist() == [2] * 6
    # Every model has the same features: the claim that models differ fails.
    same = make_tensor(it.presence, np.tile(np.arange(5), (6, 1)))
    assert not o3_feature_sharing(same).holds


# --------------------------------------------------------------------------- O4
def _o4_setup(direction, seed=0, n_models=8, n_points=400):
    """Tensors where model i has features 0..s_i-1 among shared ones, and predictions that
    agree more (direction=+1) or less (-1) for pairs sharing more."""
    rng = np.random.default_rng(seed)
    k = 6
    sizes = rng.permutation(np.arange(n_models)) % k + 1
    assign = np.empty((n_models, k), dtype=np.int64)
    nxt = k
    for m in range(n_models):
        own = np.arange(sizes[m])
        extra = np.arange(nxt, nxt + k - sizes[m])
        nxt += k - sizes[m]
        assign[m] = np.r_[own, extra]
    # Renumber so that features are 0..T-1 in order of first appearance.
    _, inv = np.unique(assign.ravel(), return_inverse=True)
    assign = inv.reshape(n_models, k)
    it = make_tensor(rng.random((n_models, n_points, k)) < 0.1, assign)
    # Predictions: each model copies a reference answer with probability that grows (or
    # shrinks) with its number of shared features, so that agreement tracks overlap.
    truth = rng.integers(0, 5, n_points)
    frac = sizes / k
    q = frac if direction > 0 else 1 - frac
    keep = rng.random((n_models, n_points)) < (0.2 + 0.75 * q)[:, None]
    preds = np.where(keep, truth, rng.integers(0, 5, (n_models, n_points)))
    return it, preds


@pytest.mark.parametrize("direction", [1, -1])
def test_o4_overlap_vs_agreement(direction):
    it, preds = _o4_setup(direction, n_models=10, n_points=2000)
    o = o4_overlap_vs_agreement(it, preds, n_permutations=199)
    ov, agr = it.overlap(), pairwise_agreement(preds)
    i, j = np.triu_indices(10, 1)
    assert o.statistic == pytest.approx(sps.spearmanr(ov[i, j], agr[i, j]).statistic)
    assert np.sign(o.statistic) == direction
    assert o.holds == (direction > 0)
    assert o.ci[0] < o.statistic < o.ci[1]
    assert o.stats["p_mantel"] < (0.05 if direction > 0 else 0.1)  # the -1 construction is weaker
    assert set(o.table.columns) == {"model_a", "model_b", "overlap", "agreement"} and len(o.table) == 45
    # Jackknife CI by hand.
    zs = []
    for leave in range(10):
        keep = (i != leave) & (j != leave)
        zs.append(np.arctanh(sps.spearmanr(ov[i[keep], j[keep]], agr[i[keep], j[keep]]).statistic))
    zs = np.array(zs)
    se = np.sqrt(9 / 10 * ((zs - zs.mean()) ** 2).sum())
    lo = np.tanh(np.arctanh(o.statistic) - sps.t.ppf(0.975, 9) * se)
    assert o.ci[0] == pytest.approx(lo)


def test_o4_null_mantel_and_errors():
    it, preds = _o4_setup(1)
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 5, preds.shape)  # agreement unrelated to overlap
    o = o4_overlap_vs_agreement(it, noise, n_permutations=199, seed=1)
    assert o.stats["p_mantel"] > 0.01
    assert o4_overlap_vs_agreement(it, noise, n_permutations=199, seed=1).stats == o.stats  # seeded
    with pytest.raises(ValueError, match="preds must have shape"):
        o4_overlap_vs_agreement(it, preds[:3])
    small = make_tensor(it.presence[:3], np.unique(it.assignments[:3], return_inverse=True)[1].reshape(3, -1))
    o_small = o4_overlap_vs_agreement(small, preds[:3], n_permutations=0)
    assert np.isnan(o_small.ci[0]) and not o_small.holds  # too few models for a CI


# --------------------------------------------------------------------------- sweeps
@pytest.fixture(scope="module")
def sweep_data():
    rng = np.random.default_rng(0)
    n, d = 400, 16
    shared = rng.standard_normal((n, 4)) * np.array([4.0, 3.0, 2.0, 1.5])
    acts = np.stack([np.c_[shared, rng.standard_normal((n, d - 4))] @ np.linalg.qr(rng.standard_normal((d, d)))[0]
                     for _ in range(5)]).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), size=(5, n))
    labels = rng.integers(0, 3, n)
    preds = probs.argmax(axis=2)
    return acts, probs, labels, preds


def test_sweep_equals_direct_builds(sweep_data, monkeypatch):
    acts, probs, labels, preds = sweep_data
    calls = []
    orig = obs.component_correlations
    monkeypatch.setattr(obs, "component_correlations", lambda pc: calls.append(1) or orig(pc))
    df = sweep_thresholds(acts, n_components=6, corr_quantiles=[0.9, 0.99], corr_thresholds=[0.5],
                          presence_quantiles=[0.8, 0.9], presence_thresholds=[0.3],
                          probs=probs, labels=labels, preds=preds, progress=False)
    assert len(calls) == 1  # correlations computed once for the 9 points
    assert len(df) == 9
    for row in df.itertuples():
        kw = dict(corr_quantile=row.corr_value) if row.corr_rule == "quantile" else dict(corr_threshold=row.corr_value)
        kw.update(presence_quantile=row.presence_value) if row.presence_rule == "quantile" else \
            kw.update(presence_threshold=row.presence_value)
        it = build_interaction_tensor(acts, n_components=6, progress=False, **kw)
        assert row.T == it.n_features and row.gamma_corr == it.corr_threshold
        assert row.presence_rate == it.presence.mean() and row.n_flipped == it.n_flipped
        o1 = o1_long_tail(it)
        assert (row.o1_skew, row.o1_low, row.o1_high) == (o1.statistic, *o1.ci)
        assert row.o1_frac_dominant == o1.stats["frac_dominant"] and row.o1_holds == o1.holds
        assert row.o2_rho == pytest.approx(o2_features_vs_confidence(it, probs, labels).statistic, nan_ok=True)
        assert row.o3_rho == pytest.approx(o3_feature_sharing(it).statistic, nan_ok=True)
        o4 = o4_overlap_vs_agreement(it, preds, n_permutations=0)
        assert row.o4_rho == pytest.approx(o4.statistic, nan_ok=True)
        assert row.o4_low == pytest.approx(o4.ci[0], nan_ok=True)
    # gamma_corr grows with its quantile; presence does not depend on gamma_corr (at align_signs=
    # False: with alignment the flipped members, hence presence, follow the clustering).
    q = df[(df.corr_rule == "quantile") & (df.presence_value == 0.9)].sort_values("corr_value")
    assert q["gamma_corr"].is_monotonic_increasing and q["gamma_corr"].is_unique


def test_sweep_align_and_split_axes(sweep_data):
    acts, probs, labels, preds = sweep_data
    df = sweep_thresholds(acts, n_components=6, corr_quantiles=[0.9], corr_thresholds=[0.5],
                          presence_quantiles=[0.8, 0.9], align_signs=(True, False),
                          split_rule=("mixture", "largest_spacing"), probs=probs, labels=labels, preds=preds,
                          n_bootstrap=300, progress=False)
    assert len(df) == 2 * 2 * 2 * 2
    assert df.groupby(["align_signs", "split_rule"]).size().eq(4).all()
    for row in df.itertuples():
        kw = dict(corr_quantile=row.corr_value) if row.corr_rule == "quantile" else dict(corr_threshold=row.corr_value)
        it = build_interaction_tensor(acts, n_components=6, presence_quantile=row.presence_value,
                                      align_signs=row.align_signs, progress=False, **kw)
        assert row.n_flipped == it.n_flipped and row.presence_rate == it.presence.mean()
        o1 = o1_long_tail(it, split_rule=row.split_rule, n_bootstrap=300)
        assert (row.o1_skew, row.o1_low) == (o1.statistic, o1.ci[0])
        assert row.o1_n_modes == o1.stats["n_modes"] or np.isnan(o1.stats["n_modes"])
        o3 = o3_feature_sharing(it, split_rule=row.split_rule)
        assert row.o3_holds == o3.holds
        assert row.o2_rho == pytest.approx(o2_features_vs_confidence(it, probs, labels).statistic, nan_ok=True)
    # Without alignment nothing is flipped, and presence then does not depend on gamma_corr.
    lit = df[~df.align_signs]
    assert (lit.n_flipped == 0).all()
    assert lit.groupby("presence_value")["presence_rate"].nunique().eq(1).all()
    with pytest.raises(ValueError, match="split rule once"):
        sweep_thresholds(acts, n_components=6, split_rule="otsu", split_method="gap", progress=False)
    with pytest.raises(ValueError, match="align_signs must be True or False"):
        sweep_thresholds(acts, n_components=6, align_signs=("yes",), progress=False)


def test_sweep_without_o2_o4_and_errors(sweep_data):
    acts, probs, labels, _ = sweep_data
    df = sweep_thresholds(acts, n_components=4, corr_quantiles=[0.99], presence_quantiles=[0.9], progress=False)
    assert df[["o2_rho", "o4_rho"]].isna().all().all() and not df["o2_holds"].any()
    with pytest.raises(ValueError, match="both probs and labels"):
        sweep_thresholds(acts, n_components=4, probs=probs, progress=False)
    with pytest.raises(ValueError, match="corr_quantiles or corr_thresholds"):
        sweep_thresholds(acts, n_components=4, corr_quantiles=None, progress=False)
    with pytest.raises(ValueError, match="presence_quantiles or presence_thresholds"):
        sweep_thresholds(acts, n_components=4, presence_quantiles=[], progress=False)
    with pytest.raises(ValueError, match="preds must have shape"):
        sweep_thresholds(acts, n_components=4, preds=np.zeros((2, 3), int), progress=False)
    assert isinstance(df, pd.DataFrame)


# --------------------------------------------------------------------------- plots
def test_plots_return_figures(sweep_data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from ift_core.plots import tensor as P
    from ift_core.tensor import best_match, canonical_correlations, component_correlations, principal_components

    acts, probs, labels, preds = sweep_data
    pc = principal_components(acts, n_components=6, progress=False)
    corr = component_correlations(pc)
    it = build_interaction_tensor(acts, n_components=6, corr_threshold=0.5, progress=False)
    o1, o3 = o1_long_tail(it), o3_feature_sharing(it)
    o2 = o2_features_vs_confidence(it, probs, labels)
    o4 = o4_overlap_vs_agreement(it, preds, n_permutations=19)
    sweep = sweep_thresholds(pc, corr_quantiles=[0.9, 0.99], presence_quantiles=[0.8, 0.9],
                             probs=probs, labels=labels, preds=preds, progress=False)
    figs = [P.correlation_matrix(corr, 5, max_models=3), P.correlation_histogram(corr, 5, threshold=0.5),
            P.explained_variance(pc), P.cluster_structure(it),
            P.subspace_correlations(canonical_correlations(pc, corr=corr), best_single=best_match(corr, 5)),
            P.frequency_histogram(o1), P.features_vs_confidence(o2), P.feature_sharing(o3),
            P.overlap_vs_agreement(o4), P.threshold_sweep(sweep)]
    assert all(isinstance(f, Figure) for f in figs)
    assert f"{o2.statistic:.3f}" in figs[6].axes[0].get_title()
    assert len(figs[-1].axes) == 5  # T, O1, O2, O3, O4 panels
    fig, ax = plt.subplots()
    assert P.overlap_vs_agreement(o4, ax=ax) is fig
    with pytest.raises(ValueError, match="O2"):
        P.features_vs_confidence(o1)
    plt.close("all")


def test_sweep_takes_tensor_options_and_o1_the_tensors_split_rule(sweep_data):
    acts, probs, labels, preds = sweep_data
    opts = TensorOptions(n_components=6, presence="absolute", presence_scale="model", split_rule="otsu")
    df = sweep_thresholds(acts, opts, corr_quantiles=None, corr_thresholds=[0.5], presence_quantiles=[0.9],
                          n_bootstrap=100, progress=False)
    it = build_interaction_tensor(acts, opts.replace(gamma_corr=0.5), progress=False)
    row = df.iloc[0]
    assert len(df) == 1 and row.split_rule == "otsu"
    assert row["T"] == it.n_features and row.presence_rate == it.presence.mean()
    o1 = o1_long_tail(it, n_bootstrap=100)  # no split_rule given: the tensor's own (otsu)
    assert o1.stats["split_rule"] == "otsu" and row.o1_skew == o1.statistic
    with pytest.raises(ValueError, match="corr_thresholds holds 1.5, not a valid gamma_corr"):
        sweep_thresholds(acts, opts, corr_thresholds=[1.5], progress=False)
    with pytest.raises(ValueError, match="options must be a TensorOptions"):
        sweep_thresholds(acts, "signed", progress=False)
