"""Tests for ift_core.tensor: Algorithm 1 against a plain-loop reference, planted ground truth,
invariances, statistics against brute force, persistence and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, f1_score

from ift_core import tensor as T
from ift_core.tensor import (
    InteractionTensor,
    build_interaction_tensor,
    canonical_correlations,
    cluster_components,
    component_correlations,
    component_presence,
    correlation_threshold,
    feature_signs,
    principal_components,
    split_frequencies,
)


# --------------------------------------------------------------------------- references
def reference_cluster(corr, gamma, *, return_openers=False):
    """Algorithm 1 as written: plain loops over openers and candidates, Python scalars."""
    p = len(corr)
    gamma = np.float32(gamma)
    assign = [-1] * p
    best = [-math.inf] * p
    openers = []
    c = 0
    for i in range(p):
        if assign[i] != -1:
            continue
        openers.append(i)
        for j in range(p):
            v = min(abs(np.float32(corr[i][j])), np.float32(1.0))
            if v > gamma and v > best[j]:
                assign[j] = c
                best[j] = v
        if assign[i] != c:  # the opener belongs to its own cluster whatever gamma is
            assign[i] = c
            best[i] = min(abs(np.float32(corr[i][i])), np.float32(1.0))
        c += 1
    out = (np.array(assign, dtype=np.int64), np.array(best, dtype=np.float32))
    return out + (np.array(openers, dtype=np.int64),) if return_openers else out


def reference_signs(corr, assign, openers):
    """The sign rule by loops: each member takes the sign of its correlation with its feature's opener."""
    out = []
    for j in range(len(assign)):
        opener = openers[assign[j]]
        out.append(-1 if corr[opener][j] < 0 else 1)
    return np.array(out, dtype=np.int8)


def reference_presence(scores, quantile, rule="signed", scale="column", threshold=None, signs=None):
    """Presence by loops over models, components and points (``signs`` (M, K) flips columns first)."""
    m_, n_, k_ = scores.shape
    if signs is not None:
        scores = np.stack([[scores[m, :, k] * np.float32(signs[m][k]) for k in range(k_)] for m in range(m_)]
                          ).transpose(0, 2, 1)
    out = np.zeros(scores.shape, dtype=bool)
    for m in range(m_):
        if scale == "column":
            den = [max(abs(scores[m, n, k]) for n in range(n_)) for k in range(k_)]
        else:
            mx = max(abs(scores[m, n, k]) for n in range(n_) for k in range(k_))
            den = [mx] * k_
        vals = np.empty((n_, k_), dtype=np.float32)
        for n in range(n_):
            for k in range(k_):
                v = np.float32(scores[m, n, k])
                v = abs(v) if rule == "absolute" else v
                vals[n, k] = v / np.float32(den[k])
        thr = np.float32(np.quantile(vals, quantile) if threshold is None else threshold)
        for n in range(n_):
            for k in range(k_):
                out[m, n, k] = vals[n, k] > thr
    return out


def reference_omega(presence, assignments):
    m_, n_, k_ = presence.shape
    t_ = int(assignments.max()) + 1
    out = np.zeros((m_, n_, t_), dtype=bool)
    for m in range(m_):
        for n in range(n_):
            for k in range(k_):
                if presence[m, n, k]:
                    out[m, n, assignments[m, k]] = True
    return out


def reference_corr(scores):
    """Pearson correlations pair by pair in float64."""
    m_, _, k_ = scores.shape
    cols = [scores[m, :, k].astype(np.float64) for m in range(m_) for k in range(k_)]
    p = len(cols)
    out = np.empty((p, p))
    for i in range(p):
        for j in range(p):
            out[i, j] = np.corrcoef(cols[i], cols[j])[0, 1]
    return out


# --------------------------------------------------------------------------- planted ground truth
def planted(seed, *, n_models=5, n_points=2000, width=32, n_pool=12, n_shared=6, n_distract=2,
            rate=0.1, noise=0.05):
    """Activations built from sparse latent features.

    A pool of ``n_pool`` shared latent features; each model gets a random ``n_shared`` of them
    plus ``n_distract`` features of its own, embedded by a random orthonormal map (a random
    rotation of the padded latents) into ``width`` units, plus isotropic noise. Every latent is
    "on" in exactly ``rate * N`` random points (value scale * (1 + U/2)), off (0) elsewhere;
    scales are distinct across latents so that PCA orders them.
    Returns activations (M, N, D), the true latent of each model component (M, K), and the
    on-pattern of every latent (L, N).
    """
    rng = np.random.default_rng(seed)
    n_lat = n_pool + n_models * n_distract
    scales = rng.permutation(np.geomspace(20.0, 1.0, n_lat))
    on = np.zeros((n_lat, n_points), dtype=bool)
    vals = np.zeros((n_lat, n_points))
    n_on = int(rate * n_points)
    for lat in range(n_lat):
        idx = rng.choice(n_points, n_on, replace=False)
        on[lat, idx] = True
        vals[lat, idx] = scales[lat] * (1.0 + 0.5 * rng.random(n_on))
    k = n_shared + n_distract
    acts = np.empty((n_models, n_points, width), dtype=np.float32)
    truth = np.empty((n_models, k), dtype=np.int64)
    for m in range(n_models):
        own = np.r_[rng.choice(n_pool, n_shared, replace=False), n_pool + m * n_distract + np.arange(n_distract)]
        h = vals[own].T  # (N, k)
        # PCA orders the latents by their sample variance: that order is the ground truth.
        truth[m] = own[np.argsort(-h.var(axis=0), kind="stable")]
        q, _ = np.linalg.qr(rng.standard_normal((width, width)))
        acts[m] = (h @ q[:, :k].T + noise * rng.standard_normal((n_points, width))).astype(np.float32)
    return acts, truth, on


def omega_f1(it, truth, on):
    """F1 of the found omega against the planted one (features mapped to their majority latent)."""
    t_ = it.n_features
    lat_of = np.empty(t_, dtype=np.int64)
    for t in range(t_):
        members = truth[it.assignments == t]
        lat_of[t] = np.bincount(members).argmax()
    has = np.array([[lat in set(truth[m]) for lat in lat_of] for m in range(it.n_models)])  # (M, T)
    expected = has[:, None, :] & on[lat_of].T[None, :, :]
    return f1_score(expected.ravel(), it.omega.ravel())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size", [
    dict(n_models=4, n_points=2000, width=32, n_pool=12, n_shared=6, n_distract=2),
    dict(n_models=6, n_points=3000, width=48, n_pool=16, n_shared=8, n_distract=3),
    dict(n_models=10, n_points=1500, width=24, n_pool=10, n_shared=5, n_distract=2),
    # Noise close to the weakest latent's variance, fewer points.
    dict(n_models=8, n_points=1000, width=40, n_pool=14, n_shared=7, n_distract=3, noise=0.3),
])
def test_planted_features_recovered(seed, size):
    acts, truth, on = planted(seed, **size)
    k = truth.shape[1]
    it = build_interaction_tensor(acts, n_components=k, corr_threshold=0.5, progress=False)
    ari = adjusted_rand_score(truth.ravel(), it.assignments.ravel())
    assert ari >= 0.9, ari
    assert omega_f1(it, truth, on) >= 0.9
    # Component-level presence against the on-pattern of the latent each component carries.
    comp = on[truth].transpose(0, 2, 1)  # (M, N, K)
    assert f1_score(comp.ravel(), it.presence.ravel()) >= 0.9
    # T counts each latent that some model has exactly once.
    assert it.n_features == np.unique(truth).size


