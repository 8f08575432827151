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
# # The framework: closed forms against simulation
#
# **Claim (paper §5; our formalization in Definitions §3).** In the conceptual framework, where
# points carry dominant or rare features and each seed learns each feature it saw in training with
# a fixed probability, the expected test accuracy and the expected agreement of two seeds have
# closed forms. We check that these closed forms equal a Monte Carlo simulation of the same
# generative story, within its standard error, across every regime the book uses: two and more
# classes, one shared training set (like DiffInit) or one per seed (like DiffData), two or more
# feature groups, and with or without *systematic* wrong answers (`p_systematic`, our extension).
#
# The paper states the framework for two classes and two kinds of features and leaves the
# learning rule informal; the rule below is ours, chosen to be exactly solvable, with the paper's
# names kept.

# %% tags=["parameters"]
from typing import Optional
profile = "cpu"  # "tiny" (seconds), "cpu" (book default) or "paper"; only sizes change
n_settings: Optional[int] = None  # random settings checked against Monte Carlo (None: 12 tiny, 60 cpu, 200 paper)
n_reps: Optional[int] = None  # independent simulated experiments per setting (None: 30 tiny, 150 cpu, 400 paper)
n_models = 4  # seeds per simulated experiment
n_points = 300  # test points per simulated experiment
seed = 0  # seed of the random settings and of the simulation
n_classes = 2  # the showcase setting: number of classes K
t_d = 10  # dominant features per class
t_r = 1000  # rare features per class
n_d = 3  # features carried by a dominant point
n_r = 3  # features carried by a rare point
p_d = 0.9  # P(a seed learns a dominant feature it saw in training)
p_r = 0.3  # P(a seed learns a rare feature it saw in training)
alpha_d = 0.7  # share of dominant points
n_train = 1000  # training-set size N
training = "shared"  # "shared" (DiffInit-like) or "independent" (DiffData-like)
p_systematic = 0.0  # beta: P(a seed that knows nothing of a point answers its designated wrong class)

# %%
import numpy as np
import pandas as pd

from ift_core import theory as th
from ift_core.plots import theory as theory_plots

sizes = {"tiny": (12, 30), "cpu": (60, 150), "paper": (200, 400)}
if profile not in sizes:
    raise ValueError(f"profile must be one of {sorted(sizes)}, got {profile!r}")
n_settings = n_settings or sizes[profile][0]
n_reps = n_reps or sizes[profile][1]

# %% [markdown]
# ## The generative story
#
# * $K$ classes; each class owns $t_d$ dominant and $t_r$ rare features.
# * A point has a uniform label $y$. With probability $\alpha_d$ it is a *dominant* point carrying
#   $n_d$ distinct dominant features of class $y$; otherwise a *rare* point carrying $n_r$ rare ones.
# * A seed trained on $N$ such points learns each dominant feature that occurs in its training set
#   with probability $p_d$, each such rare feature with probability $p_r$, independently.
# * A seed is right on a point if it learned one of its features; otherwise it answers the point's
#   designated wrong class with probability $\beta$ (`p_systematic`) and else guesses uniformly.
#
# For a point of type $s$, with $\rho_s(b) = \frac{\alpha_s}{K}\bigl(1 - \binom{t_s-b}{n_s}/\binom{t_s}{n_s}\bigr)$
# the chance that one training point contains one of $b$ given features,
#
# $$E_s(z) = \sum_{b=0}^{n_s} \binom{n_s}{b} (1-z)^b z^{n_s-b} (1-\rho_s(b))^N,\qquad
#   \text{miss}_s = E_s(1-p_s),\qquad \text{both}_s = E_s((1-p_s)^2)\ \text{(shared)}.$$
#
# Accuracy and agreement are then weighted sums over the point types (`FeatureModel`'s docstrings
# derive each step). Here is the showcase setting, type by type:

# %%
model = th.FeatureModel(n_classes=n_classes, t_d=t_d, t_r=t_r, n_d=n_d, n_r=n_r, p_d=p_d, p_r=p_r,
                        alpha_d=alpha_d, n_train=n_train, training=training, p_systematic=p_systematic)
print(model)
model.point_types().round(4)

# %%
pd.Series(model.metrics()).round(4).to_frame("closed form")

