"""Tests for ift_core.theory.readings: every reading's closed forms against Monte Carlo and brute force,
the weightings, the couplings, and the statements table."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ift_core.theory import readings as rd
from ift_core import theory as th
from ift_core.theory import FeatureModel

SMALL_GRID = dict(t_d=[10, 40], t_r=[60, 400], n_d=[2], n_r=[1, 3], p_d=[0.9], p_r=[0.2, 0.5], alpha_d=[0.7],
                  n_train=[50, 400])


def _scalar(out: dict, i: int | None = None) -> dict[str, float]:
    return {k: float(np.ravel(out[k])[0 if i is None else i]) for k in ("accuracy", "agreement", "gap")}


# --------------------------------------------------------------------------------------
# closed forms against Monte Carlo
# --------------------------------------------------------------------------------------
def test_random_settings_cover_every_reading_weighting_and_regime():
    ss = rd.random_settings(3, seed=5)
    assert {(s["reading"], s["weighting"]) for s in ss} == set(itertools.product(rd.READINGS, rd.WEIGHTINGS))
    for r in rd.READINGS:
        mine = [s for s in ss if s["reading"] == r]
        assert {s["n_classes"] > 2 for s in mine} == {False, True}, r
        assert {s["p_systematic"] > 0 for s in mine} == {False, True}, r
        if r in rd.WITH_TRAINING_SET:
            assert {s["training"] for s in mine} == set(th.TRAINING), r


def test_every_reading_matches_its_monte_carlo_within_4_se():
    """72 random settings (every reading x weighting, K in 2/3/5, both trainings, beta 0/0.5)."""
    df = rd.compare_with_simulation(rd.random_settings(3, seed=5), n_reps=80, n_models=3, n_points=150, seed=2)
    worst = df.loc[df["z"].abs().idxmax()]
    assert (df["z"].abs() <= 4).all(), worst.to_dict()
    live = df[df["se"] > 0]
    # every reading is tested on settings where the simulation has noise (not only degenerate ones)
    assert live.groupby("reading")["setting"].nunique().min() >= 6
    # the z-scores look like standard normal draws: no bias hidden under 4 se
    assert abs(live["z"].mean()) < 0.35
    assert 0.6 < live["z"].std() < 1.4


@pytest.mark.parametrize("reading", rd.READINGS)
def test_named_regimes_against_monte_carlo(reading):
    """Beyond the random settings: K = 10, strong systematic answers, independent training."""
    kw = dict(n_classes=10, t_d=6, t_r=30, n_d=2, n_r=3, p_d=0.6, p_r=0.35, alpha_d=0.55, n_train=80,
              p_systematic=0.8)
    for training in th.TRAINING:
        closed = _scalar(rd.expected_metrics(reading=reading, training=training, **kw))
        mc = rd.monte_carlo(reading=reading, training=training, n_reps=150, n_models=4, n_points=200, seed=9, **kw)
        for k, v in closed.items():
            assert abs(mc[k] - v) <= 4 * mc[f"{k}_se"], (reading, training, k, mc[k], v)


def test_training_set_reading_reproduces_the_framework_exactly():
    models = th.random_models(40, seed=3, n_groups=2, n_classes=(2, 3, 10), p_systematic=(0.0, 0.7),
                              n_train=(0, 20, 300))
    models += [FeatureModel(), FeatureModel(n_classes=3, p_systematic=0.8), FeatureModel(training="independent"),
               FeatureModel(n_train=math.inf, n_classes=4, p_systematic=0.3)]
    for fm in models:
        d, r = fm.groups
        out = rd.expected_metrics(reading="training_set", training=fm.training, n_classes=fm.n_classes, t_d=d.t,
                                  t_r=r.t, n_d=d.n, n_r=r.n, p_d=d.p, p_r=r.p, alpha_d=d.weight,
                                  n_train=fm.n_train, p_systematic=fm.p_systematic)
        ref = fm.metrics()
        for k in ("accuracy", "agreement", "gap"):
            assert float(out[k]) == pytest.approx(ref[k], rel=1e-12, abs=1e-14), (fm, k)
        assert np.allclose(out["miss"], fm.miss_s(), rtol=1e-13, atol=0)
        assert np.allclose(out["both"], fm.both_s(), rtol=1e-13, atol=0)
    # the default setting is the framework's default
    assert _scalar(rd.expected_metrics()) == pytest.approx({k: FeatureModel().metrics()[k] for k in
                                                           ("accuracy", "agreement", "gap")}, rel=1e-12)


# --------------------------------------------------------------------------------------
# each reading's closed form against brute force
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("t,n", [(1, 3), (2, 2), (4, 3), (5, 5), (9, 2), (3, 6)])
def test_independent_distinct_count_by_enumerating_every_draw(t, n):
    counts = np.bincount([len(set(draw)) for draw in itertools.product(range(t), repeat=n)], minlength=n + 1)
    exact = counts / t ** n
    got = rd._distinct_pmf(np.array([float(t)]), np.array([float(n)]))[0]
    assert got == pytest.approx(exact, abs=1e-14)
    if n > t:  # a valid law, but the readings share the rule n <= t
        return
    p = 0.3
    out = rd.expected_metrics(reading="independent", t_d=max(t, n), n_d=n, t_r=t, n_r=n, p_r=p, alpha_d=0.0)
    assert float(out["miss"][1]) == pytest.approx(float((exact * (1 - p) ** np.arange(n + 1)).sum()), rel=1e-12)
    assert float(out["both"][1]) == pytest.approx(float((exact * (1 - p) ** (2 * np.arange(n + 1))).sum()), rel=1e-12)


@pytest.mark.parametrize("t,n,p", [(6, 2, 0.5), (7, 3, 0.3), (5, 5, 0.9), (8, 1, 0.0)])
def test_fixed_capacity_by_enumerating_every_learned_set(t, n, p):
    c = math.floor(p * t + 0.5)
    point = set(range(n))  # by symmetry any point will do
    learned_sets = list(itertools.combinations(range(t), c))
    miss = sum(not (point & set(s)) for s in learned_sets) / len(learned_sets)
    out = rd.expected_metrics(reading="fixed_capacity", t_d=t, n_d=n, p_d=p, t_r=t, n_r=n, p_r=p)
    assert float(out["miss"][0]) == pytest.approx(miss, abs=1e-13)
    assert float(out["both"][0]) == pytest.approx(miss ** 2, abs=1e-13)


def _occurrence_law_by_loop(t: int, n: int, a: float, N: int) -> np.ndarray:
    """Law of the occurrences of a point's features in N training points, one point at a time."""
    h = np.array([math.comb(n, k) * math.comb(t - n, n - k) / math.comb(t, n) for k in range(n + 1)])
    one = np.zeros(n + 1)
    one[0] += 1 - a
    one += a * h
    law = np.array([1.0])
    for _ in range(N):
        law = np.convolve(law, one)
    return law


