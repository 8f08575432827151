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
# # Training the seed ensemble
#
# **The claim.** Everything in the paper is measured on an ensemble of models that differ *only
# in their random seed*, trained to (near) zero training error: 20 ResNet18 on CIFAR-10 with SGD,
# initial learning rate 0.1, weight decay 1e-4, batch size 100 and no data augmentation
# (Jiang, Baek & Kolter 2024, §3 and §5; the GDE paper studies the same regime). This chapter
# trains such an ensemble with `ift_core.train` and checks that **every seed reaches the target
# training accuracy**, so that later chapters compare like with like.
#
# The paper gives neither the number of epochs, the optimiser's momentum nor the schedule. We use
# SGD with momentum 0.9 and a cosine schedule, with enough epochs to reach the target, and say so
# here rather than hide it.

# %% tags=["parameters"]
from typing import Optional
profile = "cpu"                 # training profile: "tiny" (digits, MLP), "cpu" (Fashion-MNIST, small CNN), "paper" (CIFAR-10, ResNet18, GPU)
n_models: Optional[int] = None  # ensemble size M; None: the profile's
epochs: Optional[int] = None    # passes over the training data; None: the profile's
mode = "diffinit"               # what the seed changes: "diffinit", "difforder", "diffdata" or "alldiff"
backend = "auto"                # "auto", "sequential", "processes", "vmap" or "ray" (see ift_core.train)
target_train_accuracy = 0.99    # every seed must reach this training accuracy (the GDE regime: near zero training error)
n_images = 32                   # sample images shown from the training set

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ift_core import data, models, train
from ift_core.plots import train as train_plots

torch.set_num_threads(1)  # bit-reproducible; the backends parallelise over seeds instead
overrides = {k: v for k, v in {"n_models": n_models, "epochs": epochs, "mode": mode}.items() if v is not None}
config = train.get_profile(profile, **overrides)
config

# %% [markdown]
# ## Profiles: the paper's setting and the CPU default
#
# A *profile* is a named `TrainConfig`. `paper` is the paper's setting and wants a GPU; `cpu` is
# the book's default, sized for a 2-core laptop; `tiny` exists so that the test suite can build
# the whole book in minutes. Any field can be overridden, e.g.
# `train.get_profile("cpu", n_models=20, epochs=20)`.

# %%
rows = []
for name, cfg in train.PROFILES.items():
    rows.append({"profile": name, "data": cfg.data.name, "n_train": cfg.data.n_train or "all",
                 "n_test": cfg.data.n_test or "all", "arch": cfg.arch, "width": cfg.width or "default",
                 "M": cfg.n_models, "epochs": cfg.epochs, "lr": cfg.lr, "momentum": cfg.momentum,
                 "weight decay": cfg.weight_decay, "batch": cfg.batch_size, "schedule": cfg.schedule})
pd.DataFrame(rows).set_index("profile")

# %% [markdown]
# ## The data
#
# `ift_core.data` loads real data only: Fashion-MNIST from its IDX files, CIFAR-10 from its
# Python batches, scikit-learn's digits. Training and test sets are stratified subsets drawn
# with fixed seeds and standardised with the training subset's per-channel mean and standard
# deviation.

# %%
train_set, test_set = data.load_data(config.data)
print(f"{config.data.name}: {len(train_set)} training and {len(test_set)} test images, "
      f"{train_set.n_classes} classes, {train_set.in_channels} channel(s) of "
      f"{train_set.image_size}x{train_set.image_size} pixels")
print("classes:", ", ".join(train_set.classes))
print("normalisation: mean", np.round(train_set.mean, 4), "std", np.round(train_set.std, 4))
counts = np.bincount(train_set.y.numpy(), minlength=train_set.n_classes)
print("training images per class:", counts.tolist())

# %%
rng = np.random.default_rng(0)
shown = np.sort(rng.choice(len(train_set), size=min(n_images, len(train_set)), replace=False))
fig = train_plots.image_grid(data.as_images(train_set, shown), train_set.y[shown].numpy(), train_set.classes,
                             title=f"{len(shown)} training images of {config.data.name}")
plt.show()

# %% [markdown]
# ## The architecture
#
# Every model in `ift_core.models` ends in a module named `penultimate` (an identity on the
# features the interaction tensor is built from) and a linear `classifier`.

