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
# # O2: features per point against ensemble confidence
#
# **The claim.** Points on which the ensemble is confident (high mean softmax probability of the
# true class over the seeds) carry *fewer* features; points with low confidence carry more
# (Jiang, Baek & Kolter 2024, §4, Observation 2, reported on CIFAR-10; a later study found the
# opposite trend on CIFAR-100). This chapter measures the Spearman correlation between the
# number of features present in a point and the ensemble's confidence on it, with a confidence
# interval, and checks whether **the correlation is negative**. Whatever the sign, it is
# reported as measured, and shown for several K because the sign can depend on it.

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
per_model = False          # count features per point over the union of seeds (False) or as the mean per seed (True)
compare_components = [5, 10, 20, 50]  # K values for the sensitivity of the sign
confidence_level = 0.95    # for the Fisher-z confidence intervals

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

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
options = dict(cap_at_rank=True, gamma_corr=gamma_corr, presence_quantile=presence_quantile,
               presence=presence, presence_scale=presence_scale, align_signs=align_signs, progress=False)
it = ift.build_interaction_tensor(acts.activations, n_components=n_components, **options)
K = it.n_components
probs, labels = acts.probs, acts.labels
print(f"{config.arch} on {config.data.name}: {it}; ensemble accuracy of single seeds "
      f"{(acts.preds == labels).mean():.3f}")

# %% [markdown]
# ## Confidence and features per point

# %% tags=["solution"] student="measure O2 with obs.o2_features_vs_confidence (features per point against the ensemble's confidence), plot it and show the binned table"
o2 = obs.o2_features_vs_confidence(it, probs, labels, per_model=per_model, confidence_level=confidence_level)
tplots.features_vs_confidence(o2)
plt.show()
o2.tables["bins"].round(3)

# %% [markdown]
# Dominant and rare features may behave differently: the same correlation, counted separately.

# %%
table = o2.table
rows = []
for col in ("n_features", "n_dominant", "n_rare", "mean_features_per_model"):
    r = obs.spearman_ci(table["confidence"].to_numpy(), table[col].to_numpy().astype(float),
                        confidence_level=confidence_level)
    rows.append({"features counted": col, **{k: r[k] for k in ("rho", "low", "high", "p")}})
pd.DataFrame(rows).set_index("features counted").round(4)

# %% [markdown]
# ## Does the sign depend on K?
#
# A pilot on Fashion-MNIST saw the sign of this correlation flip with the number of components
# per model, so it is shown for several K at the same thresholds.

# %%
rows = []
for k in sorted(compare_components):
    t = ift.build_interaction_tensor(acts.activations, n_components=k, **options)
    if any(row["K"] == t.n_components for row in rows):
        continue  # k was lowered to the rank, like a smaller one before it
    o = obs.o2_features_vs_confidence(t, probs, labels, per_model=per_model, confidence_level=confidence_level)
    rows.append({"K": t.n_components, "T": t.n_features, "rho": o.statistic, "low": o.ci[0], "high": o.ci[1], "holds": o.holds})
by_k = pd.DataFrame(rows)
fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
ax.errorbar(by_k["K"], by_k["rho"], yerr=[by_k["rho"] - by_k["low"], by_k["high"] - by_k["rho"]], marker="o")
ax.axhline(0, color="black", lw=0.7)
ax.set(xlabel="K (components per model)", ylabel="Spearman rho (features, confidence)",
       title="O2 against K")
plt.show()
by_k.round(4)

# %% [markdown]
# ## Check
#
# O2 holds on these data when the confidence interval of Spearman's rho lies below zero.

# %%
from ift_core.claims import Verdict, record
from ift_core.experiments import factors

# The verdict is built by the package (the factor study behind the scorecard builds it the same way).
record(Verdict("O2", **factors.o2_verdict_fields(
    o2, n_models=it.n_models, n_components=K, corr_threshold=it.corr_threshold, per_model=per_model,
    confidence_level=confidence_level, rho_by_k=[(r.K, r.rho) for r in by_k.itertuples()])));