def test_planted_models_per_feature_matches_truth():
    acts, truth, _ = planted(3, n_models=6, n_points=2000, width=32, n_pool=10, n_shared=5, n_distract=2)
    it = build_interaction_tensor(acts, n_components=7, corr_threshold=0.5, progress=False)
    found = sorted(it.models_per_feature().tolist())
    expected = sorted(np.bincount(truth.ravel())[np.unique(truth)].tolist())
    assert found == expected


def test_rotation_invariance():
    acts, truth, _ = planted(4, n_models=4, n_points=1500, width=24, n_pool=8, n_shared=5, n_distract=2)
    rng = np.random.default_rng(99)
    rotated = np.stack([a @ np.linalg.qr(rng.standard_normal((24, 24)))[0] for a in acts.astype(np.float64)])
    a = build_interaction_tensor(acts.astype(np.float64), n_components=7, progress=False)
    b = build_interaction_tensor(rotated, n_components=7, progress=False)
    assert np.array_equal(a.assignments, b.assignments)
    assert np.array_equal(a.presence, b.presence)
    assert a.corr_threshold == pytest.approx(b.corr_threshold, rel=1e-5)
    pa = principal_components(acts.astype(np.float64), n_components=7, progress=False)
    pb = principal_components(rotated, n_components=7, progress=False)
    np.testing.assert_allclose(pa.scores, pb.scores, atol=1e-4 * np.abs(pa.scores).max())


# --------------------------------------------------------------------------- Algorithm 1 vs loops
def _random_corr(rng, p, levels):
    """Symmetric matrices with values on a coarse grid, so that ties occur."""
    a = rng.integers(0, levels + 1, size=(p, p)) / levels * rng.choice([-1, 1], size=(p, p))
    a = np.triu(a, 1)
    a = (a + a.T).astype(np.float32)
    np.fill_diagonal(a, 1.0)
    return a


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("p,levels,gamma", [(12, 4, 0.5), (30, 10, 0.3), (40, 20, 0.65), (25, 3, 0.0),
                                            (20, 5, 1.0)])
def test_cluster_equals_loop_reference_bit_for_bit(seed, p, levels, gamma):
    rng = np.random.default_rng(seed)
    c = _random_corr(rng, p, levels)
    a1, b1 = cluster_components(c, gamma)
    a2, b2 = reference_cluster(c, gamma)
    assert np.array_equal(a1, a2)
    assert a1.dtype == a2.dtype and b1.dtype == b2.dtype
    assert np.array_equal(b1.view(np.uint32), b2.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 25), st.integers(1, 8), st.floats(0.0, 1.0, width=32), st.integers(0, 2**32 - 1))
def test_cluster_reference_property(p, levels, gamma, seed):
    c = _random_corr(np.random.default_rng(seed), p, levels)
    a1, b1, op = cluster_components(c, gamma, return_openers=True)
    a2, b2 = reference_cluster(c, gamma)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    # Structural facts: clusters numbered in order of opening, each opener keeps its cluster,
    # every other member was placed by a correlation above gamma.
    assert np.array_equal(op, np.sort(op)) and np.array_equal(a1[op], np.arange(op.size))
    assert set(a1.tolist()) == set(range(op.size))
    assert np.all(b1[op] == 1.0)
    rest = np.setdiff1d(np.arange(p), op)
    assert np.all(b1[rest] > np.float32(gamma))


def test_cluster_reassignment_to_better_opener():
    # 0 opens and takes 2 (0.6); 1 is not close to 0, opens, and steals 2 (0.9 > 0.6).
    c = np.array([[1, .1, .6], [.1, 1, .9], [.6, .9, 1]], dtype=np.float32)
    a, b = cluster_components(c, 0.5)
    assert a.tolist() == [0, 1, 1]
    assert b.tolist() == pytest.approx([1.0, 1.0, 0.9])
    # Equal correlation does not steal (strictly greater), and a negative one counts by |C|.
    c2 = np.array([[1, .1, .6], [.1, 1, -.6], [.6, -.6, 1]], dtype=np.float32)
    assert cluster_components(c2, 0.5)[0].tolist() == [0, 1, 0]


def test_within_model_option_matches_reference_on_masked_matrix():
    rng = np.random.default_rng(1)
    c = _random_corr(rng, 24, 6)
    masked = c.copy()
    own = np.repeat(np.arange(4), 6)
    masked[own[:, None] == own[None, :]] = 0
    np.fill_diagonal(masked, 1)
    a1, b1 = cluster_components(c, 0.4, n_models=4, within_model=False)
    a2, b2 = reference_cluster(masked, 0.4)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    with pytest.raises(ValueError, match="n_models"):
        cluster_components(c, 0.4, n_models=5, within_model=False)


