"""Tests for ift_core.experiments: the sub-population sweep and the framework's prediction."""
from __future__ import annotations

import itertools
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from ift_core import experiments as ex
from ift_core import gde, theory
from ift_core.experiments import prediction, subpopulation
from ift_core.data import (DataConfig, apply_transform, load_data, load_split, make_subpopulation_data,
                           parse_subpopulation_transform, subpopulation_examples)

torch.set_num_threads(1)

RARITIES = (0, 5)


def _config():
    return ex.get_sweep_profile("tiny", n_models=3, epochs=10).config


def _run(**kw):
    return ex.subpopulation_sweep(_config(), rarities=RARITIES, n_boot=40, progress=False, **kw)


@pytest.fixture(scope="module")
def sweep():
    return _run()


# ---------------------------------------------------------------------------- constructions


def test_construction_combo_transforms_only_the_chosen_rows_and_keeps_labels():
    tr, te = load_data(DataConfig(name="digits", n_train=400, n_test=100))
    single = make_subpopulation_data(tr, te, n_per_class=3, transform="rotate90", seed=1)
    combo = make_subpopulation_data(tr, te, n_per_class=3, transform="rotate90+invert", seed=1)
    mask = combo.train_mask
    assert mask.sum() == 30 and np.array_equal(mask, single.train_mask)
    assert np.bincount(tr.y.numpy()[mask], minlength=10).tolist() == [3] * 10
    assert torch.equal(combo.train.y, tr.y) and torch.equal(combo.test_sub.y, te.y)
    assert torch.equal(combo.train.x[~torch.from_numpy(mask)], tr.x[~torch.from_numpy(mask)])
    want = apply_transform(apply_transform(tr.take(np.flatnonzero(mask)).pixels(), "rotate90"), "invert")
    assert torch.allclose(combo.train.take(np.flatnonzero(mask)).pixels(), want.clamp(0, 1), atol=1e-5)
    want_test = apply_transform(apply_transform(te.pixels(), "rotate90"), "invert").clamp(0, 1)
    assert torch.allclose(combo.test_sub.pixels(), want_test, atol=1e-5)
    zero = make_subpopulation_data(tr, te, n_per_class=0, transform="rotate90+invert")
    assert zero.train_mask.sum() == 0 and torch.equal(zero.train.x, tr.x)


def test_construction_examples_and_parse():
    assert parse_subpopulation_transform("flip_vertical+patch") == ("flip_vertical", "patch")
    for bad in ("", "spin", "rotate90+rotate90", "rotate90+", 3):
        with pytest.raises(ValueError):
            parse_subpopulation_transform(bad)
    e = subpopulation_examples(load_split("digits", "test"), transform="rotate180+invert", n=4)
    want = 1.0 - np.rot90(e["ordinary"], 2, axes=(1, 2))
    assert np.allclose(e["subpopulation"], want, atol=1e-6)


# ---------------------------------------------------------------------------- the sweep


def test_sweep_table_shape_columns_and_ranges(sweep):
    t = sweep.table
    assert len(t) == len(RARITIES) * 2
    assert list(t["rarity"]) == [0, 0, 5, 5] and list(t["test_set"]) == list(ex.TEST_SETS) * 2
    for m in ("error", "disagreement", "gap", "cace", "ece", "split_fraction"):
        assert {m, f"{m}_low", f"{m}_high"} <= set(t.columns)
        assert (t[f"{m}_low"] <= t[m] + 1e-12).all() and (t[m] <= t[f"{m}_high"] + 1e-12).all()
    for m in ("error", "disagreement", "ece", "split_fraction", "same_wrong_rate", "counterfactual_disagreement",
              "all_wrong", "all_right", "train_accuracy", "train_share"):
        assert t[m].between(0, 1).all(), m
    assert t["cace"].between(0, 2).all()
    assert np.allclose(t["gap"], t["disagreement"] - t["error"])
    assert (t["n_models"] == 3).all() and (t["n_points"] == 450).all()
    # the rotated test set is harder than the ordinary one, and training on r = 5 helps on it
    rich = t[t["test_set"] == "subpopulation"].set_index("rarity")
    assert rich.loc[0, "error"] > t[(t.rarity == 0) & (t.test_set == "ordinary")]["error"].item() + 0.3
    assert rich.loc[5, "error"] < rich.loc[0, "error"]


