# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Building the interaction tensor
#
# **The claim.** Models that differ only in their random seed learn *features* that can be
# matched across seeds: project each model's penultimate activations on its top K principal
# directions, correlate every direction of every model with every other over the test points,
# and greedily cluster the ones that correlate above a threshold gamma_corr (Algorithm 1 of
# Jiang, Baek & Kolter 2024, §3). Some features are then shared by every seed, others belong to
# one seed only; the interaction tensor Omega[m, n, t] records which model uses which feature on
# which point. This chapter builds it one step at a time and checks that the clustering finds
# **features shared by all seeds, alongside features only some seeds have** (T < M*K).
#
# Each step is one public function of `ift_core.tensor`; `build_interaction_tensor` runs them all.
# Where the paper's text leaves a choice open (centring, the threshold rules, the presence test)
# the choice is a parameter below, with the paper's reading as default.

# %% tags=["parameters"]
from typing import Optional, Union
profile = "cpu"            # training profile: "tiny" (digits, MLP), "cpu" (Fashion-MNIST, small CNN), "paper" (CIFAR-10, ResNet18, GPU)
n_models: Optional[int] = None  # ensemble size M; None: the profile's
n_components: Optional[int] = None  # K per model; None: the profile's (tensor.PROFILE_OPTIONS: the paper's 50 for "cpu", lowered to the smallest numerical rank of a 128-d layer)
gamma_corr: Optional[Union[float, str]] = None  # gamma_corr: a number (absolute |C| threshold) or "q0.99" (that quantile of cross-model |C|, the paper's rule); None: the profile's (tensor.PROFILE_OPTIONS: 0.5 for "tiny" and "cpu", "q0.99" for "paper")
presence_quantile = 0.9    # gamma_data: per-model quantile of the normalised projections
presence = "signed"        # presence test on the "signed" normalised value or its "absolute" value
presence_scale = "column"  # normalise each component by its own max |value| ("column", paper) or the model's ("model")
align_signs = True         # orient every member of a feature like the component that opened it before the presence test (False: Algorithm 1 as written)
center = True              # centred PCA (True) or uncentred (False)
show_models = 4            # models shown in the correlation-matrix picture

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ift_core import activations, train
from ift_core import tensor as ift
from ift_core.plots import tensor as tplots

config = train.get_profile(profile, **({"n_models": n_models} if n_models is not None else {}))
profile_options = ift.PROFILE_OPTIONS[profile]  # what the parameters cell leaves to the profile (None)
n_components = profile_options.n_components if n_components is None else n_components
# One knob for gamma_corr: the rule ("quantile" or "absolute") and its value follow from it.
gamma_corr = profile_options.gamma_corr if gamma_corr is None else gamma_corr
gamma_rule, gamma_value = profile_options.replace(gamma_corr=gamma_corr).gamma_corr_rule
corr_threshold = gamma_value if gamma_rule == "absolute" else None
corr_quantile = gamma_value if gamma_rule == "quantile" else 0.99  # the quantile rule shown beside an absolute one
ensemble = train.train_ensemble(config, progress=False)
acts = activations.ensemble_activations(ensemble, split="test", progress=False)
A = acts.activations
M, N, D = A.shape
print(f"{M} seeds of {config.arch} on {config.data.name}: activations (M, N, D) = {A.shape}, "
      f"test accuracy {ensemble.test_accuracy.mean():.3f} +- {ensemble.test_accuracy.std():.3f}")

# %% [markdown]
# ## Step 1-2: per-model PCA
#
# Dead ReLU units lower the rank of a model's activations; K must stay below it (the PCA refuses
# otherwise). Each principal direction's sign is fixed on its scores (positive skewness), so
# the result does not depend on an arbitrary rotation of a model's units. The PCA runs in
# float64 (Gram matrix, eigensolver, projection): a float32 Gram matrix left the low-variance
# components with errors of 1-5 % of their largest score.

# %%
ranks = ift.numerical_rank(A)
print("numerical rank per model:", ranks.tolist())
pc = ift.principal_components(A, n_components=n_components, cap_at_rank=True, center=center, progress=False)
K = pc.n_components
if K < n_components:
    print(f"n_components lowered from {n_components} to {K} (the smallest rank)")