def test_pipeline_equals_loop_reference_on_small_input():
    rng = np.random.default_rng(7)
    acts = [rng.standard_normal((60, d)).astype(np.float32) @ rng.standard_normal((d, d)).astype(np.float32)
            for d in (7, 9, 8)]
    it = build_interaction_tensor(acts, n_components=5, corr_quantile=0.9, presence_quantile=0.8, progress=False)
    pc = principal_components(acts, n_components=5, progress=False)
    corr = component_correlations(pc)
    # Same correlations as pair-by-pair float64 Pearson.
    np.testing.assert_allclose(corr, reference_corr(pc.scores), atol=2e-6)
    # gamma_corr: the quantile over cross-model pairs gathered by loops.
    cross = [abs(corr[i, j]) for i in range(15) for j in range(i + 1, 15) if i // 5 != j // 5]
    assert it.corr_threshold == float(np.float32(np.quantile(np.array(cross, dtype=np.float32), 0.9)))
    # Clustering, signs, presence and omega: bit for bit against the loops on the same inputs.
    a_ref, b_ref, o_ref = reference_cluster(corr, it.corr_threshold, return_openers=True)
    assert np.array_equal(it.assignments.ravel(), a_ref)
    assert np.array_equal(it.best_corr.ravel(), b_ref)
    assert np.array_equal(it.openers, o_ref)
    s_ref = reference_signs(corr, a_ref, o_ref).reshape(3, 5)
    assert np.array_equal(it.signs, s_ref) and it.n_flipped == int((s_ref < 0).sum())
    pres_ref = reference_presence(pc.scores, 0.8, signs=s_ref)
    assert np.array_equal(it.presence, pres_ref)
    assert np.array_equal(it.omega, reference_omega(pres_ref, a_ref.reshape(3, 5)))
    # align_signs=False is Algorithm 1 as written: the same partition, presence on the raw signs.
    lit = build_interaction_tensor(acts, n_components=5, corr_quantile=0.9, presence_quantile=0.8,
                                   align_signs=False, progress=False)
    assert np.array_equal(lit.assignments, it.assignments) and lit.n_flipped == 0
    assert np.array_equal(lit.presence, reference_presence(pc.scores, 0.8))
    # An independent float64 correlation gives the same clustering at an absolute threshold.
    it2 = build_interaction_tensor(acts, n_components=5, corr_threshold=0.3, progress=False)
    assert np.array_equal(it2.assignments.ravel(), reference_cluster(reference_corr(pc.scores), 0.3)[0])


@pytest.mark.parametrize("rule,scale,threshold", [("signed", "column", None), ("absolute", "column", None),
                                                  ("signed", "model", None), ("absolute", "model", 0.3),
                                                  ("signed", "column", -0.2)])
def test_presence_options_equal_loop_reference(rule, scale, threshold):
    s = np.random.default_rng(3).standard_normal((2, 40, 4)).astype(np.float32) ** 3
    pres, thr = component_presence(s, quantile=0.85, threshold=threshold, rule=rule, scale=scale)
    assert np.array_equal(pres, reference_presence(s, 0.85, rule, scale, threshold))
    assert thr.shape == (2,)
    if threshold is not None:
        assert np.all(thr == np.float32(threshold))


def test_presence_scales_differ_as_documented():
    # Column scaling: every component present in about the same share of points;
    # model scaling: high-variance components occur more often.
    rng = np.random.default_rng(0)
    s = (rng.standard_normal((1, 5000, 3)) * np.array([4.0, 2.0, 1.0])).astype(np.float32)
    col, _ = component_presence(s, quantile=0.9, scale="column", rule="absolute")
    mod, _ = component_presence(s, quantile=0.9, scale="model", rule="absolute")
    rates_col = col[0].mean(axis=0)
    rates_mod = mod[0].mean(axis=0)
    assert rates_col.max() - rates_col.min() < 0.05
    assert rates_mod[0] > rates_mod[1] > rates_mod[2]
    assert mod.mean() == pytest.approx(0.1, abs=1e-3)


# --------------------------------------------------------------------------- PCA
def test_pca_matches_sklearn_and_sign_convention():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 12)) + 5.0
    pc = principal_components([a], n_components=6, progress=False)
    ref = PCA(n_components=6).fit(a)
    proj = ref.transform(a)
    s = pc.scores[0].astype(np.float64)
    np.testing.assert_allclose(np.abs(s), np.abs(proj), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pc.explained_variance_ratio[0], ref.explained_variance_ratio_, rtol=1e-5)
    np.testing.assert_allclose(pc.explained_variance[0], ref.explained_variance_ * 299 / 300, rtol=1e-5)
    assert np.all((s**3).sum(axis=0) > 0)


def test_pca_wide_path_matches_tall_path():
    # D > N uses the (N, N) Gram matrix; it must agree with sklearn too.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((30, 80)) * np.linspace(3, 0.1, 80)
    pc = principal_components([a], n_components=5, progress=False)
    proj = PCA(n_components=5).fit_transform(a)
    np.testing.assert_allclose(np.abs(pc.scores[0]), np.abs(proj), rtol=1e-4, atol=1e-4)


def test_uncentred_pca_differs_and_is_documented():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 200, 10)) + 3.0
    c = principal_components(a, n_components=3, progress=False)
    u = principal_components(a, n_components=3, center=False, progress=False)
    # The uncentred first direction is near the mean: it carries almost all the second moment.
    assert u.explained_variance_ratio[:, 0].min() > 0.8 > c.explained_variance_ratio[:, 0].max()
    it = build_interaction_tensor(a, n_components=3, center=False, corr_threshold=0.5, progress=False)
    assert it.params["center"] is False


def test_different_widths_and_determinism():
    rng = np.random.default_rng(5)
    acts = [rng.standard_normal((150, d)).astype(np.float32) for d in (10, 20, 15)]
    a = build_interaction_tensor(acts, n_components=6, progress=False)
    b = build_interaction_tensor(acts, n_components=6, progress=False)
    assert a.equals(b)
    assert a.presence.shape == (3, 150, 6)


# --------------------------------------------------------------------------- statistics vs brute force
@pytest.fixture(scope="module")
def small_tensor():
    acts, _, _ = planted(11, n_models=5, n_points=600, width=20, n_pool=8, n_shared=4, n_distract=2)
    return build_interaction_tensor(acts, n_components=6, corr_threshold=0.5, progress=False)


def test_statistics_equal_brute_force(small_tensor):
    it = small_tensor
    om = it.omega
    assert om.shape == it.shape and om.dtype == bool
    assert np.array_equal(om, reference_omega(it.presence, it.assignments))
    assert np.array_equal(it.feature_frequency(), om.any(axis=0).sum(axis=0))
    assert np.array_equal(it.features_per_point(), om.any(axis=0).sum(axis=1))
    assert np.array_equal(it.features_per_point(per_model=True), om.sum(axis=2))
    mf = np.array([[any(it.assignments[m, k] == t for k in range(it.n_components)) for t in range(it.n_features)]
                   for m in range(it.n_models)])
    assert np.array_equal(it.model_feature_matrix(), mf)
    assert np.array_equal(it.models_per_feature(), mf.sum(axis=0))
    assert np.array_equal(it.features_per_model(), mf.sum(axis=1))
    jac = np.empty((it.n_models, it.n_models))
    for i in range(it.n_models):
        for j in range(it.n_models):
            a, b = set(np.flatnonzero(mf[i])), set(np.flatnonzero(mf[j]))
            jac[i, j] = len(a & b) / len(a | b)
    np.testing.assert_allclose(it.overlap(), jac)


def test_tables(small_tensor):
    it = small_tensor
    ft = it.features_table()
    pt = it.points_table()
    ct = it.components_table()
    assert len(ft) == it.n_features and len(pt) == it.n_points and len(ct) == it.n_models * it.n_components
    assert ft["n_components"].sum() == it.n_models * it.n_components
    assert np.array_equal(pt["n_features"], pt["n_dominant"] + pt["n_rare"])
    dom, thr = it.dominant_split()
    assert np.array_equal(ft["dominant"], dom)
    assert np.all(ft.loc[ft.dominant, "frequency"] > thr) and np.all(ft.loc[~ft.dominant, "frequency"] <= thr)
    # Openers are where the feature was first seen, and have recorded correlation 1.
    for row in ft.itertuples():
        assert it.assignments[row.opener_model, row.opener_component] == row.feature
        assert it.best_corr[row.opener_model, row.opener_component] == 1.0
    assert set(ct.columns) >= {"model", "component", "feature", "best_corr", "explained_variance_ratio"}


