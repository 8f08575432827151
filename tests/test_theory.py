"""Tests for ift_core.theory: closed forms against independent Monte Carlo and brute force."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from ift_core import theory as th
from ift_core.theory import simulation
from ift_core.theory import FeatureModel, Group


# --------------------------------------------------------------------------------------
# closed forms against Monte Carlo
# --------------------------------------------------------------------------------------
def _mc_settings() -> list[FeatureModel]:
    """>= 50 random settings: K = 2 and K > 2, shared and independent, 2-4 groups, beta 0 and > 0."""
    models = th.random_models(56, seed=7, n_groups=(2, 3, 4), n_classes=(2, 3, 10),
                              p_systematic=(0.0, 0.6), n_train=(20, 60, 300))
    # the paper's two-group constructor and a few named regimes
    models += [FeatureModel(), FeatureModel(n_classes=3, p_systematic=0.8),
               FeatureModel(training="independent", p_r=0.5, t_r=100, n_train=200),
               FeatureModel(n_classes=4, t_r=50, n_r=4, p_r=0.5, n_train=100, p_systematic=0.3)]
    return models


def test_mc_settings_cover_every_regime():
    ms = _mc_settings()
    assert len(ms) >= 50
    combos = {(m.n_classes > 2, m.training, len(m.groups) > 2, m.p_systematic > 0) for m in ms}
    for k, tr, g, b in itertools.product((False, True), th.TRAINING, (False, True), (False, True)):
        assert (k, tr, g, b) in combos, (k, tr, g, b)


def test_closed_forms_match_monte_carlo_within_4_se():
    df = th.compare_with_simulation(_mc_settings(), n_reps=80, n_models=3, n_points=150, seed=11,
                                    progress=False)
    assert df["se"].min() > 0
    worst = df.loc[df["z"].abs().idxmax()]
    assert (df["z"].abs() <= 4).all(), worst.to_dict()
    # the z-scores look like standard normal draws (no systematic bias hidden under 4 se)
    assert abs(df["z"].mean()) < 0.35
    assert 0.6 < df["z"].std() < 1.4


def test_paper_check_k3_beta08_shared():
    """book/definitions.md §3 quotes closed 0.7803/0.8783 at K=3, beta=0.8, shared, without the other
    parameters. Our default setting (t_d=10, t_r=1000, n=3, p_d=0.9, p_r=0.3, alpha_d=0.7,
    N=1000) is the closest round setting we found: 0.7797/0.8784."""
    fm = FeatureModel(n_classes=3, p_systematic=0.8)
    m = fm.metrics()
    assert m["accuracy"] == pytest.approx(0.7803, abs=1e-3)
    assert m["agreement"] == pytest.approx(0.8783, abs=1e-3)
    assert m["gap"] < 0  # systematic answers push disagreement below error
    mc = fm.monte_carlo(n_reps=300, n_models=4, n_points=300, seed=3)
    assert abs(mc["accuracy"] - m["accuracy"]) <= 4 * mc["accuracy_se"]
    assert abs(mc["agreement"] - m["agreement"]) <= 4 * mc["agreement_se"]


# --------------------------------------------------------------------------------------
# the pieces of the closed form against brute force
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("t,n,w,K", [(10, 3, 0.7, 2), (7, 7, 0.4, 3), (50, 1, 1.0, 5), (12, 5, 0.25, 4)])
def test_rho_matches_binomial_coefficients(t, n, w, K):
    fm = FeatureModel.from_groups([Group(t, n, 0.5, w), Group(3, 1, 0.5, 1 - w)], n_classes=K)
    for b in range(n + 1):
        exact = w / K * (1 - math.comb(t - b, n) / math.comb(t, n))
        assert fm.rho_s(b)[0] == pytest.approx(exact, rel=1e-12, abs=1e-15)
    assert fm.rho_s(np.arange(n + 1))[0] == pytest.approx(
        [w / K * (1 - math.comb(t - b, n) / math.comb(t, n)) for b in range(n + 1)])


@pytest.mark.parametrize("t,n,N", [(6, 3, 5), (4, 4, 3), (9, 2, 40), (5, 1, 0)])
def test_E_s_by_subset_enumeration_and_by_markov_chain(t, n, N):
    """Three derivations agree: the closed sum, inclusion-exclusion over every subset of the
    point's features, and the generating function of the exact seen-count law."""
    fm = FeatureModel.from_groups([Group(t, n, 0.5, 0.6), Group(8, 2, 0.5, 0.4)], n_classes=3, n_train=N)
    w, K = 0.6, 3
    for z in (0.0, 0.3, 0.8, 1.0):
        brute = 0.0
        for a in range(n + 1):
            for _ in itertools.combinations(range(n), a):
                rho = w / K * (1 - math.comb(t - a, n) / math.comb(t, n))
                brute += (1 - z) ** a * z ** (n - a) * (1 - rho) ** N
        law = fm.seen_distribution()[0, : n + 1]
        pgf = float((law * z ** np.arange(n + 1)).sum())
        assert fm.E_s(z)[0] == pytest.approx(brute, rel=1e-10, abs=1e-14)
        assert fm.E_s(z)[0] == pytest.approx(pgf, rel=1e-9, abs=1e-12)


