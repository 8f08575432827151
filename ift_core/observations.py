"""The paper's four observations (§4) measured on an interaction tensor, and threshold sweeps.

Each ``o*`` function returns an :class:`Observation`: tidy tables, the number that states the
claim (with a confidence interval where it is a correlation) and whether the claim holds on
these data. The claims, as book/definitions.md §2 states them:

- **O1** feature frequency is long-tailed: few features occur in many points, most in few
  (decided by a robust skewness that needs no dominant/rare split; the split is reported).
- **O2** points on which the ensemble is confident carry fewer features (Spearman rho < 0).
- **O3** dominant features are learned by more models than rare ones; models learn
  different subsets.
- **O4** models that share more features agree more (Spearman rho > 0 over model pairs).

:func:`sweep_thresholds` recomputes T and the four statistics over grids of gamma_corr and
gamma_data, reusing the PCA and the correlation matrix. numpy, scipy and pandas only.

Examples
--------
>>> import numpy as np
>>> from ift_core.tensor import build_interaction_tensor
>>> rng = np.random.default_rng(0)
>>> it = build_interaction_tensor(rng.standard_normal((4, 300, 12)), n_components=5,
...                               gamma_corr=0.2, progress=False)
>>> o1_long_tail(it).name
'O1'
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps
from tqdm import tqdm

from .internal import as_float_array, as_int_array, check_bool, check_count, check_int, check_real, pairwise_rate
from .tensor import (
    InteractionTensor,
    ModelComponents,
    TensorOptions,
    assemble_tensor,
    component_correlations,
    principal_components,
    resolve_split_rule,
    split_frequencies,
)

__all__ = [
    "Observation",
    "ensemble_confidence",
    "pairwise_agreement",
    "spearman_ci",
    "o1_long_tail",
    "o2_features_vs_confidence",
    "o3_feature_sharing",
    "o4_overlap_vs_agreement",
    "sweep_thresholds",
]


@dataclass
class Observation:
    """One observation measured on one tensor.

    Attributes
    ----------
    name : str
        ``"O1"`` .. ``"O4"``.
    claim : str
        The claim in words.
    statistic : float
        The number that states it (see each function).
    ci : tuple of float
        Confidence interval of ``statistic`` (NaN where none applies).
    holds : bool
        Whether the data support the claim (criterion in each function's docstring).
    table : pandas.DataFrame
        The main tidy table (one row per feature, point or model pair).
    stats : dict
        Further numbers.
    tables : dict of DataFrame
        Further tidy tables.
    """

    name: str
    claim: str
    statistic: float
    ci: tuple[float, float]
    holds: bool
    table: pd.DataFrame
    stats: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line: ``HOLDS`` or ``DOES NOT HOLD``, the claim and the numbers."""
        verdict = "HOLDS" if self.holds else "DOES NOT HOLD"
        ci = "" if not np.all(np.isfinite(self.ci)) else f" [{self.ci[0]:.3f}, {self.ci[1]:.3f}]"
        return f"{verdict} {self.name}: {self.claim} (statistic {self.statistic:.3f}{ci})"


# --------------------------------------------------------------------------- helpers on plain arrays
def _check_confidence_level(confidence_level: Any) -> float:
    return check_real(confidence_level, "confidence_level", minimum=0, maximum=1, open_low=True, open_high=True,
                      remedy="e.g. 0.95 for a 95 % interval")


def _grid(values: Any, name: str, *, unit: bool) -> list[float]:
    """A threshold grid: finite numbers, in [0, 1] for quantiles."""
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise ValueError(f"{name} must be a sequence of numbers or None, got {values!r}")
    out = []
    for v in values:
        try:
            out.append(check_real(v, name, minimum=0 if unit else None, maximum=1 if unit else None))
        except ValueError:
            raise ValueError(f"{name} must hold finite numbers{' in [0, 1]' if unit else ''}, got {v!r} in "
                             f"{list(values)!r}") from None
    return out


def ensemble_confidence(probs: Any, labels: Any) -> np.ndarray:
    """Mean over models of the softmax probability of the true class.

    Parameters
    ----------
    probs : array (M, N, C)
        Per-model class probabilities.
    labels : array (N,)
        True classes.

    Returns
    -------
    ndarray (N,)

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[0.9, 0.1], [0.4, 0.6]], [[0.7, 0.3], [0.2, 0.8]]])
    >>> ensemble_confidence(p, [0, 1]).round(2).tolist()
    [0.8, 0.7]
    """
    p = as_float_array(probs, name="probs", ndim=3)
    y = as_int_array(labels, name="labels", ndim=1)
    if y.shape[0] != p.shape[1]:
        raise ValueError(f"labels has {y.shape[0]} points, probs has {p.shape[1]} (shape {p.shape})")
    if y.size and (y.min() < 0 or y.max() >= p.shape[2]):
        raise ValueError(f"labels must lie in [0, {p.shape[2]}), got range [{y.min()}, {y.max()}]")
    return p[:, np.arange(y.size), y].mean(axis=0)


def pairwise_agreement(preds: Any) -> np.ndarray:
    """(M, M) fraction of points on which two models predict the same class (1 on the diagonal).

    Examples
    --------
    >>> float(pairwise_agreement([[0, 1, 2, 2], [0, 1, 1, 2]])[0, 1])
    0.75
    """
    return pairwise_rate(as_int_array(preds, name="preds", ndim=2), agree=True)


def spearman_ci(x: Any, y: Any, *, confidence_level: float = 0.95) -> dict:
    """Spearman's rho with a Fisher-z confidence interval.

    Uses the Bonett-Wright standard error ``sqrt((1 + rho^2 / 2) / (n - 3))`` on
    ``atanh(rho)``. Constant input (or n < 4) gives NaN.

    Returns
    -------
    dict
        ``rho``, ``low``, ``high``, ``p`` (two-sided, scipy), ``n``.

    Examples
    --------
    >>> r = spearman_ci([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    >>> round(r["rho"], 3), r["low"] < r["rho"] < r["high"]
    (0.829, True)
    """
    a = as_float_array(x, name="x", ndim=1)
    b = as_float_array(y, name="y", ndim=1)
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same length, got {a.shape} and {b.shape}")
    level = _check_confidence_level(confidence_level)
    n = a.size
    nan = {"rho": np.nan, "low": np.nan, "high": np.nan, "p": np.nan, "n": int(n)}
    if n < 4 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return nan
    res = sps.spearmanr(a, b)
    rho = float(res.statistic)
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    se = np.sqrt((1 + rho**2 / 2) / (n - 3))
    q = sps.norm.ppf(0.5 + level / 2)
    return {"rho": rho, "low": float(np.tanh(z - q * se)), "high": float(np.tanh(z + q * se)),
            "p": float(res.pvalue), "n": int(n)}


def _check_tensor(tensor: Any) -> InteractionTensor:
    if not isinstance(tensor, InteractionTensor):
        raise ValueError(f"tensor must be an InteractionTensor, got {type(tensor).__name__}")
    return tensor


def _skew(x: np.ndarray) -> float:
    return float(sps.skew(x)) if x.size > 2 and np.ptp(x) > 0 else float("nan")


# --------------------------------------------------------------------------- O1
def _bootstrap_skew_ci(f: np.ndarray, *, n_bootstrap: int, level: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap CI (over features) of the skewness of ``f``; resamples without spread drop out."""
    rng = np.random.default_rng(seed)
    vals = []
    for start in range(0, n_bootstrap, 250):  # blocks keep memory at 250 x T
        sample = f[rng.integers(0, f.size, size=(min(250, n_bootstrap - start), f.size))]
        # A resample of a few nearly equal frequencies makes scipy warn of precision loss (its
        # skewness is then noise, not a crash): silenced here, the interval says how wide it is.
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            vals.append(np.where(np.ptp(sample, axis=1) > 0, sps.skew(sample, axis=1), np.nan))
    v = np.concatenate(vals)
    v = v[np.isfinite(v)]
    if not v.size:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.quantile(v, tail)), float(np.quantile(v, 1 - tail))


def o1_long_tail(tensor: InteractionTensor, *, split_threshold: float | None = None,
                 split_rule: str | None = None, split_method: str | None = None, min_group: int | None = None,
                 n_bootstrap: int = 2000, confidence_level: float = 0.95, seed: int = 0) -> Observation:
    """O1: feature frequency is long-tailed: few features occur in many points, most in few.

    **What decides.** ``statistic`` is the skewness of feature frequency (Fisher-Pearson, as
    ``scipy.stats.skew``) and ``ci`` its percentile bootstrap interval over features
    (``n_bootstrap`` resamples, seeded). The claim holds when the interval lies above 0: a long
    right tail. It needs no dominant/rare split, so no split rule can decide it (the
    largest-spacing rule once split off one outlier and called 111 of 112 features dominant). And
    one outlying feature cannot decide it either: each feature is missing from about 37 % of the
    resamples, so the lower end of the interval is set by resamples without it (up to three
    outliers high above the rest cannot lift it above 0), while a low outlier is bounded
    (frequencies are >= 0, so in a right-skewed set it cannot lie far below the mean).

    The dominant/rare split (:func:`~ift_core.tensor.split_frequencies`, default rule
    ``"mixture"``: two Gaussian modes of log frequency by BIC, each of at least ``min_group``
    features) is reported beside it, not used for the verdict: ``stats["n_modes"]`` says
    whether log frequency has a second mode at all, ``n_dominant`` / ``frac_dominant`` /
    ``dominant_share_of_occurrences`` describe the split. ``stats`` adds the share of all
    occurrences held by the top 10 % of features, the Gini coefficient and the skewness of log
    frequency.

    Parameters
    ----------
    tensor : InteractionTensor
    split_threshold : float, optional
        A fixed dominant/rare threshold in points (overrides the rule).
    split_rule : {"mixture", "largest_spacing", "otsu"}, optional
        Default: the tensor's (``options.split_rule``, "mixture" unless built otherwise).
    split_method : str, optional
        Older keyword of ``split_rule`` (older names ``"gap"``, ``"largest_gap"`` = ``"largest_spacing"``).
    min_group : int, optional
        Smallest group the mixture rule accepts (see ``split_frequencies``).
    n_bootstrap : int, default 2000
    confidence_level : float, default 0.95
    seed : int, default 0

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> it = build_interaction_tensor(np.random.default_rng(0).standard_normal((3, 200, 8)),
    ...                               n_components=4, gamma_corr=0.3, progress=False)
    >>> o = o1_long_tail(it, n_bootstrap=200)
    >>> o.stats["decided_by"], o.ci[0] < o.ci[1]
    ('skew_frequency', True)
    """
    it = _check_tensor(tensor)
    rule = resolve_split_rule(split_rule, method=split_method, default=it.options.split_rule)
    level = _check_confidence_level(confidence_level)
    n_boot = check_count(n_bootstrap, "n_bootstrap")
    seed = check_count(seed, "seed", minimum=0)
    freq = it.feature_frequency().astype(np.float64)
    dom, thr, info = split_frequencies(freq, threshold=split_threshold, rule=rule, min_group=min_group,
                                       return_info=True)
    table = it.features_table(threshold=thr)  # the same split, without fitting it again
    n = freq.size
    total = freq.sum()
    srt = np.sort(freq)
    gini = float((2 * np.arange(1, n + 1) - n - 1) @ srt / (n * total)) if total > 0 else float("nan")
    skew = _skew(freq)
    ci = _bootstrap_skew_ci(freq, n_bootstrap=n_boot, level=level, seed=seed) if n > 2 else (np.nan, np.nan)
    top = max(1, int(np.ceil(0.1 * n))) if n else 0
    stats = {
        "decided_by": "skew_frequency",
        "n_features": int(n),
        "skew_frequency": skew,
        "skew_frequency_low": ci[0],
        "skew_frequency_high": ci[1],
        "skew_log_frequency": _skew(np.log10(freq[freq > 0])),
        "top10_share_of_occurrences": float(srt[n - top:].sum() / total) if total > 0 else float("nan"),
        "gini": gini,
        "split_rule": rule if split_threshold is None else "threshold",
        "n_modes": info["n_modes"],
        "bic_one": info["bic_one"],
        "bic_two": info["bic_two"],
        "split_reason": info["reason"],
        "n_dominant": int(dom.sum()),
        "frac_dominant": float(dom.mean()) if n else float("nan"),
        "split_threshold": float(thr),
        "dominant_share_of_occurrences": float(freq[dom].sum() / total) if total > 0 else float("nan"),
    }
    holds = bool(np.isfinite(ci[0]) and ci[0] > 0)
    return Observation("O1", "feature frequency is long-tailed: few features occur in many points, most in few "
                       "(skewness > 0)", skew, ci, holds, table, stats)


# --------------------------------------------------------------------------- O2
def o2_features_vs_confidence(tensor: InteractionTensor, probs: Any, labels: Any, *,
                              per_model: bool = False, confidence_level: float = 0.95,
                              n_bins: int = 10) -> Observation:
    """O2: points with high ensemble confidence carry fewer features.

    Confidence of point n is the mean over models of the softmax probability of its true
    class (:func:`ensemble_confidence`). Features per point count the distinct features
    present for any model (``per_model=False``) or the mean over models of each model's own
    count. ``statistic`` is Spearman's rho between the two with a Fisher-z CI; the paper's
    claim (CIFAR-10) holds when the CI lies below 0. (A later study found the opposite sign
    on CIFAR-100: the data decide.)

    ``tables["bins"]`` holds mean features per point in ``n_bins`` confidence-quantile bins.

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> rng = np.random.default_rng(0)
    >>> it = build_interaction_tensor(rng.standard_normal((3, 200, 8)), n_components=4,
    ...                               gamma_corr=0.3, progress=False)
    >>> probs = rng.dirichlet(np.ones(3), size=(3, 200))
    >>> o2_features_vs_confidence(it, probs, rng.integers(0, 3, 200)).name
    'O2'
    """
    it = _check_tensor(tensor)
    per_model = check_bool(per_model, "per_model")
    n_bins = check_int(n_bins, "n_bins", minimum=1)
    _check_confidence_level(confidence_level)
    conf = ensemble_confidence(probs, labels)
    if conf.shape[0] != it.n_points:
        raise ValueError(f"probs has {conf.shape[0]} points, the tensor has {it.n_points}")
    p = np.asarray(probs)
    if p.shape[0] != it.n_models:
        raise ValueError(f"probs has {p.shape[0]} models, the tensor has {it.n_models}")
    y = np.asarray(labels)
    pts = it.points_table()
    feats = (pts["mean_features_per_model"] if per_model else pts["n_features"]).to_numpy().astype(np.float64)
    correct = (p.argmax(axis=2) == y[None, :]).mean(axis=0)
    table = pts.assign(label=y, confidence=conf, frac_models_correct=correct,
                       features=feats)
    r = spearman_ci(conf, feats, confidence_level=confidence_level)
    ranks = sps.rankdata(conf, method="ordinal") - 1
    table["confidence_bin"] = (ranks * n_bins // max(len(conf), 1)).astype(int)
    bins = (table.groupby("confidence_bin")
            .agg(confidence=("confidence", "mean"), features=("features", "mean"),
                 features_sem=("features", "sem"), n_points=("point", "size"))
            .reset_index())
    lo, hi = bins["features"].iloc[0], bins["features"].iloc[-1]
    stats = {**{f"spearman_{k}": v for k, v in r.items()},
             "features_least_confident_bin": float(lo), "features_most_confident_bin": float(hi),
             "mean_features": float(feats.mean()), "mean_confidence": float(conf.mean())}
    holds = bool(np.isfinite(r["high"]) and r["high"] < 0)
    return Observation("O2", "confident points carry fewer features (Spearman rho < 0)",
                       r["rho"], (r["low"], r["high"]), holds, table, stats, {"bins": bins})


# --------------------------------------------------------------------------- O3
def o3_feature_sharing(tensor: InteractionTensor, *, split_threshold: float | None = None,
                       split_rule: str | None = None, split_method: str | None = None,
                       confidence_level: float = 0.95) -> Observation:
    """O3: dominant features are learned by most models, rare ones by few; models differ.

    ``statistic`` is Spearman's rho between a feature's frequency and the number of models
    that have it (Fisher-z CI over features). The claim holds when the CI lies above 0, the
    dominant features have more models on average than the rare ones (checked only when the
    split finds both groups: the mixture rule may find no second mode, and the correlation
    then carries the claim alone), and the models' feature sets differ (mean pairwise Jaccard
    overlap below 1). ``split_rule`` / ``split_method`` / ``split_threshold`` as in
    :func:`o1_long_tail`.

    Note that with the default presence rule (each column scaled to its own maximum) every
    component occurs in about the same share of points, so a feature's frequency grows with
    the number of models that have it almost by construction; read the correlation with that
    in mind (the sensitivity chapter compares ``presence_scale="model"``).

    ``tables``: ``"models"`` (per-model feature counts) and ``"overlap"`` (one row per model
    pair: Jaccard overlap of their feature sets).

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> it = build_interaction_tensor(np.random.default_rng(0).standard_normal((3, 200, 8)),
    ...                               n_components=4, gamma_corr=0.3, progress=False)
    >>> o3_feature_sharing(it).tables["overlap"].shape[0]
    3
    """
    it = _check_tensor(tensor)
    rule = resolve_split_rule(split_rule, method=split_method, default=it.options.split_rule)
    level = _check_confidence_level(confidence_level)
    table = it.features_table(threshold=split_threshold, rule=rule)
    dom = table["dominant"].to_numpy()
    nmod = table["n_models"].to_numpy()
    r = spearman_ci(table["frequency"].to_numpy().astype(np.float64), nmod.astype(np.float64),
                    confidence_level=level)
    mf = it.model_feature_matrix()
    models = pd.DataFrame({"model": np.arange(it.n_models), "n_features": mf.sum(axis=1),
                           "n_dominant": mf[:, dom].sum(axis=1), "n_rare": mf[:, ~dom].sum(axis=1),
                           "n_own": mf[:, nmod == 1].sum(axis=1)})
    ov = it.overlap()
    i, j = np.triu_indices(it.n_models, k=1)
    overlap = pd.DataFrame({"model_a": i, "model_b": j, "jaccard": ov[i, j]})
    mean_dom = float(nmod[dom].mean()) if dom.any() else float("nan")
    mean_rare = float(nmod[~dom].mean()) if (~dom).any() else float("nan")
    mean_j = float(ov[i, j].mean()) if i.size else float("nan")
    stats = {**{f"spearman_{k}": v for k, v in r.items()},
             "mean_models_dominant": mean_dom, "mean_models_rare": mean_rare,
             "frac_features_all_models": float((nmod == it.n_models).mean()),
             "frac_features_one_model": float((nmod == 1).mean()),
             "mean_jaccard": mean_j, "min_jaccard": float(ov[i, j].min()) if i.size else float("nan"),
             "split_rule": rule if split_threshold is None else "threshold",
             "split_has_both_groups": bool(dom.any() and (~dom).any())}
    groups_ok = mean_dom > mean_rare if stats["split_has_both_groups"] else True
    holds = bool(np.isfinite(r["low"]) and r["low"] > 0 and groups_ok and mean_j < 1)
    return Observation("O3", "dominant features are learned by more models than rare ones; models differ",
                       r["rho"], (r["low"], r["high"]), holds, table, stats,
                       {"models": models, "overlap": overlap})


# --------------------------------------------------------------------------- O4
def _pair_rho(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(sps.spearmanr(a, b).statistic)


def _o4_numbers(ov: np.ndarray, agr: np.ndarray, *, confidence_level: float, n_permutations: int,
                seed: int) -> dict:
    m = ov.shape[0]
    i, j = np.triu_indices(m, k=1)
    rho = _pair_rho(ov[i, j], agr[i, j])
    out = {"rho": rho, "low": np.nan, "high": np.nan, "p_mantel": np.nan, "n_pairs": int(i.size),
           "n_models": int(m)}
    if not np.isfinite(rho):
        return out
    # Pairs share models, so they are not independent: jackknife over models (leave one
    # model and its M-1 pairs out) on the Fisher-z scale.
    if m >= 5:
        zs = []
        for leave in range(m):
            keep = (i != leave) & (j != leave)
            zs.append(np.arctanh(np.clip(_pair_rho(ov[i[keep], j[keep]], agr[i[keep], j[keep]]), -0.999999, 0.999999)))
        zs = np.asarray(zs)
        if np.isfinite(zs).all():
            se = np.sqrt((m - 1) / m * ((zs - zs.mean()) ** 2).sum())
            q = sps.t.ppf(0.5 + confidence_level / 2, df=m - 1)
            z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
            out["low"], out["high"] = float(np.tanh(z - q * se)), float(np.tanh(z + q * se))
    if n_permutations > 0:
        # Mantel test: permute the models of one matrix.
        rng = np.random.default_rng(seed)
        hits = 0
        for _ in range(n_permutations):
            perm = rng.permutation(m)
            r = _pair_rho(ov[i, j], agr[perm][:, perm][i, j])
            hits += np.isfinite(r) and abs(r) >= abs(rho) - 1e-12
        out["p_mantel"] = (1 + hits) / (1 + n_permutations)
    return out


def o4_overlap_vs_agreement(tensor: InteractionTensor, preds: Any, *, confidence_level: float = 0.95,
                            n_permutations: int = 999, seed: int = 0) -> Observation:
    """O4: two models that share more features agree more on their predictions.

    Over the M(M-1)/2 model pairs: Jaccard overlap of feature sets
    (:meth:`InteractionTensor.overlap`) against the fraction of points on which the pair
    predicts the same class. ``statistic`` is Spearman's rho. Pairs share models, so the CI
    is a jackknife over models (leave one model out; Fisher-z scale, t quantile with M-1
    degrees of freedom; needs M >= 5) and ``stats["p_mantel"]`` a Mantel permutation test over
    models. The claim holds when the CI lies above 0.

    Examples
    --------
    >>> import numpy as np
    >>> from ift_core.tensor import build_interaction_tensor
    >>> rng = np.random.default_rng(0)
    >>> it = build_interaction_tensor(rng.standard_normal((5, 200, 8)), n_components=4,
    ...                               gamma_corr=0.2, progress=False)
    >>> o4_overlap_vs_agreement(it, rng.integers(0, 3, (5, 200)), n_permutations=9).table.shape
    (10, 4)
    """
    it = _check_tensor(tensor)
    p = as_int_array(preds, name="preds", ndim=2)
    if p.shape != (it.n_models, it.n_points):
        raise ValueError(f"preds must have shape (M, N) = {(it.n_models, it.n_points)}, got {p.shape}")
    level = _check_confidence_level(confidence_level)
    ov = it.overlap()
    agr = pairwise_agreement(p)
    i, j = np.triu_indices(it.n_models, k=1)
    table = pd.DataFrame({"model_a": i, "model_b": j, "overlap": ov[i, j], "agreement": agr[i, j]})
    n_permutations = check_int(n_permutations, "n_permutations", minimum=0, remedy="0 skips the Mantel test")
    seed = check_int(seed, "seed", minimum=0)
    r = _o4_numbers(ov, agr, confidence_level=level, n_permutations=n_permutations, seed=seed)
    stats = {**{f"spearman_{k}": v for k, v in r.items() if k in ("rho", "low", "high")},
             "p_mantel": r["p_mantel"], "n_pairs": r["n_pairs"], "n_models": r["n_models"],
             "pearson_r": float(np.corrcoef(ov[i, j], agr[i, j])[0, 1]) if i.size > 2 and np.ptp(ov[i, j]) > 0
             and np.ptp(agr[i, j]) > 0 else float("nan"),
             "mean_overlap": float(ov[i, j].mean()) if i.size else float("nan"),
             "mean_agreement": float(agr[i, j].mean()) if i.size else float("nan")}
    holds = bool(np.isfinite(r["low"]) and r["low"] > 0)
    return Observation("O4", "models that share more features agree more (Spearman rho > 0 over pairs)",
                       r["rho"], (r["low"], r["high"]), holds, table, stats)


# --------------------------------------------------------------------------- sweeps
def _as_axis(value: Any, name: str, check: Any) -> list:
    """A sweep axis from one value or a sequence of values (each checked)."""
    vals = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not vals:
        raise ValueError(f"{name} is empty: give one value or a non-empty sequence")
    return [check(v) for v in vals]


def _gamma_grid(options: TensorOptions, option: str, quantiles: Any, quantiles_name: str, thresholds: Any,
                thresholds_name: str) -> list[tuple[str, float, float | str]]:
    """A threshold axis: ``(rule, value, option value)`` for each quantile, then each absolute value,
    every one checked as that option before any work."""
    out: list[tuple[str, float, float | str]] = []
    for rule, name, values in (("quantile", quantiles_name, quantiles), ("absolute", thresholds_name, thresholds)):
        for v in _grid(values, name, unit=rule == "quantile"):
            value = f"q{v!r}" if rule == "quantile" else v
            try:
                options.replace(**{option: value})
            except ValueError as err:
                raise ValueError(f"{name} holds {v!r}, not a valid {option}: {err}") from None
            out.append((rule, v, value))
    if not out:
        raise ValueError(f"give {quantiles_name} or {thresholds_name} (both are empty)")
    return out


def sweep_thresholds(activations: Any, options: TensorOptions | None = None, *,
                     n_components: int | str | None = None,
                     corr_quantiles: Sequence[float] | None = (0.95, 0.98, 0.99, 0.995),
                     corr_thresholds: Sequence[float] | None = None,
                     presence_quantiles: Sequence[float] | None = (0.8, 0.9, 0.95),
                     presence_thresholds: Sequence[float] | None = None,
                     center: bool | None = None, presence: str | None = None, presence_scale: str | None = None,
                     within_model: bool | None = None, align_signs: bool | Sequence[bool] | None = None,
                     split_rule: str | Sequence[str] | None = None, split_method: str | None = None,
                     probs: Any = None, labels: Any = None, preds: Any = None,
                     n_bootstrap: int = 2000, confidence_level: float = 0.95,
                     progress: bool = True) -> pd.DataFrame:
    """How T and the O1-O4 statistics move with gamma_corr, gamma_data, sign alignment and split rule.

    The PCA and the correlation matrix are computed once; each gamma_corr is clustered once
    and each (gamma_data, signs) presence computed once, so a grid costs little more than its
    largest single step. Every sweep point equals :func:`~ift_core.tensor.build_interaction_tensor`
    with the same options, and its O1-O4 numbers the ``o*`` functions on it, bit for bit.

    Parameters
    ----------
    activations : array (M, N, D), sequence of (N, D_m) arrays, or ModelComponents
        A :class:`~ift_core.tensor.ModelComponents` skips the PCA (``n_components`` and
        ``center`` are then taken from it).
    options : TensorOptions, optional
        The options the grid varies (default :class:`~ift_core.tensor.TensorOptions`); its
        ``gamma_corr`` and ``gamma_data`` are replaced by the grid's values. The keywords
        ``n_components``, ``center``, ``presence``, ``presence_scale``, ``within_model`` (None:
        the options') change single options.
    corr_quantiles, corr_thresholds : sequences of float, optional
        gamma_corr values as cross-model quantiles and/or absolute values (at least one).
    presence_quantiles, presence_thresholds : sequences of float, optional
        gamma_data values as per-model quantiles and/or absolute values (at least one).
    align_signs : bool or sequence of bool, optional (default: the options')
        Sign alignment of the members of a feature (see ``build_interaction_tensor``); a
        sequence such as ``(True, False)`` adds an axis to the grid.
    split_rule : str or sequence of str, optional (default: the options')
        Dominant/rare split for O1 and O3 (see ``split_frequencies``); a sequence adds an axis
        (the tensor is built once for all rules). ``split_method`` is its older keyword.
    probs, labels : arrays (M, N, C) and (N,), optional
        Needed for O2 (columns ``o2_*`` are NaN without them).
    preds : array (M, N), optional
        Needed for O4 (no permutation test in a sweep; the jackknife CI is kept).
    n_bootstrap, confidence_level
        As in the ``o*`` functions.

    Returns
    -------
    pandas.DataFrame
        One row per (gamma_corr, gamma_data, align_signs, split_rule) point: the setting
        (``corr_rule``, ``corr_value``, ``gamma_corr``, ``presence_rule``, ``presence_value``,
        ``gamma_data`` = mean over models, ``align_signs``, ``split_rule``), ``T``,
        ``frac_singletons``, ``presence_rate``, ``n_flipped`` and the O1-O4 statistics, CIs and
        verdicts (``o1_skew``, ``o1_low``, ``o1_high``, ``o1_n_modes``, ``o1_frac_dominant``,
        ``o1_holds``, ... ``o4_holds``).

    Examples
    --------
    >>> import numpy as np
    >>> acts = np.random.default_rng(0).standard_normal((3, 200, 8))
    >>> df = sweep_thresholds(acts, n_components=4, corr_quantiles=[0.9, 0.99],
    ...                       presence_quantiles=[0.8, 0.9], align_signs=(True, False),
    ...                       n_bootstrap=100, progress=False)
    >>> df.shape[0], int(df["T"].min()) >= 4
    (8, True)
    """
    progress = check_bool(progress, "progress")
    if options is not None and not isinstance(options, TensorOptions):
        raise ValueError(f"options must be a TensorOptions (or None for the defaults), got {type(options).__name__}")
    given = {"n_components": n_components, "center": center, "presence": presence,
             "presence_scale": presence_scale, "within_model": within_model}
    opts = (options or TensorOptions()).replace(**{k: v for k, v in given.items() if v is not None})
    corr_grid = _gamma_grid(opts, "gamma_corr", corr_quantiles, "corr_quantiles", corr_thresholds, "corr_thresholds")
    pres_grid = _gamma_grid(opts, "gamma_data", presence_quantiles, "presence_quantiles", presence_thresholds,
                            "presence_thresholds")
    aligns = _as_axis(opts.align_signs if align_signs is None else align_signs, "align_signs",
                      lambda v: check_bool(v, "align_signs"))
    if split_method is not None and split_rule is not None:
        raise ValueError(f"give the split rule once: split_rule={split_rule!r} and its older keyword "
                         f"split_method={split_method!r}")
    rules = _as_axis(opts.split_rule if split_rule is None and split_method is None else
                     (split_rule if split_rule is not None else split_method), "split_rule",
                     lambda v: resolve_split_rule(v))
    level = _check_confidence_level(confidence_level)
    if isinstance(activations, ModelComponents):
        pc = activations
    else:
        pc = principal_components(activations, n_components=opts.n_components, cap_at_rank=opts.cap_at_rank,
                                  center=opts.center, progress=progress)
    if pc.n_models == 1 and any(rule == "quantile" for rule, _, _ in corr_grid):
        raise ValueError("a single model has no cross-model correlations for corr_quantiles: give "
                         "corr_thresholds only")
    if (probs is None) != (labels is None):
        raise ValueError("O2 needs both probs and labels (one of them is None)")
    if probs is not None:
        conf = ensemble_confidence(probs, labels)
        if conf.shape[0] != pc.n_points or np.shape(probs)[0] != pc.n_models:
            raise ValueError(f"probs must have shape (M, N, C) with (M, N) = {(pc.n_models, pc.n_points)}, "
                             f"got {np.shape(probs)}")
    agr = None
    if preds is not None:
        pr = as_int_array(preds, name="preds", ndim=2)
        if pr.shape != (pc.n_models, pc.n_points):
            raise ValueError(f"preds must have shape (M, N) = {(pc.n_models, pc.n_points)}, got {pr.shape}")
        agr = pairwise_agreement(pr)
    corr = component_correlations(pc)
    cache: dict = {}
    rows = []
    grid = [(c, p, a) for c in corr_grid for p in pres_grid for a in aligns]
    for (crule, cval, gamma_corr), (prule, pval, gamma_data), align in tqdm(grid, desc="threshold sweep",
                                                                            disable=not progress, leave=False):
        it = assemble_tensor(pc, corr, opts.replace(gamma_corr=gamma_corr, gamma_data=gamma_data, align_signs=align),
                             cache=cache)
        nmod = it.models_per_feature()
        base = {
            "corr_rule": crule, "corr_value": cval, "gamma_corr": it.corr_threshold,
            "presence_rule": prule, "presence_value": pval,
            "gamma_data": float(np.mean(it.presence_thresholds)), "align_signs": align,
            "T": it.n_features, "frac_singletons": float((nmod == 1).mean()),
            "presence_rate": float(it.presence.mean()), "n_flipped": it.n_flipped,
        }
        # O2 and O4 do not depend on the split rule: once per tensor.
        if probs is not None:
            o2 = o2_features_vs_confidence(it, probs, labels, confidence_level=level)
            base.update(o2_rho=o2.statistic, o2_low=o2.ci[0], o2_high=o2.ci[1], o2_holds=o2.holds)
        else:
            base.update(o2_rho=np.nan, o2_low=np.nan, o2_high=np.nan, o2_holds=False)
        if agr is not None:
            r = _o4_numbers(it.overlap(), agr, confidence_level=level, n_permutations=0, seed=0)
            base.update(o4_rho=r["rho"], o4_low=r["low"], o4_high=r["high"],
                        o4_holds=bool(np.isfinite(r["low"]) and r["low"] > 0))
        else:
            base.update(o4_rho=np.nan, o4_low=np.nan, o4_high=np.nan, o4_holds=False)
        for rule in rules:
            o1 = o1_long_tail(it, split_rule=rule, n_bootstrap=n_bootstrap, confidence_level=level)
            # The split O1 found (the same rule on the same frequencies), not fitted again.
            o3 = o3_feature_sharing(it, split_threshold=o1.stats["split_threshold"], confidence_level=level)
            rows.append({
                **base, "split_rule": rule,
                "o1_skew": o1.statistic, "o1_low": o1.ci[0], "o1_high": o1.ci[1],
                "o1_n_modes": o1.stats["n_modes"], "o1_frac_dominant": o1.stats["frac_dominant"],
                "o1_n_dominant": o1.stats["n_dominant"], "o1_top10_share": o1.stats["top10_share_of_occurrences"],
                "o1_gini": o1.stats["gini"], "o1_holds": o1.holds,
                "o3_rho": o3.statistic, "o3_low": o3.ci[0], "o3_high": o3.ci[1],
                "o3_mean_jaccard": o3.stats["mean_jaccard"], "o3_holds": o3.holds,
            })
    cols = ["corr_rule", "corr_value", "gamma_corr", "presence_rule", "presence_value", "gamma_data",
            "align_signs", "split_rule", "T", "frac_singletons", "presence_rate", "n_flipped"]
    df = pd.DataFrame(rows)
    return df[cols + [c for c in df.columns if c not in cols]]