def test_split_frequencies_rules():
    dom, thr = split_frequencies([1, 2, 3, 300, 400, 0], rule="largest_spacing")
    assert dom.tolist() == [False, False, False, True, True, False] and thr == pytest.approx(30.0)
    # The older keyword and name still select the same rule.
    assert split_frequencies([1, 2, 3, 300, 400, 0], method="gap")[1] == thr
    # One outlier: the largest gap isolates it; Otsu splits the two groups.
    f = np.r_[np.full(10, 5), np.full(10, 40), 5000]
    assert split_frequencies(f, rule="largest_spacing")[0].sum() == 1
    assert split_frequencies(f, rule="otsu")[0].sum() == 11
    # Brute-force Otsu: maximise between-group variance over all cuts of log frequency.
    rng = np.random.default_rng(0)
    g = np.round(10 ** rng.uniform(0, 3, 50))
    logs = np.sort(np.log10(g))
    best, cut = -1, None
    for v in np.unique(logs)[1:]:
        lo, hi = logs[logs < v], logs[logs >= v]
        score = len(lo) * len(hi) / len(logs) ** 2 * (lo.mean() - hi.mean()) ** 2
        if score > best + 1e-12:
            best, cut = score, v
    dom, _ = split_frequencies(g, method="otsu")
    assert np.array_equal(dom, g >= 10**cut - 1e-9)
    # A given threshold; no split possible.
    assert split_frequencies([5, 10, 20], threshold=10)[0].tolist() == [False, False, True]
    for rule in ("mixture", "largest_spacing", "otsu"):
        dom, thr = split_frequencies([7, 7, 7], rule=rule)
        assert not dom.any() and thr == math.inf
    with pytest.raises(ValueError, match=r"split rule must be one of .*got 'median'"):
        split_frequencies([1, 2], method="median")
    with pytest.raises(ValueError, match="differ"):
        split_frequencies([1, 2], rule="otsu", method="gap")
    with pytest.raises(ValueError, match="non-negative"):
        split_frequencies([1, -2])


def test_canonical_correlations():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((400, 10)) * np.linspace(3, 1, 10)
    q = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    other = rng.standard_normal((400, 10)) * np.linspace(3, 1, 10)
    acts = [base, base @ q + 0.001 * rng.standard_normal((400, 10)), other]
    pc = principal_components(acts, n_components=4, progress=False)
    cc = canonical_correlations(pc)
    assert cc.shape == (3, 3, 4)
    np.testing.assert_allclose(cc[0, 1], 1.0, atol=1e-4)  # same subspace
    assert cc[0, 2].max() < 0.4  # unrelated models
    # Independent computation: QR of the centred scores, singular values of Q_m^T Q_m'.
    qs = [np.linalg.qr(s - s.mean(axis=0))[0] for s in pc.scores.astype(np.float64)]
    for i in range(3):
        for j in range(3):
            if i != j:
                ref = np.linalg.svd(qs[i].T @ qs[j], compute_uv=False)
                np.testing.assert_allclose(cc[i, j], ref, atol=1e-5)
    # The uncentred path (non-identity within-model blocks) too.
    pu = principal_components(acts, n_components=4, center=False, progress=False)
    qs = [np.linalg.qr(s - s.mean(axis=0))[0] for s in pu.scores.astype(np.float64)]
    np.testing.assert_allclose(canonical_correlations(pu)[0, 2], np.linalg.svd(qs[0].T @ qs[2], compute_uv=False),
                               atol=1e-5)


# --------------------------------------------------------------------------- persistence
def test_save_load_roundtrip(tmp_path, small_tensor):
    path = small_tensor.save(tmp_path / "sub" / "it.npz")
    back = InteractionTensor.load(path)
    assert back.equals(small_tensor)
    assert np.array_equal(back.omega, small_tensor.omega)
    assert [p.name for p in path.parent.iterdir()] == ["it.npz"]  # no temporary left behind
    # Bit-packed: presence costs about a bit per entry.
    assert path.stat().st_size < small_tensor.presence.size / 8 + 20_000
    with np.load(path, allow_pickle=False) as z:
        assert "presence_bits" in z.files and z["presence_bits"].dtype == np.uint8


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        InteractionTensor.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="not an InteractionTensor"):
        InteractionTensor.load(tmp_path / "other.npz")


# --------------------------------------------------------------------------- bad input
@pytest.fixture()
def acts3():
    return np.random.default_rng(0).standard_normal((3, 80, 10)).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_rejected(acts3, bad):
    acts = list(acts3)
    acts[1] = acts[1].copy()
    acts[1][4, 2] = bad
    with pytest.raises(ValueError, match=r"activations\[1\] contains 1 NaN or infinite"):
        build_interaction_tensor(acts, n_components=3, progress=False)


def test_constant_columns_change_nothing(acts3):
    base = build_interaction_tensor(acts3.astype(np.float64), n_components=4, corr_threshold=0.3, progress=False)
    padded = np.concatenate([acts3.astype(np.float64), np.full((3, 80, 2), 7.5), np.zeros((3, 80, 1))], axis=2)
    more = build_interaction_tensor(padded, n_components=4, corr_threshold=0.3, progress=False)
    assert np.array_equal(base.assignments, more.assignments)
    assert np.array_equal(base.presence, more.presence)


def test_rank_deficiency_rejected(acts3):
    dup = np.concatenate([acts3[:, :, :3]] * 3, axis=2)  # rank 3 in 9 columns
    with pytest.raises(ValueError, match=r"activations\[0\] has numerical rank 3 < n_components=5"):
        build_interaction_tensor(dup, n_components=5, progress=False)
    const = acts3.copy()
    const[2] = 1.0
    with pytest.raises(ValueError, match=r"activations\[2\] has numerical rank 0"):
        build_interaction_tensor(const, n_components=2, progress=False)


def test_numerical_rank_is_the_enforced_limit(acts3):
    a = np.concatenate([acts3, acts3[:, :, :2] + acts3[:, :, 2:4]], axis=2)  # rank 10 in 12 columns
    a[1, :, 5:] = 0.0  # dead units: model 1 keeps rank 5
    ranks = T.numerical_rank(a)
    assert ranks.tolist() == [10, 5, 10]
    build_interaction_tensor(a, n_components=int(ranks.min()), corr_threshold=0.5, progress=False)
    with pytest.raises(ValueError, match=r"activations\[1\] has numerical rank 5 < n_components=6"):
        build_interaction_tensor(a, n_components=int(ranks.min()) + 1, corr_threshold=0.5, progress=False)
    # Agrees with the count of singular values above float64 roundoff.
    for m in range(3):
        sv = np.linalg.svd(a[m].astype(np.float64) - a[m].mean(axis=0), compute_uv=False)
        assert ranks[m] == (sv > sv[0] * 1e-5).sum()