def test_seen_law_against_simulation():
    fm = FeatureModel(t_d=8, n_d=3, t_r=30, n_r=4, alpha_d=0.5, n_train=15, n_classes=2)
    sim_counts = np.zeros((2, 5))
    rng = np.random.default_rng(0)
    out = simulation._simulate_batch(fm, rng, 600, 1, 50)
    seen = out["seen"][:, 0]  # (R, F)
    feats = out["features"]  # (R, P, nmax)
    s = np.take_along_axis(np.concatenate([seen, np.zeros((600, 1), bool)], 1),
                           np.where(feats < 0, seen.shape[1], feats).reshape(600, -1), 1).reshape(feats.shape)
    j = s.sum(-1)
    for g in (0, 1):
        sim_counts[g] = np.bincount(j[out["types"] == g], minlength=5)[:5]
    sim = sim_counts / sim_counts.sum(1, keepdims=True)
    exact = fm.seen_distribution()
    n_g = sim_counts.sum(1, keepdims=True)
    se = np.sqrt(exact * (1 - exact) / n_g) + 1e-9
    assert (np.abs(sim - exact) <= 4 * se + 1e-3).all()


def test_vectorised_evaluation_matches_per_model_loop():
    rng = np.random.default_rng(1)
    S = 40
    p = dict(t_d=rng.integers(3, 30, S), t_r=rng.integers(10, 300, S), n_d=rng.integers(1, 4, S),
             n_r=rng.integers(1, 4, S), p_d=rng.uniform(0, 1, S), p_r=rng.uniform(0, 1, S),
             alpha_d=rng.uniform(0, 1, S), n_train=rng.integers(0, 2000, S), n_classes=rng.integers(2, 11, S),
             p_systematic=rng.uniform(0, 1, S))
    for training in th.TRAINING:
        out = th.evaluate(training=training, **p)
        for i in range(S):
            fm = FeatureModel(training=training, **{k: (v[i].item()) for k, v in p.items()})
            ref = fm.metrics()
            for k in ("accuracy", "agreement", "gap"):
                assert out[k][i] == pytest.approx(ref[k], rel=1e-12, abs=1e-13)


def test_expected_metrics_general_groups_match_model():
    fm = FeatureModel.from_groups([Group(5, 2, 0.9, 0.5), Group(40, 3, 0.6, 0.3), Group(400, 2, 0.3, 0.2)],
                                  n_classes=10, n_train=3000, p_systematic=0.2)
    out = th.expected_metrics(t=[5, 40, 400], n=[2, 3, 2], p=[0.9, 0.6, 0.3], weight=[0.5, 0.3, 0.2],
                              n_train=3000, n_classes=10, p_systematic=0.2)
    assert float(out["accuracy"]) == pytest.approx(fm.expected_accuracy(), rel=1e-13)
    assert float(out["agreement"]) == pytest.approx(fm.expected_agreement(), rel=1e-13)
    assert out["miss"] == pytest.approx(fm.miss_s())
    # broadcasting: a (4, 1) column of n_train against 3 values of p_systematic
    out2 = th.expected_metrics(t=[5, 40, 400], n=[2, 3, 2], p=[0.9, 0.6, 0.3], weight=[0.5, 0.3, 0.2],
                               n_train=np.array([[10], [100], [1000], [np.inf]]), n_classes=10,
                               p_systematic=[0.0, 0.5, 1.0])
    assert out2["gap"].shape == (4, 3)


