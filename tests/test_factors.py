"""The factor study: verdicts recomputed one factor at a time, against planted data where the
verdict must flip at a known value, and its default row against the chapters' own path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ift_core import gde
from ift_core import observations as obs
from ift_core.claims import Verdict
from ift_core.experiments import factors
from ift_core.tensor import TensorOptions, build_interaction_tensor

N_CLASSES = 10


def _gde_ensemble(seed=0, n_points=3000, n_clones=5, n_independent=15, coin=0.3):
    """Predictions planted so that GDE holds for the whole ensemble and fails for its first seeds.

    A share ``coin`` of the points is a coin flip for every seed (right with probability 1/2, else
    a uniform wrong class: error 1/2, pair disagreement 1 - 1/4 - 1/(4 * 9)); a share ``wrong`` is
    wrong for every seed with the same class (error 1, disagreement 0), chosen so that the two
    expectations are equal; the rest is right for every seed. The first ``n_clones`` seeds are one
    draw repeated (they never disagree), the others independent draws, so disagreement falls to
    0 on the first five seeds and stays within 10 % of the error (5 % below it) on all twenty.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, n_points)
    dis_coin = 1 - 0.25 - 0.25 / (N_CLASSES - 1)
    wrong = (dis_coin - 0.5) * coin
    u = rng.random(n_points)
    is_coin, is_wrong = u < coin, (u >= coin) & (u < coin + wrong)

    def draw():
        p = labels.copy()
        flip = is_coin & (rng.random(n_points) < 0.5)
        p[flip] = (labels[flip] + rng.integers(1, N_CLASSES, n_points)[flip]) % N_CLASSES
        p[is_wrong] = (labels[is_wrong] + 1) % N_CLASSES
        return p

    clone = draw()
    preds = np.stack([clone] * n_clones + [draw() for _ in range(n_independent)])
    probs = np.full(preds.shape + (N_CLASSES,), 0.01, dtype=np.float32)
    np.put_along_axis(probs, preds[..., None], 1 - 0.01 * (N_CLASSES - 1), axis=2)
    return probs, labels


def _activations(n_models, n_points, seed=0, width=8, shared=4):
    """Activations with ``shared`` latent directions common to every seed, plus noise."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_points, shared)) * np.linspace(3, 1, shared)
    out = []
    for _ in range(n_models):
        mix = np.linalg.qr(rng.standard_normal((width, width)))[0][:shared]
        out.append(np.maximum(z @ mix + 0.5 * rng.standard_normal((n_points, width)), 0))
    return np.stack(out).astype(np.float32)


OPTIONS = TensorOptions(n_components=4, gamma_corr=0.5)


def test_gde_verdict_flips_at_the_planted_number_of_seeds():
    probs, labels = _gde_ensemble()
    preds = probs.argmax(axis=2)
    err, dis = gde.test_error(preds, labels), gde.disagreement(preds)
    assert abs(dis - err) <= 0.1 * err  # the planted ensemble: GDE holds on all 20 seeds
    acts = _activations(20, len(labels))
    table = factors.analysis_factor_study(acts, probs, labels, options=OPTIONS, factors=["M (seeds)"])
    g = table[table["claim"] == "gde_label_free"].set_index("value")["word"]
    assert g["default"] == "HOLDS" and g["5"] == "DOES NOT HOLD"  # the five clones never disagree
    assert set(table["factor"]) == {"default", "M (seeds)"} and "20" not in g  # M=20 is the default
    assert factors.flipping_factors(table)["gde_label_free"] == (
        "GDE in distribution (the part the study recomputes): M: HOLDS -> DOES NOT HOLD at M=5")


def test_default_row_is_the_chapters_verdict():
    """The study's default row equals what chapters 4-6 compute with build_interaction_tensor."""
    probs, labels = _gde_ensemble(n_points=800, n_clones=2, n_independent=4)
    acts = _activations(6, 800, seed=1)
    table = factors.analysis_factor_study(acts, probs, labels, options=OPTIONS, factors=[])
    it = build_interaction_tensor(acts, OPTIONS, progress=False)
    it_other = build_interaction_tensor(acts, OPTIONS.replace(presence_scale="model"), progress=False)
    common = dict(n_models=it.n_models, n_components=it.n_components, corr_threshold=it.corr_threshold)
    o2 = obs.o2_features_vs_confidence(it, probs, labels)
    o3 = obs.o3_feature_sharing(it, split_rule="mixture")
    o4 = obs.o4_overlap_vs_agreement(it, probs.argmax(axis=2), seed=0)
    expected = {
        "O1": Verdict("O1", **factors.o1_verdict_fields(
            obs.o1_long_tail(it, split_rule="mixture"), obs.o1_long_tail(it_other, split_rule="mixture"),
            presence_scale="column", other_scale="model", align_signs=True, **common)),
        "O2": Verdict("O2", **factors.o2_verdict_fields(o2, per_model=False, confidence_level=0.95, **common)),
        "O3": Verdict("O3", **factors.o3_verdict_fields(o3, split_rule="mixture", confidence_level=0.95,
                                                        align_signs=True, **common)),
        "O4": Verdict("O4", **factors.o4_verdict_fields(o4, confidence_level=0.95, align_signs=True, **common)),
    }
    got = table.set_index("claim")
    for key, v in expected.items():
        assert got.loc[key, "word"] == v.word, key
    assert len(table) == 5 and bool(table["default"].all())


