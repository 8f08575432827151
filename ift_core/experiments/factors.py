"""The factor study behind the scorecard: which factor flips which verdict.

For each claim the book checks on a trained ensemble (O1-O4 of chapters 4-6, GDE in
distribution of chapter 12), move one factor at a time from the book's default toward the
paper's setting and back, recompute the claim's verdict with the *same* function its chapter
calls, and report where the verdict's word changes.

Two kinds of factors:

* **analysis factors** (no retraining, seconds on cached activations): M (the first m seeds), N
  (a random subset of test points), K, gamma_corr, gamma_data, the presence rule and scale, the
  sign alignment and the dominant/rare split rule (:data:`ANALYSIS_FACTORS`);
* **training factors** (small extra ensembles, cached like every ensemble): the penultimate
  width, the training-set size, training to interpolation or not, and the randomness mode
  (:func:`training_variants`).

``grid="book"`` is sized for the book's budget, ``grid="full"`` for readers with time. The verdicts'
parts (:func:`o1_verdict_fields` .. :func:`o4_verdict_fields`: ``Verdict(key, **fields)``) and
:func:`gde_in_distribution_holds` are the ones chapters 4, 5, 6 and 12 call, so a row of the study at the default setting is the chapter's
verdict.

Examples
--------
>>> table = pd.DataFrame({"claim": ["O2"] * 3, "factor": ["default", "K (components)", "K (components)"],
...                       "value": ["default", "5", "20"], "default": [True, False, False],
...                       "word": ["DOES NOT HOLD", "HOLDS", "DOES NOT HOLD"]})
>>> flipping_factors(table)["O2"]
'K: DOES NOT HOLD -> HOLDS at K=5'
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import gde
from .. import observations as obs
from ..cache import entry_dir
from ..claims import Part, Verdict
from ..internal import atomic_path, check_choice, check_real, to_jsonable
from ..tensor import (
    PROFILE_OPTIONS,
    TensorOptions,
    assemble_tensor,
    component_correlations,
    principal_components,
)

__all__ = [
    "GRIDS",
    "ANALYSIS_FACTORS",
    "TENSOR_CLAIMS",
    "o1_verdict_fields",
    "o2_verdict_fields",
    "o3_verdict_fields",
    "o4_verdict_fields",
    "gde_in_distribution_holds",
    "tensor_verdicts",
    "analysis_factor_study",
    "training_variants",
    "training_factor_study",
    "flipping_factors",
    "factor_study",
]

GRIDS = ("book", "full")
#: Claims the factor study recomputes (the others are closed forms and simulations, which no
#: factor of a trained ensemble enters).
TENSOR_CLAIMS = ("O1", "O2", "O3", "O4", "gde_label_free")
_VERSION = 1


# --------------------------------------------------------------------------- verdict builders
def o1_verdict_fields(o1: obs.Observation, o1_other: obs.Observation, *, n_models: int, n_components: int,
               corr_threshold: float, presence_scale: str, other_scale: str, align_signs: bool) -> dict[str, Any]:
    """The parts, facts and setting of chapter 4's verdict on O1 (``Verdict("O1", **fields)``): the
    long tail with the chapter's presence scale and with the other one."""
    def long_tail(o: obs.Observation, scale: str) -> Part:
        s = o.stats
        split = (f"no second mode ({s['split_reason']})" if not s["n_dominant"] else
                 f"{s['n_dominant']} of {s['n_features']} features dominant (split at {s['split_threshold']:.0f} "
                 f"points), carrying {s['dominant_share_of_occurrences']:.1%} of all occurrences")
        return Part.from_observation(o, claim=f"feature frequency has a long right tail (presence_scale={scale!r})",
                                     facts=(
            f"skewness of frequency {s['skew_frequency']:.2f}, 95% bootstrap interval [{s['skew_frequency_low']:.2f}, "
            f"{s['skew_frequency_high']:.2f}] over {s['n_features']} features",
            f"the top 10% of features hold {s['top10_share_of_occurrences']:.1%} of all occurrences; Gini {s['gini']:.2f}",
            f"dominant/rare split ({s['split_rule']}; reported, not judged): {split}"))

    return dict(parts=(long_tail(o1, presence_scale), long_tail(o1_other, other_scale)),
                facts=f"M={n_models}, K={n_components}, gamma_corr={corr_threshold:.3f}, align_signs={align_signs}",
                setting={"M": n_models, "K": n_components, "gamma_corr": corr_threshold,
                         "presence_scale": presence_scale, "align_signs": align_signs})