# --------------------------------------------------------------------------------------
# the limits of book/definitions.md §3
# --------------------------------------------------------------------------------------
def test_infinite_training_set_limit():
    fm = FeatureModel(n_classes=3, t_d=10, t_r=200, n_d=3, n_r=2, p_d=0.8, p_r=0.4, n_train=math.inf)
    assert fm.miss_s() == pytest.approx([(1 - 0.8) ** 3, (1 - 0.4) ** 2], rel=1e-14)
    assert fm.both_s() == pytest.approx([(1 - 0.8) ** 6, (1 - 0.4) ** 4], rel=1e-14)
    big = fm.replace(n_train=10**7)
    assert big.miss_s() == pytest.approx(fm.miss_s(), rel=1e-9)
    # monotone approach: more training data, fewer misses
    misses = [fm.replace(n_train=N).miss_s()[1] for N in (10, 100, 1000, 10**4, 10**5)]
    assert all(a >= b for a, b in zip(misses, misses[1:]))
    # and the simulation agrees with the limit
    mc = fm.monte_carlo(n_reps=100, n_models=3, n_points=200, seed=5)
    assert abs(mc["accuracy"] - fm.expected_accuracy()) <= 4 * mc["accuracy_se"]


def test_no_training_data_means_random_guessing():
    fm = FeatureModel(n_classes=4, n_train=0, p_systematic=0.5)
    assert fm.miss_s() == pytest.approx([1, 1])
    assert fm.expected_accuracy() == pytest.approx(0.5 / 4)
    assert fm.expected_agreement() == pytest.approx(0.25 + 0.75 / 4)


@pytest.mark.parametrize("training", th.TRAINING)
@pytest.mark.parametrize("K", [2, 3, 7])
def test_beta_zero_reduces_to_the_base_formulas(training, K):
    fm = FeatureModel(n_classes=K, training=training, p_r=0.45, t_r=80, n_train=400)
    miss, both, w = fm.miss_s(), fm.both_s(), np.array([fm.alpha_d, 1 - fm.alpha_d])
    assert fm.expected_accuracy() == pytest.approx(float(w @ (1 - (1 - 1 / K) * miss)), rel=1e-14)
    assert fm.expected_agreement() == pytest.approx(float(w @ (1 - (1 - 1 / K) * (2 * miss - both))), rel=1e-14)
    assert fm.gde_gap() == pytest.approx(float((1 - 1 / K) * w @ (miss - both)), rel=1e-12)
    assert fm.gde_gap() == pytest.approx(fm.expected_disagreement() - fm.expected_error(), abs=1e-15)


def test_gde_holds_when_models_all_know_or_all_miss():
    # p = 1: every model learns every seen feature, so models never split on a point
    fm = FeatureModel(p_d=1.0, p_r=1.0, n_train=300, t_r=500)
    assert fm.gde_gap() == pytest.approx(0.0, abs=1e-15)
    # and rare features seen by about half the seeds break it (book/definitions.md §3)
    assert fm.replace(p_r=0.5).gde_gap() > 0.01


_prob = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(t_d=st.integers(1, 60), t_r=st.integers(1, 3000), n_d=st.integers(1, 8), n_r=st.integers(1, 8),
       p_d=_prob, p_r=_prob, alpha_d=_prob, n_train=st.one_of(st.integers(0, 10**6), st.just(math.inf)),
       K=st.integers(2, 100), training=st.sampled_from(th.TRAINING))
