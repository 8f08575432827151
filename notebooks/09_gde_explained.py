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
# # GDE explained: the paper's Figure 4, reading by reading
#
# **Claim (paper §5, Figure 4).** In the conceptual framework "the model exhibits GDE" (expected
# disagreement of two seeds = expected test error) without assuming calibration, GDE-breaking
# distributions can be built, and in Figure 4: *"Changing $t_r$ and $n_r$ alone deviates from GDE,
# but if they are coupled with dominant features, we can recover GDE (approximately)."*
#
# What is verified of the paper's framework leaves its learning rule open (Definitions §7). The
# book's formalization (Definitions §3, used by chapters 8, 10, 11 and 12) contradicts the caption:
# it has a training set of size $N$, a feature can be learned only if it occurs in training, and at
# realistic $N$ every dominant feature is seen, so $t_d$ drops out. So this chapter does not test
# one reading: it solves several exactly (`ift_core.theory.readings`, each checked against its own Monte
# Carlo simulation in `tests/test_readings.py`), tests each against each of the paper's statements
# on a grid of base settings, and lets that table choose the reading this chapter shows. Every
# other reading is one parameter away (`reading`, `weighting`, `coupling` below).

# %% tags=["parameters"]
from typing import Optional
profile = "cpu"  # "tiny", "cpu" or "paper"; sets the grid of bases (tiny 32, cpu 128, paper 6,561)
reading: Optional[str] = None  # None: the reading the statements table chooses; else one of ift_core.theory.readings.READINGS
weighting: Optional[str] = None  # None: the table's choice; else "free", "equal_frequency", "frequency_ratio", "mixture"
coupling: Optional[str] = None  # None: the table's choice; else "same_factor", "equal_values", "inverse_factor"
training = "shared"  # "shared" (DiffInit-like) or "independent" (DiffData-like); readings with a training set
frequency_ratio = 10.0  # "frequency_ratio" weighting: a dominant feature is this many times as frequent
n_values: Optional[int] = None  # values per single-parameter sweep of the Figure 4 panels (None: 6 tiny, 25 cpu, 50 paper)
n_classes = 2  # base setting of the Figure 4 panels: classes K
t_d = 50  # dominant features per class
t_r = 200  # rare features per class
n_d = 2  # features per dominant point
n_r = 2  # features per rare point
p_d = 0.7  # P(learn a dominant feature)
p_r = 0.2  # P(learn a rare feature)
alpha_d = 0.6  # share of dominant points ("free" weighting)
n_train = 100  # training-set size N

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ift_core.theory import readings as rd
from ift_core.plots import readings as rplots
from ift_core.plots import theory as theory_plots

pd.set_option("display.max_rows", 200)
if profile not in ("tiny", "cpu", "paper"):
    raise ValueError(f"profile must be 'tiny', 'cpu' or 'paper', got {profile!r}")
size = {"tiny": "tiny", "cpu": "quick", "paper": "full"}[profile]
n_values = n_values or {"tiny": 6, "cpu": 25, "paper": 50}[profile]
grid = rd.region(size)
print(f"criteria (defined once, ift_core.theory.readings.CRITERIA): {rd.CRITERIA}")
print(f"grid of bases ({len(rd.bases(grid))}):", grid)

# %% [markdown]
# ## The readings
#
# Every reading shares the story of Definitions §3 (K classes, $t_d$ dominant and $t_r$ rare
# features per class, a dominant point carries $n_d$ features, a rare one $n_r$; a model that knows
# none of a point's features guesses) and differs only in what a model learns. With
# $a_s = \alpha_s / K$, $H_s$ the overlap of two points of the same class and type
# (hypergeometric), $\text{miss}_s$ the chance that a model knows none of a type-$s$ point's features:
#
# | reading | what a model learns | $\text{miss}_s$ |
# |---|---|---|
# | `training_set` (Definitions §3) | each feature seen in $N$ training points, with $p_s$ | $E_s(1-p_s)$ (Definitions §3) |
# | `literal` | each feature with $p_s$; no training set | $(1-p_s)^{n_s}$ |
# | `independent` | each feature with $p_s$; a point's $n_s$ features drawn with replacement ($D_s$ distinct) | $E[(1-p_s)^{D_s}]$ |
# | `fixed_capacity` | $c_s = \mathrm{round}(p_s t_s)$ of each class's $t_s$ features, uniformly | $\binom{t_s-c_s}{n_s} / \binom{t_s}{n_s}$ |
# | `exposure` | a feature seen $c$ times, with $1-(1-p_s)^c$ | $(1 - a_s(1 - E[(1-p_s)^{H_s}]))^N$ |
# | `shared_capacity` | $C$ draws of a uniform training point's uniform feature | $E[(1 - X_s/(N n_s))^C]$, $X_s$'s law by exact inverse DFT |
#
# Two models both miss with $\text{both}_s$: the same expression at $(1-p_s)^2$ (or $2C$) when
# they share what is random (a training set; the repeats of a point), $\text{miss}_s^2$ when not.
# Accuracy and agreement then follow as in Definitions §3, with systematic wrong answers
# (`p_systematic`) in every reading. The share of dominant points is set by a *weighting*: free
# ($\alpha_d$), tied to the feature counts (`equal_frequency`, or `frequency_ratio`: a dominant
# feature $r$ times as frequent as a rare one, so $\alpha_d = r n_r t_d / (n_d t_r + r n_r t_d)$),
# or `mixture` ($p_d, p_r$ read as the mixture weights, every learnable feature learned). "Coupled"
# is read three ways: the dominant parameter scaled by the same factor as the rare one, set equal to
# it, or scaled by the inverse factor.