def test_each_analysis_factor_moves_one_option():
    probs, labels = _gde_ensemble(n_points=1200, n_clones=2, n_independent=4)
    acts = _activations(6, 1200, seed=2)
    table = factors.analysis_factor_study(acts, probs, labels, options=OPTIONS,
                                          factors=["N (test points)", "K (components)", "sign alignment"])
    rows = table[table["claim"] == "O1"].set_index(["factor", "value"])
    assert rows.loc[("N (test points)", "1000"), "N"] == 1000  # 2000 and 5000 exceed N and are left out
    assert ("N (test points)", "2000") not in rows.index
    assert rows.xs("K (components)")["K"].tolist() == [5]  # 10, 20 and 50 exceed the 8 units
    assert bool(rows.loc[("sign alignment", "off"), "paper"])  # Algorithm 1 as written
    assert (rows["M"] == 6).all()


def test_flipping_factors_reads_the_table():
    table = pd.DataFrame([
        {"claim": "O2", "factor": "default", "value": "default", "default": True, "paper": False, "word": "DOES NOT HOLD"},
        {"claim": "O2", "factor": "K (components)", "value": "5", "default": False, "paper": False, "word": "HOLDS"},
        {"claim": "O2", "factor": "K (components)", "value": "10", "default": False, "paper": False,
         "word": "DOES NOT HOLD"},
        {"claim": "O2", "factor": "gamma_corr", "value": "q0.99", "default": False, "paper": True,
         "word": "HOLDS IN PART"},
        {"claim": "O4", "factor": "default", "value": "default", "default": True, "paper": False, "word": "HOLDS"},
        {"claim": "O4", "factor": "K (components)", "value": "5", "default": False, "paper": False, "word": "HOLDS"},
    ])
    flips = factors.flipping_factors(table)
    assert flips["O2"] == ("K: DOES NOT HOLD -> HOLDS at K=5; "
                           "gamma_corr: DOES NOT HOLD -> HOLDS IN PART at gamma_corr=q0.99 (the paper's)")
    assert flips["O4"] == "none of the factors studied"


def test_training_variants_move_one_factor_each():
    from ift_core.train import get_profile

    base = get_profile("cpu")
    book, full = factors.training_variants(base, "book"), factors.training_variants(base, "full")
    assert set(book) < set(full)
    for name, (factor, cfg) in full.items():
        assert cfg.n_models == 10
        changed = {k for k in ("n_train", "epochs", "width", "mode")
                   if getattr(cfg.data if k == "n_train" else cfg, k) != getattr(base.data if k == "n_train" else base, k)}
        assert len(changed) == (0 if factor == "baseline" else 1), (name, changed)
    assert book["epochs=2 (not interpolating)"][1].epochs == 2
    with pytest.raises(ValueError, match="grid"):
        factors.training_variants(base, "huge")


def test_gde_in_distribution_rule():
    assert factors.gde_in_distribution_holds(0.2, 0.21, 0.0, 0.0, rel_tol=0.1)  # within 10 %
    assert factors.gde_in_distribution_holds(0.2, 0.1, 0.15, 0.25, rel_tol=0.1)  # inside the interval
    assert not factors.gde_in_distribution_holds(0.2, 0.1, 0.05, 0.15, rel_tol=0.1)