def test_gap_never_negative_without_systematic_answers(t_d, t_r, n_d, n_r, p_d, p_r, alpha_d, n_train, K,
                                                        training):
    fm = FeatureModel(n_classes=K, t_d=max(t_d, n_d), t_r=max(t_r, n_r), n_d=n_d, n_r=n_r, p_d=p_d, p_r=p_r,
                      alpha_d=alpha_d, n_train=n_train, training=training)
    m = fm.metrics()
    assert m["gap"] >= -1e-12
    assert 0.0 <= m["accuracy"] <= 1.0 + 1e-12 and 0.0 <= m["agreement"] <= 1.0 + 1e-12
    assert (fm.both_s() <= fm.miss_s() + 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(p_r=_prob, beta=_prob, K=st.integers(2, 6), training=st.sampled_from(th.TRAINING),
       n_train=st.integers(0, 3000))
def test_gap_bounded_by_cace(p_r, beta, K, training, n_train):
    """Jiang et al. 2022: |E[dis] - E[err]| <= CACE of the (infinite) vote ensemble."""
    fm = FeatureModel(n_classes=K, p_r=p_r, t_r=100, p_systematic=beta, training=training, n_train=n_train)
    assert abs(fm.gde_gap()) <= fm.cace() + 1e-10
    M = 4  # finite ensemble: the bound holds for disagreement measured with replacement
    m = fm.metrics()
    assert abs((1 - 1 / M) * m["disagreement"] - m["error"]) <= fm.cace(n_models=M) + 1e-10


# --------------------------------------------------------------------------------------
# invalid parameters
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,name", [
    (dict(t_d=3, n_d=5), "n_d"), (dict(t_r=2, n_r=3), "n_r"), (dict(p_d=1.2), "p_d"), (dict(p_r=-0.1), "p_r"),
    (dict(alpha_d=1.5), "alpha_d"), (dict(p_systematic=2.0), "p_systematic"), (dict(t_d=2.5), "t_d"),
    (dict(n_r=1.5), "n_r"), (dict(n_train=10.5), "n_train"), (dict(n_train=-1), "n_train"),
    (dict(n_classes=1), "n_classes"), (dict(n_classes=2.5), "n_classes"), (dict(p_d=float("nan")), "p_d"),
    (dict(training="diffinit"), "training"), (dict(t_d=True), "t_d"), (dict(n_d=0), "n_d"),
])
def test_invalid_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FeatureModel(**kwargs)


def test_invalid_groups():
    with pytest.raises(ValueError, match="sum to 1"):
        FeatureModel.from_groups([Group(5, 2, 0.5, 0.5), Group(5, 2, 0.5, 0.4)])
    with pytest.raises(ValueError, match=r"\.n must be <="):
        Group(t=3, n=4, p=0.5, weight=1.0)
    with pytest.raises(ValueError, match="weight"):
        Group(t=3, n=2, p=0.5, weight=-0.2)
    with pytest.raises(ValueError, match="n must be <= t"):
        th.expected_metrics(t=[3, 10], n=[4, 2], p=[0.5, 0.5], weight=[0.5, 0.5], n_train=10)
    with pytest.raises(ValueError, match="whole numbers"):
        th.evaluate(t_r=[100.5, 200])
    with pytest.raises(ValueError, match="weights must sum to 1"):
        th.expected_metrics(t=[3, 10], n=[1, 2], p=[0.5, 0.5], weight=[0.5, 0.6], n_train=10)
    with pytest.raises(ValueError, match=r"parameter must be one of \('n_classes', .*got 't_x'"):
        th.sweep("t_x", [1, 2])
    with pytest.raises(ValueError, match="p"):
        th.evaluate(p_r=[0.5, 1.5])