# %% [markdown]
# ## Every reading against every statement
#
# Each statement is tested at every base of the grid: the caption's four parts (a single sweep
# "deviates" if $|\text{dis} - \text{err}|/\text{err}$ exceeds `deviate` somewhere along it, a
# coupled sweep "recovers GDE" if it stays within `near` all along; the rare parameter takes the
# base's value times 1/4 ... 8), "the model exhibits GDE" (within `near` at the base), and
# "GDE-breaking constructions exist" (some setting among the base and its single sweeps beyond
# `deviate`). The table gives the share of bases where each holds, and the verdict: *holds* on at
# least 80% of the grid, *does not hold* on less than 5%, *holds in part* in between (existence:
# holds if anywhere). A variant is *degenerate* when its seeds never disagree beyond error
# anywhere (the `mixture` weighting leaves nothing random without a training set, nor with a shared
# one in `training_set` and `exposure`).

# %%
t0 = time.perf_counter()
table = rd.statements_table(grid=grid, training=training, frequency_ratio=frequency_ratio)
table_seconds = time.perf_counter() - t0
main = rd.main_reading(table)
print(f"statements table: {len(table)} variants x {int(table['bases'].iloc[0])} bases in {table_seconds:.1f} s")
shown = ["reading", "weighting", "coupling", "degenerate", "t_alone_deviates", "t_coupled_near", "n_alone_deviates",
         "n_coupled_near", "caption", "at_gde", "breaking", "score", "main"]
table[shown].round(2)

# %% [markdown]
# The same table, one row per reading and weighting, keeping the coupling that scores best for
# each (the caption's coupled parts depend on the coupling; the other statements do not):

# %%
best = (table.sort_values(["score", "caption", "caption_t", "caption_n"], ascending=False, kind="stable")
        .groupby(["reading", "weighting"], sort=False).head(1).sort_index())
best[["reading", "weighting", "coupling", "degenerate", "caption", "caption_t", "caption_n", "at_gde", "breaking",
      "caption_verdict", "at_gde_verdict", "breaking_verdict", "score"]].round(2).reset_index(drop=True)

# %% [markdown]
# ## The book's main reading
#
# The table's choice is the non-degenerate variant with the highest score (statements that hold
# count 1, in part 1/2), ties broken by the share where the whole caption holds, then by its two
# halves, then by the share at GDE. The parameters above override it.

# %%
chosen = dict(reading=reading or main["reading"], weighting=weighting or main["weighting"],
              coupling=coupling or main["coupling"])
row = table[(table["reading"] == chosen["reading"]) & (table["weighting"] == chosen["weighting"])
            & (table["coupling"] == chosen["coupling"])].iloc[0]
ties = table[~table["degenerate"] & (table["score"] == main["score"])]
print(f"the table chooses: {main['reading']} reading, {main['weighting']} weighting, {main['coupling']} coupling "
      f"(score {main['score']:g} of 3, shared by {len(ties)} variants; the tie is broken by the whole caption "
      f"holding on {round(main['caption'] * main['bases'])} of {int(main['bases'])} bases, its halves on "
      f"{round(main['caption_t'] * main['bases'])} and {round(main['caption_n'] * main['bases'])})")
print(f"this chapter shows: {chosen}")

# %% [markdown]
# ## The caption's test, every reading side by side
#
# For every reading (with the chosen weighting and coupling), the relative gap along the sweeps
# of the caption, over all bases of the grid: median (line) and interquartile range (band);
# dashed, the rare parameter alone; solid, coupled with the dominant one. The caption asks for
# dashed curves above the red line and solid curves below the green one.

# %%
base_grid = rd.bases(grid, frequency_ratio=frequency_ratio)
caption = pd.concat([rd.caption_sweeps(base_grid, reading=r, weighting=chosen["weighting"],
                                       coupling=chosen["coupling"], training=training).assign(reading=r)
                     for r in rd.READINGS], ignore_index=True)
rplots.plot_caption_test(caption);

# %% [markdown]
# ## Figure 4 in the main reading
#
# At the chapter's base setting (parameters above), the paper's panels: each parameter alone
# (left), then $t_r$ and $n_r$ alone (dashed) and coupled (solid) with their dominant partner.

# %%
base = dict(n_classes=n_classes, t_d=t_d, t_r=t_r, n_d=n_d, n_r=n_r, p_d=p_d, p_r=p_r, alpha_d=alpha_d,
            n_train=n_train, frequency_ratio=frequency_ratio)