def test_train_share_is_exact_and_r0_has_no_subpopulation(sweep):
    t = sweep.table
    n_train, k = sweep.meta["n_train"], sweep.meta["n_classes"]
    assert (t[t.rarity == 0]["train_share"] == 0).all()
    assert np.allclose(t[t.rarity == 5]["train_share"], 5 * k / n_train)
    # r = 0 is the ordinary ensemble of the config, shared with the rest of the book
    from ift_core.train import ensemble_dir, load_ensemble

    ens = load_ensemble(_config(), ensemble_dir(_config()))
    train, test = load_data(_config().data)
    from ift_core.activations import extract_activations

    preds = extract_activations(ens.models, test.x)[1].argmax(-1)
    assert np.array_equal(preds, sweep.predictions[(0, "ordinary")])


def test_metrics_match_brute_force_loops(sweep):
    k = sweep.meta["n_classes"]
    for (r, name), preds in sweep.predictions.items():
        y = sweep.labels[name]
        row = sweep.table[(sweep.table.rarity == r) & (sweep.table.test_set == name)].iloc[0]
        m, n = preds.shape
        err = np.mean([[preds[i, j] != y[j] for j in range(n)] for i in range(m)])
        pairs = list(itertools.combinations(range(m), 2))
        dis = np.mean([np.mean(preds[a] != preds[b]) for a, b in pairs])
        right = (preds == y).sum(0)
        split = np.mean([(0 < c < m) for c in right])
        both = same = 0
        for a, b in pairs:
            w = (preds[a] != y) & (preds[b] != y)
            both += w.sum()
            same += (w & (preds[a] == preds[b])).sum()
        assert row["error"] == pytest.approx(err) and row["disagreement"] == pytest.approx(dis)
        assert row["split_fraction"] == pytest.approx(split)
        if both:
            assert row["same_wrong_rate"] == pytest.approx(same / both)
        assert row["all_wrong"] == pytest.approx(np.mean(right == 0))


def test_tensor_view_is_consistent(sweep):
    t = sweep.table
    m = sweep.meta["n_models"]
    assert set(sweep.tensors) == set(RARITIES)
    for r, it in sweep.tensors.items():
        rows = t[t.rarity == r]
        assert (rows["tensor_features"] == it.n_features).all()
        assert (rows["tensor_components"] == it.n_components).all()
        assert it.options == ex.SWEEP_TENSOR_OPTIONS.replace(n_components=it.n_components)
        assert it.n_points == 2 * 450
        nsub = rows["tensor_sub_features"].iloc[0]
        assert 0 <= nsub <= it.n_features
        if nsub:
            assert 1 <= rows["tensor_models_per_sub_feature"].iloc[0] <= m
            s = rows["tensor_sub_features_all_seeds"].iloc[0] + rows["tensor_sub_features_some_seeds"].iloc[0]
            assert s == pytest.approx(1.0)


def test_tensor_view_lowers_components_to_the_smallest_rank():
    """A model with dead units has fewer usable components than asked for: the view's options
    (cap_at_rank) use the smallest numerical rank (tensor.numerical_rank) instead of failing."""
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((3, 80, 12)).astype(np.float32)
    acts[1, :, 4:] = 0.0  # model 1: 8 dead units, rank 4
    options = ex.SWEEP_TENSOR_OPTIONS.replace(n_components=10)
    view, it = subpopulation._tensor_view(acts[:, :40], acts[:, 40:], options=options, enrichment=2.0, min_rate=0.1)
    assert view["tensor_components"] == 4
    assert it.n_points == 80
    view, _ = subpopulation._tensor_view(acts[[0, 2], :40], acts[[0, 2], 40:], options=options, enrichment=2.0,
                                         min_rate=0.1)
    assert view["tensor_components"] == 10  # no dead units: as asked
    # every option reaches the tensor
    _, absolute = subpopulation._tensor_view(acts[[0, 2], :40], acts[[0, 2], 40:],
                                             options=options.replace(presence="absolute", gamma_data="q0.8"),
                                             enrichment=2.0, min_rate=0.1)
    assert absolute.options.presence == "absolute" and absolute.options.gamma_data == "q0.8"