# --------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------
def test_simulate_ground_truth_is_consistent_and_deterministic():
    fm = FeatureModel.from_groups([Group(6, 2, 0.9, 0.5), Group(30, 3, 0.5, 0.3), Group(200, 2, 0.3, 0.2)],
                                  n_classes=4, n_train=300, p_systematic=0.5)
    a = fm.simulate(5, 400, seed=3)
    b = fm.simulate(5, 400, seed=3)
    for f in ("predictions", "labels", "point_features", "learned", "seen", "knows", "wrong_class"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert not np.array_equal(a.predictions, fm.simulate(5, 400, seed=4).predictions)
    F = fm.n_features
    assert a.learned.shape == (5, F) and a.predictions.shape == (5, 400)
    # every point carries n distinct features of its own class and group
    for i in range(400):
        f = a.point_features[i][a.point_features[i] >= 0]
        g = a.point_group[i]
        assert f.size == fm.groups[g].n and np.unique(f).size == f.size
        assert (a.feature_group[f] == g).all() and (a.feature_class[f] == a.labels[i]).all()
    # a model learns only seen features; knowing a point means having learned one of its features
    assert not (a.learned & ~a.seen).any()
    assert (a.seen == a.seen[0]).all()  # shared training set
    assert np.array_equal(a.knows, (a.feature_matrix()[None] & a.learned[:, None]).any(-1))
    assert (a.predictions[a.knows] == np.broadcast_to(a.labels, a.knows.shape)[a.knows]).all()
    assert (a.wrong_class != a.labels).all()
    omega, groups = a.planted_omega()
    assert omega.dtype == bool and omega.shape[:2] == (5, 400) and groups.shape == (omega.shape[2],)
    assert np.array_equal(omega.any(-1), a.knows)
    full, _ = a.planted_omega(drop_absent=False)
    assert full.shape[2] == F


def test_independent_training_sets_differ():
    sim = FeatureModel(training="independent", n_train=50).simulate(4, 10, seed=0)
    assert not (sim.seen == sim.seen[0]).all()


def test_subset_sampler_is_uniform():
    rng = np.random.default_rng(0)
    for t, n in ((6, 2), (40, 30)):  # Floyd's algorithm and the permutation path
        s = simulation._sample_subsets(rng, 30000, t, n)
        assert (np.sort(s, 1)[:, 1:] != np.sort(s, 1)[:, :-1]).all()
        counts = np.bincount(s.ravel(), minlength=t) / s.size
        assert np.abs(counts - 1 / t).max() < 4 * math.sqrt((1 / t) / s.size) + 1e-3
    # pair frequencies for Floyd's path (all C(6,2) subsets equally likely)
    s = np.sort(simulation._sample_subsets(rng, 30000, 6, 2), 1)
    freq = pd.Series(list(map(tuple, s))).value_counts(normalize=True)
    assert len(freq) == 15 and (np.abs(freq - 1 / 15) < 4 * math.sqrt(1 / 15 / 30000)).all()


# --------------------------------------------------------------------------------------
# sweeps
# --------------------------------------------------------------------------------------
def test_sweeps_and_grid_are_tidy_and_consistent():
    base = FeatureModel()
    sw = th.sweep("p_r", [0.1, 0.5, 0.9], base=base)
    assert list(sw.columns[:2]) == ["parameter", "value"] and len(sw) == 3
    assert sw["accuracy"].iloc[1] == pytest.approx(base.replace(p_r=0.5).expected_accuracy())
    long = th.sweeps({"t_r": [100, 1000], "n_r": [1, 2, 3]})
    assert long.groupby("parameter").size().to_dict() == {"n_r": 3, "t_r": 2}
    gr = th.grid(p_r=[0.2, 0.8], alpha_d=[0.5, 0.9], n_classes=[2, 10])
    assert len(gr) == 8
    row = gr.iloc[5]
    ref = base.replace(p_r=row["p_r"], alpha_d=row["alpha_d"], n_classes=int(row["n_classes"]))
    assert row["gap"] == pytest.approx(ref.gde_gap())


def test_coupled_sweep_keeps_ratio_and_recovers_gde_better():
    """Figure 4 (right): more rare features alone moves away from GDE; coupling t_d with t_r
    changes accuracy and agreement together."""
    base = FeatureModel(t_d=20, t_r=200, n_train=1000)
    df = th.coupled_sweep("t_r", "t_d", [50, 100, 200, 400, 800], base=base)
    coupled = df[df["coupled"]]
    assert (coupled["t_d"] == np.round(coupled["t_r"] * 0.1).clip(lower=base.n_d)).all()
    alone = df[~df["coupled"]]
    assert (alone["t_d"] == 20).all()
    for _, r in coupled.iterrows():
        ref = base.replace(t_r=int(r["t_r"]), t_d=int(r["t_d"]))
        assert r["gap"] == pytest.approx(ref.gde_gap())
    df2 = th.coupled_sweep("n_r", "n_d", [1, 2, 3, 4], base=base.replace(n_d=2, n_r=2))
    assert (df2[df2["coupled"]]["n_d"] == [1, 2, 3, 4]).all()


# --------------------------------------------------------------------------------------
# the vote ensemble's calibration
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fm", [
    FeatureModel(n_classes=3, p_systematic=0.4, p_r=0.5, t_r=50, n_train=100),
    FeatureModel(training="independent", p_r=0.5, t_r=60, n_train=150),
    FeatureModel.from_groups([Group(5, 2, 0.8, 0.5), Group(30, 2, 0.5, 0.3), Group(300, 1, 0.4, 0.2)],
                             n_classes=4, n_train=500, p_systematic=0.7),
], ids=["K3-beta", "independent", "3groups"])
def test_cace_enumeration_matches_simulation(fm):
    M, R, P = 5, 300, 200
    out = simulation._simulate_batch(fm, np.random.default_rng(0), R, M, P)
    emp = th.empirical_vote_calibration(out["predictions"], out["labels"], n_classes=fm.n_classes)
    exact = th.vote_calibration(fm, n_models=M).set_index("confidence")
    emp = emp.set_index("confidence")
    # shared training correlates the points of one experiment: se from the replicate spread
    per_rep = [th.empirical_vote_calibration(out["predictions"][r], out["labels"][r], n_classes=fm.n_classes)
               .set_index("confidence").reindex(exact.index, fill_value=0.0) for r in range(R)]
    for col in ("mass", "mass_true"):
        se = np.std([x[col].to_numpy() for x in per_rep], axis=0, ddof=1) / math.sqrt(R)
        diff = np.abs(emp[col].reindex(exact.index, fill_value=0.0).to_numpy() - exact[col].to_numpy())
        assert (diff <= 4 * se + 1e-4).all(), (col, diff, se)
    assert emp["cace_term"].sum() == pytest.approx(th.vote_cace(fm, n_models=M), abs=0.01)