@pytest.mark.parametrize("t,n,a,N", [(5, 2, 0.35, 7), (4, 4, 0.5, 3), (12, 3, 0.2, 30), (9, 1, 0.45, 12),
                                     (20, 3, 0.3, 1500)])
def test_exposure_and_shared_capacity_against_a_loop_over_training_points(t, n, a, N):
    law = _occurrence_law_by_loop(t, n, a, N)
    x = np.arange(law.size)
    K = 2
    kw = dict(n_classes=K, t_d=t, n_d=n, alpha_d=a * K, t_r=10, n_r=1, n_train=N)
    p = 0.3
    out = rd.expected_metrics(reading="exposure", p_d=p, **kw)
    assert float(out["miss"][0]) == pytest.approx(float(law @ (1 - p) ** x), rel=1e-11)
    assert float(out["both"][0]) == pytest.approx(float(law @ (1 - p) ** (2 * x)), rel=1e-11)
    for C in (0, 1, 5, 40):
        out = rd.expected_metrics(reading="shared_capacity", capacity=C, **kw)
        keep = 1 - x / (N * n)
        assert float(out["miss"][0]) == pytest.approx(float(law @ keep ** C), rel=1e-10, abs=1e-13)
        assert float(out["both"][0]) == pytest.approx(float(law @ keep ** (2 * C)), rel=1e-10, abs=1e-13)
        ind = rd.expected_metrics(reading="shared_capacity", capacity=C, training="independent", **kw)
        assert float(ind["both"][0]) == pytest.approx(float(law @ keep ** C) ** 2, rel=1e-10, abs=1e-13)