def o2_verdict_fields(o2: obs.Observation, *, n_models: int, n_components: int, corr_threshold: float, per_model: bool,
               confidence_level: float, rho_by_k: Sequence[tuple[int, float]] = ()) -> dict[str, Any]:
    """The fields of chapter 5's verdict on O2 (``rho_by_k``: (K, rho) pairs shown beside it, not judged)."""
    s = o2.stats
    facts = [f"rho {o2.statistic:+.3f}, {confidence_level:.0%} interval [{o2.ci[0]:+.3f}, {o2.ci[1]:+.3f}] over "
             f"{s['spearman_n']} points",
             f"features per point: {s['features_least_confident_bin']:.2f} in the least confident decile, "
             f"{s['features_most_confident_bin']:.2f} in the most confident"]
    if rho_by_k:
        facts.append("rho at other K (shown above, not judged): "
                     + ", ".join(f"K={k}: {rho:+.3f}" for k, rho in rho_by_k))
    return dict(parts=(Part.from_observation(
        o2, claim="points the ensemble is confident on carry fewer features (Spearman's rho below 0)",
        facts=tuple(facts)),),
        facts=f"M={n_models}, K={n_components}, gamma_corr={corr_threshold:.3f}, per_model={per_model}",
        setting={"M": n_models, "K": n_components, "gamma_corr": corr_threshold, "per_model": per_model})


def o3_verdict_fields(o3: obs.Observation, *, n_models: int, n_components: int, corr_threshold: float, split_rule: str,
               confidence_level: float, align_signs: bool) -> dict[str, Any]:
    """The fields of chapter 6's verdict on O3: the correlation, the dominant/rare groups (when the split finds
    both) and the seeds' different subsets."""
    s3 = o3.stats
    groups = "dominant features are held by more seeds than rare ones"
    setting = {"M": n_models, "K": n_components, "gamma_corr": corr_threshold, "align_signs": align_signs}
    return dict(parts=(
        Part.from_bool("frequent features are held by more seeds (Spearman's rho above 0)",
                       bool(np.isfinite(s3["spearman_low"]) and s3["spearman_low"] > 0),
                       facts=f"rho {o3.statistic:.3f}, {confidence_level:.0%} interval [{o3.ci[0]:.3f}, {o3.ci[1]:.3f}]"),
        Part.from_bool(groups, s3["mean_models_dominant"] > s3["mean_models_rare"],
                       facts=f"models per feature: dominant {s3['mean_models_dominant']:.2f}, rare "
                             f"{s3['mean_models_rare']:.2f} of M={n_models}")
        if s3["split_has_both_groups"] else
        Part(groups, "not tested", facts=f"log frequency has one mode ({split_rule} rule): no dominant/rare split"),
        Part.from_bool("each seed learns a different subset (mean Jaccard overlap below 1)", s3["mean_jaccard"] < 1,
                       facts=f"mean Jaccard {s3['mean_jaccard']:.3f}; {s3['frac_features_all_models']:.1%} of "
                             f"features in every seed, {s3['frac_features_one_model']:.1%} in one"),
    ), facts=f"M={n_models}, K={n_components}, gamma_corr={corr_threshold:.3f}, align_signs={align_signs}",
        setting=setting)


def o4_verdict_fields(o4: obs.Observation, *, n_models: int, n_components: int, corr_threshold: float,
               confidence_level: float, align_signs: bool) -> dict[str, Any]:
    """The fields of chapter 6's verdict on O4: the jackknife interval of the pair correlation above 0."""
    s4 = o4.stats
    setting = {"M": n_models, "K": n_components, "gamma_corr": corr_threshold, "align_signs": align_signs}
    return dict(parts=(Part.from_observation(
        o4, claim="seeds that share more features agree more (correlation over pairs above 0)", facts=(
            f"rho {o4.statistic:.3f}, jackknife {confidence_level:.0%} interval [{o4.ci[0]:.3f}, {o4.ci[1]:.3f}] over "
            f"{s4['n_pairs']} pairs",
            f"Mantel p = {s4['p_mantel']:.3f}; Pearson r = {s4['pearson_r']:.3f}",
            f"feature overlap {s4['mean_overlap']:.3f} and prediction agreement {s4['mean_agreement']:.3f} on "
            "average")),),
        facts=f"M={n_models}, K={n_components}, gamma_corr={corr_threshold:.3f}", setting=setting)


