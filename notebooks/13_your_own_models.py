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
# # Using the tools on your own models
#
# **The claim.** The interaction tensor is defined for *any* ensemble of models that differ only
# in their seed (Jiang, Baek & Kolter 2024, §3), and the paper's structural observations should
# not depend on the book's own training code: **feature frequency is long-tailed (O1), and
# dominant features are shared by more seeds than rare ones while every seed learns a different
# subset (O3)** (§4). This chapter checks both on two ensembles that `ift_core.train` never saw:
#
# 1. a PyTorch model you define yourself, trained briefly with a plain loop, whose activations
#    `ift_core.activations.extract_activations` reads through a forward hook on any named layer;
# 2. a model from another framework (scikit-learn's `MLPClassifier`), whose activations are plain
#    NumPy arrays: the analysis half of `ift_core` (`tensor`, `observations`, `gde`) never
#    imports torch.
#
# Both use scikit-learn's handwritten digits (1,797 real 8x8 images), so the chapter runs in
# seconds to a minute whatever the profile.

# %% tags=["parameters"]
from typing import Optional
profile = "cpu"            # book profile; here it only sets the default training length (the data are always digits)
n_models = 5               # seeds per ensemble (M)
epochs: Optional[int] = None  # epochs for the PyTorch model; None: 10 for "tiny", 30 otherwise
hidden = 64                # width of the layer we analyse
n_components = 20          # K: principal components per model (must stay below the layer's rank)
corr_quantile = 0.99       # gamma_corr as a quantile of cross-model |correlation|
presence_quantile = 0.9    # gamma_data: per-model quantile for "feature present in a point"
split_method = "gap"       # dominant/rare split of feature frequency: "gap" (largest gap in log frequency) or "otsu"

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

from ift_core import activations, data, gde, observations, tensor
from ift_core.plots import gde as gde_plots
from ift_core.plots import tensor as tensor_plots

torch.set_num_threads(1)
epochs = epochs if epochs is not None else (10 if profile == "tiny" else 30)
train_set, test_set = data.load_data(data.DataConfig(name="digits", n_train=None, n_test=None))
print(f"digits: {len(train_set)} training and {len(test_set)} test images; "
      f"{n_models} seeds, {epochs} epochs, analysed layer width {hidden}")

# %% [markdown]
# ## 1. Your own PyTorch model
#
# Any `nn.Module` works. The only thing `ift_core` needs is the *name* of the layer whose output
# you want to analyse: here the submodule `hidden` (its output, after the ReLU, is what the
# paper calls the penultimate features). Nothing about the class below is special.

# %%
class MyNet(nn.Module):
    """A small perceptron: a first layer, the layer we analyse (`hidden`), a linear head."""

    def __init__(self, n_inputs: int = 64, width: int = 128, hidden: int = 64, n_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_inputs, width), nn.ReLU())
        self.hidden = nn.Sequential(nn.Linear(width, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.head(self.hidden(self.body(x)))


def train_one(seed: int) -> nn.Module:
    """Your training loop: here plain SGD; only the seed changes between models."""
    torch.manual_seed(seed)
    model = MyNet(hidden=hidden)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(train_set), generator=order).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(train_set.x[idx]), train_set.y[idx]).backward()
            opt.step()
    return model.eval()


start = time.perf_counter()
my_models = [train_one(seed) for seed in range(n_models)]
print(f"trained {n_models} models in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# `extract_activations` registers a forward hook on the named layer of every model and returns
# the activations `(M, N, D)` and the logits `(M, N, C)` as NumPy arrays.

# %% tags=["solution"] student="read the activations of the layer `hidden` and the logits of your models on the test images with activations.extract_activations, and print each seed's test accuracy"
torch_acts, torch_logits = activations.extract_activations(my_models, test_set.x, layer="hidden")
torch_preds = torch_logits.argmax(-1)
labels = test_set.y.numpy()
print("activations", torch_acts.shape, "logits", torch_logits.shape)
print("test accuracy per seed:", np.round(1 - gde.test_error(torch_preds, labels, per_model=True), 4))

# %% [markdown]
# ## 2. Activations from any framework: plain NumPy
#
# The same analysis needs nothing but arrays. Here the ensemble is scikit-learn's
# `MLPClassifier` with one hidden layer, trained with five different `random_state`s; its hidden
# activations are computed from the fitted weights, `relu(X W1 + b1)`. Activations exported from
# JAX, TensorFlow or a saved `.npy` file would be used the same way.

# %%
from sklearn.neural_network import MLPClassifier

x_train = train_set.x.reshape(len(train_set), -1).numpy()
x_test = test_set.x.reshape(len(test_set), -1).numpy()
start = time.perf_counter()
sk_models = [MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-4, max_iter=600, random_state=seed)
             .fit(x_train, train_set.y.numpy()) for seed in range(n_models)]