def test_cace_is_zero_for_an_ensemble_that_all_agrees():
    assert th.vote_cace(FeatureModel(p_d=1.0, p_r=1.0, n_train=math.inf)) == pytest.approx(0.0, abs=1e-15)
    tab = th.vote_calibration(FeatureModel(), n_models=4)
    assert tab["mass"].sum() == pytest.approx(2.0)
    assert tab["mass_true"].sum() == pytest.approx(1.0)


def test_gde_constructions_hit_the_target_and_order_the_gap():
    search = {"t_r": [50, 200, 1000], "n_r": [1, 3], "p_r": [0.1, 0.3, 0.5, 0.7, 0.9],
              "alpha_d": [0.5, 0.7, 0.9]}
    df = th.gde_constructions(0.85, search=search, n_models=None)
    assert list(df["kind"]) == ["max_gap", "keeps_gde"]
    assert np.allclose(df["accuracy"], 0.85, atol=1e-6)
    brk, keep = df.iloc[0], df.iloc[1]
    assert brk["gap"] > 0.02 and abs(keep["gap"]) < brk["gap"]
    assert (df["cace"] >= df["gap"].abs() - 1e-12).all()
    # brute force over the same search at the solved p_d: nothing beats the reported maximum
    full = th.grid(**search)
    assert brk["gap"] >= 0  # sanity
    fm = FeatureModel(**{k: brk[k] for k in th.PARAMETERS})
    assert fm.gde_gap() == pytest.approx(brk["gap"]) and fm.expected_accuracy() == pytest.approx(0.85)
    assert len(full) == 90
    # with systematic answers on the grid, the gap can be pushed below zero too
    df2 = th.gde_constructions(0.8, search={**search, "p_systematic": [0.0, 0.9]}, n_models=5)
    assert "min_gap" in set(df2["kind"])
    assert df2.set_index("kind").loc["min_gap", "gap"] < 0


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fm", [
    FeatureModel(n_classes=4, p_systematic=0.5),
    FeatureModel(n_train=200, p_r=0.6),
    FeatureModel(n_classes=3, training="independent", p_systematic=0.3),
], ids=["K4-beta", "K2-small-N", "independent"])
def test_fit_recovers_planted_parameters(fm):
    sim = fm.simulate(10, 3000, seed=1)
    omega, groups = sim.planted_omega()
    res = th.fit(omega, sim.predictions, sim.labels, dominant=groups == 0, n_train=fm.n_train,
                 training=fm.training)
    got = res.model
    assert got.n_classes == fm.n_classes
    assert got.alpha_d == pytest.approx(fm.alpha_d, abs=0.03)
    assert got.p_d == pytest.approx(fm.p_d, abs=0.06)
    assert got.p_r == pytest.approx(fm.p_r, abs=0.06)
    assert abs(got.n_d - fm.n_d) <= 1 and abs(got.n_r - fm.n_r) <= 1
    assert got.t_d == pytest.approx(fm.t_d, rel=0.25)
    assert got.t_r == pytest.approx(fm.t_r, rel=0.3)
    assert got.p_systematic == pytest.approx(fm.p_systematic, abs=0.1)
    tab = res.table()
    assert list(tab.columns) == ["quantity", "measured", "predicted", "difference"]
    # the closed form averages over training sets; the measurement is one realisation of 20 dominant
    # features per class pair, so a p_d off by its own standard error (~0.02) moves accuracy ~0.015
    assert (tab["difference"].abs() < 0.025).all(), tab
    assert res.diagnostics["acc_known"] == 1.0