def test_shape_errors(acts3):
    with pytest.raises(ValueError, match="below the number of points N=80"):
        build_interaction_tensor(acts3, n_components=80, progress=False)
    with pytest.raises(ValueError, match=r"exceeds the width D=4 of activations\[1\]"):
        build_interaction_tensor([acts3[0], acts3[1, :, :4]], n_components=5, progress=False)
    with pytest.raises(ValueError, match=r"activations\[0\] has N=80, activations\[2\] has N=70"):
        build_interaction_tensor([acts3[0], acts3[1], acts3[2, :70]], n_components=3, progress=False)
    with pytest.raises(ValueError, match="wrap a single model"):
        build_interaction_tensor(acts3[0], n_components=3, progress=False)
    with pytest.raises(ValueError, match="no models"):
        build_interaction_tensor([], n_components=3, progress=False)
    with pytest.raises(ValueError, match="numeric"):
        build_interaction_tensor([np.array([["a", "b"], ["c", "d"]])], n_components=1, corr_threshold=0.5,
                                 progress=False)
    with pytest.raises(ValueError, match="n_components"):
        build_interaction_tensor(acts3, n_components=0, progress=False)


def test_option_errors(acts3):
    with pytest.raises(ValueError, match="corr_quantile"):
        build_interaction_tensor(acts3, n_components=3, corr_quantile=1.5, progress=False)
    with pytest.raises(ValueError, match="corr_threshold"):
        build_interaction_tensor(acts3, n_components=3, corr_threshold=-0.1, progress=False)
    with pytest.raises(ValueError, match="presence_quantile"):
        build_interaction_tensor(acts3, n_components=3, presence_quantile=2, progress=False)
    with pytest.raises(ValueError, match="presence_threshold"):
        build_interaction_tensor(acts3, n_components=3, presence_threshold=3, progress=False)
    with pytest.raises(ValueError, match=r"presence must be one of \('signed', 'absolute'\), got 'sign'"):
        build_interaction_tensor(acts3, n_components=3, presence="sign", progress=False)
    with pytest.raises(ValueError, match="presence_scale must be one of"):
        build_interaction_tensor(acts3, n_components=3, presence_scale="row", progress=False)
    # a quantile and a threshold together: refused (the threshold used to win silently)
    with pytest.raises(ValueError, match=r"give gamma_corr once: corr_quantile=0.99 and corr_threshold=0.5 are both"):
        build_interaction_tensor(acts3, n_components=3, corr_quantile=0.99, corr_threshold=0.5, progress=False)
    with pytest.raises(ValueError, match=r"give gamma_data once: presence_quantile=0.9 and presence_threshold=0.2"):
        build_interaction_tensor(acts3, n_components=3, presence_quantile=0.9, presence_threshold=0.2, progress=False)
    with pytest.raises(ValueError, match=r"give gamma_corr once: gamma_corr=0.5 and its older keyword corr_quantile"):
        build_interaction_tensor(acts3, n_components=3, gamma_corr=0.5, corr_quantile=0.9, progress=False)
    with pytest.raises(ValueError, match=r"unknown tensor option\(s\) \['corr_rule'\]"):
        build_interaction_tensor(acts3, n_components=3, corr_rule="q", progress=False)
    # None is "not given": the options' value stays
    a = build_interaction_tensor(acts3, n_components=3, corr_quantile=None, corr_threshold=0.4, progress=False)
    assert a.params["gamma_corr"] == 0.4


def test_single_model(acts3):
    with pytest.raises(ValueError, match="single model"):
        build_interaction_tensor(acts3[:1], n_components=3, progress=False)
    it = build_interaction_tensor(acts3[:1], n_components=3, corr_threshold=0.5, progress=False)
    # A centred PCA's components are uncorrelated: each is its own feature.
    assert it.n_features == 3 and it.assignments.tolist() == [[0, 1, 2]]
    assert it.omega.shape == (1, 80, 3)
    assert it.overlap().tolist() == [[1.0]]


def test_integer_input_is_converted_to_float64(acts3):
    ints = np.round(acts3 * 10).astype(np.int32)
    a = build_interaction_tensor(ints, n_components=3, progress=False)
    b = build_interaction_tensor(ints.astype(np.float64), n_components=3, progress=False)
    assert a.equals(b)


def test_correlation_threshold_semantics():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((4, 500, 10)).astype(np.float32)
    c = component_correlations(s)
    g = correlation_threshold(c, 4, quantile=0.99)
    own = np.repeat(np.arange(4), 10)
    cross = np.abs(c[own[:, None] < own[None, :]])
    # About 1% of the cross-model pairs exceed it; self-correlations did not drag it to ~1.
    assert (cross > g).mean() == pytest.approx(0.01, abs=0.002)
    assert g < 0.3
    with pytest.raises(ValueError, match="single model"):
        correlation_threshold(c, 1)
    with pytest.raises(ValueError, match="multiple"):
        correlation_threshold(c, 3)


def test_lazy_sequence_input():
    # Models are read one at a time: any sequence with __len__/__getitem__ works.
    class Lazy:
        def __init__(self):
            self.calls = 0

        def __len__(self):
            return 3

        def __getitem__(self, m):
            self.calls += 1
            return np.random.default_rng(m).standard_normal((100, 8)).astype(np.float32)

    lazy = Lazy()
    it = build_interaction_tensor(lazy, n_components=3, progress=False)
    assert lazy.calls == 3  # each model read once, on demand
    eager = build_interaction_tensor([lazy[m] for m in range(3)], n_components=3, progress=False)
    assert it.equals(eager)


def test_module_is_numpy_only():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(T))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in names
    assert set(T.__all__) <= set(dir(T))


# --------------------------------------------------------------------------- sign alignment
def planted_symmetric(seed, *, n_models=6, n_points=3000, width=24, n_lat=6, noise=0.05):
    """Shared latents whose values are mirrored: +v on 10 % of the points, -v on another 10 %.

    Each latent alone has zero skewness, so the PCA sign convention leaves each model's
    orientation of it to the noise: the members of one feature get random signs in different
    models (and each model also embeds it with a random sign). Returns activations and the
    two point sets (A: positive tail, B: negative tail) of every latent.
    """
    rng = np.random.default_rng(seed)
    scales = np.geomspace(10.0, 2.0, n_lat)
    vals = np.zeros((n_lat, n_points))
    tails = []
    n_on = n_points // 10
    for lat in range(n_lat):
        idx = rng.permutation(n_points)[:2 * n_on]
        u = scales[lat] * (1.0 + 0.5 * rng.random(n_on))
        vals[lat, idx[:n_on]] = u
        vals[lat, idx[n_on:]] = -u
        tails.append((set(idx[:n_on].tolist()), set(idx[n_on:].tolist())))
    acts = np.empty((n_models, n_points, width), dtype=np.float32)
    for m in range(n_models):
        h = vals.T * rng.choice([-1.0, 1.0], size=n_lat)
        q, _ = np.linalg.qr(rng.standard_normal((width, width)))
        acts[m] = (h @ q[:, :n_lat].T + noise * rng.standard_normal((n_points, width))).astype(np.float32)
    return acts, tails


