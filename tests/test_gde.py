"""Tests for ift_core.gde: brute-force references, planted ground truth, invalid input."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from ift_core import gde
from ift_core.gde import (
    ATC,
    GDE,
    AverageConfidence,
    DifferenceOfConfidences,
    cace,
    class_aggregated_calibration,
    compare_estimators,
    counterfactual_disagreement,
    disagreement,
    ece,
    estimate_error,
    gde_summary,
    pairwise_disagreement,
    same_wrong_rate,
    vote_ensemble,
)
from ift_core.gde import test_error as error_of  # imported under another name so pytest does not collect it

FAST = settings(max_examples=60, deadline=None)


@st.composite
def ensembles(draw, min_models=2, max_models=6, max_points=25, max_classes=5):
    """(preds (M, N), labels (N,), K) with every value in [0, K)."""
    k = draw(st.integers(2, max_classes))
    m = draw(st.integers(min_models, max_models))
    n = draw(st.integers(1, max_points))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # mix of uniform noise and agreement with the label, so both right and wrong answers occur
    labels = rng.integers(0, k, size=n)
    p_right = draw(st.floats(0.0, 1.0))
    preds = np.where(rng.random((m, n)) < p_right, labels[None, :], rng.integers(0, k, size=(m, n)))
    return preds, labels, k


# ----------------------------------------------------------------------------- brute-force references


def brute_disagreement(preds, include_self=False):
    m = len(preds)
    pairs = itertools.product(range(m), repeat=2) if include_self else itertools.combinations(range(m), 2)
    vals = [np.mean(preds[i] != preds[j]) for i, j in pairs]
    return float(np.mean(vals))


def brute_cace(preds, labels, k):
    m, n = preds.shape
    total = 0.0
    for j in range(m + 1):
        q = j / m
        joint = weight = 0.0
        for x in range(n):
            for c in range(k):
                frac = np.sum(preds[:, x] == c) / m
                if np.isclose(frac, q):
                    weight += 1 / n
                    joint += (labels[x] == c) / n
        total += abs(joint - q * weight)
    return total


def brute_same_wrong(preds, labels):
    same = both = 0
    for i, j in itertools.combinations(range(len(preds)), 2):
        for x in range(preds.shape[1]):
            if preds[i, x] != labels[x] and preds[j, x] != labels[x]:
                both += 1
                same += preds[i, x] == preds[j, x]
    return same / both if both else float("nan")


def brute_ece(probs, labels, n_bins):
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b > 0 else (conf >= lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


@FAST
@given(ensembles())
def test_error_disagreement_match_pair_loops(ens):
    preds, labels, k = ens
    assert error_of(preds, labels) == pytest.approx(np.mean([np.mean(p != labels) for p in preds]))
    np.testing.assert_allclose(error_of(preds, labels, per_model=True), (preds != labels).mean(1))
    assert disagreement(preds) == pytest.approx(brute_disagreement(preds), abs=1e-12)
    assert disagreement(preds, include_self=True) == pytest.approx(brute_disagreement(preds, True), abs=1e-12)
    m = len(preds)
    assert disagreement(preds, include_self=True) == pytest.approx((m - 1) / m * disagreement(preds), abs=1e-12)
    pw = pairwise_disagreement(preds)
    for i, j in itertools.product(range(m), repeat=2):
        assert pw[i, j] == pytest.approx(np.mean(preds[i] != preds[j]), abs=1e-12)
    assert pw[np.triu_indices(m, 1)].mean() == pytest.approx(disagreement(preds), abs=1e-12)


@FAST
@given(ensembles())
def test_vote_ensemble_cace_same_wrong_match_loops(ens):
    preds, labels, k = ens
    votes = vote_ensemble(preds, k)
    for x in range(preds.shape[1]):
        for c in range(k):
            assert votes[x, c] == pytest.approx(np.mean(preds[:, x] == c))
    assert cace(preds, labels, k) == pytest.approx(brute_cace(preds, labels, k), abs=1e-12)
    table = class_aggregated_calibration(preds, labels, k)
    assert table["mass"].sum() == pytest.approx(k)  # every (point, class) sits at exactly one level
    assert table["mass_true"].sum() == pytest.approx(1.0)  # the label sits at exactly one level
    assert (table["mass"] > 0).all() and table["cace_term"].sum() == pytest.approx(cace(preds, labels, k), abs=1e-12)
    # each row against a loop over (point, class): the share at vote level q, and with the label there
    m, n = preds.shape
    for row in table.itertuples():
        at = [(x, c) for x in range(n) for c in range(k) if np.isclose(np.mean(preds[:, x] == c), row.confidence)]
        assert row.mass == pytest.approx(len(at) / n)
        assert row.mass_true == pytest.approx(sum(c == labels[x] for x, c in at) / n)
    swr, ref = same_wrong_rate(preds, labels), brute_same_wrong(preds, labels)
    assert (np.isnan(swr) and np.isnan(ref)) or swr == pytest.approx(ref, abs=1e-12)


@FAST
@given(st.integers(1, 40), st.integers(2, 6), st.integers(1, 20), st.integers(0, 2**32 - 1), st.floats(0.1, 30))
def test_ece_matches_bin_loop(n, c, n_bins, seed, temp):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(size=(n, c)) * temp, axis=1)
    labels = rng.integers(0, c, size=n)
    assert ece(probs, labels, n_bins=n_bins) == pytest.approx(brute_ece(probs, labels, n_bins), abs=1e-12)


def test_ece_near_zero_when_calibrated():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=100_000)
    labels = (rng.random((100_000, 1)) > probs.cumsum(1)).sum(1)  # Y ~ Categorical(probs)
    assert ece(probs, labels, n_bins=10) < 0.01
    # and clearly positive when over-confident
    sharp = softmax(np.log(probs + 1e-12) * 3, axis=1)
    assert ece(sharp, labels, n_bins=10) > 0.05


# ----------------------------------------------------------------------------- the CACE bound


def _bound_holds(preds, labels, k):
    err = error_of(preds, labels)
    m = len(preds)
    bound = cace(preds, labels, k)
    dis_iid = disagreement(preds, include_self=True)
    dis = disagreement(preds)
    assert abs(dis_iid - err) <= bound + 1e-12  # Theorem 4.3, exact for the empirical distribution
    assert abs(dis - err) <= bound + dis_iid / (m - 1) + 1e-12
    return err, dis_iid, bound


@FAST
@given(ensembles(max_models=8, max_points=60, max_classes=6))
def test_cace_bound_random_ensembles(ens):
    _bound_holds(*ens)


def _systematic_ensemble(rng, m, n, k, beta, spread):
    """Real-like: points of varying difficulty, wrong models mostly name one designated wrong class."""
    labels = rng.integers(0, k, size=n)
    wrong_class = (labels + rng.integers(1, k, size=n)) % k
    difficulty = rng.beta(spread, spread * 4, size=n)
    wrong = rng.random((m, n)) < difficulty[None, :]
    systematic = rng.random((m, n)) < beta
    random_wrong = (labels[None, :] + rng.integers(1, k, size=(m, n))) % k
    preds = np.where(wrong, np.where(systematic, wrong_class[None, :], random_wrong), labels[None, :])
    return preds, labels


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(3, 10), st.floats(0.0, 1.0), st.floats(0.2, 5.0), st.integers(0, 10_000))
def test_cace_bound_systematic_ensembles(m, k, beta, spread, seed):
    preds, labels = _systematic_ensemble(np.random.default_rng(seed), m, 500, k, beta, spread)
    _bound_holds(preds, labels, k)


def test_systematic_errors_push_disagreement_below_error():
    rng = np.random.default_rng(1)
    preds, labels = _systematic_ensemble(rng, 10, 5000, 10, beta=0.95, spread=0.1)  # bimodal difficulty
    s = gde_summary(preds, labels, 10)
    assert s["disagreement"] < s["error"]
    assert s["same_wrong_rate"] > 0.8 > s["random_same_wrong_rate"]
    assert s["counterfactual_disagreement"] > s["disagreement"]
    assert bool(s["bound_holds"])


def test_perfectly_calibrated_ensemble_has_zero_cace_and_gde_holds():
    """Planted: every vote pattern occurs M times with exactly c_k of its copies labelled k."""
    m, k = 4, 3
    patterns = [c for c in itertools.product(range(m + 1), repeat=k) if sum(c) == m]
    cols, labels = [], []
    for counts in patterns:
        votes = np.repeat(np.arange(k), counts)  # M predictions with counts c_k
        for copy_label in np.repeat(np.arange(k), counts):  # M copies, c_k of them labelled k
            cols.append(votes)
            labels.append(copy_label)
    preds, labels = np.array(cols).T, np.array(labels)
    assert cace(preds, labels, k) == pytest.approx(0.0, abs=1e-12)
    assert disagreement(preds, include_self=True) == pytest.approx(error_of(preds, labels), abs=1e-12)
    # distinct pairs overshoot by the factor M/(M-1), the finite-ensemble correction
    assert disagreement(preds) == pytest.approx(m / (m - 1) * error_of(preds, labels), abs=1e-12)


def test_sampled_calibrated_ensemble_has_small_cace():
    rng = np.random.default_rng(3)
    m, n, k = 8, 50_000, 5
    preds = rng.integers(0, k, size=(m, n)) * (rng.random((m, n)) < 0.6)  # class 0 popular, votes vary
    votes = vote_ensemble(preds, k)
    labels = (rng.random((n, 1)) > votes.cumsum(1)).sum(1)  # Y ~ h~(x): calibrated by construction
    small = cace(preds, labels, k)
    assert small < 0.02
    # the same predictions with labels unrelated to the votes are far from calibrated
    assert cace(preds, rng.integers(0, k, size=n), k) > 10 * small


# ----------------------------------------------------------------------------- diagnostics


def test_counterfactual_exact_enumeration():
    """Enumerate every replacement of the wrong answers on a tiny ensemble."""
    preds = np.array([[0, 1, 2, 0], [1, 1, 0, 2], [2, 0, 0, 0]])
    labels = np.array([0, 1, 1, 2])
    k = 3
    wrong = np.argwhere(preds != labels[None, :])
    total = 0.0
    options = [[c for c in range(k) if c != labels[x]] for _, x in wrong]
    combos = list(itertools.product(*options))
    for combo in combos:
        new = preds.copy()
        for (i, x), c in zip(wrong, combo):
            new[i, x] = c
        total += disagreement(new)
    assert counterfactual_disagreement(preds, labels, k) == pytest.approx(total / len(combos), abs=1e-12)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_counterfactual_matches_monte_carlo(k):
    rng = np.random.default_rng(k)
    preds, labels = _systematic_ensemble(rng, 6, 300, k, beta=0.9, spread=1.0)
    exact = counterfactual_disagreement(preds, labels, k)
    wrong = preds != labels[None, :]
    draws = []
    for _ in range(400):
        shift = rng.integers(1, k, size=preds.shape)  # uniform over the K-1 wrong classes
        new = np.where(wrong, (labels[None, :] + shift) % k, preds)
        assert error_of(new, labels) == error_of(preds, labels)  # right/wrong pattern kept
        draws.append(disagreement(new))
    draws = np.array(draws)
    se = draws.std(ddof=1) / np.sqrt(len(draws))
    assert abs(draws.mean() - exact) < 4 * se + 1e-12


def test_sparse_large_class_ids_give_same_results():
    rng = np.random.default_rng(9)
    preds, labels = _systematic_ensemble(rng, 4, 100, 5, beta=0.5, spread=1.0)
    ids = np.array([3, 10**9, 7, 2**40, 11])  # a relabelling with huge ids
    assert disagreement(ids[preds]) == pytest.approx(disagreement(preds))
    assert same_wrong_rate(ids[preds], ids[labels]) == pytest.approx(same_wrong_rate(preds, labels))


def test_same_wrong_rate_random_wrong_answers():
    rng = np.random.default_rng(5)
    k = 6
    labels = rng.integers(0, k, size=20_000)
    preds = (labels[None, :] + rng.integers(1, k, size=(4, 20_000))) % k  # always wrong, uniformly
    assert same_wrong_rate(preds, labels) == pytest.approx(1 / (k - 1), abs=0.01)
    assert np.isnan(same_wrong_rate(np.array([[0, 1], [0, 1]]), np.array([0, 1])))


# ----------------------------------------------------------------------------- estimate_error


def test_estimate_error_jackknife_matches_leave_one_out_loop():
    rng = np.random.default_rng(2)
    preds, _ = _systematic_ensemble(rng, 7, 200, 4, beta=0.5, spread=1.0)
    est = estimate_error(preds, method="jackknife")
    loo = np.array([brute_disagreement(np.delete(preds, i, axis=0)) for i in range(7)])
    se = np.sqrt(6 / 7 * np.sum((loo - loo.mean()) ** 2))
    assert est.se == pytest.approx(se, rel=1e-10)
    assert est.estimate == pytest.approx(disagreement(preds))
    assert est.low == pytest.approx(est.estimate - 2.4469118511449692 * se)  # t quantile, 6 df


def test_estimate_error_bootstrap_deterministic_and_close_to_clt():
    rng = np.random.default_rng(4)
    preds, _ = _systematic_ensemble(rng, 5, 2000, 5, beta=0.3, spread=1.0)
    a = estimate_error(preds, method="bootstrap", n_boot=1000, seed=1)
    b = estimate_error(preds, method="bootstrap", n_boot=1000, seed=1)
    assert a == b
    assert a.low < a.estimate < a.high
    d = np.array([brute_disagreement(preds[:, [x]]) for x in range(preds.shape[1])])
    assert a.se == pytest.approx(d.std(ddof=1) / np.sqrt(len(d)), rel=0.15)


def test_estimate_error_both_covers_population_disagreement():
    """Models and points drawn from a known population: the 'both' interval covers E[dis]."""
    rng = np.random.default_rng(6)
    k, n_types = 4, 40
    pi = rng.dirichlet(np.ones(k) * 0.3, size=n_types)  # per point type, P(model predicts class)
    true_dis = float(np.mean(1 - (pi**2).sum(1)))
    cover = 0
    reps = 300
    for _ in range(reps):
        types = rng.integers(0, n_types, size=150)
        u = rng.random((5, 150, 1))
        preds = (u > pi[types].cumsum(1)[None]).sum(2)
        est = estimate_error(preds, method="both")
        cover += est.low <= true_dis <= est.high
    assert 0.9 <= cover / reps <= 1.0


def test_estimate_error_seed_level_effect_needs_model_term():
    """Half the seeds behave one way, half another: only intervals with the model term cover."""
    rng = np.random.default_rng(6)
    k, n_types, m, n = 4, 40, 12, 300
    pa, pb = rng.dirichlet(np.ones(k) * 0.3, size=(2, n_types))
    pbar = (pa + pb) / 2  # two independent seeds predict k with probability pbar_k
    true_dis = float(np.mean(1 - (pbar**2).sum(1)))
    cover = {"both": 0, "bootstrap": 0}
    reps = 200
    for _ in range(reps):
        types = rng.integers(0, n_types, size=n)
        kind_a = rng.random(m) < 0.5
        p = np.where(kind_a[:, None, None], pa[types][None], pb[types][None])
        preds = (rng.random((m, n, 1)) > p.cumsum(2)).sum(2)
        for method in cover:
            est = estimate_error(preds, method=method, n_boot=200)
            cover[method] += est.low <= true_dis <= est.high
    assert cover["both"] / reps >= 0.88
    assert cover["bootstrap"] / reps < 0.7


# ----------------------------------------------------------------------------- estimators


def test_atc_constructed_case():
    # source: 10 points, max-confidences 0.50..0.95, the 3 least confident are wrong -> t = 0.65
    conf = np.linspace(0.5, 0.95, 10)
    src = np.stack([conf, 1 - conf], axis=1)
    labels = np.array([1, 1, 1] + [0] * 7)
    atc = ATC(score="max_confidence").fit(src, labels)
    assert atc.thresholds_ == pytest.approx([0.65])
    assert atc.estimate(src) == pytest.approx(0.3)  # reproduces the source error
    tconf = np.array([0.55, 0.6, 0.64, 0.66, 0.9])  # three strictly below 0.65
    assert atc.estimate(np.stack([tconf, 1 - tconf], 1)) == pytest.approx(0.6)
    # negative entropy is monotone in max-confidence for two classes: same answer
    atc_ne = ATC(score="negative_entropy").fit(src, labels)
    assert atc_ne.estimate(np.stack([tconf, 1 - tconf], 1)) == pytest.approx(0.6)
    # every source point wrong -> everything below the threshold
    assert ATC(score="max_confidence").fit(src, 1 - (src.argmax(1))).estimate(src) == 1.0


def test_estimators_on_source_and_per_model_averaging():
    rng = np.random.default_rng(7)
    probs = softmax(rng.normal(size=(3, 400, 5)) * 2, axis=2)
    labels = rng.integers(0, 5, size=400)
    src_err = error_of(probs.argmax(2), labels)
    assert DifferenceOfConfidences().fit(probs, labels).estimate(probs) == pytest.approx(src_err)
    assert ATC().fit(probs, labels).estimate(probs) == pytest.approx(src_err)  # scores are distinct
    assert AverageConfidence().fit(probs, labels).estimate(probs) == pytest.approx(1 - probs.max(2).mean())
    assert GDE().fit(probs, labels).estimate(probs) == pytest.approx(disagreement(probs.argmax(2)))
    target = softmax(rng.normal(size=(3, 300, 5)), axis=2)
    for est in (AverageConfidence(), DifferenceOfConfidences(), ATC(score="max_confidence")):
        ens = type(est)(**{k: v for k, v in vars(est).items()}).fit(probs, labels).estimate(target)
        single = [type(est)(**vars(est)).fit(probs[i], labels).estimate(target[i]) for i in range(3)]
        assert ens == pytest.approx(np.mean(single))
    assert GDE().fit(probs, labels).estimate_interval(target, method="jackknife").method == "jackknife"


def test_compare_estimators_table_and_label_blindness():
    rng = np.random.default_rng(8)
    src = softmax(rng.normal(size=(4, 300, 3)) * 3, axis=2)
    ys = rng.integers(0, 3, size=300)
    tgt = softmax(rng.normal(size=(4, 200, 3)), axis=2)
    yt = rng.integers(0, 3, size=200)
    df = compare_estimators((src, ys), {"noise": (tgt, yt), "source": (src, ys)})
    assert set(df["method"]) == {"AC", "DoC", "ATC-MC", "ATC-NE", "GDE"}
    assert len(df) == 10
    row = df[(df.target == "noise") & (df.method == "GDE")].iloc[0]
    assert row.estimate == pytest.approx(disagreement(tgt.argmax(2)))
    assert row.true_error == pytest.approx(error_of(tgt.argmax(2), yt))
    np.testing.assert_allclose(df.abs_error, (df.estimate - df.true_error).abs())
    # target labels only move the true error, never the estimates
    df2 = compare_estimators((src, ys), {"noise": (tgt, (yt + 1) % 3), "source": (src, ys)})
    np.testing.assert_allclose(df.estimate, df2.estimate)
    # a single model: no GDE
    single = compare_estimators((src[0], ys), {"t": (tgt[0], yt)})
    assert "GDE" not in set(single.method) and len(single) == 4


@pytest.fixture(scope="module")
def digits_ensemble():
    """A real ensemble: 5 SGD logistic regressions on scikit-learn's digits, differing in data order."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    tr, te = order[:1000], order[1000:]
    models = [
        SGDClassifier(loss="log_loss", alpha=1e-3, max_iter=30, tol=None, random_state=s).fit(x[tr], y[tr])
        for s in range(5)
    ]
    noisy = np.clip(x[te] + rng.normal(scale=0.5, size=x[te].shape), 0, 1)

    def probs(xx):
        return np.stack([mdl.predict_proba(xx) for mdl in models])

    return probs(x[te]), y[te], probs(noisy)


