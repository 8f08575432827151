"""Tests for the feature-only construction (ift_core.data: class-coded textures on uninformative
backgrounds) and for the two functions that read its results: the gap's exact decomposition and
the two-level bootstrap (ift_core.gde)."""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import cross_val_score

from ift_core import gde
from ift_core.data import (DataConfig, TextureSpec, add_subpopulation, check_construction, load_data,
                           load_subpopulation_data, make_subpopulation_data, make_texture_points,
                           parse_texture_construction, subpopulation_examples, texture_construction,
                           texture_patterns)

torch.set_num_threads(1)

FMNIST = Path(__file__).parent / "fixtures" / "fashion_mnist"


@pytest.fixture(scope="module")
def fm_sets():
    return load_data(DataConfig(root=str(FMNIST), n_train=500, n_test=200, subset_seed=3))


# ------------------------------------------------------------------------------- the construction


@pytest.mark.parametrize("construction", ["texture", "texture,size=4,position=random,per_class=3",
                                          "texture,position=jitter,background=digits"])
def test_points_carry_exactly_the_planted_texture_at_the_stated_position(construction):
    spec = parse_texture_construction(construction)
    labels = np.repeat(np.arange(10), 7)
    ids = np.tile(np.arange(7), 10)
    pts = make_texture_points(labels, ids, construction=construction, seed=4, mean=[0.29], std=[0.35],
                              image_shape=(1, 28, 28))
    patterns = texture_patterns(10, construction=construction, seed=4)
    x = pts["pixels"].numpy()
    assert x.shape == (70, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    for i, (c, (r0, c0), t) in enumerate(zip(labels, pts["offset"], pts["texture"])):
        assert 0 <= r0 <= 28 - spec.size and 0 <= c0 <= 28 - spec.size and 0 <= t < spec.per_class
        np.testing.assert_array_equal(x[i, 0, r0:r0 + spec.size, c0:c0 + spec.size], patterns[c, t])
    centre = (28 - spec.size) // 2
    if spec.position == "center":
        assert (pts["offset"] == centre).all()
    elif spec.position == "jitter":
        assert np.abs(pts["offset"] - centre).max() <= 2 and len({tuple(o) for o in pts["offset"]}) > 1
    else:
        assert len({tuple(o) for o in pts["offset"]}) > 20  # spread over the image
    if spec.per_class > 1:
        assert len(set(pts["texture"].tolist())) == spec.per_class


def test_textures_are_distinct_black_and_white_and_set_by_the_seed():
    t = texture_patterns(10, construction="texture,per_class=3", seed=0)
    flat = t.reshape(30, -1)
    assert set(np.unique(flat).tolist()) == {0.0, 1.0}
    assert len({row.tobytes() for row in flat}) == 30
    assert np.array_equal(t, texture_patterns(10, construction="texture,per_class=3", seed=0))
    assert not np.array_equal(t, texture_patterns(10, construction="texture,per_class=3", seed=1))
    # tiny textures are redrawn until distinct; too many for the size is an error
    assert len({row.tobytes() for row in texture_patterns(10, construction="texture,size=2").reshape(10, -1)}) == 10
    with pytest.raises(ValueError, match="do not fit"):
        texture_patterns(10, construction="texture,size=2,per_class=2")


def test_alpha_blends_the_texture_with_the_background():
    kw = dict(seed=1, mean=[0.3], std=[0.3], image_shape=(1, 28, 28))
    full = make_texture_points([2, 5], [0, 0], construction="texture", **kw)["pixels"].numpy()
    half = make_texture_points([2, 5], [0, 0], construction="texture,alpha=0.5", **kw)["pixels"].numpy()
    pat = texture_patterns(10, seed=1)
    outside = np.ones((28, 28), bool)
    outside[11:17, 11:17] = False
    np.testing.assert_array_equal(full[:, 0][:, outside], half[:, 0][:, outside])  # same background
    for i, c in enumerate([2, 5]):
        bg = 2 * half[i, 0, 11:17, 11:17] - pat[c, 0]  # (1 - a) bg + a t with a = 1/2
        assert bg.min() >= -1e-6 and bg.max() <= 1 + 1e-6
        assert not np.allclose(half[i, 0, 11:17, 11:17], pat[c, 0])


def test_backgrounds_carry_no_class_information():
    """A linear probe reads the class off the whole points, and is at chance on the backgrounds alone."""
    labels = np.repeat(np.arange(10), 60)
    ids = np.tile(np.arange(60), 10)
    for background in ("noise", "digits"):
        pts = make_texture_points(labels, ids, construction=f"texture,background={background}", seed=0,
                                  mean=[0.29], std=[0.35], image_shape=(1, 28, 28))
        x = pts["pixels"].numpy()[:, 0]
        back = x.copy()
        back[:, 11:17, 11:17] = 0.0  # the texture's square removed: what is left is the background
        probe = RidgeClassifier(alpha=10.0)
        whole = cross_val_score(probe, x.reshape(len(x), -1), labels, cv=3).mean()
        alone = cross_val_score(probe, back.reshape(len(x), -1), labels, cv=3).mean()
        assert whole > 0.9, (background, whole)
        # chance is 0.1; with 400 training points and 1 - 3 se of a 600-point accuracy ~ 0.04
        assert alone < 0.18, (background, alone)


def test_noise_background_has_the_stated_statistics():
    pts = make_texture_points(np.zeros(200, int), np.arange(200), construction="texture,size=2", seed=0,
                              mean=[0.4], std=[0.1], image_shape=(1, 28, 28))
    x = pts["pixels"].numpy()[:, 0]
    mask = np.ones((28, 28), bool)
    mask[13:15, 13:15] = False
    bg = x[:, mask]
    assert abs(bg.mean() - 0.4) < 0.003 and abs(bg.std() - 0.1) < 0.003  # clipping is negligible at 4 sd


def test_training_set_gains_r_points_per_class_nested_and_bit_identical(fm_sets):
    tr, te = fm_sets
    a = make_subpopulation_data(tr, te, n_per_class=6, transform="texture", seed=2)
    b = make_subpopulation_data(tr, te, n_per_class=6, transform="texture", seed=2)
    small = make_subpopulation_data(tr, te, n_per_class=3, transform="texture", seed=2)
    assert len(a.train) == len(tr) + 60 and int(a.train_mask.sum()) == 60
    assert torch.equal(a.train.x[:len(tr)], tr.x) and torch.equal(a.train.y[:len(tr)], tr.y)  # ordinary part kept
    assert np.bincount(a.train.y.numpy()[a.train_mask], minlength=10).tolist() == [6] * 10
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test_sub.x, b.test_sub.x)
    # nested in r: the points of r = 3 are among those of r = 6
    xs = {x.numpy().tobytes() for x in a.train.x[a.train_mask]}
    assert all(x.numpy().tobytes() in xs for x in small.train.x[small.train_mask])
    # the test set is fresh points with the test labels, the same for every r
    assert torch.equal(a.test_sub.y, te.y) and torch.equal(a.test_sub.x, small.test_sub.x)
    assert (a.test_sub.indices == -1).all() and a.test_sub_mask.all() and not a.test_mask.any()
    train_bytes = {x.numpy().tobytes() for x in a.train.x}
    assert not any(x.numpy().tobytes() in train_bytes for x in a.test_sub.x)
    # another seed: other textures and other points
    c = make_subpopulation_data(tr, te, n_per_class=6, transform="texture", seed=3)
    assert not torch.equal(a.test_sub.x, c.test_sub.x)
    # normalised like the ordinary images: pixels() undoes it exactly enough
    assert a.train.mean == tr.mean and a.test_sub.mean == te.mean
    zero = make_subpopulation_data(tr, te, n_per_class=0, transform="texture", seed=2)
    assert torch.equal(zero.train.x, tr.x) and not zero.train_mask.any()