sk_acts = np.stack([np.maximum(x_test @ m.coefs_[0] + m.intercepts_[0], 0.0) for m in sk_models])
sk_preds = np.stack([m.predict(x_test) for m in sk_models])
sk_probs = np.stack([m.predict_proba(x_test) for m in sk_models])
print(f"trained {n_models} scikit-learn models in {time.perf_counter() - start:.1f} s; "
      f"activations {sk_acts.shape}")
print("test accuracy per seed:", np.round(1 - gde.test_error(sk_preds, labels, per_model=True), 4))

# %% [markdown]
# ## The interaction tensor of each ensemble
#
# `build_interaction_tensor` runs Algorithm 1 on the `(M, N, D)` arrays: per-model PCA,
# cross-model correlation, greedy clustering into features, and the presence of each feature in
# each point (see chapter 3 for every step).

# %%
torch_probs = torch.softmax(torch.from_numpy(torch_logits), dim=-1).numpy()
ensembles = {
    "your PyTorch model": (torch_acts, torch_preds, torch_probs),
    "scikit-learn MLP": (sk_acts, sk_preds, sk_probs),
}
tensors, results = {}, {}
for name, (acts, preds, probs) in ensembles.items():
    it = tensor.build_interaction_tensor(acts, n_components=n_components, corr_quantile=corr_quantile,
                                         presence_quantile=presence_quantile, progress=False)
    tensors[name] = it
    results[name] = {
        "O1": observations.o1_long_tail(it, split_method=split_method),
        "O2": observations.o2_features_vs_confidence(it, probs, labels),
        "O3": observations.o3_feature_sharing(it, split_method=split_method),
        "O4": observations.o4_overlap_vs_agreement(it, preds),
    }
    print(f"{name}: Omega has shape {it.shape} (M, N, T): {it.n_features} features from "
          f"{it.n_models} x {n_components} components")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for ax, (name, res) in zip(axes, results.items()):
    tensor_plots.frequency_histogram(res["O1"], ax=ax)
    ax.set_title(f"O1 on {name}")
plt.show()

# %%
for name, res in results.items():
    tensor_plots.feature_sharing(res["O3"]).suptitle(f"O3 on {name}")
plt.show()

# %% [markdown]
# All four observations on both ensembles. O2 and O4 are reported for completeness; the
# chapters on them (5 and 6) discuss how their sign depends on the data and the thresholds.

# %%
pd.DataFrame([{"ensemble": name, "observation": key, "holds": o.holds, "statistic": round(o.statistic, 3),
               "CI": tuple(np.round(o.ci, 3))}
              for name, res in results.items() for key, o in res.items()]).set_index(["ensemble", "observation"])

# %% [markdown]
# O1 rests on splitting feature frequency into dominant and rare. The two rules `ift_core` offers
# can disagree on the same tensor, so here is O1 under both (the check below uses
# `split_method`):

# %%
pd.DataFrame([{"ensemble": name, "split": method,
               "dominant share": round(o1.statistic, 3), "O1 holds": o1.holds,
               "threshold (points)": round(o1.stats["split_threshold"], 1),
               "skew of frequency": round(o1.stats["skew_frequency"], 2)}
              for name, it in tensors.items() for method in ("gap", "otsu")
              for o1 in [observations.o1_long_tail(it, split_method=method)]]).set_index(["ensemble", "split"])

# %% [markdown]
# ## GDE on your own models
#
# The GDE functions need only predictions `(M, N)` and labels.

# %%
summaries = pd.DataFrame({name: gde.gde_summary(preds, labels, n_classes=10)
                          for name, (_, preds, _) in ensembles.items()})
summaries

# %%
gde_plots.error_vs_disagreement({name: (preds, labels) for name, (_, preds, _) in ensembles.items()},
                                per="pair")
plt.show()

# %% [markdown]
# ## Check
#
# The claim holds when O1 and O3 hold on both ensembles, with the thresholds above: four
# parts, each judged on its own.

# %%
from ift_core.claims import Part, Verdict, record

parts = []
for name, res in results.items():
    o1, o3 = res["O1"], res["O3"]
    parts.append(Part.from_observation(o1, claim=f"O1 on {name}: feature frequency has a long right tail", facts=(
        f"skewness of frequency {o1.statistic:.2f}, interval [{o1.ci[0]:.2f}, {o1.ci[1]:.2f}]; "
        f"T={tensors[name].n_features} features")))
    parts.append(Part.from_observation(o3, claim=f"O3 on {name}: frequent features are held by more seeds, and the "
                                                  f"seeds differ", facts=(
        f"frequency against models per feature: rho {o3.statistic:.3f}, interval [{o3.ci[0]:.3f}, {o3.ci[1]:.3f}]; "
        f"mean Jaccard overlap {o3.stats['mean_jaccard']:.3f}")))
record(Verdict("own_models", tuple(parts), facts=(
    f"M={n_models}, K={n_components}, corr_quantile={corr_quantile}, presence_quantile={presence_quantile}, "
    f"split {split_method}"), setting={"M": n_models, "K": n_components, "corr_quantile": corr_quantile,
                                        "presence_quantile": presence_quantile}));