def test_sweep_is_deterministic_from_scratch(sweep, tmp_path, monkeypatch):
    # a fresh cache: every seed is retrained and re-evaluated
    monkeypatch.setenv("IFT_CACHE", str(tmp_path))
    again = _run()
    pd.testing.assert_frame_equal(again.table, sweep.table, check_exact=True)
    for key, preds in sweep.predictions.items():
        assert np.array_equal(again.predictions[key], preds)


def test_sweep_rejects_bad_input():
    cfg = _config()
    for kw in ({"rarities": (0, -1)}, {"rarities": (2, 2)}, {"rarities": ()}, {"rarities": (0, 10_000)},
               {"transform": "spin"}, {"n_models": 1}, {"n_boot": 3}, {"level": 1.5},
               {"tensor_options": {"gamma_corr": 0.5}}, {"corr_threshold": 2.0}):
        with pytest.raises(ValueError):
            ex.subpopulation_sweep(cfg, progress=False, **{"rarities": (0,), **kw})
    with pytest.raises(ValueError, match="diffinit"):
        ex.subpopulation_sweep(cfg.replace(mode="diffdata", n_train=500), rarities=(0,), progress=False)
    with pytest.raises(ValueError, match="profile"):
        ex.get_sweep_profile("huge")


# ---------------------------------------------------------------------------- the framework


def test_prediction_matches_theory_closed_forms():
    k, n_train, beta = 10, 1000, 0.4
    kw = dict(n_train=n_train, n_classes=k, n_models=5, t_d=10, n_d=3, p_d=0.7, t_r=20, n_r=2, p_r=0.5)
    pred = ex.framework_prediction([0, 10], p_systematic=beta, transfer=0.0, **kw).table.set_index(["rarity",
                                                                                                   "test_set"])
    # r = 0: the rare features are never seen, every model misses every transformed point
    assert pred.loc[(0, "subpopulation"), "error"] == pytest.approx(1 - (1 - beta) / k)
    assert pred.loc[(0, "subpopulation"), "disagreement"] == pytest.approx(1 - (beta ** 2 + (1 - beta ** 2) / k))
    # a test mix equal to the training mix is theory's own aggregate closed form
    share = 10 * k / n_train
    fm = theory.FeatureModel(n_classes=k, t_d=10, t_r=20, n_d=3, n_r=2, p_d=0.7, p_r=0.5, alpha_d=1 - share,
                             n_train=n_train, p_systematic=beta)
    mixed = ex.framework_prediction([10], p_systematic=beta, transfer=1 - share, **kw).table
    rich = mixed[mixed.test_set == "subpopulation"].iloc[0]
    assert rich["error"] == pytest.approx(fm.expected_error(), abs=1e-12)
    assert rich["disagreement"] == pytest.approx(fm.expected_disagreement(), abs=1e-12)
    assert rich["gap"] == pytest.approx(fm.gde_gap(), abs=1e-12)
    # the ordinary test set is the dominant point type alone
    pt = fm.point_types().set_index("group")
    assert mixed.iloc[0]["error"] == pytest.approx(1 - pt.loc["dominant", "accuracy"], abs=1e-12)


def test_split_fraction_matches_simulation():
    fm = theory.FeatureModel.from_groups([theory.Group(4, 2, 0.9, 0.7, "a"), theory.Group(20, 2, 0.5, 0.3, "b")],
                                         n_classes=3, n_train=60, p_systematic=0.5)
    m = 4
    closed = prediction._split_fraction(fm, m)
    hits = {0: [], 1: []}
    for s in range(150):
        sim = theory.simulate(fm, n_models=m, n_points=400, seed=s)
        right = (sim.predictions == sim.labels).sum(0)
        split = (right > 0) & (right < m)
        for g in (0, 1):
            hits[g].append(split[sim.point_group == g])
    for g in (0, 1):
        x = np.concatenate(hits[g]).astype(float)
        per_rep = np.array([h.mean() for h in hits[g]])
        se = per_rep.std(ddof=1) / math.sqrt(len(per_rep))
        assert abs(x.mean() - closed[g]) < 4 * se + 1e-3, (g, x.mean(), closed[g], se)