@pytest.mark.parametrize("reading", rd.READINGS)
def test_vectorised_evaluation_matches_a_loop_over_settings(reading):
    rng = np.random.default_rng(4)
    S = 25
    t_d, t_r = rng.integers(2, 30, S), rng.integers(5, 200, S)
    p = dict(t_d=t_d, t_r=t_r, n_d=np.minimum(rng.integers(1, 5, S), t_d), n_r=np.minimum(rng.integers(1, 5, S), t_r),
             p_d=rng.uniform(0, 1, S), p_r=rng.uniform(0, 1, S), alpha_d=rng.uniform(0, 1, S),
             n_train=rng.integers(0, 400, S), n_classes=rng.integers(2, 8, S), p_systematic=rng.uniform(0, 1, S),
             frequency_ratio=rng.uniform(1, 20, S))
    for weighting in rd.WEIGHTINGS:
        for training in th.TRAINING:
            out = rd.expected_metrics(reading=reading, weighting=weighting, training=training, **p)
            for i in range(S):
                ref = rd.expected_metrics(reading=reading, weighting=weighting, training=training,
                                          **{k: v[i].item() for k, v in p.items()})
                for k in ("accuracy", "agreement", "gap", "rel_gap"):
                    assert out[k][i] == pytest.approx(float(ref[k]), rel=1e-12, abs=1e-14)


def test_limits_and_special_cases():
    kw = dict(t_d=10, t_r=200, n_d=2, n_r=3, p_d=0.8, p_r=0.4, alpha_d=0.6)
    # no training data: nothing can be learned, every model guesses
    for reading in rd.WITH_TRAINING_SET:
        out = rd.expected_metrics(reading=reading, n_train=0, **kw)
        assert np.allclose(out["miss"], 1.0) and float(out["accuracy"]) == pytest.approx(0.5)
    # an infinite training set: exposure learns everything, shared capacity reaches its limit
    assert np.allclose(rd.expected_metrics(reading="exposure", n_train=math.inf, **kw)["miss"], 0.0)
    lim = rd.expected_metrics(reading="shared_capacity", n_train=math.inf, capacity=30, **kw)["miss"]
    big = rd.expected_metrics(reading="shared_capacity", n_train=20_000, capacity=30, **kw)["miss"]
    a = np.array([0.6, 0.4]) / 2
    assert lim == pytest.approx((1 - a * np.array([2, 3]) / np.array([10, 200])) ** 30, rel=1e-12)
    assert big == pytest.approx(lim, rel=2e-3)
    # p = 1 and seen once: exposure is the training-set reading
    e = rd.expected_metrics(reading="exposure", **{**kw, "p_d": 1.0, "p_r": 1.0}, n_train=150)
    s = rd.expected_metrics(reading="training_set", **{**kw, "p_d": 1.0, "p_r": 1.0}, n_train=150)
    assert _scalar(e) == pytest.approx(_scalar(s), rel=1e-12, abs=1e-14)
    # literal: t never enters under a free weighting; independent tends to literal as t grows
    lit = rd.expected_metrics(reading="literal", **{**kw, "t_r": np.array([3, 30, 3000])})
    assert np.ptp(lit["gap"]) == 0
    ind = rd.expected_metrics(reading="independent", **{**kw, "t_d": 10 ** 7, "t_r": 10 ** 7})
    assert _scalar(ind) == pytest.approx(_scalar(rd.expected_metrics(reading="literal", **kw)), rel=1e-5)
    # seeds that (almost) never err: the relative gap is not rounding noise over rounding noise
    tiny = rd.expected_metrics(reading="exposure", weighting="mixture", **{**kw, "t_d": 5, "t_r": 20}, n_train=500)
    assert 0 < float(tiny["error"]) < 1e-9 and float(tiny["rel_gap"]) == 0.0
    # fixed capacity with many features is the literal reading at p = c / t
    fc = rd.expected_metrics(reading="fixed_capacity", **{**kw, "t_d": 10 ** 6, "t_r": 10 ** 6})
    assert _scalar(fc) == pytest.approx(_scalar(rd.expected_metrics(reading="literal", **kw)), rel=1e-5)