def test_through_dataconfig_the_loaders_and_subpopulation_examples(fm_sets):
    cfg = DataConfig(root=str(FMNIST), n_train=500, n_test=200, subset_seed=3, subpopulation_per_class=4,
                     subpopulation_transform="texture,per_class=2,size=5", subpopulation_seed=1)
    assert cfg.subpopulation_transform == "texture,size=5,per_class=2"  # one spelling, one cache key
    tr, te = load_data(cfg)
    tr2, _ = load_data(dataclasses.replace(cfg))
    assert len(tr) == 540 and torch.equal(tr.x, tr2.x)
    made = make_subpopulation_data(*fm_sets, n_per_class=4, transform=cfg.subpopulation_transform, seed=1)
    assert torch.equal(made.train.x, tr.x)
    sub = load_subpopulation_data(cfg)
    assert torch.equal(sub.test_sub.x, made.test_sub.x) and sub.transform == cfg.subpopulation_transform
    ex = subpopulation_examples(te, transform="texture", n=3)
    assert ex["subpopulation"].shape == (3, 28, 28, 1)
    np.testing.assert_allclose(ex["subpopulation"][:, 11:17, 11:17, 0], texture_patterns(10)[:3, 0], atol=1e-5)
    _, mask = add_subpopulation(fm_sets[0], n_per_class=2, transform="texture")
    assert mask.sum() == 20 and mask[-20:].all()