kw = dict(reading=chosen["reading"], weighting=chosen["weighting"], training=training)
print(pd.Series({k: float(v) for k, v in rd.expected_metrics(**kw, **base).items() if k in
                 ("accuracy", "agreement", "gap", "rel_gap", "alpha_d")}).round(4).to_string())


def _ints(lo, hi):
    return np.unique(np.round(np.geomspace(lo, hi, n_values)).astype(int))


ranges = {
    "t_d": _ints(max(n_d, 2), 20 * t_d), "t_r": _ints(max(n_r, 10), 20 * t_r),
    "n_d": np.arange(1, min(t_d, 10) + 1), "n_r": np.arange(1, min(t_r, 10) + 1),
    "p_d": np.linspace(0.01, 1, n_values), "p_r": np.linspace(0.01, 1, n_values),
    "alpha_d": np.linspace(0, 1, n_values), "n_train": _ints(10, 100 * n_train),
}
single = rd.sweeps(ranges, base=base, **kw)
theory_plots.plot_sweeps(single, ncols=4, show_gap=True);

# %%
mine = rd.caption_sweeps(base, coupling=chosen["coupling"], factors=np.geomspace(0.5, 16, n_values), **kw)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
theory_plots.plot_coupled_sweep(mine[mine["lead"] == "t_r"], ax=axes[0])
theory_plots.plot_coupled_sweep(mine[mine["lead"] == "n_r"], ax=axes[1])
fig.tight_layout()

# %% [markdown]
# ## Where in the grid each statement holds (main reading)
#
# Share of bases where the caption's halves hold and where the model is at GDE, at each value of
# each parameter of the grid.

# %% tags=["solution"] student="compute each statement at each base of the grid for the chosen reading (rd.statement_details) and the share of bases where it holds at each value of each parameter"
details = rd.statement_details(grid=grid, training=training, frequency_ratio=frequency_ratio, **chosen)
rd.shares_by_parameter(details, ["t_alone_deviates", "t_coupled_near", "caption_t", "n_alone_deviates",
                                 "n_coupled_near", "caption_n", "at_gde"]).round(2)

# %% [markdown]
# Why the caption is hard to meet in every reading: without systematic wrong answers the gap is
# $(1 - \tfrac1K) \sum_s \alpha_s (\text{miss}_s - \text{both}_s) \ge 0$, zero only when each point
# is known by all seeds or by none. A coupled sweep "recovers GDE" only if it keeps every point
# type in that all-or-none regime over the whole sweep, while the single sweep must leave it; the
# readings in which seeds learn independently given the point (`literal`, `independent`,
# `fixed_capacity`) have $\text{both}_s = \text{miss}_s^2$ and are never at GDE on this grid
# unless rare features are (almost) never learned: the easy/hard explanation the GDE paper says
# data rule out. Systematic wrong answers (`p_systematic`, our extension) can balance the gap
# instead (chapter 10).

# %% [markdown]
# ## Check
#
# Two claims, each part judged on its own for the variant shown (the statements table's choice
# unless the parameters name another), with the chapter's criteria: a statement *holds* on at
# least 80% of the grid of bases, *does not hold* on less than 5%, *holds in part* in between.

# %%
from ift_core.claims import Part, Verdict, record

crit = {"holds_at": rd.CRITERIA.holds, "fails_below": rd.CRITERIA.fails}
n = int(row["bases"])
live = table[~table["degenerate"]]


def on(key, r=row):
    return f"{100 * r[key]:.0f}% of {n} bases"


variant = f"{row['reading']} reading, {row['weighting']} weighting, {row['coupling']} coupling (the variant shown)"
halves = [Part.from_share(f"{p}_r alone deviates from GDE, and coupled with {p}_d recovers it, from the same base",
                          float(row[f"caption_{p}"]), **crit,
                          facts=(f"both on {on(f'caption_{p}')}", f"alone deviates on {on(f'{p}_alone_deviates')}; "
                                 f"coupled recovers on {on(f'{p}_coupled_near')}")) for p in ("t", "n")]
record(Verdict("figure4", tuple(halves), facts=(
    variant, f"the whole caption, both halves from the same base: {on('caption')}",
    f"over all {len(live)} non-degenerate variants: the t half on up to {100 * live['caption_t'].max():.0f}%, the n "
    f"half on up to {100 * live['caption_n'].max():.0f}%, the whole caption on up to {100 * live['caption'].max():.0f}% "
    f"of the bases"), setting={**chosen, "bases": n, "training": training}));
default = table[(table["reading"] == "training_set") & (table["weighting"] == "free")
                & (table["coupling"] == "same_factor")].iloc[0]
record(Verdict("gde_explained", (Part.from_share(
    f"the model exhibits GDE (|dis - err| / err at most {rd.CRITERIA.near:g} at the base)", float(row["at_gde"]), **crit,
    facts=f"at GDE on {on('at_gde')}"),), facts=(
    variant, f"GDE-breaking constructions exist: reached from {on('breaking')} (chapter 10 tests this claim)",
    f"the book's default reading (training_set, free, same_factor; chapters 8, 10-12): at GDE on {on('at_gde', default)}",
    f"table computed in {table_seconds:.1f} s (profile={profile}, training={training})"),
    setting={**chosen, "bases": n, "training": training}));