print(f"scores {pc.scores.shape}; the top K={K} components explain "
      f"{pc.explained_variance_ratio.sum(axis=1).mean():.1%} of the variance on average")
tplots.explained_variance(pc)
plt.show()

# %% [markdown]
# ## Step 3: correlations between every pair of candidate features
#
# One float32 matrix product of the z-scored score columns gives the (MK x MK) Pearson
# correlation matrix. Within a model the blocks are the identity (principal components are
# uncorrelated); between models, a bright entry means two seeds found the same direction.

# %%
corr = ift.component_correlations(pc)
tplots.correlation_matrix(corr, M, max_models=show_models)
plt.show()

# %% [markdown]
# ## Step 4: the threshold gamma_corr
#
# The paper takes gamma_corr as the 0.99 quantile of |C|. Taken over cross-model pairs only (the
# diagonal and within-model entries would otherwise distort it), it is a *relative* rule: 1% of
# cross-model pairs always exceed it, whatever the data. The histogram shows where it falls
# against the absolute threshold chosen above.

# %%
gamma_q = ift.correlation_threshold(corr, M, quantile=corr_quantile)
gamma = gamma_q if corr_threshold is None else float(corr_threshold)
print(f"quantile rule ({corr_quantile}): gamma_corr = {gamma_q:.3f}; absolute: {corr_threshold}; "
      f"used: {gamma:.3f}")
fig = tplots.correlation_histogram(corr, M, threshold=gamma)
fig.axes[0].axvline(gamma_q, color="tab:purple", ls=":", label=f"{corr_quantile} quantile = {gamma_q:.3f}")
fig.axes[0].legend()
plt.show()

# %% [markdown]
# Single components match one to one only for the top directions; further down, the models'
# subspaces still overlap although their individual directions no longer line up. The canonical
# correlations between two models' top-K subspaces (upper line) against each component's best
# single match in another model (lower line) show how much of the "singleton" features below is
# a choice of basis rather than a difference in what the seeds learned.

# %%
canon = ift.canonical_correlations(pc, corr=corr)
best = ift.best_match(corr, M)
tplots.subspace_correlations(canon, best_single=best)
plt.show()
print(f"components with a match above gamma_corr in some other model: {(best > gamma).mean():.1%}; "
      f"mean canonical correlation: {canon[np.triu_indices(M, 1)].mean():.3f}")

# %% [markdown]
# ## Step 5: Algorithm 1, the greedy clustering
#
# Candidates are visited model by model, component by component. An unassigned one opens a
# cluster; every candidate that correlates with the opener above gamma_corr, and better than
# with its cluster so far, joins it. Each cluster is a feature.

# %% tags=["solution"] student="run Algorithm 1's greedy clustering on `corr` with threshold `gamma` (ift.cluster_components, with the openers), and count the features T, the singletons and the largest cluster"
assign, best_corr, openers = ift.cluster_components(corr, gamma, return_openers=True)
T = int(assign.max()) + 1
sizes = np.bincount(assign)
print(f"T = {T} features from M*K = {M * K} candidate components; "
      f"{(sizes == 1).sum()} singletons, largest cluster {sizes.max()} components")

# %% [markdown]
# ## Step 5b: one orientation per feature
#
# The clustering matches components by |C|, but a principal direction's sign is arbitrary: the
# skewness convention leaves nearly symmetric components to chance, and a member that is the
# *negative* of its feature's opener has its long tail on the opposite points. Before the
# presence test every member is therefore multiplied by the sign of its correlation with the
# opener (`feature_signs`; `align_signs=False` keeps Algorithm 1's literal behaviour). How many
# members that flips, per model:

# %%
signs = ift.feature_signs(corr, assign, openers).reshape(M, K)
n_members = M * K - T  # components that are not the opener of their feature
print(f"{int((signs < 0).sum())} of {n_members} members anti-correlated with their feature's opener "
      f"(flipped when align_signs=True); per model: {(signs < 0).sum(axis=1).tolist()}")