def gde_in_distribution_holds(err: float, dis: float, low: float, high: float, *, rel_tol: float) -> bool:
    """Chapter 12's test of GDE in distribution: the mean test error lies inside the interval
    ``[low, high]`` of the disagreement, or ``|dis - err| <= rel_tol * err``.

    Examples
    --------
    >>> gde_in_distribution_holds(0.10, 0.105, 0.10, 0.11, rel_tol=0.1)
    True
    >>> gde_in_distribution_holds(0.117, 0.096, 0.093, 0.099, rel_tol=0.1)
    False
    """
    rel_tol = check_real(rel_tol, "rel_tol", minimum=0)
    return bool((low <= err <= high) or abs(dis - err) <= rel_tol * err)


# --------------------------------------------------------------------------- verdicts on one setting
def tensor_verdicts(components: Any, corr: np.ndarray | None, probs: np.ndarray, labels: np.ndarray,
                    preds: np.ndarray, options: TensorOptions, *, cache: dict | None = None,
                    n_bootstrap: int = 2000, n_permutations: int = 999, confidence_level: float = 0.95,
                    per_model: bool = False) -> dict[str, Verdict]:
    """O1-O4 verdicts on one tensor setting, as chapters 4-6 build them (their default parameters).

    ``components`` (and ``corr``) come from :func:`ift_core.tensor.principal_components` (and
    :func:`~ift_core.tensor.component_correlations`) on the activations of the models and points
    that ``probs``, ``labels`` and ``preds`` describe.
    """
    it = assemble_tensor(components, corr, options, cache=cache)
    other_scale = "model" if options.presence_scale == "column" else "column"
    it_other = assemble_tensor(components, corr, options.replace(presence_scale=other_scale), cache=cache)
    common = dict(n_models=it.n_models, n_components=it.n_components, corr_threshold=it.corr_threshold)
    o1 = obs.o1_long_tail(it, split_rule=options.split_rule, n_bootstrap=n_bootstrap)
    o1_other = obs.o1_long_tail(it_other, split_rule=options.split_rule, n_bootstrap=n_bootstrap)
    o2 = obs.o2_features_vs_confidence(it, probs, labels, per_model=per_model, confidence_level=confidence_level)
    o3 = obs.o3_feature_sharing(it, split_rule=options.split_rule, confidence_level=confidence_level)
    o4 = obs.o4_overlap_vs_agreement(it, preds, confidence_level=confidence_level, n_permutations=n_permutations,
                                     seed=0)
    return {
        "O1": Verdict("O1", **o1_verdict_fields(o1, o1_other, presence_scale=options.presence_scale,
                                                other_scale=other_scale, align_signs=options.align_signs, **common)),
        "O2": Verdict("O2", **o2_verdict_fields(o2, per_model=per_model, confidence_level=confidence_level, **common)),
        "O3": Verdict("O3", **o3_verdict_fields(o3, split_rule=options.split_rule, confidence_level=confidence_level,
                                                align_signs=options.align_signs, **common)),
        "O4": Verdict("O4", **o4_verdict_fields(o4, confidence_level=confidence_level,
                                                align_signs=options.align_signs, **common)),
    }


def _statistic(verdict: Verdict) -> str:
    """The first part's statistic and interval, as the scorecard shows it."""
    stats = verdict.parts[0].statistics
    if "statistic" in stats:
        ci = stats.get("ci") or (stats.get("low"), stats.get("high"))
        try:
            return f"{float(stats['statistic']):+.3f} [{float(ci[0]):+.3f}, {float(ci[1]):+.3f}]"
        except (TypeError, ValueError, IndexError):
            return f"{float(stats['statistic']):+.3f}"
    return verdict.parts[0].facts[0] if verdict.parts[0].facts else ""


def _gde_row(preds: np.ndarray, labels: np.ndarray, *, rel_tol: float, level: float) -> dict[str, Any]:
    err = float(gde.test_error(preds, labels))
    dis = float(gde.disagreement(preds))
    interval = gde.estimate_error(preds, method="both", level=level)
    holds = gde_in_distribution_holds(err, dis, interval.low, interval.high, rel_tol=rel_tol)
    return {"word": "HOLDS" if holds else "DOES NOT HOLD",
            "statistic": f"err {err:.3f}, dis {dis:.3f} [{interval.low:.3f}, {interval.high:.3f}]"}