def test_gap_is_never_negative_without_systematic_answers():
    rng = np.random.default_rng(8)
    S = 100
    t_d, t_r = rng.integers(1, 40, S), rng.integers(1, 400, S)
    p = dict(t_d=t_d, t_r=t_r, n_d=np.minimum(rng.integers(1, 6, S), t_d), n_r=np.minimum(rng.integers(1, 6, S), t_r),
             p_d=rng.uniform(0, 1, S), p_r=rng.uniform(0, 1, S), alpha_d=rng.uniform(0, 1, S),
             n_train=rng.integers(0, 1000, S), n_classes=rng.integers(2, 20, S))
    for reading, weighting, training in itertools.product(rd.READINGS, rd.WEIGHTINGS, th.TRAINING):
        out = rd.expected_metrics(reading=reading, weighting=weighting, training=training, **p)
        assert (out["gap"] >= -1e-12).all(), (reading, weighting, training)
        assert (out["both"] <= out["miss"] + 1e-12).all() and (out["miss"] <= 1 + 1e-12).all()


# --------------------------------------------------------------------------------------
# weightings
# --------------------------------------------------------------------------------------
def test_tied_weightings_set_the_frequency_ratio_in_simulated_data():
    s = dict(t_d=8, t_r=60, n_d=2, n_r=3)
    for weighting, r in (("equal_frequency", 1.0), ("frequency_ratio", 7.0)):
        alpha, _, _ = rd.effective_parameters(weighting=weighting, **s, p_d=0.5, p_r=0.5, alpha_d=0.1,
                                              frequency_ratio=7.0)
        alpha = float(alpha)
        assert (alpha * 2 / 8) / ((1 - alpha) * 3 / 60) == pytest.approx(r, rel=1e-12)
        # and in sampled points: occurrences per dominant feature / per rare feature
        setting = rd._scalar_setting("literal", weighting, "shared", dict(**s, n_classes=3, frequency_ratio=7.0))
        _, _, feats = rd._points(np.random.default_rng(0), setting, 200_000, replace=False)
        counts = np.bincount(feats[feats >= 0], minlength=3 * (8 + 60))
        ratio = counts[: 3 * 8].mean() / counts[3 * 8:].mean()
        assert ratio == pytest.approx(r, rel=0.03)


def test_mixture_weighting_and_its_degenerate_readings():
    kw = dict(t_d=10, t_r=100, n_d=2, n_r=2, p_d=0.6, p_r=0.2, alpha_d=0.1, n_train=100)
    for reading in ("literal", "independent", "fixed_capacity"):  # p = 1: every feature learned
        out = rd.expected_metrics(reading=reading, weighting="mixture", **kw)
        assert float(out["alpha_d"]) == pytest.approx(0.75)
        assert float(out["accuracy"]) == 1.0 and float(out["gap"]) == 0.0
    for reading in ("training_set", "exposure"):  # learned iff seen: seeds differ only by their training sets
        assert abs(float(rd.expected_metrics(reading=reading, weighting="mixture", **kw)["gap"])) < 1e-15
        assert float(rd.expected_metrics(reading=reading, weighting="mixture", training="independent",
                                         **kw)["gap"]) > 0.01
    assert float(rd.expected_metrics(reading="shared_capacity", weighting="mixture", **kw)["gap"]) > 1e-3
    with pytest.raises(ValueError, match="p_d \\+ p_r > 0"):
        rd.expected_metrics(weighting="mixture", p_d=0.0, p_r=0.0)