def test_fit_splits_groups_by_frequency_when_no_mask_is_given():
    fm = FeatureModel(n_classes=3, t_d=5, t_r=300, n_d=2, n_r=2, p_d=0.95, p_r=0.5, alpha_d=0.8, n_train=600)
    sim = fm.simulate(8, 2000, seed=2)
    omega, groups = sim.planted_omega()
    res = th.fit(omega, sim.predictions, sim.labels, n_train=600)
    assert res.model.alpha_d == pytest.approx(0.8, abs=0.05)
    assert abs(res.predicted["accuracy"] - res.measured["accuracy"]) < 0.02


def test_fit_rejects_bad_input():
    sim = FeatureModel().simulate(3, 50, seed=0)
    omega, groups = sim.planted_omega()
    with pytest.raises(ValueError, match="omega"):
        th.fit(omega[0], sim.predictions, sim.labels)
    with pytest.raises(ValueError, match="predictions"):
        th.fit(omega, sim.predictions[:2], sim.labels)
    with pytest.raises(ValueError, match="labels"):
        th.fit(omega, sim.predictions, sim.labels[:10])
    with pytest.raises(ValueError, match="dominant"):
        th.fit(omega, sim.predictions, sim.labels, dominant=groups[:3] == 0)
    with pytest.raises(ValueError, match="training"):
        th.fit(omega, sim.predictions, sim.labels, training="diffinit")


def test_same_wrong_rate_against_a_loop_and_beta_round_trip():
    rng = np.random.default_rng(0)
    preds, labels = rng.integers(0, 4, (6, 300)), rng.integers(0, 4, 300)
    same = pairs = 0
    for n in range(300):
        for i, j in itertools.combinations(range(6), 2):
            if preds[i, n] != labels[n] and preds[j, n] != labels[n]:
                pairs += 1
                same += preds[i, n] == preds[j, n]
    assert th.same_wrong_rate(preds, labels) == pytest.approx(same / pairs)
    for K in (3, 5, 10):
        for beta in (0.0, 0.3, 0.8, 1.0):
            g_w, g_o = beta + (1 - beta) / K, (1 - beta) / K
            a = g_w / (g_w + (K - 2) * g_o)
            s = a ** 2 + (1 - a) ** 2 / (K - 2)
            assert th.beta_from_same_wrong_rate(s, K) == pytest.approx(beta, abs=1e-6)
    with pytest.raises(ValueError, match="n_classes=2"):
        th.beta_from_same_wrong_rate(1.0, 2)


def test_public_api_is_exported():
    for name in th.__all__:
        assert hasattr(th, name), name


