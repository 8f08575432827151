"""Every public function refuses bad input the same way: a ValueError naming the parameter, the value
and the remedy. One table, one row per case: (id, the call with the bad input, the message it must
give). Each row was once a silent wrong answer, a crash with another exception, or an error that
did not name the parameter.

The table covers ``gde``, ``theory``, ``observations``, ``experiments``, ``data``, ``models``,
``train``, ``activations``, ``plots``, ``cache`` and ``distributed`` (``tensor`` has its own tests).
Objects the calls need are built once, lazily and small (a digits split, a tiny tensor).
"""
from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import torch

from ift_core import data, distributed, experiments, gde, models, observations, theory, train
from ift_core import activations as acts

torch.set_num_threads(1)

P = np.array([[0, 1, 1, 2], [0, 1, 2, 2], [1, 1, 2, 0]])  # 3 models, 4 points, 3 classes
Y = np.array([0, 1, 1, 2])
PROBS = np.full((3, 4, 3), 1 / 3)
FM = theory.FeatureModel()
HUGE_U64 = np.array([[0, 2**64 - 1, 1]], dtype=np.uint64)
ACTS = np.random.default_rng(0).standard_normal((2, 30, 4))  # activations of 2 models on 30 points


@functools.cache
def digits() -> data.ImageSet:
    return data.load_split("digits", "test")


@functools.cache
def tensor3():
    from ift_core.tensor import build_interaction_tensor
    rng = np.random.default_rng(0)
    return build_interaction_tensor(rng.standard_normal((3, 60, 8)), n_components=3, corr_threshold=0.2,
                                    progress=False)


@functools.cache
def config() -> train.TrainConfig:
    return train.TrainConfig(data=data.DataConfig(name="digits", n_train=100, n_test=50), arch="mlp", width=8,
                             n_models=2, epochs=1)


@functools.cache
def mlp() -> torch.nn.Module:
    return models.build_model("mlp", in_channels=1, n_classes=10, image_size=8, width=8)


def _tensor_probs():
    return np.full((3, 60, 2), 0.5), np.zeros(60, int)


def _framework(**kw):
    base = dict(n_train=100, n_classes=10, n_models=4, p_d=0.9, t_r=5, p_r=0.5, p_systematic=0.0)
    return experiments.framework_prediction([0, 1], **{**base, **kw})