def test_prediction_fitted_to_a_sweep(sweep):
    pred = ex.framework_prediction(sweep, t_r_grid=(3, 10, 30))
    p = pred.params
    assert set(p["fitted"]) == {"p_d", "t_r", "p_r", "transfer"}
    assert 0 <= p["p_d"] <= 1 and 0 <= p["p_r"] <= 1 and 0 <= p["transfer"] <= 1 and p["t_r"] in (3, 10, 30)
    assert len(pred.table) == len(sweep.table)
    # fitted to errors: the ordinary error is reproduced closely
    t = sweep.table.merge(pred.table, on=["rarity", "test_set"], suffixes=("", "_pred"))
    ordinary = t[t.test_set == "ordinary"]
    assert np.abs(ordinary["error"] - ordinary["error_pred"]).max() < 0.03
    # beta per row comes from that row's measured same-wrong-class rate
    for _, row in t.iterrows():
        assert row["p_systematic"] == pytest.approx(theory.beta_from_same_wrong_rate(row["same_wrong_rate"], 10))
    fixed = ex.framework_prediction(sweep, p_d=0.8, t_r=10, p_r=0.5, transfer=0.1, p_systematic=0.0)
    assert fixed.params["fitted"] == [] and (fixed.table["p_systematic"] == 0).all()
    table, lines = ex.compare_with_framework(sweep, pred)
    assert len(table) == len(sweep.table) and table["error_agrees"].dtype == bool
    assert any(line.startswith("disagreement") for line in lines)
    brk = ex.gde_breaks(sweep)
    assert list(brk["rarity"]) == list(RARITIES)
    assert (brk["breaks"] == ((brk["gap_low"] > 0) | (brk["gap_high"] < 0))).all()


def test_prediction_rejects_bad_input(sweep):
    with pytest.raises(ValueError, match="give"):
        ex.framework_prediction([0, 5], n_train=100, n_classes=10, n_models=3)
    with pytest.raises(ValueError):
        ex.framework_prediction([0, 5], n_train=100, n_classes=10, n_models=3, p_d=0.5, t_r=5, p_r=0.5,
                                p_systematic="measured")
    with pytest.raises(ValueError):
        ex.framework_prediction(sweep, p_d=1.5)
    with pytest.raises(ValueError):
        ex.framework_prediction(sweep, p_systematic="sometimes")


# ---------------------------------------------------------------------------- plots


def test_plots_return_figures(sweep):
    from ift_core.plots import experiments as pe

    fig = pe.sweep_curves(sweep)
    assert len(fig.axes) == 2 and all(len(ax.lines) >= 3 for ax in fig.axes)
    assert len(pe.gap_vs_rarity({"rotate90": sweep}).axes) == 1
    assert len(pe.sweep_diagnostics(sweep).axes) == 1
    pred = ex.framework_prediction(sweep, t_r=10)
    table, _ = ex.compare_with_framework(sweep, pred)
    assert len(pe.measured_vs_predicted(table).axes) == 2
    exs = [subpopulation_examples(load_split("digits", "test"), transform=t, n=3) for t in ("rotate90", "invert")]
    assert len(pe.construction_examples_figure(exs).axes) == 9
    with pytest.raises(ValueError):
        pe.measured_vs_predicted(sweep.table)
    import matplotlib.pyplot as plt

    plt.close("all")


# ---------------------------------------------------------------------------- the public training path


def test_sweep_trains_through_the_public_path_and_cache(sweep):
    import inspect
    import re

    from ift_core.activations import extract_activations
    from ift_core.data import load_subpopulation_data
    from ift_core.train import ensemble_dir, load_ensemble

    # r > 0 lives in the ordinary ensemble cache, under a config whose data carry the construction
    cfg5 = _config().replace(subpopulation_per_class=5, subpopulation_transform="rotate90", subpopulation_seed=0)
    assert sorted(p.name for p in ensemble_dir(cfg5).glob("seed_*.pt")) == [f"seed_{s:05d}.pt" for s in range(3)]
    ens = load_ensemble(cfg5)
    sub = load_subpopulation_data(cfg5.data)
    for name, ds in (("ordinary", sub.test), ("subpopulation", sub.test_sub)):
        preds = extract_activations(ens.models, ds.x)[1].argmax(-1)
        assert np.array_equal(preds, sweep.predictions[(5, name)])
    assert sweep.table[sweep.table.rarity == 5]["train_share"].iloc[0] == sub.train_mask.mean()
    # no private name of ift_core.train is used
    assert not re.search(r"\b_?train\._|from \.train import _", inspect.getsource(ex))