def test_real_digits_ensemble(digits_ensemble):
    clean, y, noisy = digits_ensemble
    for p in (clean, noisy):
        preds = p.argmax(2)
        err, dis_iid, bound = _bound_holds(preds, y, 10)
        assert 0 < err < 0.9 and 0 < bound
    df = compare_estimators((clean, y), {"clean": (clean, y), "noise": (noisy, y)})
    truth = df.groupby("target")["true_error"].first()
    assert truth["noise"] > truth["clean"]
    assert np.isfinite(df[["estimate", "abs_error"]].to_numpy()).all()
    s = gde_summary(clean.argmax(2), y, 10)
    assert set(s.index) >= {"error", "disagreement", "cace", "same_wrong_rate", "counterfactual_disagreement"}


# ----------------------------------------------------------------------------- invalid input

P2 = np.array([[0, 1, 2], [1, 1, 2]])
Y = np.array([0, 1, 2])
PROBS = softmax(np.random.default_rng(0).normal(size=(2, 3, 3)), axis=2)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: error_of(P2, [0, 1, 5 - 6]), "labels"),
        (lambda: cace(P2, [0, 1, 3], 3), "labels must lie in"),
        (lambda: cace(P2, [0, 1], 3), "labels has 2 entries"),
        (lambda: cace(P2, Y, 2), "preds must lie in"),
        (lambda: cace(P2, Y, 1), "n_classes"),
        (lambda: counterfactual_disagreement(P2, [0, 1, 7], 3), "labels must lie in"),
        (lambda: disagreement(P2[:1]), "at least 2"),
        (lambda: disagreement(P2[0]), "shape"),
        (lambda: pairwise_disagreement(np.zeros((3, 0), dtype=int)), "empty"),
        (lambda: error_of(np.zeros((0, 4), dtype=int), np.zeros(4, dtype=int)), "empty"),
        (lambda: same_wrong_rate(P2, Y[:2]), "labels has 2 entries"),
        (lambda: same_wrong_rate(P2[:1], Y), "at least 2"),
        (lambda: vote_ensemble(P2 - 1, 3), ">= 0"),
        (lambda: vote_ensemble(P2 + 0.5, 3), "whole numbers"),
        (lambda: estimate_error(P2, method="nope"), "method"),
        (lambda: estimate_error(P2, method="jackknife"), "at least 3"),
        (lambda: estimate_error(np.vstack([P2, P2]), level=1.5), "level"),
        (lambda: ece(PROBS[0], [0, 1, 3]), "labels must lie in"),
        (lambda: ece(PROBS, Y), r"\(N, C\)"),
        (lambda: ece(PROBS[0] * 2, Y), "sum to 1"),
        (lambda: ece(np.where(np.eye(3, dtype=bool), np.nan, PROBS[0]), Y), "NaN"),
        (lambda: ece(PROBS[0], Y, n_bins=0), "n_bins"),
        (lambda: GDE().fit(PROBS[0], Y), "at least 2 models"),
        (lambda: GDE().estimate(PROBS), "not fitted"),
        (lambda: ATC(score="nope").fit(PROBS, Y), "score"),
        (lambda: ATC().fit(PROBS, Y).estimate(PROBS[:1]), "fitted on 2 models"),
        (lambda: AverageConfidence().fit(np.log(PROBS), Y), "non-negative"),
        (lambda: AverageConfidence().fit(PROBS, [0, 1, 4]), "labels must lie in"),
        (lambda: AverageConfidence().fit(PROBS[:, :0], []), "empty"),
        (lambda: compare_estimators((PROBS, Y), {}), "targets"),
        (lambda: compare_estimators((PROBS, Y), {"a": (PROBS[:, :2], Y)}), "labels"),
    ],
)
def test_invalid_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_public_api_listed():
    for name in gde.__all__:
        assert hasattr(gde, name)
    assert "torch" not in gde.__dict__


