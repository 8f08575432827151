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
    principal_components,
    split_frequencies,
)


# --------------------------------------------------------------------------- references
def reference_cluster(corr, gamma):
    """Algorithm 1 as written: plain loops over openers and candidates, Python scalars."""
    p = len(corr)
    gamma = np.float32(gamma)
    assign = [-1] * p
    best = [-math.inf] * p
    c = 0
    for i in range(p):
        if assign[i] != -1:
            continue
        for j in range(p):
            v = min(abs(np.float32(corr[i][j])), np.float32(1.0))
            if v > gamma and v > best[j]:
                assign[j] = c
                best[j] = v
        if assign[i] != c:  # the opener belongs to its own cluster whatever gamma is
            assign[i] = c
            best[i] = min(abs(np.float32(corr[i][i])), np.float32(1.0))
        c += 1
    return np.array(assign, dtype=np.int64), np.array(best, dtype=np.float32)


def reference_presence(scores, quantile, rule="signed", scale="column", threshold=None):
    """Presence by loops over models, components and points."""
    m_, n_, k_ = scores.shape
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
    # Clustering, presence and omega: bit for bit against the loops on the same inputs.
    a_ref, b_ref = reference_cluster(corr, it.corr_threshold)
    assert np.array_equal(it.assignments.ravel(), a_ref)
    assert np.array_equal(it.best_corr.ravel(), b_ref)
    pres_ref = reference_presence(pc.scores, 0.8)
    assert np.array_equal(it.presence, pres_ref)
    assert np.array_equal(it.omega, reference_omega(pres_ref, a_ref.reshape(3, 5)))
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
    dom, thr = split_frequencies([1, 2, 3, 300, 400, 0])
    assert dom.tolist() == [False, False, False, True, True, False] and thr == pytest.approx(30.0)
    # One outlier: the largest gap isolates it; Otsu splits the two groups.
    f = np.r_[np.full(10, 5), np.full(10, 40), 5000]
    assert split_frequencies(f)[0].sum() == 1
    assert split_frequencies(f, method="otsu")[0].sum() == 11
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
    dom, thr = split_frequencies([7, 7, 7])
    assert not dom.any() and thr == math.inf
    with pytest.raises(ValueError, match="method"):
        split_frequencies([1, 2], method="median")
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
        build_interaction_tensor([np.array([["a", "b"], ["c", "d"]])], n_components=1, progress=False)
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
    with pytest.raises(ValueError, match="unknown presence rule 'sign'"):
        build_interaction_tensor(acts3, n_components=3, presence="sign", progress=False)
    with pytest.raises(ValueError, match="unknown presence_scale"):
        build_interaction_tensor(acts3, n_components=3, presence_scale="row", progress=False)
    with pytest.raises(ValueError, match="both are None"):
        build_interaction_tensor(acts3, n_components=3, corr_quantile=None, progress=False)


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