# --------------------------------------------------------------------------- the grids
@dataclass(frozen=True)
class _Factor:
    name: str          # the factor
    option: str        # what it sets: a TensorOptions field, or "M" / "N"
    book: tuple        # values of the book's grid
    full: tuple        # values of the full grid
    paper: Any         # the paper's value (None: the paper does not fix it)


#: The factors that need no retraining: the TensorOptions field (or "M", "N") each sets, the
#: values of each grid, and the paper's value.
ANALYSIS_FACTORS: tuple[_Factor, ...] = (
    _Factor("M (seeds)", "M", (5, 10, 20), (3, 5, 10, 15, 20), 20),
    _Factor("N (test points)", "N", (1000, 2000, 5000), (500, 1000, 2000, 5000), 10_000),
    _Factor("K (components)", "n_components", (5, 10, 20, 50), (5, 10, 20, 30, 40, 50), 50),
    _Factor("gamma_corr", "gamma_corr", (0.3, 0.7, "q0.99"), (0.3, 0.4, 0.6, 0.7, 0.8, "q0.95", "q0.99"), "q0.99"),
    _Factor("gamma_data", "gamma_data", ("q0.8", "q0.95"), ("q0.8", "q0.85", "q0.95"), "q0.9"),
    _Factor("presence rule", "presence", ("absolute",), ("absolute",), None),
    _Factor("presence scale", "presence_scale", ("model",), ("model",), "column"),
    _Factor("sign alignment", "align_signs", (False,), (False,), False),
    _Factor("split rule", "split_rule", ("largest_spacing", "otsu"), ("largest_spacing", "otsu"), None),
)


def _value_text(option: str, value: Any) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def analysis_factor_study(activations: np.ndarray, probs: np.ndarray, labels: np.ndarray, *,
                          options: TensorOptions, grid: str = "book", subset_seed: int = 0,
                          rel_tol: float = 0.1, level: float = 0.95, factors: Sequence[str] | None = None,
                          progress: Any = None) -> pd.DataFrame:
    """Every claim's verdict at the default and at each analysis factor's values, one at a time.

    Parameters
    ----------
    activations : array (M, N, D)
        Penultimate activations of the ensemble on its test set.
    probs : array (M, N, C)
        The models' softmax outputs on the same points; ``preds`` are their argmax.
    labels : array (N,)
        True classes.
    options : TensorOptions
        The default setting (the book's profile options).
    grid : {"book", "full"}
        Which values each factor takes (:data:`ANALYSIS_FACTORS`).
    subset_seed : int
        Seed of the random test-point subsets of the N factor.
    factors : sequence of str, optional
        Names of :data:`ANALYSIS_FACTORS` to move (default: all).
    rel_tol, level
        Chapter 12's tolerance and interval level for GDE in distribution.
    progress : callable, optional
        Called with a line of text before each setting.

    Returns
    -------
    DataFrame
        One row per (claim, factor, value): ``word`` (the verdict's word), ``statistic``,
        ``default`` (the row is the default setting), ``paper`` (the value is the paper's).
    """
    grid = check_choice(grid, "grid", GRIDS)
    activations = np.asarray(activations)
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    preds = probs.argmax(axis=2)
    m_all, n_all = activations.shape[:2]
    rows: list[dict[str, Any]] = []

    def run(factor: str, value: Any, *, models: slice | np.ndarray = slice(None), points: Any = slice(None),
            opts: TensorOptions = options, is_default: bool = False, is_paper: bool = False) -> None:
        if progress is not None:
            progress(f"{factor} = {_value_text('', value)}")
        acts = activations[models][:, points]
        comps = principal_components(acts, n_components=opts.n_components, cap_at_rank=opts.cap_at_rank,
                                     center=opts.center, progress=False)
        corr = component_correlations(comps)
        p, y = probs[models][:, points], labels[points]
        verdicts = tensor_verdicts(comps, corr, p, y, p.argmax(axis=2), opts, cache={})
        base = {"factor": factor, "value": _value_text("", value), "default": is_default, "paper": is_paper,
                "M": acts.shape[0], "N": acts.shape[1], "K": verdicts["O1"].setting["K"]}
        for key, v in verdicts.items():
            rows.append({"claim": key, **base, "word": v.word, "statistic": _statistic(v)})
        rows.append({"claim": "gde_label_free", **base, **_gde_row(preds[models][:, points], y, rel_tol=rel_tol,
                                                                   level=level)})

    run("default", "default", is_default=True,
        is_paper=(m_all == 20 and n_all == 10_000 and options.n_components == 50))
    rng = np.random.default_rng(subset_seed)
    names = [f.name for f in ANALYSIS_FACTORS]
    if factors is not None:
        unknown = sorted(set(factors) - set(names))
        if unknown:
            raise ValueError(f"unknown factor(s) {unknown}; the analysis factors are {names}")
    for f in ANALYSIS_FACTORS:
        if factors is not None and f.name not in factors:
            continue
        for value in (f.book if grid == "book" else f.full):
            is_paper = value == f.paper
            if f.option == "M":
                if value >= m_all:
                    continue
                run(f.name, value, models=slice(0, value), is_paper=is_paper)
            elif f.option == "N":
                if value >= n_all:
                    continue
                points = np.sort(rng.choice(n_all, size=value, replace=False))
                run(f.name, value, points=points, is_paper=is_paper)
            else:
                if getattr(options, f.option) == value:
                    continue
                if f.option == "n_components" and value > activations.shape[2]:
                    continue  # wider than the layer: no such K
                run(f.name, value, opts=options.replace(**{f.option: value}), is_paper=is_paper)
    return pd.DataFrame(rows)


