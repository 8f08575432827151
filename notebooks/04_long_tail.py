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
# # O1: feature frequency is long-tailed
#
# **The claim.** Count, for each feature of the interaction tensor, the number of test points in
# which it occurs (for any seed). The paper finds this frequency long-tailed: a few *dominant*
# features occur in very many points, most features are *rare* and occur in few, and the
# histogram of log frequency separates the two groups (Jiang, Baek & Kolter 2024, §4,
# Observation 1). This chapter measures the frequencies and checks that **their distribution has
# a long right tail** (skewness above zero, with a bootstrap interval). It also splits dominant
# from rare features where log frequency shows two modes, and says when it shows only one.

# %% tags=["parameters"]
from typing import Optional, Union
profile = "cpu"            # training profile: "tiny" (digits, MLP), "cpu" (Fashion-MNIST, small CNN), "paper" (CIFAR-10, ResNet18, GPU)
n_models: Optional[int] = None  # ensemble size M; None: the profile's
n_components: Optional[int] = None  # K per model; None: the profile's (tensor.PROFILE_OPTIONS), lowered to the smallest numerical rank if needed
gamma_corr: Optional[Union[float, str]] = None  # gamma_corr: a number (absolute |C| threshold) or "q0.99" (that quantile of cross-model |C|, the paper's rule); None: the profile's (tensor.PROFILE_OPTIONS: 0.5 for "tiny" and "cpu", "q0.99" for "paper")
presence_quantile = 0.9    # gamma_data: per-model quantile of the normalised projections
presence = "signed"        # presence test on the "signed" or "absolute" normalised value
presence_scale = "column"  # normalise by each component's max ("column", paper) or the model's max ("model")
align_signs = True         # orient every member of a feature like its opener before the presence test (chapter 3)
split_rule = "mixture"     # dominant/rare split: "mixture" (two modes of log frequency by BIC), "largest_spacing" or "otsu"
split_threshold: Optional[float] = None  # dominant: more points than this; None: found by split_rule
n_bootstrap = 2000         # bootstrap resamples (over features) for the skewness interval

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ift_core import activations, train
from ift_core import observations as obs
from ift_core import tensor as ift
from ift_core.plots import tensor as tplots

config = train.get_profile(profile, **({"n_models": n_models} if n_models is not None else {}))
profile_options = ift.PROFILE_OPTIONS[profile]  # what the parameters cell leaves to the profile (None)
n_components = profile_options.n_components if n_components is None else n_components
gamma_corr = profile_options.gamma_corr if gamma_corr is None else gamma_corr
ensemble = train.train_ensemble(config, progress=False)
acts = activations.ensemble_activations(ensemble, split="test", progress=False)
options = dict(n_components=n_components, cap_at_rank=True, gamma_corr=gamma_corr,
               presence_quantile=presence_quantile, presence=presence, align_signs=align_signs, progress=False)
it = ift.build_interaction_tensor(acts.activations, presence_scale=presence_scale, **options)
K = it.n_components
print(f"{config.arch} on {config.data.name}: {it}")

# %% [markdown]
# ## Frequencies, the long tail and the dominant/rare split
#
# **What decides the verdict.** The skewness of feature frequency, with a percentile bootstrap
# interval over features: O1 holds when the whole interval lies above zero. It needs no split of
# the features into dominant and rare, so no choice of split rule can decide it (the
# largest-spacing rule split off a single feature on an earlier run of this book and called the
# other 111 of 112 dominant).
# And one outlying feature cannot decide it either: each feature is missing from about 37 % of
# the bootstrap resamples, so the lower end of the interval comes from resamples without it.
# The share of all occurrences held by the top 10 % of features and the Gini coefficient are
# shown beside it; they need no split either.
#
# The split is reported, not used for the verdict. The default rule fits one and two Gaussian
# modes to log frequency and splits only when BIC prefers two, still does without the lowest and
# the highest feature, and each group holds at least 5 % of the features; otherwise it reports
# *no second mode* and calls no feature dominant.