# --------------------------------------------------------------------------------------
# bad input, determinism
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,name", [
    (dict(reading="nope"), "reading"), (dict(weighting="nope"), "weighting"), (dict(training="both"), "training"),
    (dict(t_d=2.5), "t_d"), (dict(n_r=0), "n_r"), (dict(n_d=20, t_d=10), "n_d"), (dict(p_r=1.5), "p_r"),
    (dict(alpha_d=float("nan")), "alpha_d"), (dict(n_classes=1), "n_classes"), (dict(n_train=-1), "n_train"),
    (dict(capacity=2.5), "capacity"), (dict(frequency_ratio=0.0), "frequency_ratio"), (dict(t_q=3), "t_q"),
    (dict(p_systematic=[0.1, 2.0]), "p_systematic"), (dict(t_d="ten"), "t_d"),
])
def test_bad_input_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        rd.expected_metrics(**kwargs)


def test_bad_input_elsewhere():
    with pytest.raises(ValueError, match="one setting"):
        rd.monte_carlo(t_r=[100, 200])
    with pytest.raises(ValueError, match="finite n_train"):
        rd.monte_carlo(n_train=math.inf)
    with pytest.raises(ValueError, match="n_models"):
        rd.monte_carlo(n_models=1)
    with pytest.raises(ValueError, match="coupling"):
        rd.caption_sweeps({}, coupling="tied")
    with pytest.raises(ValueError, match="factors"):
        rd.caption_sweeps({}, factors=[1.0, -2.0])
    with pytest.raises(ValueError, match="n_r must be <= t_r"):
        rd.caption_sweeps(dict(t_r=2, n_r=3))
    with pytest.raises(ValueError, match="unknown parameter"):
        rd.bases(dict(t_x=[1]))
    with pytest.raises(ValueError, match="near <= deviate"):
        rd.Criteria(near=0.3, deviate=0.2)
    with pytest.raises(ValueError, match="empty"):
        rd.statement_details(grid=dict(t_r=[2], n_r=[3]))
    with pytest.raises(ValueError, match="statements_table"):
        rd.main_reading(pd.DataFrame({"reading": ["literal"]}))


def test_monte_carlo_is_deterministic():
    for reading in rd.READINGS:
        kw = dict(reading=reading, t_r=50, n_train=60, n_reps=6, n_points=40)
        a, b = rd.monte_carlo(seed=3, **kw), rd.monte_carlo(seed=3, **kw)
        assert a == b
        assert rd.monte_carlo(seed=4, **kw) != a


# --------------------------------------------------------------------------------------
# Figure 4's caption and the statements table
# --------------------------------------------------------------------------------------
def test_caption_sweeps_follow_each_coupling_rule():
    base = dict(t_d=12, t_r=300, n_d=3, n_r=2)
    for coupling in rd.COUPLINGS:
        df = rd.caption_sweeps(base, reading="literal", coupling=coupling, factors=(0.25, 1, 4))
        alone, coupled = df[~df["coupled"]], df[df["coupled"]]
        assert (alone[alone["lead"] == "t_r"]["t_d"] == 12).all() and (alone[alone["lead"] == "n_r"]["n_d"] == 3).all()
        t, n = coupled[coupled["lead"] == "t_r"], coupled[coupled["lead"] == "n_r"]
        assert list(t["t_r"]) == [75, 300, 1200] and list(n["n_r"]) == [1, 2, 8]
        expect_td = {"same_factor": [3, 12, 48], "equal_values": [75, 300, 1200], "inverse_factor": [48, 12, 3]}
        expect_nd = {"same_factor": [1, 3, 12], "equal_values": [1, 2, 8], "inverse_factor": [12, 3, 1]}
        assert list(t["t_d"]) == expect_td[coupling]
        assert list(n["n_d"]) == [min(v, 12) for v in expect_nd[coupling]]  # n_d <= t_d
        assert (df["n_d"] <= df["t_d"]).all() and (df["n_r"] <= df["t_r"]).all()
        for _, row in df.iloc[::5].iterrows():  # each row's metrics are its parameters' closed form
            ref = rd.expected_metrics(reading="literal", **{k: row[k] for k in ("t_d", "t_r", "n_d", "n_r")})
            assert row["rel_gap"] == pytest.approx(float(ref["rel_gap"]), rel=1e-12)