def training_variants(config: Any, grid: str = "book") -> dict[str, tuple[str, Any]]:
    """Small extra ensembles for the training factors: name -> (factor, TrainConfig).

    Each is the default config with a few seeds (``n_models`` 5 in the book's grid, 10 in the full
    one) and one factor moved; ``"baseline"`` is the default config with as many seeds, for the
    comparison at equal M. The book's grid moves the training-set size (a fifth) and the training
    length (2 epochs: not interpolating); the full grid adds a twice as wide penultimate layer and
    the AllDiff randomness mode.
    """
    from ..models import DEFAULT_WIDTHS

    grid = check_choice(grid, "grid", GRIDS)
    m = 5 if grid == "book" else 10
    base = config.replace(n_models=m)
    n_train = config.data.n_train
    out = {"baseline": ("baseline", base)}
    if n_train:
        out[f"n_train={n_train // 5}"] = ("training-set size", base.replace(n_train=n_train // 5))
    out["epochs=2 (not interpolating)"] = ("interpolation", base.replace(epochs=2))
    if grid == "full":
        width = config.width if config.width is not None else DEFAULT_WIDTHS[config.arch]
        out[f"width={2 * width}"] = ("penultimate width", base.replace(width=2 * width))
        if n_train:
            out["mode=alldiff"] = ("randomness mode", base.replace(mode="alldiff"))
    return out


def training_factor_study(config: Any, *, options: TensorOptions, grid: str = "book", rel_tol: float = 0.1,
                          level: float = 0.95, progress: Any = None) -> pd.DataFrame:
    """Every claim's verdict on each small extra ensemble of :func:`training_variants` (trained and
    cached by :func:`ift_core.train.train_ensemble`), beside the same-sized baseline."""
    from .. import activations as act_mod
    from .. import train

    rows: list[dict[str, Any]] = []
    for name, (factor, cfg) in training_variants(config, grid).items():
        if progress is not None:
            progress(f"training {name}")
        ensemble = train.train_ensemble(cfg, progress=False)
        acts = act_mod.ensemble_activations(ensemble, split="test", progress=False)
        comps = principal_components(acts.activations, n_components=options.n_components,
                                     cap_at_rank=options.cap_at_rank, center=options.center, progress=False)
        corr = component_correlations(comps)
        verdicts = tensor_verdicts(comps, corr, acts.probs, acts.labels, acts.preds, options, cache={})
        train_acc = float(np.min(ensemble.train_accuracy))
        base = {"factor": factor, "value": name, "default": factor == "baseline", "paper": False,
                "M": acts.n_models, "N": acts.n_points, "K": verdicts["O1"].setting["K"],
                "min_train_accuracy": train_acc}
        for key, v in verdicts.items():
            rows.append({"claim": key, **base, "word": v.word, "statistic": _statistic(v)})
        rows.append({"claim": "gde_label_free", **base,
                     **_gde_row(acts.preds, acts.labels, rel_tol=rel_tol, level=level)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- summary
def flipping_factors(table: pd.DataFrame) -> dict[str, str]:
    """Per claim, the factors whose values change the verdict's word from the default's.

    Each flip reads ``factor: DEFAULT WORD -> OTHER WORD at value, value``; factors are joined by
    ``"; "``. A claim whose word no factor changes gets ``"none of the factors studied"``. Rows of
    the training study compare with its own baseline row (``factor == "baseline"``).
    """
    out: dict[str, str] = {}
    for claim, rows in table.groupby("claim", sort=False):
        flips = []
        for source_default in ("default", "baseline"):
            ref = rows[rows["factor"] == source_default]
            if ref.empty:
                continue
            word = ref["word"].iloc[0]
            others = rows[~rows["default"].astype(bool)]
            others = others[others["factor"].isin(_group(rows, source_default))]
            for factor, fr in others.groupby("factor", sort=False):
                changed = fr[fr["word"] != word]
                if len(changed):
                    by_word: dict[str, list[str]] = {}
                    for r in changed.itertuples():
                        paper = " (the paper's)" if bool(getattr(r, "paper", False)) else ""
                        by_word.setdefault(r.word, []).append(_short(factor, r.value) + paper)
                    flips.append(f"{factor.split(' (')[0]}: " + "; ".join(
                        f"{word} -> {w} at {', '.join(vs)}" for w, vs in by_word.items()))
        text = "; ".join(flips) if flips else "none of the factors studied"
        out[claim] = f"{_PART_MOVED[claim]}: {text}" if claim in _PART_MOVED else text
    return out


#: Claims whose factor study recomputes one part of the chapter's verdict only.
_PART_MOVED = {"gde_label_free": "GDE in distribution (the part the study recomputes)"}


def _group(rows: pd.DataFrame, reference: str) -> set:
    """The factors a reference row is compared with: the analysis factors for "default", the
    training factors for "baseline"."""
    has_train = "min_train_accuracy" in rows.columns
    if reference == "baseline" and has_train:
        return set(rows.loc[rows["min_train_accuracy"].notna(), "factor"])
    if has_train:
        return set(rows.loc[rows["min_train_accuracy"].isna(), "factor"])
    return set(rows["factor"])


def _short(factor: str, value: str) -> str:
    name = factor.split(" (")[0]
    return value if "=" in value else f"{name}={value}"


# --------------------------------------------------------------------------- the cached study
def factor_study(ensemble: Any, *, options: TensorOptions | None = None, profile: str | None = None,
                 grid: str = "book", train_factors: bool = True, rel_tol: float = 0.1, level: float = 0.95,
                 cache: bool = True, progress: Any = None) -> pd.DataFrame:
    """The whole factor study on a trained ensemble, cached by its config, options and grid.

    ``options`` default to ``PROFILE_OPTIONS[profile]``. With ``train_factors`` the small extra
    ensembles of :func:`training_variants` are trained (or read from the cache) too.
    Returns the rows of :func:`analysis_factor_study` and :func:`training_factor_study` in one table.
    """
    from .. import activations as act_mod

    grid = check_choice(grid, "grid", GRIDS)
    if options is None:
        if profile is None:
            raise ValueError("give options (a TensorOptions) or profile (a key of tensor.PROFILE_OPTIONS)")
        options = PROFILE_OPTIONS[check_choice(profile, "profile", tuple(PROFILE_OPTIONS))]
    key = {"study": "factors", "version": _VERSION, "config": to_jsonable(ensemble.config),
           "options": options.as_params(), "grid": grid, "train_factors": bool(train_factors),
           "rel_tol": rel_tol, "level": level}
    path = entry_dir("factors", key) / "table.json" if cache else None
    if path is not None and path.exists():
        return pd.DataFrame(json.loads(path.read_text()))
    acts = act_mod.ensemble_activations(ensemble, split="test", progress=False)
    table = analysis_factor_study(acts.activations, acts.probs, acts.labels, options=options, grid=grid,
                                  rel_tol=rel_tol, level=level, progress=progress)
    if train_factors:
        table = pd.concat([table, training_factor_study(ensemble.config, options=options, grid=grid,
                                                        rel_tol=rel_tol, level=level, progress=progress)],
                          ignore_index=True)
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(to_jsonable(table.to_dict(orient="records"))))
    return table