# %%
net = models.build_model(config.arch, in_channels=train_set.in_channels, n_classes=train_set.n_classes,
                         image_size=train_set.image_size, width=config.width)
n_params = sum(p.numel() for p in net.parameters())
print(net)
print(f"{config.arch}: {n_params:,} parameters, penultimate dimension D = "
      f"{models.feature_dim(config.arch, config.width)}")

# %% [markdown]
# ## The randomness mode
#
# The GDE paper distinguishes what the seed changes: the initialisation (*DiffInit*), the order
# of the mini-batches (*DiffOrder*), the training subset (*DiffData*) or all three (*AllDiff*).
# The table lists the seeds each model uses under the chosen mode.

# %%
pd.DataFrame([train.model_seeds(config, m) for m in range(config.n_models)]).rename_axis("model")

# %% [markdown]
# ## Training
#
# `train_ensemble` trains the seeds that are not yet in the cache and checkpoints each one as it
# finishes; a rerun, or any later chapter asking for the same configuration, loads them instead.

# %%
ensemble = train.train_ensemble(config, backend=backend, progress=False)
metrics = pd.DataFrame(ensemble.metrics())
table = metrics[["seed", "init_seed", "order_seed", "subset_seed", "train_accuracy", "test_accuracy",
                 "backend", "device", "wall_s"]].set_index("seed")
print(f"{ensemble.n_trained} model(s) trained now, {len(ensemble) - ensemble.n_trained} loaded from the cache "
      f"(entry {ensemble.directory.name})")
table

# %%
fig = train_plots.training_curves(ensemble.metrics())
plt.show()

# %% tags=["solution"] student="tabulate the mean, standard deviation, minimum and maximum of the seeds' training and test accuracies"
summary = pd.DataFrame({"train accuracy": ensemble.train_accuracy, "test accuracy": ensemble.test_accuracy})
summary.describe().loc[["mean", "std", "min", "max"]]

# %% [markdown]
# ## Test error and disagreement
#
# The quantities of GDE (Definitions §4) for this ensemble: the mean test error of one seed and
# the mean disagreement of two, over all pairs of seeds. Each point of the figure is one pair of
# seeds; on the dashed diagonal their disagreement would equal their test error. Rerun the chapter
# with another `mode` to see how the randomness mode moves them (exercise 8).

# %%
from ift_core import activations, gde
from ift_core.plots import gde as gde_plots

test_outputs = activations.ensemble_activations(ensemble, split="test", progress=False)
test_error = float(gde.test_error(test_outputs.preds, test_outputs.labels))
test_disagreement = float(gde.disagreement(test_outputs.preds))
print(f"mode {config.mode}: mean test error {test_error:.4f}, mean disagreement {test_disagreement:.4f}, "
      f"disagreement / error {test_disagreement / test_error:.2f}")
fig = gde_plots.error_vs_disagreement({"one pair of seeds": (test_outputs.preds, test_outputs.labels)}, per="pair")
fig.axes[0].set_title(f"Test error and disagreement of {len(ensemble)} seeds ({config.mode})")
plt.show()

# %% [markdown]
# ## Check
#
# Every seed should reach the target training accuracy; otherwise the ensemble is not in the
# regime the paper (and GDE) describe, and the later chapters say so.

# %%
from ift_core.claims import Part, Verdict, record

reached = ensemble.train_accuracy >= target_train_accuracy
below = [s for s, ok in zip(ensemble.seeds, reached) if not ok]
record(Verdict("training", (
    Part.from_share(f"every seed reaches the target training accuracy {target_train_accuracy}", float(reached.mean()),
                    facts=(f"{int(reached.sum())} of {len(ensemble)} seeds reach it" + (f"; below it: seeds {below}" if below else ""),
                           f"training accuracy: lowest {ensemble.train_accuracy.min():.4f}, mean "
                           f"{ensemble.train_accuracy.mean():.4f}")),),
    facts=(f"M={len(ensemble)}, {config.arch} on {config.data.name}, {config.epochs} epochs, mode {config.mode}",
           f"test accuracy: mean {ensemble.test_accuracy.mean():.4f}, std {ensemble.test_accuracy.std():.4f}"),
    setting={"M": len(ensemble), "target_train_accuracy": target_train_accuracy,
             "lowest_train_accuracy": float(ensemble.train_accuracy.min())}));