CASES = [
    # ---------------------------------------------------------------- gde
    ("vote_ensemble-uint64-wraps", lambda: gde.vote_ensemble(HUGE_U64, 2), r"preds must hold integers below 2\*\*63"),
    ("vote_ensemble-complex", lambda: gde.vote_ensemble(np.array([[0, 1 + 0j]]), 2),
     r"preds must be an integer array, got dtype complex"),
    ("vote_ensemble-float-1e19", lambda: gde.vote_ensemble(np.array([[0.0, 1e19]]), 2),
     r"preds must hold integers below 2\*\*63"),
    ("vote_ensemble-output-too-large", lambda: gde.vote_ensemble(P, 10**15), r"n_classes"),
    ("test_error-per_model-str", lambda: gde.test_error(P, Y, per_model="yes"), r"per_model must be True or False"),
    ("test_error-labels-uint64", lambda: gde.test_error(P[:, :3], HUGE_U64[0]), r"labels must hold integers below"),
    ("disagreement-include_self-str", lambda: gde.disagreement(P, include_self="False"),
     r"include_self must be True or False"),
    ("disagreement-include_self-int", lambda: gde.disagreement(P, include_self=1), r"include_self must be True or False"),
    ("disagreement-complex", lambda: gde.disagreement(P + 0j), r"preds must be an integer array"),
    ("pairwise_disagreement-float-1e19", lambda: gde.pairwise_disagreement(np.array([[0.0, 1e19], [0, 1]])),
     r"preds must hold integers below"),
    ("ece-n_bins-beyond-float-resolution", lambda: gde.ece(PROBS[0], Y[:4] % 3, n_bins=10**30), r"n_bins must be"),
    ("estimate_error-seed-str", lambda: gde.estimate_error(P, method="bootstrap", seed="x"), r"seed must be an integer"),
    ("estimate_error-seed-negative", lambda: gde.estimate_error(P, method="bootstrap", seed=-1), r"seed must be"),
    ("estimate_error-seed-float", lambda: gde.estimate_error(P, method="bootstrap", seed=1.5), r"seed must be"),
    ("estimate_error-seed-bool", lambda: gde.estimate_error(P, method="bootstrap", seed=True), r"seed must be"),
    ("estimate_error-level-str", lambda: gde.estimate_error(P, level="high"), r"level must be a finite real"),
    ("estimate_error-level-None", lambda: gde.estimate_error(P, level=None), r"level must be"),
    ("estimate_error-level-complex", lambda: gde.estimate_error(P, level=0.9 + 0j), r"level must be"),
    ("estimate_error-n_boot-too-large", lambda: gde.estimate_error(P, method="bootstrap", n_boot=10**13),
     r"n_boot"),
    ("estimate_error-preds-uint64", lambda: gde.estimate_error(np.vstack([HUGE_U64] * 3)), r"preds must hold integers"),
    ("compare_estimators-target-labels-above-C",
     lambda: gde.compare_estimators((PROBS, Y % 3), {"t": (PROBS, np.array([0, 1, 2, 3]))}),
     r"targets\['t'\] labels must lie in \[0, 3\) \(class indices\)"),
    ("estimate_error-jackknife-seed-str", lambda: gde.estimate_error(P, method="jackknife", seed="x"),
     r"seed must be an integer"),
    ("compare_estimators-estimators-int",
     lambda: gde.compare_estimators((PROBS, Y % 3), {"a": (PROBS, Y % 3)}, estimators=[5]), r"estimators\[0\] must be"),
    ("compare_estimators-estimators-str",
     lambda: gde.compare_estimators((PROBS, Y % 3), {"a": (PROBS, Y % 3)}, estimators="AC"), r"estimators must be"),
    ("GDE-include_self-str", lambda: gde.GDE(include_self="no"), r"include_self must be True or False"),
    ("ATC-score-unknown", lambda: gde.ATC(score="entropy"), r"score must be one of"),
    ("default_estimators-str", lambda: gde.default_estimators("3"), r"n_models must be an integer"),
    ("default_estimators-bool", lambda: gde.default_estimators(True), r"n_models must be an integer"),
    ("GDE-estimate_interval-seed", lambda: gde.GDE().fit(PROBS, Y % 3).estimate_interval(PROBS, method="bootstrap",
                                                                                         seed="x"), r"seed must be"),
    ("same_wrong_rate-labels-complex", lambda: gde.same_wrong_rate(P, Y + 0j), r"labels must be an integer array"),
    ("class_aggregated_calibration-labels-float-1e19",
     lambda: gde.class_aggregated_calibration(P, np.array([0, 1, 1, 1e19]), 3), r"labels must hold integers below"),
    # ---------------------------------------------------------------- theory
    ("empirical_vote_calibration-label-negative",
     lambda: theory.empirical_vote_calibration(P, [0, 1, 2, -1], n_classes=3),
     r"labels must lie in \[0, 3\) \(class indices\), got minimum -1"),
    ("empirical_vote_calibration-label-too-large",
     lambda: theory.empirical_vote_calibration(P, [0, 1, 2, 3], n_classes=3),
     r"labels must lie in \[0, 3\) \(class indices\), got maximum 3"),
    ("empirical_vote_calibration-prediction-too-large",
     lambda: theory.empirical_vote_calibration(P + 2, Y, n_classes=3),
     r"preds must lie in \[0, n_classes=3\), got maximum 4"),
    ("empirical_vote_calibration-prediction-negative",
     lambda: theory.empirical_vote_calibration(P - 1, Y), r"preds must hold class indices >= 0"),
    ("empirical_vote_calibration-n_classes-bool", lambda: theory.empirical_vote_calibration(P, Y, n_classes=True),
     r"n_classes must be an integer"),
    ("empirical_vote_calibration-n_classes-str", lambda: theory.empirical_vote_calibration(P, Y, n_classes="3"),
     r"n_classes must be an integer"),
    ("empirical_vote_calibration-n_classes-1", lambda: theory.empirical_vote_calibration(P * 0, Y * 0, n_classes=1),
     r"n_classes must be an integer >= 2"),
    ("Simulation-agreement-one-model", lambda: FM.simulate(1, 50).agreement(), r"agreement.*n_models"),
    ("rho_s-negative", lambda: FM.rho_s(np.array([-1, 2])), r"b must hold whole numbers"),
    ("rho_s-fraction", lambda: FM.rho_s(1.5), r"b must hold whole numbers"),
    ("rho_s-str", lambda: FM.rho_s("2"), r"b must"),
    ("rho_s-nan", lambda: FM.rho_s(np.nan), r"b contains 1 NaN"),
    ("rho_s-above-t", lambda: FM.rho_s(10**9), r"b must hold whole numbers in \[0, 1000\]"),
    ("E_s-above-1", lambda: FM.E_s(2.0), r"z must hold numbers in \[0, 1\]"),
    ("E_s-negative", lambda: FM.E_s(-0.1), r"z must hold numbers in \[0, 1\]"),
    ("E_s-nan", lambda: FM.E_s(np.nan), r"z contains 1 NaN"),
    ("E_s-str", lambda: FM.E_s("0.5"), r"z must"),
    ("E_s_at-above-1", lambda: FM.E_s_at(np.array([2.0, 0.5])), r"z must hold numbers in \[0, 1\]"),
    ("from_groups-missing-key", lambda: theory.FeatureModel.from_groups([{"t": 5, "n": 2, "weight": 1}]),
     r"groups\[0\].*'p'"),
    ("from_groups-unknown-key",
     lambda: theory.FeatureModel.from_groups([{"t": 5, "n": 2, "p": 0.5, "weight": 1, "colour": 3}]),
     r"groups\[0\].*'colour'"),
    ("from_groups-None", lambda: theory.FeatureModel.from_groups(None), r"groups must be"),
    ("FeatureModel-n_train-overflow", lambda: theory.FeatureModel(n_train=10**400), r"n_train must be"),
    ("FeatureModel-t_d-overflow", lambda: theory.FeatureModel(t_d=10**400), r"t_d must be"),
    ("FeatureModel-n_train-beyond-2**53", lambda: theory.FeatureModel(n_train=2**60), r"n_train must be at most 2\*\*53"),
    ("Group-t-overflow", lambda: theory.Group(t=10**400, n=2, p=0.5, weight=1.0), r"group.t must be at most"),
    ("seen_distribution-too-large", lambda: theory.FeatureModel(t_r=10**7, n_r=10**6).seen_distribution(),
     r"n=1000000 features per point needs .* GiB"),
    ("vote_cace-too-large", lambda: theory.vote_cace(theory.FeatureModel(t_r=10**7, n_r=10**6)),
     r"n=1000000 features per point"),
    ("simulate-seed-str", lambda: theory.simulate(FM, n_models=2, n_points=10, seed="x"), r"seed must be an integer"),
    ("simulate-seed-negative", lambda: theory.simulate(FM, n_models=2, n_points=10, seed=-1), r"seed must be"),
    ("simulate-seed-float", lambda: theory.simulate(FM, n_models=2, n_points=10, seed=1.5), r"seed must be"),
    ("simulate-too-large", lambda: theory.simulate(FM, n_models=10**6, n_points=10**7), r"n_models.*n_points"),
    ("simulate-n_train-too-large", lambda: theory.simulate(FM.replace(n_train=10**13), n_models=2, n_points=10),
     r"n_train"),
    ("monte_carlo-seed-str", lambda: theory.monte_carlo(FM, n_reps=2, n_points=10, seed="x"), r"seed must be"),
    ("monte_carlo-chunk-0", lambda: theory.monte_carlo(FM, n_reps=2, n_points=10, chunk=0), r"chunk must be"),
    ("monte_carlo-chunk-bool", lambda: theory.monte_carlo(FM, n_reps=2, n_points=10, chunk=True), r"chunk must be"),
    ("monte_carlo-chunk-float", lambda: theory.monte_carlo(FM, n_reps=2, n_points=10, chunk=2.5), r"chunk must be"),
    ("monte_carlo-too-large", lambda: theory.monte_carlo(FM, n_reps=2, n_models=10**6, n_points=10**7),
     r"n_models.*n_points"),
    ("monte_carlo-model-str", lambda: theory.monte_carlo("fm"), r"model must be a FeatureModel"),
    ("vote_calibration-decimals-str", lambda: theory.vote_calibration(FM, decimals="x"), r"decimals must be"),
    ("vote_calibration-decimals-bool", lambda: theory.vote_calibration(FM, decimals=True), r"decimals must be"),
    ("vote_calibration-model-str", lambda: theory.vote_calibration("fm"), r"model must be a FeatureModel"),
    ("vote_cace-model-str", lambda: theory.vote_cace(None), r"model must be a FeatureModel"),
    ("random_models-n-str", lambda: theory.random_models("3"), r"n must be an integer"),
    ("random_models-n-negative", lambda: theory.random_models(-1), r"n must be an integer >= 0"),
    ("random_models-n_groups-str", lambda: theory.random_models(2, n_groups="a"), r"n_groups must be an integer"),
    ("sweeps-ranges-str", lambda: theory.sweeps("abc"), r"ranges must be"),
    ("random_models-seed-str", lambda: theory.random_models(2, seed="x"), r"seed must be"),
    ("gde_constructions-target-str", lambda: theory.gde_constructions("0.9"), r"target_accuracy must be"),
    ("gde_constructions-n_best-0", lambda: theory.gde_constructions(0.9, n_best=0), r"n_best must be"),
    ("gde_constructions-n_best-str", lambda: theory.gde_constructions(0.9, n_best="2"), r"n_best must be"),
    ("gde_constructions-tol-negative", lambda: theory.gde_constructions(0.9, tol=-1), r"tol must be"),
    ("gde_constructions-tol-str", lambda: theory.gde_constructions(0.9, tol="x"), r"tol must be"),
    ("beta_from_same_wrong_rate-str", lambda: theory.beta_from_same_wrong_rate("0.5", 3), r"rate must be"),
    ("beta_from_same_wrong_rate-bool", lambda: theory.beta_from_same_wrong_rate(True, 3), r"rate must be"),
    ("expected_metrics-validate-str",
     lambda: theory.expected_metrics(t=[10], n=[3], p=[0.5], weight=[1.0], n_train=10, validate="no"),
     r"validate must be True or False"),
    ("sweep-values-str", lambda: theory.sweep("t_d", "abc"), r"values must"),
    ("sweep-values-empty", lambda: theory.sweep("t_d", []), r"values must"),
    ("sweep-values-nan", lambda: theory.sweep("p_r", [0.5, np.nan]), r"values contains 1 NaN"),
    ("coupled_sweep-ratio-str", lambda: theory.coupled_sweep("t_r", "t_d", [10, 20], ratio="x"), r"ratio must be"),
    ("coupled_sweep-ratio-nan", lambda: theory.coupled_sweep("t_r", "t_d", [10, 20], ratio=np.nan), r"ratio must be"),
    ("coupled_sweep-ratio-negative", lambda: theory.coupled_sweep("t_r", "t_d", [10, 20], ratio=-1.0),
     r"ratio must be"),
    ("coupled_sweep-values-str", lambda: theory.coupled_sweep("t_r", "t_d", ["a"]), r"values must"),
    ("coupling_study-factors-negative", lambda: theory.coupling_study([FM], factors=[-1.0, 2.0]), r"factors must"),
    ("coupling_study-bases-model", lambda: theory.coupling_study(FM), r"bases must be"),
    ("compare_with_simulation-progress-str", lambda: theory.compare_with_simulation([FM], n_reps=2, n_points=10,
                                                                                     progress="no"),
     r"progress must be True or False"),
    ("compare_with_simulation-models-model", lambda: theory.compare_with_simulation(FM), r"models must be"),
    ("planted_omega-drop_absent-str", lambda: FM.simulate(2, 10).planted_omega(drop_absent="no"),
     r"drop_absent must be True or False"),
    # ---------------------------------------------------------------- observations
    ("spearman_ci-level-str", lambda: observations.spearman_ci([1, 2, 3], [1, 3, 2], confidence_level="high"),
     r"confidence_level must be a finite real"),
    ("spearman_ci-level-None", lambda: observations.spearman_ci([1, 2, 3], [1, 3, 2], confidence_level=None),
     r"confidence_level must be"),
    ("o2-n_bins-str", lambda: observations.o2_features_vs_confidence(tensor3(), *_tensor_probs(), n_bins="x"),
     r"n_bins must be an integer"),
    ("o2-n_bins-fraction", lambda: observations.o2_features_vs_confidence(tensor3(), *_tensor_probs(), n_bins=2.7),
     r"n_bins must be an integer"),
    ("o2-n_bins-bool", lambda: observations.o2_features_vs_confidence(tensor3(), *_tensor_probs(), n_bins=True),
     r"n_bins must be an integer"),
    ("o2-per_model-str", lambda: observations.o2_features_vs_confidence(tensor3(), *_tensor_probs(), per_model="no"),
     r"per_model must be True or False"),
    ("o2-level-str", lambda: observations.o2_features_vs_confidence(tensor3(), *_tensor_probs(),
                                                                     confidence_level="x"), r"confidence_level must be"),
    ("o3-level-str", lambda: observations.o3_feature_sharing(tensor3(), confidence_level="x"),
     r"confidence_level must be"),
    ("o4-n_permutations-fraction", lambda: observations.o4_overlap_vs_agreement(tensor3(), np.zeros((3, 60), int),
                                                                                n_permutations=2.5),
     r"n_permutations must be an integer"),
    ("o4-n_permutations-str", lambda: observations.o4_overlap_vs_agreement(tensor3(), np.zeros((3, 60), int),
                                                                           n_permutations="x"),
     r"n_permutations must be an integer"),
    ("o4-n_permutations-negative", lambda: observations.o4_overlap_vs_agreement(tensor3(), np.zeros((3, 60), int),
                                                                                n_permutations=-1),
     r"n_permutations must be an integer >= 0"),
    ("o4-seed-str", lambda: observations.o4_overlap_vs_agreement(tensor3(), np.zeros((3, 60), int), seed="x"),
     r"seed must be"),
    ("o4-n_permutations-bool", lambda: observations.o4_overlap_vs_agreement(tensor3(), np.zeros((3, 60), int),
                                                                            n_permutations=True),
     r"n_permutations must be an integer"),
    ("pairwise_agreement-complex", lambda: observations.pairwise_agreement(P + 0j), r"preds must be an integer array"),
    ("sweep_thresholds-corr_quantiles-str",
     lambda: observations.sweep_thresholds(ACTS, n_components=2, corr_quantiles=["x"], progress=False),
     r"corr_quantiles must"),
    ("sweep_thresholds-progress-str",
     lambda: observations.sweep_thresholds(ACTS, n_components=2, progress="no"),
     r"progress must be True or False"),
    # ---------------------------------------------------------------- experiments
    ("subpopulation_sweep-level-str", lambda: experiments.subpopulation_sweep(config(), level="x"), r"level must be"),
    ("subpopulation_sweep-progress-str", lambda: experiments.subpopulation_sweep(config(), rarities=(0, 1),
                                                                                 progress="no"),
     r"progress must be True or False"),
    ("subpopulation_sweep-tensor-str", lambda: experiments.subpopulation_sweep(config(), rarities=(0, 1),
                                                                               tensor="no"),
     r"tensor must be True or False"),
    ("framework_prediction-p_r-str", lambda: _framework(p_r="x"), r"p_r must be"),
    ("framework_prediction-p_systematic-bool", lambda: _framework(p_systematic=True), r"p_systematic must be"),
    ("framework_prediction-transfer-str", lambda: _framework(transfer="x"), r"transfer must be"),
    # ---------------------------------------------------------------- data
    ("DataConfig-n_train-bool", lambda: data.DataConfig(name="digits", n_train=True), r"n_train must be"),
    ("DataConfig-n_test-float", lambda: data.DataConfig(name="digits", n_test=2.5), r"n_test must be"),
    ("DataConfig-normalize-str", lambda: data.DataConfig(name="digits", normalize="no"),
     r"normalize must be True or False"),
    ("DataConfig-subset_seed-str", lambda: data.DataConfig(name="digits", subset_seed="x"), r"subset_seed must be"),
    ("DataConfig-test_seed-negative", lambda: data.DataConfig(name="digits", test_seed=-1), r"test_seed must be"),
    ("DataConfig-name-unknown", lambda: data.DataConfig(name="mnist"), r"name must be one of"),
    ("subset-stratified-str", lambda: data.subset(digits(), 10, seed=0, stratified="no"),
     r"stratified must be True or False"),
    ("as_images-negative-position", lambda: data.as_images(digits(), [-1]), r"positions must"),
    ("as_images-position-too-large", lambda: data.as_images(digits(), [10**9]), r"positions must"),
    ("as_images-position-bool", lambda: data.as_images(digits(), [True]), r"positions must"),
    ("as_images-positions-2d", lambda: data.as_images(digits(), [[0, 1]]), r"positions must have 1 dimensions"),
    ("with_pixels-numpy", lambda: digits().with_pixels(np.zeros((450, 1, 8, 8))), r"pixels must be a torch.Tensor"),
    ("read_idx-int", lambda: data.read_idx(5), r"path must be a file path"),
    ("take-negative", lambda: digits().take([-1]), r"positions must"),
    ("take-fraction", lambda: digits().take([1.5]), r"positions must"),
    ("normalize-mean-nan", lambda: data.normalize(digits(), [np.nan], [1.0]), r"mean must"),
    ("normalize-mean-bool", lambda: data.normalize(digits(), [True], [1.0]), r"mean must hold 1 finite"),
    ("normalize-mean-str", lambda: data.normalize(digits(), "a", [1.0]), r"mean must"),
    ("load_split-download-str", lambda: data.load_split("digits", "test", download="no"),
     r"download must be True or False"),
    # ---------------------------------------------------------------- models
    ("build_model-width-too-large", lambda: models.build_model("mlp", in_channels=1, n_classes=10, image_size=8,
                                                               width=10**7), r"width"),
    ("build_model-image_size-too-large", lambda: models.build_model("small_cnn", in_channels=1, n_classes=10,
                                                                    image_size=10**6), r"image_size"),
    # ---------------------------------------------------------------- train
    ("train_ensemble-cache-str", lambda: train.train_ensemble(config(), cache="no", progress=False),
     r"cache must be True or False"),
    ("train_ensemble-progress-str", lambda: train.train_ensemble(config(), progress="no"),
     r"progress must be True or False"),
    ("lr_at-total-zero", lambda: train.lr_at(config(), 0, 0), r"total_steps must be"),
    ("lr_at-step-str", lambda: train.lr_at(config(), "x", 10), r"step must be"),
    ("lr_at-step-beyond", lambda: train.lr_at(config(), 11, 10), r"step must be"),
    ("lr_at-step-fraction", lambda: train.lr_at(config(), 1.5, 10), r"step must be an integer"),
    ("train_ensemble-ray-num_gpus-str", lambda: train.train_ensemble(config(), backend="ray", progress=False,
                                                                     ray_resources={"num_gpus": "x"}),
     r"num_gpus must be a number"),
    ("resource_options-num_gpus-str", lambda: distributed.resource_options({"num_gpus": "x"}),
     r"num_gpus must be a number"),
    ("resource_options-max_retries-float", lambda: distributed.resource_options({"max_retries": 1.5}),
     r"max_retries must be an integer"),
    ("lr_at-step-negative", lambda: train.lr_at(config(), -1, 10), r"step must be"),
    ("model_seeds-negative", lambda: train.model_seeds(config(), -1), r"m must be"),
    ("model_seeds-bool", lambda: train.model_seeds(config(), True), r"m must be"),
    ("model_seeds-fraction", lambda: train.model_seeds(config(), 1.5), r"m must be"),
    ("get_profile-list", lambda: train.get_profile(["cpu"]), r"unknown profile \['cpu'\]; choose one of"),
    ("ensemble_dir-config-str", lambda: train.ensemble_dir("tiny"), r"config must be a TrainConfig"),
    ("load_ensemble-directory-int", lambda: train.load_ensemble(config(), 5), r"directory must be"),
    # ---------------------------------------------------------------- activations
    ("extract_activations-progress-str", lambda: acts.extract_activations(mlp(), np.zeros((2, 1, 8, 8)),
                                                                         progress="no"),
     r"progress must be True or False"),
    # ---------------------------------------------------------------- plots
    ("ensemble_activations-progress-str", lambda: acts.ensemble_activations(None, progress="no"),
     r"progress must be True or False"),
    ("ensemble_activations-cache-str", lambda: acts.ensemble_activations(None, cache="no"),
     r"cache must be True or False"),
    ("training_curves-log_scale-str", lambda: _plot("train", "training_curves", [{"seed": 0, "loss_history": [1.0]}],
                                                    log_scale="no"), r"log_scale must be True or False"),
    ("correlation_matrix-n_models-bool", lambda: _plot("tensor", "correlation_matrix", np.eye(4), True),
     r"n_models must be"),
    ("plot_sweeps-ncols-zero", lambda: _plot("theory", "plot_sweeps", theory.sweeps({"p_r": [0.1, 0.5]}), ncols=0),
     r"ncols must be"),
    ("correlation_histogram-n_models-float", lambda: _plot("tensor", "correlation_histogram", np.eye(4), 2.0),
     r"n_models must be an integer"),
    ("plot_sweeps-show_gap-str", lambda: _plot("theory", "plot_sweeps", theory.sweeps({"p_r": [0.1, 0.5]}),
                                               show_gap="no"), r"show_gap must be True or False"),
    ("plot_closed_vs_simulation-n_se-str",
     lambda: _plot("theory", "plot_closed_vs_simulation",
                   theory.compare_with_simulation([FM], n_reps=2, n_points=10, progress=False), n_se="x"),
     r"n_se must be"),
    # ---------------------------------------------------------------- cache, distributed
]