# %% tags=["solution"] student="measure O1 on the tensor `it` with obs.o1_long_tail (the chapter's split rule and bootstrap), plot its frequency histogram and show its statistics"
o1 = obs.o1_long_tail(it, split_threshold=split_threshold, split_rule=split_rule, n_bootstrap=n_bootstrap)
tplots.frequency_histogram(o1)
plt.show()
pd.Series(o1.stats).to_frame("value")

# %% [markdown]
# The three split rules side by side, so that the split is not a hidden choice: the mixture
# (default), the widest spacing of log frequency (the paper's picture of two modes, which a single
# outlying feature captures) and Otsu's rule (maximal between-group variance, which always
# splits). The verdict column is the same for all three, since the split does not enter it.

# %%
rows = []
for rule in ift.SPLIT_RULES:
    o = obs.o1_long_tail(it, split_rule=rule, n_bootstrap=n_bootstrap)
    rows.append({"split rule": rule, "threshold (points)": o.stats["split_threshold"],
                 "dominant": o.stats["n_dominant"], "features": o.stats["n_features"],
                 "share of occurrences by dominant": o.stats["dominant_share_of_occurrences"],
                 "modes (mixture)": o.stats["n_modes"], "why": o.stats["split_reason"], "holds": o.holds})
pd.DataFrame(rows).set_index("split rule").round(3)

# %% [markdown]
# ## Where the tail comes from
#
# With the paper's presence rule each component is scaled to its own maximum and compared with
# one per-model quantile, so every component of a model occurs in roughly the same share of
# points. A feature's frequency then grows mainly with the number of seeds that have it (the
# union over models): the long tail is, to a large part, the spread of *models per feature*.
# The left panel shows that link; the right one repeats the histogram with each model's
# projections scaled by the model's largest value instead (`presence_scale="model"`), where
# high-variance components occur in more points than low-variance ones.

# %%
other_scale = "model" if presence_scale == "column" else "column"
it_other = ift.build_interaction_tensor(acts.activations, presence_scale=other_scale, **options)
o1_other = obs.o1_long_tail(it_other, split_threshold=split_threshold, split_rule=split_rule,
                            n_bootstrap=n_bootstrap)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
sns.boxplot(o1.table, x="n_models", y="frequency", ax=axes[0], color="tab:blue")
axes[0].set(yscale="log", xlabel="models having the feature", ylabel="points in which it occurs",
            title=f"presence scaled per {presence_scale}")
tplots.frequency_histogram(o1_other, ax=axes[1])
axes[1].set_title(f"presence scaled per {other_scale}: skewness {o1_other.statistic:.2f}, "
                  f"{o1_other.stats['n_dominant']} dominant of {o1_other.stats['n_features']}")
plt.show()
rate = it.components_table().groupby("component")["presence_rate"].mean()
rate_other = it_other.components_table().groupby("component")["presence_rate"].mean()
pd.DataFrame({f"presence rate ({presence_scale})": rate, f"presence rate ({other_scale})": rate_other}).T.round(3)

# %% [markdown]
# ## The most and least frequent features

# %%
o1.table.sort_values("frequency", ascending=False).iloc[np.r_[0:5, -5:0]]

# %% [markdown]
# ## Check
#
# O1 holds on these data when the bootstrap interval of the skewness of feature frequency lies
# above zero (the statistic that decides, for the reasons given above), with this chapter's
# presence scale and with the other one: each is a part of the verdict. The dominant/rare split
# is reported beside it, not judged; chapter 7 shows how the verdict moves with gamma_corr,
# gamma_data, the sign alignment and the split rule.

# %%
from ift_core.claims import Verdict, record
from ift_core.experiments import factors

# The verdict is built by the package (the factor study behind the scorecard builds it the same way).
record(Verdict("O1", **factors.o1_verdict_fields(
    o1, o1_other, n_models=it.n_models, n_components=K, corr_threshold=it.corr_threshold,
    presence_scale=presence_scale, other_scale=other_scale, align_signs=align_signs)));