# ----------------------------------------------------------------------------- plots


def test_plots_return_figures(digits_ensemble):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ift_core.plots import gde as gplots

    clean, y, noisy = digits_ensemble
    sets = {"clean": (clean.argmax(2), y), "noise": (noisy.argmax(2), y)}
    fig = gplots.error_vs_disagreement(sets)
    ax = fig.axes[0]
    assert len(ax.collections) >= 2  # one scatter per set
    assert any(np.allclose(line.get_xdata(), line.get_ydata()) for line in ax.lines)  # the diagonal
    fig2 = gplots.error_vs_disagreement(sets, per="ensemble")
    assert fig2.axes[0].collections
    fig3 = gplots.vote_reliability_diagram(clean.argmax(2), y, 10)
    assert "CACE" in fig3.axes[0].get_title()
    df = compare_estimators((clean, y), {"clean": (clean, y), "noise": (noisy, y)})
    fig4 = gplots.estimator_comparison(df)
    assert len(fig4.axes[0].patches) >= 10
    _, ax5 = plt.subplots()
    assert gplots.estimator_comparison(df, ax=ax5) is ax5.figure
    plt.close("all")


def test_one_home_for_the_vote_calibration_table():
    """The measured table has one home (gde), reached from theory under its old name too; replicates
    (R, M, N) pool their points; the framework's exact table has the same columns."""
    from ift_core import theory

    rng = np.random.default_rng(0)
    preds, labels = rng.integers(0, 4, (3, 5, 60)), rng.integers(0, 4, (3, 60))
    assert theory.empirical_vote_calibration is class_aggregated_calibration
    pooled = class_aggregated_calibration(preds.transpose(1, 0, 2).reshape(5, -1), labels.ravel(), 4)
    pd.testing.assert_frame_equal(class_aggregated_calibration(preds, labels), pooled)
    exact = theory.vote_calibration(theory.FeatureModel(n_classes=4), n_models=5)
    assert list(exact.columns) == list(pooled.columns)
    with pytest.raises(ValueError, match=r"labels must have shape \(R, N\) = \(3, 60\)"):
        class_aggregated_calibration(preds, labels[0])