def _jaccard(a, b):
    a, b = set(np.flatnonzero(a).tolist()), set(np.flatnonzero(b).tolist())
    return len(a & b) / max(len(a | b), 1)


def test_sign_alignment_gives_overlapping_presence_sets():
    acts, tails = planted_symmetric(0)
    kw = dict(n_components=6, corr_threshold=0.5, progress=False)
    it = build_interaction_tensor(acts, **kw)
    lit = build_interaction_tensor(acts, align_signs=False, **kw)
    assert it.n_features == 6 and np.array_equal(it.assignments, lit.assignments)
    assert np.array_equal(it.models_per_feature(), np.full(6, 6))
    flipped = it.signs.ravel() < 0
    assert 5 <= it.n_flipped == flipped.sum() <= 31  # the planted signs are random: some, not all
    assert it.params["align_signs"] is True and lit.params["align_signs"] is False
    assert lit.n_flipped == 0 and not (lit.signs < 0).any()
    pres, raw = it.presence.transpose(0, 2, 1).reshape(-1, it.n_points), lit.presence.transpose(0, 2, 1).reshape(
        -1, it.n_points)
    flat = it.assignments.ravel()
    aligned, literal = [], []
    for j in range(flat.size):
        o = it.openers[flat[j]]
        if o != j:
            aligned.append(_jaccard(pres[j], pres[o]))
            literal.append((flipped[j], _jaccard(raw[j], raw[o])))
    assert min(aligned) > 0.8  # every member marks the opener's points
    # components_table's jaccard_with_opener is the same overlap (1 for openers).
    members = np.setdiff1d(np.arange(flat.size), it.openers)
    ct, lct = it.components_table(), lit.components_table()
    np.testing.assert_allclose(ct["jaccard_with_opener"].to_numpy()[members], aligned)
    np.testing.assert_allclose(lct["jaccard_with_opener"].to_numpy()[members], [j for _, j in literal])
    assert (ct["jaccard_with_opener"].to_numpy()[it.openers] == 1).all()
    assert max(jac for f, jac in literal if f) < 0.02  # anti-aligned members mark the other tail
    assert min(jac for f, jac in literal if not f) > 0.8
    # Each feature's points are one planted tail with alignment; the union of both without.
    freq, freq_lit = it.feature_frequency(), lit.feature_frequency()
    mixed = np.bincount(flat, weights=flipped, minlength=6) > 0
    assert np.all(freq <= 0.11 * it.n_points)
    assert np.all(freq_lit[mixed] >= 0.19 * it.n_points)
    for t in range(6):
        found = set(np.flatnonzero(it.point_feature_matrix()[:, t]).tolist())
        assert max(len(found & a) / len(found | a) for tail in tails for a in tail) > 0.9


@pytest.mark.parametrize("seed", range(4))
def test_feature_signs_equal_loop_reference(seed):
    rng = np.random.default_rng(seed)
    c = _random_corr(rng, 30, 7)
    a, _, op = cluster_components(c, 0.4, return_openers=True)
    s = feature_signs(c, a, op)
    assert s.dtype == np.int8 and np.array_equal(s, reference_signs(c, a, op))
    assert np.all(s[op] == 1)  # an opener keeps its own orientation
    assert np.array_equal(feature_signs(c, a.reshape(5, 6), op), s.reshape(5, 6))
    # Presence with those signs: the loop reference flips the columns first.
    sc = rng.standard_normal((5, 40, 6)).astype(np.float32) ** 3
    pres, _ = component_presence(sc, quantile=0.8, signs=s.reshape(5, 6))
    assert np.array_equal(pres, reference_presence(sc, 0.8, signs=s.reshape(5, 6)))
    # All-+1 signs are the literal rule, bit for bit.
    assert np.array_equal(component_presence(sc, quantile=0.8, signs=np.ones((5, 6)))[0],
                          component_presence(sc, quantile=0.8)[0])


# --------------------------------------------------------------------------- PCA accuracy
def _svd_scores(a, k, center=True):
    x = a.astype(np.float64)
    if center:
        x = x - x.mean(axis=0)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :k] * sv[:k]


@pytest.mark.parametrize("case", [
    dict(n=2000, width=32, k=20, dtype=np.float32),               # 12 latents, then noise components
    dict(n=3000, width=64, k=50, dtype=np.float32),
    dict(n=3000, width=64, k=50, dtype=np.float64),
    dict(n=2000, width=32, k=20, dtype=np.float32, center=False),
    dict(n=60, width=200, k=40, dtype=np.float32),                # D > N: the (N, N) Gram matrix
])
def test_pca_scores_match_float64_svd_on_every_component(case):
    # Planted latents up to 1e4 times the noise variance, and K reaching into the noise: a
    # float32 Gram matrix gave 1-5 % (up to 150 %) errors on those low-variance components.
    center = case.get("center", True)
    acts, _, _ = planted(5, n_models=2, n_points=case["n"], width=case["width"], n_pool=10, n_shared=6,
                         n_distract=2, noise=0.05)
    acts = (acts + 3.0).astype(case["dtype"])  # an offset, as ReLU activations have
    pc = principal_components(acts, n_components=case["k"], center=center, progress=False)
    for m in range(2):
        ref = _svd_scores(acts[m], case["k"], center)
        got = pc.scores[m].astype(np.float64)
        got *= np.sign((got * ref).sum(axis=0))  # compare directions up to sign
        rel = np.abs(got - ref).max(axis=0) / np.abs(ref).max(axis=0)
        assert rel.max() < 1e-4, (m, rel.argmax(), rel.max())
        var = ref.var(axis=0) if center else (ref**2).mean(axis=0)
        np.testing.assert_allclose(pc.explained_variance[m], var, rtol=1e-5)


def test_scale_does_not_change_the_tensor():
    # Huge and tiny activations (within float32's range for the scores) give the same tensor: a
    # float32 Gram matrix overflowed near 3e18 and underflowed near 1e-25 (17 % of presence
    # entries differed, NaN explained-variance ratios). Powers of two scale exactly.
    acts, _, _ = planted(6, n_models=3, n_points=600, width=16, n_pool=6, n_shared=4, n_distract=1)
    kw = dict(n_components=5, corr_threshold=0.5, progress=False)
    base = build_interaction_tensor(acts, **kw)
    for factor, dtype in [(2.0**62, np.float32), (2.0**-84, np.float32), (2.0**100, np.float64),
                          (2.0**-90, np.float64)]:
        it = build_interaction_tensor((acts.astype(np.float64) * factor).astype(dtype), **kw)
        assert np.array_equal(it.assignments, base.assignments)
        assert (it.presence != base.presence).mean() < 1e-3
        assert np.all(np.isfinite(it.explained_variance_ratio))
        np.testing.assert_allclose(it.explained_variance_ratio, base.explained_variance_ratio, rtol=1e-5)