def test_coupling_study_matches_its_sweeps():
    base = FeatureModel(t_d=50, t_r=200, n_d=2, n_r=2, p_d=0.7, p_r=0.2, alpha_d=0.6, n_train=100)
    df = th.coupling_study([base], "n_r", "n_d", factors=(0.5, 1, 2, 3))
    sw = th.coupled_sweep("n_r", "n_d", [1, 2, 4, 6], base=base)
    row = df.iloc[0]
    assert row["max_gap_alone"] == pytest.approx(sw[~sw["coupled"]]["gap"].abs().max())
    assert row["mean_gap_coupled"] == pytest.approx(sw[sw["coupled"]]["gap"].abs().mean())
    assert row["coupled_closer"] == (row["mean_gap_coupled"] < row["mean_gap_alone"])


# --------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------
def test_plots_draw_what_they_are_given():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ift_core.plots import theory as pt

    df = th.compare_with_simulation(th.random_models(3, seed=0), n_reps=10, n_points=50, progress=False)
    ax = pt.plot_closed_vs_simulation(df).axes[0]  # every figure function returns its Figure
    assert len(ax.containers) == 3  # one errorbar series per metric
    fig = pt.plot_sweeps(th.sweeps({"p_r": [0.1, 0.5, 0.9], "t_r": [100, 1000], "n_r": [1, 2]}), ncols=2)
    assert sum(a.get_visible() for a in fig.axes) == 3
    line = fig.axes[0].get_lines()[0]
    assert np.allclose(line.get_ydata(), th.sweep("p_r", [0.1, 0.5, 0.9])["accuracy"])
    ax = pt.plot_coupled_sweep(th.coupled_sweep("t_r", "t_d", [100, 300])).axes[0]
    assert {l.get_label() for l in ax.get_lines()} >= {"t_r alone", "t_r with t_d"}
    ax = pt.plot_accuracy_agreement(th.grid(p_r=[0.2, 0.8]), hue="p_r").axes[0]
    assert ax.get_xlabel() == "expected accuracy"
    tab = th.vote_calibration(FeatureModel(), n_models=5)
    _, ax = plt.subplots()
    assert pt.plot_vote_reliability(tab, empirical=tab, ax=ax) is ax.figure  # drawn into the given axes
    assert f"{tab['cace_term'].sum():.3f}" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="lacks columns"):
        pt.plot_sweeps(pd.DataFrame({"x": [1]}))
    plt.close("all")


def test_models_from_grid_skips_invalid_combinations():
    ms = th.models_from_grid(t_r=[2, 100], n_r=[1, 3], p_r=[0.2, 0.8])
    assert len(ms) == 6
    assert all(m.n_r <= m.t_r for m in ms)
    assert {(m.t_r, m.n_r, m.p_r) for m in ms} == {(t, n, p) for t in (2, 100) for n in (1, 3) for p in (0.2, 0.8)
                                                   if n <= t}
    with pytest.raises(ValueError, match="unknown parameter"):
        th.models_from_grid(q=[1])


def test_large_counts_do_not_overflow():
    # C(2000, 1000) overflows float64; the log-space pmf must not
    fm = FeatureModel(t_r=5000, n_r=2000, p_r=0.001, n_train=math.inf)
    assert fm.miss_s()[1] == pytest.approx((1 - 0.001) ** 2000, rel=1e-10)
    assert np.isfinite(fm.replace(n_train=10**6).metrics()["gap"])


def test_one_home_for_otsu_and_pair_agreement():
    """fit's default groups are tensor.split_frequencies' Otsu split; every pair agreement (a
    simulation's, fit's measured one) is the one gde's disagreement complements."""
    from ift_core import gde
    from ift_core.tensor import split_frequencies

    sim = FeatureModel(n_classes=3, p_systematic=0.3).simulate(6, 800, seed=2)
    omega, _ = sim.planted_omega()
    dominant, _ = split_frequencies(omega.any(0).sum(0), rule="otsu")
    auto = th.fit(omega, sim.predictions, sim.labels, n_train=1000)
    given = th.fit(omega, sim.predictions, sim.labels, n_train=1000, dominant=dominant)
    assert repr(auto.model) == repr(given.model) and auto.predicted == given.predicted
    agreement = 1 - gde.disagreement(sim.predictions)
    assert sim.agreement() == pytest.approx(agreement, abs=1e-12)
    assert auto.measured["agreement"] == pytest.approx(agreement, abs=1e-12)
    assert th.readings.READINGS[0] == "training_set"  # the readings, reached from the face