@pytest.mark.slow  # spawned workers import torch
def test_sweep_with_processes_equals_sequential(tmp_path, monkeypatch):
    out = {}
    for backend in ("sequential", "processes"):
        monkeypatch.setenv("IFT_CACHE", str(tmp_path / backend))
        out[backend] = ex.subpopulation_sweep(_config().replace(n_models=2), rarities=(5,), transform="rotate90+invert",
                                              backend=backend, n_workers=2, tensor=False, n_boot=20, progress=False)
    pd.testing.assert_frame_equal(out["processes"].table, out["sequential"].table, check_exact=True)
    for key, preds in out["sequential"].predictions.items():
        assert np.array_equal(out["processes"].predictions[key], preds)
    with pytest.raises(ValueError, match="backend"):
        ex.subpopulation_sweep(_config(), rarities=(0,), backend="threads", progress=False)


def test_sweep_cells_carry_the_gap_identity_and_two_level_intervals(sweep):
    t = sweep.table
    assert np.allclose(t["gap_identity"], t["gap"], atol=1e-12)
    assert np.allclose(t["error"] - (1 + t["same_wrong"]) * t["both_wrong"], t["gap"], atol=1e-12)
    assert np.allclose(t["same_wrong"], t["same_wrong_rate"], equal_nan=True)
    k = sweep.meta["n_classes"]
    assert np.allclose(t["counterfactual_gap"], t["counterfactual_disagreement"] - t["error"], atol=1e-12)
    for (r, name), preds in sweep.predictions.items():
        row = t[(t.rarity == r) & (t.test_set == name)].iloc[0]
        d = gde.gap_decomposition(preds, sweep.labels[name], k)
        assert row["both_wrong"] == pytest.approx(d["both_wrong"]) and row["dependence"] == pytest.approx(
            d["dependence"], nan_ok=True)
    for m in gde.BOOTSTRAP_STATISTICS:
        ok = t[m].notna()
        assert (t.loc[ok, f"{m}_low2"] <= t.loc[ok, m] + 1e-9).all() and (t.loc[ok, m] <= t.loc[ok, f"{m}_high2"] + 1e-9).all()
    # over seeds and points is at least as wide as over points alone, here on the error
    assert ((t["error_high2"] - t["error_low2"]) >= (t["error_high"] - t["error_low"]) - 0.01).all()
    two = ex.gde_breaks(sweep, interval="two_level")
    rich = t[t.test_set == "subpopulation"]
    assert np.allclose(two["gap_low"], rich["gap_low2"]) and np.allclose(two["gap_high"], rich["gap_high2"])
    with pytest.raises(ValueError, match="interval"):
        ex.gde_breaks(sweep, interval="seeds")


def test_feature_only_sweep_through_the_public_path_and_a_shared_r0(sweep, recwarn):
    """The texture construction trains like any data set; r = 0 reuses the ordinary ensemble and its
    files without a warning (two constructions used to collide on one activations file)."""
    from ift_core.data import load_subpopulation_data
    from ift_core.train import ensemble_dir

    res = ex.subpopulation_sweep(_config(), rarities=(0, 5), transform="texture,per_class=1,size=3", n_boot=40,
                                 progress=False)
    assert res.transform == "texture,size=3"  # canonical spelling
    assert not [w for w in recwarn.list if "cached activations" in str(w.message)]
    t = res.table
    assert np.array_equal(res.predictions[(0, "ordinary")], sweep.predictions[(0, "ordinary")])
    cfg5 = _config().replace(subpopulation_per_class=5, subpopulation_transform="texture,size=3")
    assert len(list(ensemble_dir(cfg5).glob("seed_*.pt"))) == 3
    sub = load_subpopulation_data(cfg5.data)
    assert len(sub.train) == res.meta["n_train"] + 50 and (sub.test_sub.indices == -1).all()
    rich = t[t.test_set == "subpopulation"].set_index("rarity")
    # the textures are unlearnable at r = 0 (about chance) and learned at r = 5 of ~135 per class
    assert rich.loc[0, "error"] > 0.75 and rich.loc[5, "error"] < rich.loc[0, "error"] - 0.3
    assert np.allclose(t["gap_identity"], t["gap"], atol=1e-12)
    from ift_core.plots import experiments as pe

    fig = pe.gap_identity_by_family({"shape": sweep, "feature-only": res})
    assert len(fig.axes) == 3 and len(fig.axes[1].lines) >= 4
    import matplotlib.pyplot as plt

    plt.close("all")