def test_n_components_rank():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 80, 10)).astype(np.float32)
    a[1, :, 6:] = 0.0  # model 1 has rank 6
    assert T.numerical_rank(a).tolist() == [10, 6, 10]
    pc = principal_components(a, n_components="rank", progress=False)
    assert pc.n_components == 6
    assert np.array_equal(pc.scores, principal_components(a, n_components=6, progress=False).scores)
    it = build_interaction_tensor(a, n_components="rank", corr_threshold=0.5, progress=False)
    assert it.n_components == 6 and it.params["n_components"] == 6


# --------------------------------------------------------------------------- the mixture split
def _log_normal_counts(rng, center, spread, size):
    return np.round(10 ** rng.normal(center, spread, size)).astype(int)


def test_mixture_split_on_planted_frequency_sets():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    rare, dom = _log_normal_counts(rng, 2.0, 0.15, 80), _log_normal_counts(rng, 3.3, 0.15, 20)
    bimodal = np.r_[rare, dom]
    truth = np.r_[np.zeros(80, bool), np.ones(20, bool)]
    d, thr, info = split_frequencies(bimodal, return_info=True)
    assert info["n_modes"] == 2 and info["bic_two"] < info["bic_one"] and np.array_equal(d, truth)
    assert rare.max() < thr < dom.min()
    # sklearn's own two-component fit labels the same features (its default variance floor).
    x = np.log10(bimodal).reshape(-1, 1)
    gm = GaussianMixture(2, n_init=5, random_state=1).fit(x)
    assert np.array_equal(gm.predict(x) == gm.means_.argmax(), d)
    assert gm.bic(x) < GaussianMixture(1).fit(x).bic(x)
    # One mode (a log-normal, right-skewed in counts): no split, and it says so.
    uni = _log_normal_counts(rng, 2.5, 0.3, 100)
    d, thr, info = split_frequencies(uni, return_info=True)
    assert info["n_modes"] == 1 and not d.any() and thr == math.inf and "no second mode" in info["reason"]
    # One outlying feature cannot decide: it is no group of its own under the mixture rule,
    # while the largest gap splits it off (111 of 112 features dominant on the book's run).
    for outlier in (10**5, 3):
        f = np.r_[uni, outlier]
        d, thr, info = split_frequencies(f, return_info=True)
        assert not d.any() and info["n_modes"] == 1
        gap = split_frequencies(f, rule="largest_spacing")[0]
        assert gap.sum() in (1, f.size - 1)
        d2 = split_frequencies(np.r_[bimodal, outlier])[0]
        assert np.array_equal(d2[:-1], truth)
    # min_group: two dominant features are no group by default, and a group with min_group=2.
    tiny = np.r_[rare, dom[:2] * 10]
    assert not split_frequencies(tiny)[0].any()
    assert split_frequencies(tiny, min_group=2)[0].sum() == 2
    # Deterministic.
    assert split_frequencies(bimodal, return_info=True)[2] == split_frequencies(bimodal, return_info=True)[2]


# --------------------------------------------------------------------------- persistence (signs)
def test_save_load_keeps_signs_and_reads_format_1(tmp_path):
    acts, _ = planted_symmetric(1, n_models=3, n_points=800, width=12, n_lat=4)
    it = build_interaction_tensor(acts, n_components=4, corr_threshold=0.5, progress=False)
    assert it.n_flipped > 0
    back = InteractionTensor.load(it.save(tmp_path / "it.npz"))
    assert back.equals(it) and back.n_flipped == it.n_flipped
    # A format-1 file (before sign alignment) reads with all signs +1.
    with np.load(tmp_path / "it.npz", allow_pickle=False) as z:
        old = {k: z[k] for k in z.files if k != "signs"}
    old["format_version"] = np.int64(1)
    np.savez(tmp_path / "v1.npz", **old)
    v1 = InteractionTensor.load(tmp_path / "v1.npz")
    assert v1.n_flipped == 0 and np.array_equal(v1.presence, it.presence)


def test_pca_threads_do_not_change_a_bit(monkeypatch):
    # Whole models run on worker threads (BLAS at one thread each): any number of workers
    # gives the same scores, ranks and tensor, bit for bit, and reads a lazy input once per model.
    acts, _, _ = planted(7, n_models=5, n_points=700, width=20, n_pool=8, n_shared=4, n_distract=2)
    out = []
    for workers in (1, 3):
        monkeypatch.setattr(T, "_n_workers", lambda m, w=workers: min(w, m))
        reads = []
        lazy = type("Lazy", (), {"__len__": lambda self: 5,
                                 "__getitem__": lambda self, m: reads.append(m) or acts[m]})()
        out.append((build_interaction_tensor(lazy, n_components=6, corr_threshold=0.5, progress=False),
                    T.numerical_rank(acts), reads))
    assert out[0][0].equals(out[1][0])
    assert np.array_equal(out[0][1], out[1][1])
    assert out[0][2] == out[1][2] == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- one options object
def test_tensor_options_are_the_build_defaults_and_check_every_option():
    opts = T.TensorOptions()
    assert (opts.n_components, opts.gamma_corr, opts.gamma_data, opts.presence, opts.presence_scale) == \
        (50, "q0.99", "q0.9", "signed", "column")
    assert opts.gamma_corr_rule == ("quantile", 0.99) and opts.replace(gamma_corr=0.5).gamma_corr_rule == \
        ("absolute", 0.5)
    with pytest.raises(AttributeError):
        opts.gamma_corr = 0.5  # frozen
    for bad, pattern in ((dict(gamma_corr="0.5"), r"gamma_corr must be a number in \[0, 1\] .*or a string such as "
                                                  r"'q0.99'"),
                         (dict(gamma_corr="q1.5"), "gamma_corr must be"), (dict(gamma_corr=True), "gamma_corr must be"),
                         (dict(gamma_data=-2.0), r"gamma_data must be a number in \[-1, 1\]"),
                         (dict(n_components="all"), 'n_components must be a positive integer or "rank"'),
                         (dict(n_components=0), "n_components must be a whole number >= 1"),
                         (dict(cap_at_rank="yes"), "cap_at_rank must be True or False"),
                         (dict(presence="sign"), "presence must be one of"),
                         (dict(split_rule="kmeans"), "split rule must be one of")):
        with pytest.raises(ValueError, match=pattern):
            T.TensorOptions(**bad)
    with pytest.raises(ValueError, match=r"unknown tensor option\(s\) \['corr_quantile'\]"):
        opts.replace(corr_quantile=0.9)
    assert T.TensorOptions(split_rule="gap").split_rule == "largest_spacing"  # older names still read
    assert T.TensorOptions.from_params(opts.as_params()) == opts


