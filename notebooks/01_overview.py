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
# # Overview and quick start
#
# **The claim.** The paper starts from a familiar fact about deep networks (Jiang, Baek & Kolter
# 2024, §1 and §3): models that differ *only in their random seed* reach nearly the same test
# accuracy, yet they are different functions: they disagree on a noticeable share of test
# points. The whole book studies where that difference comes from, so this first chapter trains
# the book's seed ensemble and checks the fact on it: **the seeds' test accuracies lie within a
# narrow band, and the seeds still disagree.**
#
# Along the way it shows what the book does, how the code is organised, and how to rerun any
# chapter with your own parameters.

# %% tags=["parameters"]
from typing import Optional
profile = "cpu"               # training profile: "tiny" (digits, MLP), "cpu" (Fashion-MNIST, small CNN), "paper" (CIFAR-10, ResNet18, GPU)
n_models: Optional[int] = None  # ensemble size M; None: the profile's
backend = "auto"              # how seeds are trained: "auto", "sequential", "processes" or "vmap"
max_accuracy_spread = 0.05    # the claim: max - min test accuracy over the seeds stays below this

# %% [markdown]
# ## What the book does
#
# Each chapter reproduces one piece of the paper with `ift_core`, a small Python package, and
# ends with a verdict box: **HOLDS**, **HOLDS IN PART** or **DOES NOT HOLD**, then each part of
# the claim judged on its own, with the numbers it judged. The pipeline reads left to right:
#
# ```text
#  data  ->  models  ->  train  ->  activations  ->  tensor  ->  observations
#  (images)  (nets with a     (M seeds,     (penultimate     (Algorithm 1:   (O1-O4, chapters 4-7)
#             `penultimate`    cached)       features and     Omega, M x N x T)
#             module)                        logits of each
#                                            seed, cached)
#                                   |
#                                   +-> gde: error, disagreement, calibration (chapters 9-12)
#
#  theory: the paper's framework in closed form and simulation (chapters 8-11)
# ```
#
# | module | one job |
# |---|---|
# | `ift_core.data` | real data sets as tensors: Fashion-MNIST, CIFAR-10, scikit-learn digits; subsets, shifts |
# | `ift_core.models` | architectures, each exposing its penultimate features |
# | `ift_core.train` | train M seeds of one configuration; profiles; backends; checkpoints and cache |
# | `ift_core.activations` | activations and logits of trained models, for any `torch.nn.Module` |
# | `ift_core.tensor` | Algorithm 1: the interaction tensor |
# | `ift_core.observations` | the paper's observations O1-O4 and threshold sweeps |
# | `ift_core.theory` | the framework: closed forms, simulation, sweeps, fits |
# | `ift_core.gde` | test error, disagreement, calibration, label-free estimators |
# | `ift_core.plots` | one function per figure |
#
# The analysis half (`tensor`, `observations`, `theory`, `gde`) works on plain NumPy arrays and
# never imports torch, so activations from any framework can be analysed (chapter 13).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import ift_core
from ift_core import activations, gde, train
from ift_core.plots import gde as gde_plots

torch.set_num_threads(1)
print("ift_core", ift_core.__version__, "| torch", torch.__version__)

# %% [markdown]
# ## A quick tour: the seed ensemble
#
# A *profile* names a complete training configuration. The book's default, `cpu`, fits a
# 2-core laptop; `paper` is the paper's setting for a GPU; `tiny` builds the book in minutes for
# the tests. Chapter 2 describes them in detail.

# %%
config = train.get_profile(profile, **({"n_models": n_models} if n_models is not None else {}))
print(f"profile {profile!r}: {config.n_models} x {config.arch} on {config.data.name} "
      f"({config.data.n_train or 'all'} training images), {config.epochs} epochs, mode {config.mode}")

# %% [markdown]
# `train_ensemble` trains the seeds that are not in the cache yet (`.cache/ift`, or the folder in
# `$IFT_CACHE`) and loads the others, so this cell is slow once and instant afterwards; every
# later chapter reuses the same models.

# %%
ensemble = train.train_ensemble(config, backend=backend, progress=False)
print(f"{ensemble.n_trained} seed(s) trained now, {len(ensemble) - ensemble.n_trained} loaded from the cache")
pd.DataFrame({"seed": ensemble.seeds, "train accuracy": ensemble.train_accuracy,
              "test accuracy": ensemble.test_accuracy}).set_index("seed")

# %% [markdown]
# The penultimate-layer activations of every seed on the test set are the raw material of the
# interaction tensor; their logits give the predictions. Both are cached too.

# %%
acts = activations.ensemble_activations(ensemble, split="test", progress=False)
preds, labels = acts.preds, acts.labels
print(f"activations {acts.activations.shape} (M, N, D), logits {acts.logits.shape} (M, N, C)")

# %% tags=["solution"] student="compute the seeds' mean test error `err`, their mean disagreement `dis` (ift_core.gde) and the matrix of pairwise disagreements `pairwise`, and print the range over pairs"
err = gde.test_error(preds, labels)
dis = gde.disagreement(preds)
pairwise = gde.pairwise_disagreement(preds)
print(f"mean test error {err:.4f}, mean disagreement between two seeds {dis:.4f} "
      f"(pairs range {pairwise[np.triu_indices(len(preds), 1)].min():.4f}-"
      f"{pairwise[np.triu_indices(len(preds), 1)].max():.4f})")

# %% [markdown]
# Each point below is one pair of seeds: how often they disagree, against their mean test error.
# On the diagonal, disagreement equals error: the *generalization disagreement equality* that
# chapters 9-12 examine.

# %%
gde_plots.error_vs_disagreement((preds, labels), per="pair")
plt.show()

# %% [markdown]
# ## Rerunning a chapter with your own parameters
#
# Every chapter has one cell of parameters (above, the cell after the claim). Change any of them
# from the command line; the chapter is re-executed and the site rebuilt:
#
# ```bash
# make chapter NB=notebooks/01_overview.py PARAMS="-p n_models 20"
# python scripts/build_book.py --only notebooks/01_overview.py -p n_models 20   # the same
# ```
#
# or run a chapter with papermill alone:
#
# ```bash
# jupytext --set-kernel python3 --to ipynb notebooks/01_overview.py -o /tmp/01.ipynb
# papermill /tmp/01.ipynb /tmp/01.out.ipynb -p profile cpu -p n_models 20
# ```
#
# `make book PROFILE=paper` runs the whole book in the paper's setting on a GPU.

# %% [markdown]
# ## Check

# %%
from ift_core.claims import Part, Verdict, record

acc = ensemble.test_accuracy
spread = float(acc.max() - acc.min())
if len(ensemble) < 2:  # one model cannot disagree with itself
    parts = tuple(Part(claim, "not tested", facts="one seed only: use n_models >= 2")
                  for claim in ("the seeds reach nearly the same test accuracy", "the seeds disagree on some test points"))
else:
    parts = (Part.from_bool(f"the seeds reach nearly the same test accuracy (spread at most {max_accuracy_spread})",
                            spread <= max_accuracy_spread,
                            facts=f"test accuracy from {acc.min():.4f} to {acc.max():.4f}: spread {spread:.4f}"),
             Part.from_bool("the seeds disagree on some test points", dis > 0,
                            facts=f"mean disagreement of two seeds {dis:.4f}; mean test error {err:.4f}"))
record(Verdict("seeds", parts, facts=f"M={len(ensemble)} seeds of {config.arch} on {config.data.name} (profile {profile})",
               setting={"M": len(ensemble), "spread": spread, "max_accuracy_spread": max_accuracy_spread,
                        "disagreement": dis, "error": err}));