def test_statement_details_against_a_loop_over_bases_and_sweeps():
    crit = rd.CRITERIA
    for reading, weighting, coupling in (("training_set", "free", "same_factor"),
                                         ("shared_capacity", "frequency_ratio", "inverse_factor"),
                                         ("literal", "equal_frequency", "equal_values")):
        grid = {**SMALL_GRID, "p_r": [0.3], "t_d": [10] if reading == "shared_capacity" else [10, 40]}
        d = rd.statement_details(reading=reading, weighting=weighting, coupling=coupling, grid=grid)
        assert len(d) == (8 if reading == "shared_capacity" else 16)
        for i, row in d.iterrows():
            base = {k: row[k] for k in grid}

            def rel(**change):
                return float(rd.expected_metrics(reading=reading, weighting=weighting, **{**base, **change})["rel_gap"])

            assert row["at_gde"] == (abs(rel()) <= crit.near)
            worst = {}
            for lead, follow in (("t_r", "t_d"), ("n_r", "n_d")):
                for coupled in (False, True):
                    vals = []
                    for f in rd.FACTORS:
                        change = {}
                        if lead == "t_r":
                            change["t_r"] = max(math.floor(base["t_r"] * f + 0.5), base["n_r"])
                        else:
                            change["n_r"] = min(max(math.floor(base["n_r"] * f + 0.5), 1), base["t_r"])
                        if coupled:
                            v = {"same_factor": base[follow] * f, "equal_values": change[lead],
                                 "inverse_factor": base[follow] / f}[coupling]
                            v = math.floor(v + 0.5)
                            change[follow] = max(v, base["n_d"]) if follow == "t_d" else min(max(v, 1), base["t_d"])
                        vals.append(abs(rel(**change)))
                    worst[lead, coupled] = max(vals)
            assert row["t_alone_deviates"] == (worst["t_r", False] > crit.deviate)
            assert row["t_coupled_near"] == (worst["t_r", True] <= crit.near)
            assert row["n_alone_deviates"] == (worst["n_r", False] > crit.deviate)
            assert row["n_coupled_near"] == (worst["n_r", True] <= crit.near)
            assert row["caption"] == (row["caption_t"] and row["caption_n"])
            assert row["breaking"] == (max(worst["t_r", False], worst["n_r", False], abs(rel())) > crit.deviate)


def test_statements_table_is_consistent_and_deterministic():
    kw = dict(grid=SMALL_GRID, readings=rd.READINGS, weightings=("free", "mixture"), couplings=rd.COUPLINGS)
    tab = rd.statements_table(**kw)
    assert len(tab) == len(rd.READINGS) * 2 * len(rd.COUPLINGS)
    assert tab.equals(rd.statements_table(**kw))
    for key in rd.STATEMENTS:
        assert tab[key].between(0, 1).all()
    for _, row in tab.iterrows():
        for key in ("caption", "at_gde", "breaking"):
            assert row[f"{key}_verdict"] == rd.CRITERIA.verdict(row[key], existence=key == "breaking")
        assert row["caption"] <= min(row["caption_t"], row["caption_n"]) + 1e-12
    # degenerate: p = 1 without another source of randomness between seeds
    degenerate = set(tab[tab["degenerate"]][["reading", "weighting"]].itertuples(index=False, name=None))
    assert degenerate == {(r, "mixture") for r in ("training_set", "literal", "independent", "fixed_capacity",
                                                   "exposure")}
    assert (tab[tab["degenerate"]]["at_gde"] == 1).all() and (tab[tab["degenerate"]]["breaking"] == 0).all()
    # the main reading: one row, non-degenerate, with the best score
    main = tab[tab["main"]]
    assert len(main) == 1 and not main["degenerate"].iloc[0]
    assert main["score"].iloc[0] == tab[~tab["degenerate"]]["score"].max()
    assert rd.main_reading(tab).equals(main.iloc[0])