def test_profile_options_cover_the_training_profiles():
    from ift_core.train import PROFILES  # lazily: the rest of this file never imports torch

    assert set(T.PROFILE_OPTIONS) == set(PROFILES)
    # the chapters' parameter cells: the paper's K = 50 lowered to the rank, |corr| > 0.5, the 0.9 presence quantile
    assert T.PROFILE_OPTIONS["cpu"] == T.TensorOptions(n_components=50, cap_at_rank=True, gamma_corr=0.5)
    assert T.PROFILE_OPTIONS["paper"].n_components == 50 and T.PROFILE_OPTIONS["paper"].gamma_corr == "q0.99"


def test_options_object_keywords_and_older_keywords_build_the_same_tensor():
    acts, _, _ = planted(3, n_models=4, n_points=500, width=16, n_pool=6, n_shared=3, n_distract=1)
    opts = T.TensorOptions(n_components=5, gamma_corr=0.4, gamma_data="q0.85", presence="absolute")
    a = build_interaction_tensor(acts, opts, progress=False)
    b = build_interaction_tensor(acts, n_components=5, gamma_corr=0.4, gamma_data="q0.85", presence="absolute",
                                 progress=False)
    c = build_interaction_tensor(acts, n_components=5, corr_threshold=0.4, presence_quantile=0.85,
                                 presence="absolute", progress=False)
    d = build_interaction_tensor(acts, T.TensorOptions(n_components=5), gamma_corr=0.4, gamma_data="q0.85",
                                 presence="absolute", progress=False)
    assert a.equals(b) and a.equals(c) and a.equals(d)
    assert a.options == opts
    q = build_interaction_tensor(acts, n_components=5, corr_quantile=0.95, progress=False)
    assert q.options.gamma_corr == "q0.95"
    assert q.corr_threshold == T.correlation_threshold(T.component_correlations(
        T.principal_components(acts, n_components=5, progress=False)), 4, quantile=0.95)
    with pytest.raises(ValueError, match="options must be a TensorOptions"):
        build_interaction_tensor(acts, {"n_components": 5}, progress=False)


def test_assemble_tensor_equals_the_build_and_reuses_its_cache():
    acts, _, _ = planted(4, n_models=4, n_points=500, width=16, n_pool=6, n_shared=3, n_distract=1)
    pc = T.principal_components(acts, n_components=5, progress=False)
    corr = T.component_correlations(pc)
    cache, tests = {}, set()
    for opts in (T.TensorOptions(n_components=5, gamma_corr=0.5),
                 T.TensorOptions(n_components=5, gamma_corr=0.5, presence_scale="model"),
                 T.TensorOptions(n_components=5, gamma_corr="q0.99", align_signs=False)):
        it = T.assemble_tensor(pc, corr, opts, cache=cache)
        assert it.equals(build_interaction_tensor(acts, opts, progress=False))
        tests.add((opts.presence_scale, it.signs.tobytes()))
    # two settings share one clustering (same gamma_corr); one presence test per distinct (scale, signs)
    assert sum(k[0] == "cluster" for k in cache) == 2 and sum(k[0] == "presence" for k in cache) == len(tests)
    assert T.assemble_tensor(pc, gamma_corr=0.5).equals(T.assemble_tensor(pc, corr, gamma_corr=0.5, cache=cache))
    with pytest.raises(ValueError, match="components must be a ModelComponents"):
        T.assemble_tensor(acts)
    with pytest.raises(ValueError, match=r"corr must have shape \(20, 20\)"):
        T.assemble_tensor(pc, np.eye(4))


def test_cap_at_rank_is_the_clip_to_the_smallest_numerical_rank(acts3):
    a = acts3.copy()
    a[1, :, 4:] = 0.0  # rank 4
    rank = int(T.numerical_rank(a).min())
    capped = build_interaction_tensor(a, n_components=8, cap_at_rank=True, gamma_corr=0.5, progress=False)
    assert capped.n_components == rank == 4 and capped.options.cap_at_rank
    plain = build_interaction_tensor(a, n_components=rank, gamma_corr=0.5, progress=False)
    assert np.array_equal(capped.presence, plain.presence) and np.array_equal(capped.assignments, plain.assignments)
    assert T.principal_components(a, n_components=3, cap_at_rank=True, progress=False).n_components == 3  # below
    assert T.principal_components(a, n_components="rank", progress=False).n_components == rank
    with pytest.raises(ValueError, match="numerical rank 4 < n_components=8"):
        build_interaction_tensor(a, n_components=8, gamma_corr=0.5, progress=False)


def test_presence_and_split_rules_are_registries(monkeypatch, acts3):
    """A new presence rule (or split rule) is one registry entry; the options accept it at once."""
    from types import MappingProxyType

    assert tuple(T.PRESENCE_RULES) == ("signed", "absolute") and tuple(T.PRESENCE_SCALES) == ("column", "model")
    assert tuple(T.SPLIT_RULES) == ("mixture", "largest_spacing", "otsu")
    squared = lambda p, denom, sign: (p / denom) ** 2  # noqa: E731
    monkeypatch.setattr(T, "PRESENCE_RULES", MappingProxyType({**T.PRESENCE_RULES, "squared": squared}))
    it = build_interaction_tensor(acts3, n_components=3, gamma_corr=0.5, presence="squared", progress=False)
    pc = T.principal_components(acts3, n_components=3, progress=False)
    for m in range(3):
        v = (pc.scores[m] / np.abs(pc.scores[m]).max(axis=0)) ** 2
        assert np.array_equal(it.presence[m], v > np.float32(np.quantile(v, 0.9)))
    median = lambda logs, min_group: (float(10 ** np.median(logs)), {"reason": "median"})  # noqa: E731
    monkeypatch.setattr(T, "SPLIT_RULES", MappingProxyType({**T.SPLIT_RULES, "median": median}))
    dom, thr, info = split_frequencies([1, 2, 3, 4, 100], rule="median", return_info=True)
    assert dom.tolist() == [False, False, False, True, True] and info["reason"] == "median"
    assert T.resolve_split_rule(method="largest_gap") == "largest_spacing"


@pytest.mark.parametrize("gamma_corr", [0.02, 0.1, 0.5])
def test_point_statistics_equal_brute_force_when_a_feature_holds_several_components_of_a_model(gamma_corr):
    """features_per_point(per_model=True) subtracts double counts where one model has several
    components in a feature; point_feature_matrix ORs packed bits: both against Omega by loops."""
    rng = np.random.default_rng(3)
    it = build_interaction_tensor(rng.standard_normal((4, 300, 12)), n_components=10, corr_threshold=gamma_corr,
                                  progress=False)
    om = reference_omega(it.presence, it.assignments)
    duplicates = any(len(set(row)) < len(row) for row in it.assignments.tolist())
    assert duplicates or gamma_corr == 0.5, "the low threshold was meant to put two components of a model together"
    assert np.array_equal(it.point_feature_matrix(), om.any(axis=0))
    assert it.point_feature_matrix().flags.c_contiguous
    assert np.array_equal(it.features_per_point(per_model=True), om.sum(axis=2))
    assert np.array_equal(it.features_per_point(), om.any(axis=0).sum(axis=1))