def test_profiles_name_both_families():
    for name in ("tiny", "cpu", "paper"):
        prof = ex.get_sweep_profile(name)
        assert prof.feature_construction.startswith("texture") and prof.feature_rarities[0] == 0
        assert all(c.startswith("texture") for c in prof.natural_constructions)
    cpu = ex.get_sweep_profile("cpu")
    assert cpu.config.n_models >= 10 and len(cpu.feature_rarities) >= 5
    assert set(cpu.feature_rarities) <= set(cpu.full_feature_rarities)


# ---------------------------------------------------------------------------- chapter 12's study
def test_label_free_tables_are_the_gde_functions_on_each_set():
    rng = np.random.default_rng(0)
    probs, labels = rng.dirichlet(np.ones(3) * 0.5, size=(4, 300)), rng.integers(0, 3, 300)
    source = (probs[:, :100], labels[:100])
    targets = {"clean": (probs[:, 100:200], labels[100:200]), "other": (probs[:, 200:], labels[200:])}
    tabs = ex.label_free_tables(source, targets, full=(probs, labels), level=0.9)
    assert list(tabs.table.index) == ["clean", "other", ex.FULL_TEST_SET]
    for name, (p, y) in {**targets, ex.FULL_TEST_SET: (probs, labels)}.items():
        summary = gde.gde_summary(p.argmax(axis=2), y, 3)
        interval = gde.estimate_error(p.argmax(axis=2), method="both", level=0.9)
        assert all(tabs.table.loc[name, key] == value for key, value in summary.items())
        assert (tabs.table.loc[name, "dis_low"], tabs.table.loc[name, "dis_high"]) == (interval.low, interval.high)
    assert tabs.full_interval == gde.estimate_error(probs.argmax(axis=2), method="both", level=0.9)
    pd.testing.assert_frame_equal(tabs.comparison, gde.compare_estimators(source, targets))
    assert list(tabs.pivot.index) == ["clean", "other", "mean over shifts"]
    pd.testing.assert_series_equal(tabs.pivot.loc["mean over shifts"], tabs.pivot.loc[["other"]].mean(),
                                   check_names=False)
    assert (tabs.signed.abs() == tabs.pivot.drop(index="mean over shifts")).all().all()
    with pytest.raises(ValueError, match="targets must be a non-empty mapping"):
        ex.label_free_tables(source, {}, full=(probs, labels))
    with pytest.raises(ValueError, match=r"targets\['clean'\] probs must have shape \(M, N, C\)"):
        ex.label_free_tables(source, {"clean": (probs[0], labels)}, full=(probs, labels))


def test_label_free_study_splits_shifts_and_tabulates():
    from scipy.special import softmax

    from ift_core import activations, data, train

    ens = train.train_ensemble(_config(), progress=False)
    study = ex.label_free_study(ens, shifts="rotation,blur", severities="5", source_fraction=0.3, split_seed=1)
    n = len(study.labels)
    assert sorted(np.r_[study.source_points, study.target_points].tolist()) == list(range(n))
    assert len(study.source_points) == round(0.3 * n) and study.severities == (5,)
    assert list(study.targets) == ["clean", "rotation-5", "blur-5"]
    _, test = ens.data()
    shifted = data.corrupt(test.take(study.target_points), "rotation", 5, seed=0)
    _, logits = activations.extract_activations(ens.models, shifted.x)
    np.testing.assert_array_equal(study.targets["rotation-5"][0], softmax(logits.astype(np.float64), axis=-1))
    np.testing.assert_array_equal(study.targets["clean"][1], study.labels[study.target_points])
    again = ex.label_free_tables(study.source, study.targets, full=(study.probs, study.labels),
                                 n_classes=study.n_classes)
    pd.testing.assert_frame_equal(again.table, study.table)
    pd.testing.assert_frame_equal(again.pivot, study.pivot)
    assert np.array_equal(study.full_predictions, study.probs.argmax(axis=2))
    with pytest.raises(ValueError, match="severities must be whole numbers"):
        ex.label_free_study(ens, severities="high")
    with pytest.raises(ValueError, match="source_fraction must be a probability"):
        ex.label_free_study(ens, source_fraction=1.5)