def _plot(module: str, name: str, *args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ift_core import plots
    try:
        return getattr(getattr(plots, module), name)(*args, **kwargs)
    finally:
        plt.close("all")


@pytest.mark.parametrize("call, message", [pytest.param(c, m, id=i) for i, c, m in CASES])
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_case_ids_are_unique():
    ids = [i for i, _, _ in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 100


# ------------------------------------------------------------------------------------------
# What the checks must not break, and the sizes that are now computed instead of allocated
# ------------------------------------------------------------------------------------------
def _cace_brute_force(preds: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Jiang et al. (2022) Def. 4.3 by loops over the levels q = j/M and the classes."""
    m, n = preds.shape
    votes = np.array([[np.sum(preds[:, i] == k) for k in range(n_classes)] for i in range(n)])
    total = 0.0
    for j in range(m + 1):
        joint = sum(np.mean((votes[:, k] == j) & (labels == k)) for k in range(n_classes))
        weight = sum(np.mean(votes[:, k] == j) for k in range(n_classes))
        total += abs(joint - j / m * weight)
    return total


def test_cace_with_huge_n_classes_counts_only_the_classes_that_occur():
    rng = np.random.default_rng(0)
    preds, labels = rng.integers(0, 4, (5, 10_000)), rng.integers(0, 4, 10_000)
    small = gde.class_aggregated_calibration(preds, labels, 4)
    huge = gde.class_aggregated_calibration(preds, labels, 10**6)  # was a 74.5 GiB (N, K) table
    assert gde.cace(preds, labels, 10**6) == pytest.approx(_cace_brute_force(preds, labels, 4), abs=1e-12)
    np.testing.assert_allclose(huge["cace_term"], small["cace_term"], atol=1e-15)
    # each absent class has vote share 0 at every point: mass 1 at q = 0; the masses sum to K
    assert huge["mass"].iloc[0] == pytest.approx(small["mass"].iloc[0] + 10**6 - 4)
    assert huge["mass"].sum() == pytest.approx(10**6)
    # sparse class ids (a billion apart) give the same table as 0..3
    sparse = gde.class_aggregated_calibration(preds * 10**9, labels * 10**9, 3 * 10**9 + 1)
    np.testing.assert_allclose(sparse["cace_term"], small["cace_term"], atol=1e-15)
    s = gde.gde_summary(preds * 10**9, labels * 10**9, 3 * 10**9 + 1)
    assert s["vote_ensemble_error"] == gde.gde_summary(preds, labels, 4)["vote_ensemble_error"]


def test_empirical_vote_calibration_with_sparse_classes():
    rng = np.random.default_rng(1)
    preds, labels = rng.integers(0, 3, (4, 500)), rng.integers(0, 3, 500)
    dense = theory.empirical_vote_calibration(preds, labels, n_classes=3)
    sparse = theory.empirical_vote_calibration(preds * 10**6, labels * 10**6, n_classes=2 * 10**6 + 1)
    np.testing.assert_allclose(sparse["cace_term"], dense["cace_term"], atol=1e-15)
    assert sparse["mass"].iloc[0] == pytest.approx(dense["mass"].iloc[0] + 2 * 10**6 + 1 - 3)
    # the same table as the (N, K) count of votes it replaces
    counts = (preds[..., None] == np.arange(3)).sum(0)
    mass = np.bincount(counts.ravel(), minlength=5) / 500
    np.testing.assert_allclose(dense["mass"], mass[mass > 0])


def test_ece_with_more_bins_than_points_is_the_mean_gap():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), size=200)
    labels = rng.integers(0, 3, 200)
    # with 10**12 bins every point has its own bin: ECE = mean |correct - confidence|
    want = np.mean(np.abs((probs.argmax(1) == labels) - probs.max(1)))
    assert gde.ece(probs, labels, n_bins=10**12) == pytest.approx(want, rel=1e-12)
    assert gde.ece(probs, labels, n_bins=np.int64(15)) == gde.ece(probs, labels, n_bins=15)


def test_numpy_scalars_are_accepted_like_python_ones():
    m = models.build_model("mlp", in_channels=np.int64(1), n_classes=np.int32(10), image_size=np.int16(8),
                           width=np.uint8(4))
    assert m.classifier.in_features == 4 and models.feature_dim("mlp", np.int64(4)) == 4
    assert gde.vote_ensemble(P, np.int64(3)).shape == (4, 3)
    e = gde.estimate_error(P, method="bootstrap", n_boot=np.int32(50), seed=np.uint8(3), level=np.float32(0.9))
    assert e == gde.estimate_error(P, method="bootstrap", n_boot=50, seed=3, level=float(np.float32(0.9)))
    assert train.lr_at(config(), np.int64(0), np.int64(10)) == config().lr
    assert gde.test_error(P, Y, per_model=np.True_).shape == (3,)
    a, _ = acts.extract_activations(mlp(), np.zeros((3, 1, 8, 8)), batch_size=np.int64(2))
    assert a.shape == (1, 3, 8)
    # unsigned and whole-float predictions that fit are still fine
    np.testing.assert_array_equal(gde.vote_ensemble(P.astype(np.uint64), 3), gde.vote_ensemble(P, 3))
    np.testing.assert_array_equal(gde.vote_ensemble(P.astype(float), 3), gde.vote_ensemble(P, 3))


def test_build_model_counts_parameters_without_allocating_them():
    with pytest.raises(ValueError, match=r"width=10000000, .* 100,000,\d{3},\d{3},\d{3} float32 parameters"):
        models.build_model("mlp", in_channels=1, n_classes=10, image_size=8, width=10**7)
    torch.manual_seed(0)
    a = models.build_model("small_resnet", in_channels=1, n_classes=10, image_size=8, width=4)
    after_a = torch.rand(1)
    torch.manual_seed(0)
    b = models._build("small_resnet", 4, 1, 10, 8)
    assert torch.equal(torch.rand(1), after_a)  # the meta-device count draws nothing from the RNG
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_shared_validators():
    from ift_core.internal import check_bool, check_choice, check_int, check_labels, check_memory, check_real

    assert check_int(np.int64(3), "k", minimum=1) == 3 and type(check_int(np.int64(3), "k")) is int
    for bad in (True, np.True_, 3.0, "3", None, 2 + 0j):
        with pytest.raises(ValueError, match=r"^k must be an integer"):
            check_int(bad, "k")
    with pytest.raises(ValueError, match=r"k must be an integer >= 1 and <= 5, got 6; fewer"):
        check_int(6, "k", minimum=1, maximum=5, remedy="fewer")
    assert check_real(np.float32(0.5), "x") == 0.5 and check_real(7, "x") == 7.0
    assert check_real(float("inf"), "x", allow_inf=True) == float("inf")
    for bad in (True, "0.5", None, float("nan"), float("inf"), 1j, np.array([0.5])):
        with pytest.raises(ValueError, match=r"^x must be a finite real number"):
            check_real(bad, "x")
    with pytest.raises(ValueError, match=r"x must be a finite real number > 0 and < 1, got 1"):
        check_real(1, "x", minimum=0, maximum=1, open_low=True, open_high=True)
    assert check_bool(np.False_, "b") is False
    for bad in (0, 1, "False", None, np.array([True])):
        with pytest.raises(ValueError, match=r"^b must be True or False"):
            check_bool(bad, "b")
    assert check_choice("a", "c", ("a", "b")) == "a" and type(check_choice(np.str_("a"), "c", ("a", "b"))) is str
    for bad in (["a"], 1, None):
        with pytest.raises(ValueError, match=r"^c must be one of \('a', 'b'\)"):
            check_choice(bad, "c", ("a", "b"))
    with pytest.raises(ValueError, match=r"c must be one of \(True,\), got 1"):
        check_choice(1, "c", (True,))
    np.testing.assert_array_equal(check_labels([0, 2], "y", n_classes=3), [0, 2])
    for bad, msg in (([], "non-empty"), ([0, 3], r"\[0, 3\).*maximum 3"), ([-1], "minimum -1"),
                     ([[0]], "1 dimensions"), ([0.5], "whole numbers"), ([True], "integer array")):
        with pytest.raises(ValueError, match=msg):
            check_labels(bad, "y", n_classes=3)
    check_memory(1e6, "a small array")
    with pytest.raises(ValueError, match=r"^n=10\*\*20 needs .* GiB, more than this machine's .* GiB of memory; less"):
        check_memory(8e20, "n=10**20", remedy="less")