# %% [markdown]
# ## Steps 6-7: presence in each point, and the tensor
#
# Each component's projection (oriented like its feature's opener, step 5b) is divided by its
# largest |value| over the points; the component is present in a point when that exceeds the
# model's `presence_quantile` of all its normalised values. Omega[m, n, t] is 1 when some component of model m in feature t is present in point n.
# `build_interaction_tensor` does steps 2-7 in one call, and equals the steps above.

# %%
it = ift.build_interaction_tensor(A, n_components=K, gamma_corr=gamma_corr,
                                  presence_quantile=presence_quantile, presence=presence,
                                  presence_scale=presence_scale, center=center, align_signs=align_signs,
                                  progress=False)
assert np.array_equal(it.assignments.ravel(), assign)
assert np.array_equal(it.signs, signs if align_signs else np.ones_like(signs))
omega = it.omega
print(it, f"-- {it.n_flipped} members flipped (align_signs={align_signs})")
print(f"Omega: shape {omega.shape}, {omega.mean():.2%} ones; gamma_data per model "
      f"{np.round(it.presence_thresholds, 3).tolist()}; timings (s) "
      f"{ {k: round(v, 3) for k, v in it.timings.items()} }")

# %%
tplots.cluster_structure(it, max_features=min(it.n_features, 150))
plt.show()

# %% [markdown]
# What the orientation does to presence: for every member, the overlap (Jaccard) of the points
# where it is present with the points where its feature's opener is, with and without the
# alignment, split by whether the member is anti-correlated with the opener.

# %%
other = ift.build_interaction_tensor(A, n_components=K, gamma_corr=gamma_corr,
                                     presence_quantile=presence_quantile, presence=presence,
                                     presence_scale=presence_scale, center=center, align_signs=not align_signs,
                                     progress=False)
members = np.setdiff1d(np.arange(M * K), it.openers)
overlap = pd.DataFrame({
    "anti-correlated with opener": (signs.ravel() < 0)[members],
    f"align_signs={align_signs}": it.components_table()["jaccard_with_opener"].to_numpy()[members],
    f"align_signs={not align_signs}": other.components_table()["jaccard_with_opener"].to_numpy()[members],
})
overlap.groupby("anti-correlated with opener").agg(["mean", "count"]).round(3)

# %% [markdown]
# The features table lists, for each feature, how many points it occurs in (for any model), how
# many models have it, and which component opened it.

# %%
features = it.features_table()
features.sort_values(["n_models", "frequency"], ascending=False).head(12)

# %%
shared_counts = features["n_models"].value_counts().sort_index()
pd.DataFrame({"features": shared_counts, "share": (shared_counts / it.n_features).round(3)}).rename_axis(
    "models having the feature")

# %% [markdown]
# ## Check
#
# The claim holds on these data when the clustering merges components across seeds (T < M*K)
# and at least one feature is found by every seed, while some features belong to fewer seeds.

# %%
from ift_core.claims import Part, Verdict, record

nmod = it.models_per_feature()
n_all, n_some, n_one = int((nmod == it.n_models).sum()), int((nmod < it.n_models).sum()), int((nmod == 1).sum())
record(Verdict("tensor", (
    Part.from_bool("the clustering merges components across seeds (T < M K)", it.n_features < M * K,
                   facts=f"T = {it.n_features} features from M K = {M * K} components"),
    Part.from_bool("some features are found by every seed", n_all > 0, facts=f"{n_all} features in all {it.n_models} seeds"),
    Part.from_bool("other features belong to fewer seeds", n_some > 0,
                   facts=f"{n_some} features in fewer seeds, {n_one} of them in one seed only"),
), facts=(f"M={it.n_models}, K={K}, gamma_corr={it.corr_threshold:.3f} (the quantile rule would give {gamma_q:.3f})",
          f"{int((signs < 0).sum())} of {n_members} members anti-correlated with their feature's opener, "
          f"{it.n_flipped} flipped (align_signs={align_signs})"),
   setting={"M": it.n_models, "K": K, "T": it.n_features, "gamma_corr": it.corr_threshold}));