# %% [markdown]
# ## One simulated experiment
#
# `simulate` draws one training set, each seed's learned features, test points and predictions,
# and keeps the ground truth: which features each point carries and each seed learned. The same
# ground truth gives the *planted* interaction tensor $\Omega[m, n, t]$ (feature $t$ is in point $n$
# and learned by seed $m$), the object chapters 3-6 estimate from real activations.

# %%
sim = model.simulate(n_models=10, n_points=2000, seed=seed)
omega, groups = sim.planted_omega()
print(f"predictions {sim.predictions.shape}, planted tensor {omega.shape} "
      f"({(groups == 0).sum()} dominant, {(groups == 1).sum()} rare features visible)")
pd.DataFrame({"one experiment": [sim.accuracy(), sim.agreement()],
              "closed form": [model.expected_accuracy(), model.expected_agreement()]},
             index=["accuracy", "agreement"]).round(4)

# %% [markdown]
# One experiment is one draw of the training set, so it differs from the expectation by more than
# the per-point noise suggests: all points share the training set. The check below therefore
# simulates many independent experiments per setting and uses the spread of their means as the
# standard error.
#
# ## Closed form against Monte Carlo over random settings
#
# `random_models` spreads the settings over every regime: $K \in \{2, 3, 10\}$, shared and
# independent training, two to four feature groups (a spectrum of frequencies instead of
# dominant/rare), and $\beta \in \{0, 0.6\}$.

# %%
settings = th.random_models(n_settings, seed=seed, n_groups=(2, 3, 4), n_classes=(2, 3, 10),
                            p_systematic=(0.0, 0.6), n_train=(20, 60, 300)) + [model]
comparison = th.compare_with_simulation(settings, n_reps=n_reps, n_models=n_models, n_points=n_points,
                                        seed=seed, progress=False)
theory_plots.plot_closed_vs_simulation(comparison);

# %%
summary = (comparison.assign(regime=lambda d: np.where(d["n_classes"] > 2, "K>2", "K=2") + ", " + d["training"]
                             + ", beta" + np.where(d["p_systematic"] > 0, ">0", "=0"))
           .groupby(["regime", "metric"])["z"].agg(settings="size", mean_z="mean", max_abs_z=lambda z: z.abs().max()))
summary.round(2)

# %% [markdown]
# ## A limit: infinitely many training points
#
# As $N \to \infty$ every feature is seen, $(1-\rho_s(b))^N \to 0$ for $b \geq 1$, and
# $\text{miss}_s \to (1-p_s)^{n_s}$: the framework forgets the training set and keeps only the
# learning probabilities.

# %% tags=["solution"] student="tabulate the rare points' miss probability of the showcase model as the training set grows to infinity, beside the limit (1 - p_r)^n_r"
limit = pd.DataFrame({"n_train": [10, 100, 1_000, 10_000, 100_000, np.inf]})
limit["miss_rare"] = [model.replace(n_train=N).miss_s()[1] for N in limit["n_train"]]
limit["(1 - p_r)^n_r"] = (1 - p_r) ** n_r
limit.round(5)

# %% [markdown]
# ## Check

# %%
from ift_core.claims import Part, Verdict, record

z = comparison["z"].abs()
n_out = int((z > 4).sum())
limit_gap = abs(limit["miss_rare"].iloc[-1] - (1 - p_r) ** n_r)
record(Verdict("closed_forms", (
    Part.from_share("the closed forms equal Monte Carlo within 4 standard errors", 1 - n_out / len(z), facts=(
        f"{len(settings)} settings x 3 metrics, {n_reps} simulated experiments each: {n_out} beyond 4 standard errors",
        f"max |z| = {z.max():.2f}, mean z = {comparison['z'].mean():+.2f}")),
    Part.from_bool("as N grows without bound, miss_s tends to (1 - p_s)^n_s", limit_gap < 1e-12,
                   facts=f"off by {limit_gap:.1e} at N = inf"),
), facts="regimes: K in {2, 3, 10}, shared and independent training sets, 2-4 feature groups, beta in {0, 0.6} "
         f"(profile={profile})",
    setting={"n_settings": len(settings), "n_reps": n_reps, "max_abs_z": float(z.max()), "n_beyond_4se": n_out}));