def test_spec_strings_and_bad_parameters(fm_sets):
    assert texture_construction() == "texture" and TextureSpec().construction == "texture"
    assert texture_construction(alpha=0.5, background="digits") == "texture,background=digits,alpha=0.5"
    for s in ("texture", "texture,size=4,position=random,background=digits,per_class=3,alpha=0.25"):
        assert parse_texture_construction(s).construction == s and check_construction(s) == s
    bad = {
        "texture,size=1": "size", "texture,size=four": "whole number", "texture,position=left": "position",
        "texture,background=cifar": "background", "texture,per_class=0": "per_class", "texture,alpha=0": "alpha",
        "texture,alpha=1.5": "alpha", "texture,colour=red": "key=value", "texture,size=4,size=5": "twice",
        "texture,size": "key=value",
    }
    for spec, word in bad.items():
        with pytest.raises(ValueError, match=word):
            check_construction(spec)
        with pytest.raises(ValueError, match=word):
            DataConfig(subpopulation_per_class=1, subpopulation_transform=spec)
    with pytest.raises(ValueError, match="exceeds"):
        make_texture_points([0], [0], construction="texture,size=10", mean=[0.3], std=[0.3], image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="one per channel"):
        make_texture_points([0], [0], mean=[0.3, 0.3], std=[0.3], image_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="same length"):
        make_texture_points([0, 1], [0], mean=[0.3], std=[0.3], image_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="n_per_class"):
        make_subpopulation_data(*fm_sets, n_per_class=-1, transform="texture")
    dig_tr, dig_te = load_data(DataConfig(name="digits", n_train=300, n_test=100))
    with pytest.raises(ValueError, match="own data set"):
        make_subpopulation_data(dig_tr, dig_te, n_per_class=1, transform="texture,background=digits,size=4")
    ok = make_subpopulation_data(dig_tr, dig_te, n_per_class=1, transform="texture,size=4")
    assert ok.train.x.shape[1:] == (1, 8, 8)


# ------------------------------------------------------------------------------- the gap's identity


def _brute_force_pairs(preds, labels, k):
    m, n = preds.shape
    gaps, bs, sames, errs = [], [], [], []
    for i, j in itertools.combinations(range(m), 2):
        wi, wj = preds[i] != labels, preds[j] != labels
        err = (wi.mean() + wj.mean()) / 2
        dis = np.mean(preds[i] != preds[j])
        b = np.mean(wi & wj)
        same = np.mean(wi & wj & (preds[i] == preds[j]))
        gaps.append(dis - err)
        bs.append(b)
        sames.append(same)
        errs.append(err)
        # the identity holds for every single pair
        s = same / b if b > 0 else 0.0
        assert dis - err == pytest.approx(err - (1 + s) * b, abs=1e-12)
    return np.mean(gaps), np.mean(bs), np.sum(sames) / np.sum(bs), np.mean(errs)


@pytest.mark.parametrize("m,k,seed", [(2, 3, 0), (5, 10, 1), (8, 4, 2)])
def test_gap_decomposition_matches_a_loop_over_pairs(m, k, seed):
    rng = np.random.default_rng(seed)
    n = 300
    labels = rng.integers(0, k, n)
    hard = rng.random(n) < 0.4
    preds = np.where(rng.random((m, n)) < np.where(hard, 0.3, 0.9), labels, rng.integers(0, k, (m, n)))
    # some wrong answers shared (one common wrong class), the rest at random
    preds = np.where((preds != labels) & (rng.random((m, n)) < 0.5), (labels + 1) % k, preds)
    d = gde.gap_decomposition(preds, labels, k)
    gap, b, s, err = _brute_force_pairs(preds, labels, k)
    assert d["gap"] == pytest.approx(gap, abs=1e-12) and d["gap_identity"] == pytest.approx(gap, abs=1e-12)
    assert d["both_wrong"] == pytest.approx(b, abs=1e-12) and d["same_wrong"] == pytest.approx(s, abs=1e-12)
    assert d["error"] == pytest.approx(err, abs=1e-12)
    assert d["same_wrong"] == pytest.approx(gde.same_wrong_rate(preds, labels), abs=1e-12)
    assert d["counterfactual_gap"] == pytest.approx(gde.counterfactual_disagreement(preds, labels, k) - err, abs=1e-12)
    e = (preds != labels).mean(axis=1)
    indep = np.mean([e[i] * e[j] for i, j in itertools.combinations(range(m), 2)])
    assert d["both_wrong_independent"] == pytest.approx(indep, abs=1e-12)
    assert (d["gap"] > 0) == (d["both_wrong"] < d["break_even_both_wrong"])


