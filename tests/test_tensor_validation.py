"""Bad input to ift_core.tensor: one table of (id, callable, expected error) rows.

Every row must raise ``ValueError`` whose message matches the regex (it names the parameter or
the model, the value, and the remedy). The table of tests/test_input_validation.py has the same
layout, so the two can be merged.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from ift_core import tensor as T

RNG = np.random.default_rng(0)
A3 = RNG.standard_normal((3, 80, 10)).astype(np.float32)        # 3 models, N=80, D=10
DEAD = A3.copy()
DEAD[1, :, 3:] = 0.0                                             # model 1: rank 3
WIDE = (RNG.standard_normal((3, 30, 4)) @ RNG.standard_normal((4, 80))).astype(np.float32)  # D > N, rank 4
CORR = T.component_correlations(T.principal_components(A3, n_components=4, progress=False))
ASSIGN, _, OPENERS = T.cluster_components(CORR, 0.3, return_openers=True)


class Lazy:
    """M models of (n, d) noise, generated on access; counts the reads."""

    def __init__(self, m, n, d):
        self.m, self.n, self.d, self.reads = m, n, d, 0

    def __len__(self):
        return self.m

    def __getitem__(self, i):
        self.reads += 1
        return np.random.default_rng(i).standard_normal((self.n, self.d)).astype(np.float32)


def _huge_then_check_reads():
    # M*K = 1996 * 50 = 99,800 candidate features: a 99,800 x 99,800 correlation matrix (37 GiB
    # in float32, more with the clustering's copies) must be refused after reading one model's
    # shape, not after 20 s of PCA.
    lazy = Lazy(1996, 60, 60)
    try:
        T.build_interaction_tensor(lazy, n_components=50, progress=False)
    finally:
        assert lazy.reads == 1, lazy.reads


def _saved(mutate):
    """Save a small tensor, change one array of the file, load it again."""
    it = T.build_interaction_tensor(A3, n_components=4, corr_threshold=0.3, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = it.save(Path(tmp) / "it.npz")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        mutate(arrays)
        np.savez(path, **arrays)
        T.InteractionTensor.load(path)


def _truncate(arrays):
    arrays["presence_bits"] = arrays["presence_bits"][:-5]


def _bad_shape(arrays):
    arrays["presence_shape"] = np.array([3, 80], dtype=np.int64)


def _bad_signs(arrays):
    arrays["signs"] = np.zeros_like(arrays["signs"])


def _bad_openers(arrays):
    arrays["openers"] = arrays["openers"][::-1].copy()


RANK = r'numerical rank 3 < n_components=5 .*pass n_components=3 or smaller, or n_components="rank"'

CASES = [
    # --- numerical rank below n_components, in every shape and dtype
    ("rank/tall-float32", lambda: T.build_interaction_tensor(DEAD, n_components=5, progress=False),
     r"activations\[1\] has " + RANK),
    ("rank/tall-float64", lambda: T.principal_components(DEAD.astype(np.float64), n_components=5, progress=False),
     r"activations\[1\] has " + RANK),
    ("rank/wide-float32", lambda: T.principal_components(WIDE, n_components=6, progress=False),
     r"activations\[0\] has numerical rank 4 < n_components=6 .*30 points, 80 units, float32"),
    ("rank/wide-float64", lambda: T.principal_components(WIDE.astype(np.float64), n_components=6, progress=False),
     r"activations\[0\] has numerical rank 4 < n_components=6 .*float64"),
    ("rank/constant-model", lambda: T.principal_components(np.ones((2, 30, 4)), n_components="rank", progress=False),
     r"activations\[0\] has numerical rank 0"),
    ("rank/unknown-word", lambda: T.principal_components(A3, n_components="max", progress=False),
     r'n_components must be a positive integer or "rank", got \'max\''),
    ("rank/K>=N", lambda: T.principal_components(A3, n_components=80, progress=False),
     r"n_components=80 must be below the number of points N=80"),
    ("rank/K>D", lambda: T.principal_components([A3[0], A3[1, :, :4]], n_components=5, progress=False),
     r"n_components=5 exceeds the width D=4 of activations\[1\]: pass n_components=4"),
    # --- booleans where counts are expected, strings where booleans are
    ("bool/n_components=True", lambda: T.build_interaction_tensor(A3, n_components=True, progress=False),
     r"n_components must be a whole number >= 1, got True; or \"rank\""),
    ("bool/n_components=2.5", lambda: T.principal_components(A3, n_components=2.5, progress=False),
     r"n_components must be a whole number >= 1, got 2.5"),
    ("bool/n_components='5'", lambda: T.principal_components(A3, n_components="5", progress=False),
     r'n_components must be a positive integer or "rank"'),
    ("bool/center='False'", lambda: T.build_interaction_tensor(A3, n_components=3, center="False", progress=False),
     r"center must be True or False, got 'False'"),
    ("bool/center=0", lambda: T.principal_components(A3, n_components=3, center=0, progress=False),
     r"center must be True or False, got 0"),
    ("bool/align_signs='yes'", lambda: T.build_interaction_tensor(A3, n_components=3, align_signs="yes",
                                                                  progress=False),
     r"align_signs must be True or False"),
    ("bool/within_model=None", lambda: T.build_interaction_tensor(A3, n_components=3, within_model=None,
                                                                  progress=False),
     r"within_model must be True or False"),
    ("bool/progress='no'", lambda: T.principal_components(A3, n_components=3, progress="no"),
     r"progress must be True or False"),
    ("bool/numerical_rank-center", lambda: T.numerical_rank(A3, center="True"), r"center must be True or False"),
    ("bool/return_openers", lambda: T.cluster_components(CORR, 0.5, return_openers="yes"),
     r"return_openers must be True or False"),
    ("bool/n_models=True", lambda: T.best_match(CORR, True), r"n_models must be a whole number >= 1, got True"),
    ("bool/correlation_threshold-n_models", lambda: T.correlation_threshold(CORR, True),
     r"n_models must be a whole number >= 1, got True"),
    # --- magnitudes: scores must fit float32 (the float64 Gram matrix itself cannot overflow for them)
    ("scale/float64-1e300", lambda: T.principal_components(A3.astype(np.float64) * 1e300, n_components=3,
                                                           progress=False),
     r"activations\[0\] are too large: .*beyond float32's range .*divide the activations by a constant"),
    ("scale/float32-3e38", lambda: T.principal_components(np.sign(A3) * np.float32(3e38), n_components=3,
                                                          progress=False),
     r"activations\[0\] are too large: .*divide the activations"),
    ("scale/float64-1e-300", lambda: T.principal_components(A3.astype(np.float64) * 1e-300, n_components=3,
                                                            progress=False),
     r"activations\[0\] are too small: .*multiply the activations by a constant"),
    ("scale/float32-subnormal", lambda: T.principal_components(A3 * np.float32(1e-39), n_components=3,
                                                               progress=False),
     r"activations\[0\] are too small: component \d's scores are at most"),
    # --- sizes checked before any work
    ("memory/MK=99800", _huge_then_check_reads,
     r"needs about \d+\.\d GiB .*correlations .*M\*K = 99800 candidate features .*lower n_components"),
    ("memory/scores", lambda: T.principal_components(Lazy(200_000, 1000, 60), n_components=50, progress=False),
     r"needs about \d+\.\d GiB \(scores"),
    # --- numbers and choices
    ("number/presence_threshold='high'", lambda: T.build_interaction_tensor(A3, n_components=3,
                                                                            presence_threshold="high",
                                                                            progress=False),
     r"presence_threshold must be a finite real number >= -1 and <= 1, got 'high'; it is the absolute gamma_data"),
    ("number/presence_quantile='0.9'", lambda: T.component_presence(A3, quantile="0.9"),
     r"presence_quantile must be a probability in \[0, 1\], got '0.9'"),
    ("number/corr_threshold=nan", lambda: T.build_interaction_tensor(A3, n_components=3, corr_threshold=np.nan,
                                                                     progress=False),
     r"corr_threshold must be a finite real number >= 0 and <= 1, got nan; it is the absolute gamma_corr"),
    ("number/corr_quantile=True", lambda: T.build_interaction_tensor(A3, n_components=3, corr_quantile=True,
                                                                     progress=False),
     r"corr_quantile must be a probability in \[0, 1\], got True"),
    ("number/cluster-threshold-str", lambda: T.cluster_components(CORR, "0.5"),
     r"threshold must be a finite real number >= 0 and <= 1, got '0.5'"),
    ("choice/presence=None", lambda: T.build_interaction_tensor(A3, n_components=3, presence=None, progress=False),
     r"presence must be one of \('signed', 'absolute'\), got None"),
    ("choice/presence_scale-list", lambda: T.component_presence(A3, scale=["column"]),
     r"presence_scale must be one of \('column', 'model'\), got \['column'\]"),
    # --- correlation matrices and their companions
    ("corr/best_match-scalar", lambda: T.best_match(np.float32(1), 2),
     r"corr must be a non-empty square matrix .*got shape \(\)"),
    ("corr/best_match-one-model", lambda: T.best_match(CORR, 1), r"n_models must be >= 2, got 1"),
    ("corr/best_match-not-multiple", lambda: T.best_match(CORR, 5), r"corr has 12 rows, not a multiple of n_models=5"),
    ("corr/cluster-nan", lambda: T.cluster_components(np.where(np.eye(4) > 0, 1.0, np.nan), 0.5),
     r"corr contains 12 NaN or infinite values"),
    ("corr/cluster-strings", lambda: T.cluster_components(np.array([["a"]]), 0.5),
     r"corr must be a real numeric matrix, got dtype <U1"),
    ("corr/cluster-within_model-n_models", lambda: T.cluster_components(CORR, 0.5, within_model=False,
                                                                        n_models=True),
     r"n_models must be a whole number >= 1, got True"),
    ("corr/threshold-complex", lambda: T.correlation_threshold(CORR.astype(complex), 3),
     r"corr must be a real numeric matrix, got dtype complex128"),
    ("corr/canonical-bad-corr", lambda: T.canonical_correlations(A3[:, :, :4], corr=np.eye(5)),
     r"corr must have shape \(12, 12\)"),
    ("corr/signs-openers", lambda: T.feature_signs(CORR, ASSIGN, OPENERS[::-1]),
     r"openers\[t\] must index a candidate of feature t"),
    ("corr/signs-float-assignments", lambda: T.feature_signs(CORR, ASSIGN.astype(float), OPENERS),
     r"assignments must hold one integer feature per row of corr \(12\), got dtype float64"),
    ("presence/signs-zero", lambda: T.component_presence(A3[:, :, :4], signs=np.zeros((3, 4))),
     r"signs must be an array \(3, 4\) of \+1 and -1"),
    # --- activations and scores
    ("acts/empty-model", lambda: T.principal_components([np.zeros((0, 5))], n_components=1, progress=False),
     r"activations\[0\] is empty \(shape \(0, 5\)\)"),
    ("acts/complex", lambda: T.principal_components([A3[0].astype(complex)], n_components=1, progress=False),
     r"activations\[0\] must be real, got dtype complex128"),
    ("acts/nan", lambda: T.numerical_rank([A3[0], np.where(A3[1] > 2, np.nan, A3[1])]),
     r"activations\[1\] contains \d+ NaN or infinite values"),
    ("acts/dict", lambda: T.principal_components({"a": A3[0]}, n_components=1, progress=False),
     r"activations must be an array \(M, N, D\) or a sequence of M arrays"),
    ("scores/empty", lambda: T.component_correlations(np.zeros((2, 0, 3))),
     r"scores must have shape \(M, N, K\) with no empty axis, got shape \(2, 0, 3\)"),
    ("scores/bool", lambda: T.component_presence(np.ones((2, 5, 3), dtype=bool)),
     r"scores must be a float array \(M, N, K\), got dtype bool"),
    ("scores/nan", lambda: T.component_correlations(np.full((2, 5, 3), np.nan)), r"scores contains 30 NaN"),
    # --- the dominant / rare split
    ("split/rule", lambda: T.split_frequencies([1, 2, 3], rule="kmeans"),
     r"split rule must be one of \('mixture', 'largest_spacing', 'otsu'\), got 'kmeans'"),
    ("split/bool-frequency", lambda: T.split_frequencies(np.array([True, False])),
     r"frequency must be a 1-D array of non-negative counts, got dtype bool"),
    ("split/string-threshold", lambda: T.split_frequencies([1, 2, 3], threshold="10"),
     r"threshold must be a real number, got '10'; a number of points \(or inf"),
    ("split/nan-threshold", lambda: T.split_frequencies([1, 2, 3], threshold=np.nan),
     r"threshold must be a real number, got nan; a number of points"),
    ("split/min_group=0", lambda: T.split_frequencies([1, 2, 3], min_group=0),
     r"min_group must be a whole number >= 1, got 0"),
    ("split/2-D", lambda: T.split_frequencies(np.ones((2, 2))),
     r"frequency must be a 1-D array of non-negative counts, got shape \(2, 2\)"),
    # --- files
    ("load/truncated-presence", lambda: _saved(_truncate),
     r"presence_bits holds \d+ bytes .*needs \d+: the file is truncated or corrupt"),
    ("load/presence-shape", lambda: _saved(_bad_shape), r"presence_shape must be 3 non-negative integers"),
    ("load/signs", lambda: _saved(_bad_signs), r"it\.npz: signs must be an array \(3, 4\) of \+1 and -1.*rebuild"),
    ("load/openers", lambda: _saved(_bad_openers), r"it\.npz: openers\[t\] must be the flat index"),
    ("tensor/per_model='yes'", lambda: T.build_interaction_tensor(A3, n_components=3, progress=False)
     .features_per_point(per_model="yes"), r"per_model must be True or False, got 'yes'"),
    ("tensor/best_corr-shape", lambda: T.InteractionTensor(
        presence=np.zeros((1, 3, 2), bool), assignments=[[0, 1]], best_corr=np.ones(2), openers=[0, 1],
        corr_threshold=0.5, presence_thresholds=np.zeros(1), explained_variance=np.ones((1, 2)),
        explained_variance_ratio=np.ones((1, 2))),
     r"best_corr must be a numeric array of shape \(1, 2\), got shape \(2,\)"),
]


@pytest.mark.filterwarnings("error")  # a refusal, not a numpy warning on the way to one
@pytest.mark.parametrize("case_id,call,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_value_error(case_id, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