def test_literal_reading_fails_gde_for_the_reason_the_framework_gives():
    """Seeds that learn independently given the point are at GDE only if each point is known by all
    or by none; on the natural region (p_r in 0.2-0.5) they never are."""
    d = rd.statement_details(reading="literal", grid=SMALL_GRID)
    assert not d["at_gde"].any() and d["breaking"].all()
    near_zero = rd.expected_metrics(reading="literal", p_d=1.0, p_r=0.0)
    assert float(near_zero["rel_gap"]) == 0.0  # every point known by all seeds or by none


def test_criteria_verdicts():
    c = rd.Criteria(near=0.05, deviate=0.1, holds=0.9, fails=0.1)
    assert [c.verdict(s) for s in (0.95, 0.9, 0.5, 0.1, 0.05)] == [
        "holds", "holds", "holds in part", "holds in part", "does not hold"]
    assert c.verdict(0.001, existence=True) == "holds" and c.verdict(0.0, existence=True) == "does not hold"
    # the criteria move the verdicts: a looser "near" can only add bases at GDE
    tight = rd.statement_details(reading="exposure", grid=SMALL_GRID)
    loose = rd.statement_details(reading="exposure", grid=SMALL_GRID, criteria=rd.Criteria(near=0.3, deviate=0.6))
    assert (loose["at_gde"] >= tight["at_gde"]).all() and loose["at_gde"].sum() > tight["at_gde"].sum()


def test_public_api_is_exported():
    for name in rd.__all__:
        assert hasattr(rd, name), name


def test_caption_figure_draws_every_reading():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ift_core.plots.readings import plot_caption_test

    b = rd.bases(dict(t_r=[100, 1000]))
    df = pd.concat([rd.caption_sweeps(b, reading=r, factors=(0.5, 1, 2)).assign(reading=r) for r in rd.READINGS])
    fig = plot_caption_test(df)
    assert len(fig.axes) == 2 * len(rd.READINGS)
    assert [ax.get_title() for ax in fig.axes[: len(rd.READINGS)]] == [r.replace("_", " ") for r in rd.READINGS]
    # each panel: two curves (alone, coupled) and the two criteria lines
    assert all(len(ax.lines) == 4 for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="reading column"):
        plot_caption_test(df.drop(columns="reading"))


def test_shared_capacity_window_drops_no_visible_mass(monkeypatch):
    """The DFT window cut by Bernstein's bound (tail < 1e-17) gives the same numbers as a window
    that keeps 1e-300 of the tail, over settings where the cut is large."""
    rng = np.random.default_rng(12)
    S = 30
    t_r = rng.integers(50, 2000, S)
    p = dict(t_d=rng.integers(5, 60, S), t_r=t_r, n_d=rng.integers(1, 4, S), n_r=rng.integers(1, 12, S),
             alpha_d=rng.uniform(0.3, 0.9, S), n_train=rng.integers(500, 5000, S), capacity=rng.integers(0, 3000, S))
    cut = rd.expected_metrics(reading="shared_capacity", **p)
    monkeypatch.setattr(rd, "_TAIL", 1e-300)
    wide = rd.expected_metrics(reading="shared_capacity", **p)
    assert np.allclose(cut["miss"], wide["miss"], rtol=1e-10, atol=1e-12)  # both: FFT rounding, ~1e-12
    assert np.allclose(cut["both"], wide["both"], rtol=1e-10, atol=1e-12)