def test_gap_sign_follows_shared_versus_scattered_wrong_answers():
    """Planted: the same hard points, wrong answers shared (dis < err) or each seed's own (dis > err)."""
    rng = np.random.default_rng(0)
    m, n, k = 6, 2000, 10
    labels = rng.integers(0, k, n)
    hard = rng.random(n) < 0.5                               # every seed misses the same half of the points
    shared = np.tile(np.where(hard, (labels + 1) % k, labels), (m, 1))  # ... naming one common wrong class
    learned = rng.random((m, n)) < 0.5                       # or each seed knows its own half, independently
    favourite = rng.integers(1, k, size=(m, 1))              # misses name each seed's own favourite
    scattered = np.where(learned, labels, (labels + favourite) % k)
    a, b = gde.gap_decomposition(shared, labels, k), gde.gap_decomposition(scattered, labels, k)
    assert a["same_wrong"] == 1.0 and a["gap"] < -0.4 and a["dependence"] > 1.8
    assert b["gap"] > 0.15 and b["dependence"] == pytest.approx(1.0, abs=0.1)


def test_gap_decomposition_rejects_bad_input():
    with pytest.raises(ValueError):
        gde.gap_decomposition([[0, 1]], [0, 1])          # one model: no pairs
    with pytest.raises(ValueError):
        gde.gap_decomposition([[0, 1], [1, 1]], [0, 1, 1])


# ------------------------------------------------------------------------------- the two-level bootstrap


def _planted(rng, *, m, n, n_features, q, k=10):
    """Seeds learn each of ``n_features`` features with probability ``q``; a point carries one feature;
    a seed is right on a point of a learned feature with probability 0.95, else wrong at random."""
    feature = rng.integers(0, n_features, n)
    labels = rng.integers(0, k, n)
    knows = rng.random((m, n_features)) < q
    right = knows[:, feature] & (rng.random((m, n)) < 0.95)
    wrong_answer = (labels + rng.integers(1, k, (m, n))) % k
    return np.where(right, labels, wrong_answer), labels


def _planted_truth(q, k=10):
    a = 0.95 * q
    err = 1 - a
    dis = 1 - a ** 2 - (1 - a) ** 2 / (k - 1)
    return {"error": err, "disagreement": dis, "gap": dis - err}


def test_two_level_bootstrap_covers_the_planted_truth_and_points_alone_do_not():
    rng = np.random.default_rng(0)
    truth = _planted_truth(0.5)
    hits = {"both": {s: 0 for s in truth}, "points": {s: 0 for s in truth}}
    runs = 60
    for rep in range(runs):
        preds, labels = _planted(rng, m=10, n=400, n_features=8, q=0.5)
        for how in hits:
            ci = gde.two_level_bootstrap(preds, labels, n_boot=100, level=0.9, seed=rep, resample=how)
            for stat, value in truth.items():
                hits[how][stat] += ci.loc[stat, "low"] <= value <= ci.loc[stat, "high"]
    cover = {how: {s: h / runs for s, h in d.items()} for how, d in hits.items()}
    for stat in truth:
        assert cover["both"][stat] >= 0.75, cover          # nominal 0.9; 10 seeds make it a little short (0.82 here)
        assert cover["points"][stat] <= 0.5, cover         # seeds held fixed: far too narrow here (about 0.2)


def test_two_level_bootstrap_is_seeded_consistent_and_checked():
    rng = np.random.default_rng(1)
    preds, labels = _planted(rng, m=5, n=300, n_features=4, q=0.6)
    a = gde.two_level_bootstrap(preds, labels, n_boot=100, seed=3)
    b = gde.two_level_bootstrap(preds, labels, n_boot=100, seed=3, chunk=7)
    assert a.equals(b)
    d = gde.gap_decomposition(preds, labels)
    assert a.loc["gap", "estimate"] == pytest.approx(d["gap"]) and a.loc["same_wrong", "estimate"] == pytest.approx(
        d["same_wrong"])
    assert (a["low"] <= a["estimate"] + 1e-12).all() and (a["estimate"] <= a["high"] + 1e-12).all()
    # seeds held fixed, or points held fixed: both at once give intervals at least as wide (up to replicate noise)
    widths = {how: (lambda t: t["high"] - t["low"])(gde.two_level_bootstrap(preds, labels, n_boot=300, seed=0,
                                                                              resample=how))
              for how in ("both", "seeds", "points")}
    assert widths["both"]["gap"] >= widths["points"]["gap"] and widths["both"]["gap"] >= 0.9 * widths["seeds"]["gap"]
    for kw, word in (({"n_boot": 5}, "n_boot"), ({"level": 1.0}, "level"), ({"resample": "models"}, "resample")):
        with pytest.raises(ValueError, match=word):
            gde.two_level_bootstrap(preds, labels, **kw)
