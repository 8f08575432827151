"""Breaking GDE on real images: a rare sub-population swept from absent to common (issue 4).

The framework of ``book/definitions.md`` §3 predicts that the Generalization Disagreement Equality fails
when many test points carry features that only some seeds learn: rare features seen in
training, each learned with probability near 1/2. :func:`subpopulation_sweep` builds that
situation on real images. Each class gets a sub-population (its images under a
label-preserving transformation, :func:`ift_core.data.make_subpopulation_data`) with ``r``
examples per class in training. The construction is part of the data description
(``DataConfig.subpopulation_per_class``, ``subpopulation_transform``, ``subpopulation_seed``), so
for each ``r`` the sweep trains a DiffInit seed ensemble with the ordinary
:func:`ift_core.train.train_ensemble` (any backend, the ordinary cache), evaluates
it on the ordinary test set and on the rich test set (every test image transformed), and
returns one tidy table: test error, disagreement, CACE and ECE of the vote ensemble with
bootstrap confidence intervals over points, the same-wrong-class rate, the counterfactual
disagreement with random wrong answers, the share of points that some but not all seeds get
right, and the interaction tensor's view of how many seeds learned the sub-population's
features.

:func:`framework_prediction` gives the framework's numbers for the same sweep (the
sub-population is the rare group), and :func:`compare_with_framework` states, row by row,
where measurement and prediction agree and where not.

A *construction* is a transform name from :data:`ift_core.data.SUBPOPULATION_TRANSFORMS` or
several joined by ``"+"`` (``"rotate90+invert"``: more rare features per point), applied in
that order (:func:`ift_core.data.apply_transform`).

Examples
--------
>>> from ift_core.experiments import get_sweep_profile, subpopulation_sweep
>>> prof = get_sweep_profile("tiny")
>>> res = subpopulation_sweep(prof.config, rarities=(0, 5), progress=False)  # doctest: +SKIP
>>> sorted(res.table["test_set"].unique())  # doctest: +SKIP
['ordinary', 'subpopulation']
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import gde, theory
from .internal import check_bool, check_int, check_real

__all__ = [
    "TEST_SETS",
    "SweepProfile",
    "SWEEP_PROFILES",
    "get_sweep_profile",
    "SweepResult",
    "subpopulation_sweep",
    "FrameworkPrediction",
    "framework_prediction",
    "compare_with_framework",
    "gde_breaks",
]

#: The two test sets of every rarity: the ordinary test set and the one rich in the sub-population.
TEST_SETS = ("ordinary", "subpopulation")

_METRICS = ("error", "disagreement", "gap", "cace", "ece", "split_fraction")


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepProfile:
    """A named sweep: the training config, the rarities and the construction.

    Attributes
    ----------
    config : ift_core.train.TrainConfig
        The ordinary training setting (data subset, architecture, epochs, ``n_models`` seeds).
    rarities : tuple of int
        Sub-population examples per class in training (0 = absent).
    transform : str
        The construction (see :func:`ift_core.data.parse_subpopulation_transform`).
    next_constructions : tuple of str
        What the theory suggests trying next if GDE does not break on ``transform``: more
        rare features per point (a combination of transforms).
    note : str
        What the profile is for and roughly what it costs.
    """

    config: Any
    rarities: tuple[int, ...]
    transform: str = "rotate90"
    next_constructions: tuple[str, ...] = ("rotate90+invert",)
    note: str = ""


def _profiles() -> dict[str, SweepProfile]:
    from .train import get_profile

    return {
        # Seconds: 4 MLPs on scikit-learn's digits (1347 training images, ~135 per class).
        "tiny": SweepProfile(get_profile("tiny", n_models=4, epochs=15), rarities=(0, 2, 10),
                             note="digits + MLP, 4 seeds, 3 rarities: well under a minute on one core"),
        # A few minutes on 2 cores: 4 small CNNs per rarity on 1000 Fashion-MNIST images (100 per
        # class, so r = 20 is common), trained to zero training error (batch 50, lr 0.05: the
        # profile's batch 100 / lr 0.1 leaves ~12% training error on 1000 images in 20 epochs).
        "cpu": SweepProfile(get_profile("cpu", n_train=1000, n_test=1000, width=16, n_models=4, epochs=20,
                                        batch_size=50, lr=0.05),
                            rarities=(0, 2, 5, 20),
                            note="Fashion-MNIST 1000/1000 + small CNN (width 16), 4 seeds, 4 rarities"),
        # The paper's regime: 20 ResNet18 on all of CIFAR-10 (5000 per class) per rarity. Needs
        # the CIFAR-10 files and a GPU (7 rarities x 20 seeds x 30 epochs).
        "paper": SweepProfile(get_profile("paper"), rarities=(0, 5, 10, 25, 50, 100, 500),
                              note="CIFAR-10 + ResNet18, 20 seeds, 7 rarities: GPU hours"),
    }


class _LazyProfiles(Mapping):
    """``SWEEP_PROFILES`` without importing torch until a profile is read."""

    def _d(self) -> dict[str, SweepProfile]:
        if not hasattr(self, "_cache"):
            self._cache = _profiles()
        return self._cache

    def __getitem__(self, key: str) -> SweepProfile:
        return self._d()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("tiny", "cpu", "paper"))

    def __len__(self) -> int:
        return 3


#: Named sweeps: ``"tiny"`` (tests, seconds), ``"cpu"`` (the book, minutes), ``"paper"`` (GPU).
SWEEP_PROFILES: Mapping[str, SweepProfile] = _LazyProfiles()


def get_sweep_profile(name: str, **config_overrides: Any) -> SweepProfile:
    """The named :class:`SweepProfile`, its training config edited by ``config_overrides``.

    Parameters
    ----------
    name : {"tiny", "cpu", "paper"}
    **config_overrides
        Passed to :meth:`ift_core.train.TrainConfig.replace` (``n_models=3``, ``epochs=5``...).

    Examples
    --------
    >>> get_sweep_profile("tiny").config.data.name
    'digits'
    >>> get_sweep_profile("cpu", n_models=3).config.n_models
    3
    """
    if name not in tuple(SWEEP_PROFILES):
        raise ValueError(f"unknown sweep profile name={name!r}; choose one of {tuple(SWEEP_PROFILES)}")
    prof = SWEEP_PROFILES[name]
    if config_overrides:
        prof = dataclasses.replace(prof, config=prof.config.replace(**config_overrides))
    return prof


# --------------------------------------------------------------------------------------------
# Training on the sub-population sets
# --------------------------------------------------------------------------------------------
def _train_and_evaluate(config: Any, *, backend: str, device: Any, n_workers: int | None,
                        ray_address: str | None, ray_resources: Mapping[str, Any] | None,
                        progress: bool) -> tuple[Any, dict[str, Any]]:
    """The ensemble of ``config`` (its data config carries the construction) and its cached
    activations on the ordinary and the rich test set."""
    from .activations import ensemble_activations
    from .train import train_ensemble

    ray_kw: dict[str, Any] = {}
    if backend == "ray":
        ray_kw = {"ray_address": ray_address, "ray_resources": ray_resources}
    ens = train_ensemble(config, backend=backend, device=device, progress=progress, n_workers=n_workers, **ray_kw)
    acts = {name: ensemble_activations(ens, split=split, device=device, progress=False,
                                       backend="ray" if backend == "ray" else "local", **ray_kw)
            for name, split in zip(TEST_SETS, ("test", "subpopulation"))}
    return ens, acts


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------
def _point_stats(preds: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    correct = (preds == labels[None, :]).sum(axis=0)
    m = preds.shape[0]
    err = gde.test_error(preds, labels)
    dis = gde.disagreement(preds)
    return {
        "error": err,
        "disagreement": dis,
        "gap": dis - err,
        "cace": gde.cace(preds, labels, n_classes),
        "ece": gde.ece(gde.vote_ensemble(preds, n_classes), labels),
        "split_fraction": float(np.mean((correct > 0) & (correct < m))),
    }


def _bootstrap(preds: np.ndarray, labels: np.ndarray, n_classes: int, *, n_boot: int, level: float,
               seed: Sequence[int]) -> dict[str, tuple[float, float]]:
    """Percentile intervals over points; all statistics share each resample (so the gap is paired)."""
    rng = np.random.default_rng(list(seed))
    n = labels.shape[0]
    reps = {k: np.empty(n_boot) for k in _METRICS}
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        stats = _point_stats(preds[:, idx], labels[idx], n_classes)
        for k in _METRICS:
            reps[k][b] = stats[k]
    lo, hi = 0.5 - level / 2, 0.5 + level / 2
    return {k: (float(np.quantile(v, lo)), float(np.quantile(v, hi))) for k, v in reps.items()}


def _tensor_view(acts_ord: np.ndarray, acts_sub: np.ndarray, *, n_components: int, corr_threshold: float,
                 enrichment: float, min_rate: float) -> tuple[dict[str, float], Any]:
    """How many seeds hold the sub-population's features, from the interaction tensor.

    The tensor is built on the ordinary and the rich test points together (2N points). A
    feature is a *sub-population feature* when it is present in at least ``min_rate`` of the
    transformed points and at least ``enrichment`` times as often on them as on ordinary
    points. For those, ``models_per_feature`` counts the seeds that have the feature.
    """
    from .tensor import build_interaction_tensor, numerical_rank

    acts = np.concatenate([acts_ord, acts_sub], axis=1)
    # n_components, lowered to the smallest model's numerical rank (dead units lower it)
    k = int(max(1, min(n_components, numerical_rank(acts).min())))
    it = build_interaction_tensor(acts, n_components=k, corr_threshold=corr_threshold, progress=False)
    n = acts_ord.shape[1]
    pf = it.point_feature_matrix()
    rate_ord, rate_sub = pf[:n].mean(axis=0), pf[n:].mean(axis=0)
    is_sub = (rate_sub >= min_rate) & (rate_sub >= enrichment * rate_ord)
    mpf = it.models_per_feature()
    m = it.n_models
    sub_m = mpf[is_sub]
    other = mpf[~is_sub]
    view = {
        "tensor_components": k,
        "tensor_features": it.n_features,
        "tensor_sub_features": int(is_sub.sum()),
        "tensor_models_per_sub_feature": float(sub_m.mean()) if sub_m.size else float("nan"),
        "tensor_sub_features_all_seeds": float(np.mean(sub_m == m)) if sub_m.size else float("nan"),
        "tensor_sub_features_some_seeds": float(np.mean(sub_m < m)) if sub_m.size else float("nan"),
        "tensor_models_per_other_feature": float(other.mean()) if other.size else float("nan"),
    }
    return view, it


@dataclass
class SweepResult:
    """What :func:`subpopulation_sweep` measured.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (rarity, test set); columns documented in :func:`subpopulation_sweep`.
    predictions : dict
        ``(rarity, test_set) -> (M, N)`` int predictions.
    labels : dict
        ``test_set -> (N,)`` labels (the same for every rarity).
    tensors : dict
        ``rarity -> InteractionTensor`` on the 2N ordinary + rich test points (if computed).
    config : TrainConfig
    transform : str
    seed : int
    meta : dict
        ``n_train``, ``n_classes``, ``n_models``, ``class_names``, ``level``, ``n_boot``.
    """

    table: pd.DataFrame
    predictions: dict
    labels: dict
    tensors: dict
    config: Any
    transform: str
    seed: int
    meta: dict = field(default_factory=dict)

    @property
    def rarities(self) -> list[int]:
        return sorted(int(r) for r in self.table["rarity"].unique())


def _check_rarities(rarities: Any) -> tuple[int, ...]:
    try:
        rs = tuple(rarities)
    except TypeError:
        raise ValueError(f"rarities must be a sequence of non-negative integers, got {rarities!r}") from None
    if not rs:
        raise ValueError("rarities must not be empty")
    for r in rs:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
            raise ValueError(f"rarities must be non-negative integers, got {r!r} in {rarities!r}")
    if len(set(rs)) != len(rs):
        raise ValueError(f"rarities must be distinct, got {rarities!r}")
    return tuple(sorted(int(r) for r in rs))


def subpopulation_sweep(config: Any, *, rarities: Sequence[int] = (0, 1, 2, 5, 10, 50), transform: str = "rotate90",
                        n_models: int | None = None, seed: int = 0, n_boot: int = 200, level: float = 0.95,
                        tensor: bool = True, n_components: int = 20, corr_threshold: float = 0.5,
                        enrichment: float = 2.0, min_rate: float = 0.05, backend: str = "auto",
                        device: Any = None, n_workers: int | None = None, ray_address: str | None = None,
                        ray_resources: Mapping[str, Any] | None = None, progress: bool = True) -> SweepResult:
    """Train a DiffInit ensemble per sub-population rarity and measure GDE on both test sets.

    For each ``r`` in ``rarities`` the data config gets the construction
    (``subpopulation_per_class=r``, ``subpopulation_transform=transform``,
    ``subpopulation_seed=seed``: ``r`` training images per class replaced by their transformed
    versions) and :func:`ift_core.train.train_ensemble` trains the ``n_models`` seeds on it, in
    the ordinary ensemble cache (``r = 0`` is the ordinary ensemble of ``config``, shared with
    the rest of the book). Their predictions and activations come from
    :func:`ift_core.activations.ensemble_activations` on the ordinary test set (``"test"``)
    and the rich one (``"subpopulation"``: every test image transformed), cached beside the
    checkpoints.

    Parameters
    ----------
    config : ift_core.train.TrainConfig
        The ordinary setting. Its ``mode`` must be ``"diffinit"``.
    rarities : sequence of int
        Sub-population examples per class in training.
    transform : str
        The construction, e.g. ``"rotate90"`` or ``"rotate90+invert"``
        (:func:`ift_core.data.parse_subpopulation_transform`).
    n_models : int, optional
        Override ``config.n_models`` (at least 2).
    seed : int
        Which training images form the sub-population (nested in ``r``), and the bootstrap.
    n_boot, level : int, float
        Bootstrap replicates over points and the coverage of the intervals.
    tensor : bool
        Build the interaction tensor per rarity (columns ``tensor_*``; NaN when False).
    n_components, corr_threshold : int, float
        Tensor settings: K principal components per model (lowered below the activations'
        rank where needed) and an absolute |corr| threshold (book/definitions.md §6: K = 20, 0.5).
    enrichment, min_rate : float
        Which features count as the sub-population's (see below).
    backend : str
        Passed to :func:`ift_core.train.train_ensemble` (every backend works, ``"processes"``
        and ``"ray"`` included); ``"ray"`` also extracts the activations on the cluster.
    device, n_workers, ray_address, ray_resources
        Passed to :func:`ift_core.train.train_ensemble` (``device`` also to
        :func:`ift_core.activations.ensemble_activations`).
    progress : bool
        tqdm bars.

    Returns
    -------
    SweepResult
        ``table`` has one row per (rarity, test set) with columns

        * ``rarity`` (r per class), ``train_share`` (share of training points in the
          sub-population), ``test_set`` (``"ordinary"``/``"subpopulation"``), ``n_models``,
          ``n_points``, ``train_accuracy`` (mean over seeds, on their own training set);
        * ``error``, ``disagreement`` (mean over distinct pairs), ``gap`` (= dis - err),
          ``cace`` and ``ece`` (of the vote ensemble), ``split_fraction`` (share of points
          that some but not all seeds classify correctly), each with ``<name>_low`` and
          ``<name>_high``: percentile bootstrap over test points (paired: one resample for
          all statistics, seeded). The intervals hold the seeds fixed;
        * ``same_wrong_rate`` (P(same wrong class | both wrong), chance ``1/(K-1)``),
          ``counterfactual_disagreement`` (wrong answers replaced by uniform wrong classes,
          :func:`ift_core.gde.counterfactual_disagreement`), ``all_wrong``, ``all_right``;
        * the tensor's view, per rarity (repeated on both rows): the tensor is built on the
          N ordinary and N transformed test points together; a *sub-population feature* is one
          present in at least ``min_rate`` of the transformed points and ``enrichment`` times
          as often there as on ordinary points. ``tensor_sub_features`` counts them,
          ``tensor_models_per_sub_feature`` is the mean number of seeds holding one,
          ``tensor_sub_features_all_seeds`` / ``_some_seeds`` the shares held by every seed /
          by fewer, ``tensor_models_per_other_feature`` the same mean for all other features.
          A count of seeds sharing a feature, not a proof that the feature is rotation.

    Raises
    ------
    ValueError
        Bad rarities (negative, repeated, above the smallest class), unknown transform,
        a mode other than diffinit, fewer than 2 models.

    Examples
    --------
    >>> prof = get_sweep_profile("tiny")
    >>> res = subpopulation_sweep(prof.config, rarities=(0, 5), progress=False)  # doctest: +SKIP
    >>> res.table[["rarity", "test_set", "error", "disagreement"]]  # doctest: +SKIP
    """
    from .data import load_data, parse_subpopulation_transform
    from .train import BACKENDS, TrainConfig

    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.mode != "diffinit":
        raise ValueError(f"config.mode={config.mode!r}: the sweep trains DiffInit ensembles (one shared "
                         "training set per rarity); use mode='diffinit'")
    if n_models is not None:
        config = config.replace(n_models=n_models)
    if config.n_models < 2:
        raise ValueError(f"n_models must be >= 2 (disagreement needs pairs), got {config.n_models}")
    rs = _check_rarities(rarities)
    parse_subpopulation_transform(transform)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    seed = check_int(seed, "seed", minimum=0)
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    level = check_real(level, "level", minimum=0, maximum=1, open_low=True, open_high=True,
                       remedy="e.g. 0.95 for a 95 % interval")
    tensor = check_bool(tensor, "tensor")
    progress = check_bool(progress, "progress")

    # The ordinary sets (whatever construction config.data may already carry).
    config = config.replace(subpopulation_per_class=0, subpopulation_transform=transform, subpopulation_seed=seed)
    train, test = load_data(config.data)
    k = train.n_classes
    smallest = int(np.bincount(train.y.numpy(), minlength=k).min())
    if rs[-1] > smallest:
        raise ValueError(f"rarities={rs}: {rs[-1]} per class exceeds the smallest training class ({smallest})")
    rows, preds_out, labels_out, tensors = [], {}, {}, {}
    bar = tqdm(rs, desc=f"sub-population sweep ({transform})", disable=not progress)
    for r in bar:
        ens, ev = _train_and_evaluate(config.replace(subpopulation_per_class=r), backend=backend, device=device,
                                      n_workers=n_workers, ray_address=ray_address, ray_resources=ray_resources,
                                      progress=progress)
        view: dict[str, float] = {}
        if tensor:
            view, it = _tensor_view(ev["ordinary"].activations, ev["subpopulation"].activations,
                                    n_components=n_components, corr_threshold=corr_threshold,
                                    enrichment=enrichment, min_rate=min_rate)
            tensors[r] = it
        for ti, name in enumerate(TEST_SETS):
            preds, y = ev[name].preds, ev[name].labels
            preds_out[(r, name)] = preds
            labels_out[name] = y
            stats = _point_stats(preds, y, k)
            ci = _bootstrap(preds, y, k, n_boot=int(n_boot), level=float(level), seed=(seed, r, ti))
            correct = (preds == y[None, :]).sum(axis=0)
            # exactly r per class are sub-population points (ift_core.data.add_subpopulation)
            row = {"rarity": r, "train_share": r * k / len(train), "test_set": name,
                   "n_models": preds.shape[0], "n_points": preds.shape[1],
                   "train_accuracy": float(np.mean(ens.train_accuracy))}
            for key in _METRICS:
                row[key] = stats[key]
                row[f"{key}_low"], row[f"{key}_high"] = ci[key]
            row.update(same_wrong_rate=gde.same_wrong_rate(preds, y),
                       counterfactual_disagreement=gde.counterfactual_disagreement(preds, y, k),
                       all_wrong=float(np.mean(correct == 0)), all_right=float(np.mean(correct == preds.shape[0])))
            for key in ("tensor_components", "tensor_features", "tensor_sub_features", "tensor_models_per_sub_feature",
                        "tensor_sub_features_all_seeds", "tensor_sub_features_some_seeds",
                        "tensor_models_per_other_feature"):
                row[key] = view.get(key, float("nan"))
            rows.append(row)
    table = pd.DataFrame(rows)
    meta = {"n_train": len(train), "n_classes": k, "n_models": config.n_models,
            "class_names": list(train.classes), "level": float(level), "n_boot": int(n_boot)}
    return SweepResult(table=table, predictions=preds_out, labels=labels_out, tensors=tensors, config=config,
                       transform=transform, seed=seed, meta=meta)


# --------------------------------------------------------------------------------------------
# The framework's prediction
# --------------------------------------------------------------------------------------------
@dataclass
class FrameworkPrediction:
    """The framework's numbers for a sweep.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (rarity, test set): ``rarity``, ``test_set``, ``train_share`` (the rare
        group's weight in training), ``alpha_d`` (the test set's share of ordinary-type points),
        ``p_systematic``, ``error``, ``disagreement``, ``gap`` (dis - err) and ``split_fraction``
        (share of points some but not all of ``n_models`` seeds get right).
    params : dict
        The framework's parameters; ``fitted`` lists those fitted to measured *errors*.
    models : dict
        ``rarity -> FeatureModel`` at ``p_systematic = 0`` (the row's beta is applied per row).
    """

    table: pd.DataFrame
    params: dict
    models: dict


def _beta(rate: float, n_classes: int) -> float:
    if rate is None or not np.isfinite(rate) or n_classes < 3:
        return 0.0
    return theory.beta_from_same_wrong_rate(float(rate), n_classes)


def _model_at(share: float, *, n_train: int, n_classes: int, t_d: int, n_d: int, p_d: float, t_r: int,
              n_r: int, p_r: float, beta: float, training: str) -> Any:
    groups = [theory.Group(t_d, n_d, p_d, 1.0 - share, "ordinary"),
              theory.Group(t_r, n_r, p_r, share, "subpopulation")]
    return theory.FeatureModel.from_groups(groups, n_classes=n_classes, n_train=n_train, training=training,
                                           p_systematic=beta)


def _split_fraction(fm: Any, n_models: int) -> np.ndarray:
    """Per group: P(some but not all of ``n_models`` seeds are right), shared training.

    Given the number b of a point's features seen in training, each seed knows the point with
    ``1 - (1 - p)^b`` independently and is right with ``c_b = 1 - (1 - p)^b (1 - (1 - beta)/K)``;
    average ``1 - c_b^M - (1 - c_b)^M`` over the law of b (:meth:`FeatureModel.seen_distribution`).
    (Private here; a candidate for ift_core.theory.)
    """
    law = fm.seen_distribution()
    g = (1.0 - fm.p_systematic) / fm.n_classes
    out = np.empty(len(fm.groups))
    for s, grp in enumerate(fm.groups):
        b = np.arange(law.shape[1])
        c = 1.0 - (1.0 - grp.p) ** b * (1.0 - g)
        out[s] = float(np.sum(law[s] * (1.0 - c ** n_models - (1.0 - c) ** n_models)))
    return out


def _predict_rows(spec: list[dict], *, n_train: int, n_classes: int, n_models: int, t_d: int, n_d: int,
                  p_d: float, t_r: int, n_r: int, p_r: float, transfer: float, training: str,
                  with_split: bool = True) -> list[dict]:
    out = []
    for row in spec:
        fm = _model_at(row["train_share"], n_train=n_train, n_classes=n_classes, t_d=t_d, n_d=n_d, p_d=p_d,
                       t_r=t_r, n_r=n_r, p_r=p_r, beta=row["p_systematic"], training=training)
        pt = fm.point_types()
        alpha = 1.0 if row["test_set"] == "ordinary" else transfer
        w = np.array([alpha, 1.0 - alpha])
        acc = float(w @ pt["accuracy"].to_numpy())
        agr = float(w @ pt["agreement"].to_numpy())
        res = {**row, "alpha_d": alpha, "error": 1.0 - acc, "disagreement": 1.0 - agr, "gap": acc - agr}
        if with_split:
            res["split_fraction"] = (float(w @ _split_fraction(fm, n_models)) if training == "shared"
                                     else float("nan"))
        out.append(res)
    return out


def framework_prediction(sweep: SweepResult | Sequence[int], *, n_train: int | None = None,
                         n_classes: int | None = None, n_models: int | None = None, t_d: int = 10, n_d: int = 3,
                         p_d: float | None = None, t_r: int | None = None, n_r: int = 3, p_r: float | None = None,
                         transfer: float | None = None, p_systematic: float | str = "measured",
                         training: str = "shared",
                         t_r_grid: Sequence[int] = (1, 2, 3, 5, 10, 20, 50, 100, 300, 1000)) -> FrameworkPrediction:
    """The framework's prediction for a sub-population sweep (the sub-population = the rare group).

    Mapping (``book/definitions.md`` §3): the ordinary images are the dominant group (``t_d``, ``n_d``,
    ``p_d``), the sub-population the rare group (``t_r``, ``n_r``, ``p_r``); ``n_train`` is the
    training-set size and rarity ``r`` gives the rare group's training weight ``r K / n_train``
    (so ``r`` sub-population points per class are expected in training, exactly as built). Each
    test set fixes the test mix: ``alpha_d = 1`` on the ordinary test set and ``alpha_d =
    transfer`` on the rich one (the share of transformed test points that still carry ordinary
    features; ``0`` takes the framework literally: a transformed point carries only rare
    features). ``p_systematic`` (beta) comes from the measured same-wrong-class rate
    (:func:`ift_core.theory.beta_from_same_wrong_rate`).

    Parameters left ``None`` are fitted, by least squares, to the measured *test errors* only
    (``p_d`` on the ordinary rows; then ``t_r`` over ``t_r_grid``, ``p_r`` and ``transfer`` on the
    rich rows), so disagreement, the gap and the split fraction are predictions, not fits.

    Parameters
    ----------
    sweep : SweepResult or sequence of int
        A measured sweep, or bare rarities (then ``n_train``, ``n_classes``, ``n_models``,
        ``p_d``, ``t_r``, ``p_r`` must be given, ``transfer`` defaults to 0 and
        ``p_systematic`` must be a number).
    n_train, n_classes, n_models : int, optional
        Taken from the sweep when given one.
    t_d, n_d, n_r : int
        Fixed group sizes (defaults: 10 dominant features per class, 3 per point).
    p_d, t_r, p_r, transfer : optional
        Fixed values, or None to fit.
    p_systematic : float or {"measured", "pooled"}
        A number; ``"measured"``: beta from each row's own same-wrong-class rate; ``"pooled"``:
        one beta from the mean rate over all rows.
    training : {"shared", "independent"}
        DiffInit sweeps share the training set.
    t_r_grid : sequence of int
        Candidates for ``t_r`` when it is fitted.

    Returns
    -------
    FrameworkPrediction

    Examples
    --------
    >>> pred = framework_prediction([0, 10], n_train=1000, n_classes=10, n_models=5, p_d=0.6, t_r=20,
    ...                             p_r=0.5, p_systematic=0.0)
    >>> list(pred.table["test_set"])
    ['ordinary', 'subpopulation', 'ordinary', 'subpopulation']
    >>> float(pred.table["error"].iloc[1]) > float(pred.table["error"].iloc[3])  # rarer is harder
    True
    """
    from scipy.optimize import minimize_scalar

    if training not in theory.TRAINING:
        raise ValueError(f"training must be one of {theory.TRAINING}, got {training!r}")
    measured = isinstance(sweep, SweepResult)
    if measured:
        tab = sweep.table
        n_train = int(sweep.meta["n_train"]) if n_train is None else n_train
        n_classes = int(sweep.meta["n_classes"]) if n_classes is None else n_classes
        n_models = int(sweep.meta["n_models"]) if n_models is None else n_models
        rates = tab["same_wrong_rate"].to_numpy(float)
        base = tab[["rarity", "test_set", "train_share"]].to_dict("records")
    else:
        rs = _check_rarities(sweep)
        missing = [n for n, v in (("n_train", n_train), ("n_classes", n_classes), ("n_models", n_models),
                                  ("p_d", p_d), ("t_r", t_r), ("p_r", p_r)) if v is None]
        if missing:
            raise ValueError(f"without a measured sweep, give {missing} (nothing to fit them to)")
        if isinstance(p_systematic, str):
            raise ValueError(f"p_systematic={p_systematic!r} needs a measured sweep; give a number")
        transfer = 0.0 if transfer is None else transfer
        base = [{"rarity": r, "test_set": t, "train_share": r * n_classes / n_train} for r in rs for t in TEST_SETS]
        rates = np.full(len(base), np.nan)
    for name, v in (("n_train", n_train), ("n_classes", n_classes), ("n_models", n_models)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (2 if name != "n_train" else 1):
            raise ValueError(f"{name} must be a positive integer (n_classes, n_models >= 2), got {v!r}")
    for name, v in (("p_d", p_d), ("p_r", p_r), ("transfer", transfer)):
        if v is not None:
            check_real(v, name, minimum=0, maximum=1, remedy="a probability, or None to fit it")
    if max(row["train_share"] for row in base) > 1.0:
        raise ValueError(f"a rarity exceeds n_train / n_classes = {n_train / n_classes:g} per class")

    if isinstance(p_systematic, str):
        if p_systematic == "measured":
            betas = [_beta(x, n_classes) for x in rates]
        elif p_systematic == "pooled":
            pooled = float(np.nanmean(rates)) if np.isfinite(rates).any() else float("nan")
            betas = [_beta(pooled, n_classes)] * len(base)
        else:
            raise ValueError(f"p_systematic must be a number, 'measured' or 'pooled', got {p_systematic!r}")
    else:
        b = check_real(p_systematic, "p_systematic", minimum=0, maximum=1,
                       remedy="a probability, 'measured' or 'pooled'")
        betas = [b] * len(base)
    spec = [{**row, "p_systematic": beta} for row, beta in zip(base, betas)]
    fitted: list[str] = []
    common = dict(n_train=n_train, n_classes=n_classes, n_models=n_models, t_d=t_d, n_d=n_d, n_r=n_r,
                  training=training)

    if measured:
        meas = tab["error"].to_numpy(float)
        ordi = [i for i, row in enumerate(spec) if row["test_set"] == "ordinary"]
        rich = [i for i, row in enumerate(spec) if row["test_set"] == "subpopulation"]
        if p_d is None:
            def loss_d(p: float) -> float:
                pr = _predict_rows([spec[i] for i in ordi], p_d=p, t_r=t_r or 10, p_r=p_r if p_r is not None else 0.5,
                                   transfer=1.0, with_split=False, **common)
                return float(sum((row["error"] - meas[i]) ** 2 for row, i in zip(pr, ordi)))
            p_d = float(minimize_scalar(loss_d, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-5}).x)
            fitted.append("p_d")

        def rich_fit(tr: int, pr_: float) -> tuple[float, float]:
            """Loss and best transfer for (t_r, p_r) on the rich rows (transfer in closed form)."""
            rows_r = [spec[i] for i in rich]
            e_r = np.array([x["error"] for x in _predict_rows(rows_r, p_d=p_d, t_r=tr, p_r=pr_, transfer=0.0,
                                                             with_split=False, **common)])
            e_d = np.array([x["error"] for x in _predict_rows(rows_r, p_d=p_d, t_r=tr, p_r=pr_, transfer=1.0,
                                                             with_split=False, **common)])
            y = meas[rich]
            if transfer is None:
                d = e_d - e_r
                phi = float(np.clip(np.dot(y - e_r, d) / np.dot(d, d), 0.0, 1.0)) if np.dot(d, d) > 0 else 0.0
            else:
                phi = float(transfer)
            pred = phi * e_d + (1 - phi) * e_r
            return float(np.sum((pred - y) ** 2)), phi

        if t_r is None or p_r is None or transfer is None:
            t_cands = [int(t_r)] if t_r is not None else [int(t) for t in t_r_grid if t >= n_r]
            p_cands = [float(p_r)] if p_r is not None else list(np.linspace(0.0, 1.0, 21))
            best = (math.inf, None, None, None)
            for tr in t_cands:
                for pr_ in p_cands:
                    loss, phi = rich_fit(tr, pr_)
                    if loss < best[0] - 1e-15:
                        best = (loss, tr, pr_, phi)
            _, tr_best, pr_best, phi_best = best
            if p_r is None:  # refine around the grid optimum
                res = minimize_scalar(lambda x: rich_fit(tr_best, x)[0], bounds=(max(0.0, pr_best - 0.05),
                                      min(1.0, pr_best + 0.05)), method="bounded", options={"xatol": 1e-5})
                if res.fun <= best[0]:
                    pr_best = float(res.x)
                phi_best = rich_fit(tr_best, pr_best)[1]
            fitted += [n for n, v in (("t_r", t_r), ("p_r", p_r), ("transfer", transfer)) if v is None]
            t_r, p_r, transfer = tr_best, pr_best, phi_best

    rows = _predict_rows(spec, p_d=float(p_d), t_r=int(t_r), p_r=float(p_r), transfer=float(transfer), **common)
    table = pd.DataFrame(rows)[["rarity", "test_set", "train_share", "alpha_d", "p_systematic", "error",
                                "disagreement", "gap", "split_fraction"]]
    params = {"n_train": n_train, "n_classes": n_classes, "n_models": n_models, "t_d": t_d, "n_d": n_d,
              "p_d": float(p_d), "t_r": int(t_r), "n_r": n_r, "p_r": float(p_r), "transfer": float(transfer),
              "p_systematic": p_systematic if isinstance(p_systematic, str) else float(p_systematic),
              "training": training, "fitted": fitted}
    models = {int(r): _model_at(share, n_train=n_train, n_classes=n_classes, t_d=t_d, n_d=n_d, p_d=float(p_d),
                                t_r=int(t_r), n_r=n_r, p_r=float(p_r), beta=0.0, training=training)
              for r, share in {row["rarity"]: row["train_share"] for row in spec}.items()}
    return FrameworkPrediction(table=table, params=params, models=models)


def compare_with_framework(sweep: SweepResult, prediction: FrameworkPrediction, *,
                           split_tolerance: float = 0.05) -> tuple[pd.DataFrame, list[str]]:
    """Where measurement and the framework's prediction agree, row by row, and in words.

    A predicted error, disagreement or gap *agrees* when it lies inside the measured
    bootstrap interval; the gap's *sign* agrees when the prediction and the measurement are
    on the same side of 0 (a measured interval that contains 0 counts as either side). The
    split fraction agrees within its interval widened by ``split_tolerance``.

    Returns
    -------
    table : pandas.DataFrame
        ``rarity, test_set`` and for each of ``error, disagreement, gap, split_fraction``:
        ``<m>_measured, <m>_low, <m>_high, <m>_predicted, <m>_agrees``; plus
        ``gap_sign_measured`` (-1, 0 = interval contains 0, +1), ``gap_sign_predicted``,
        ``gap_sign_agrees``.
    lines : list of str
        A plain statement of agreement and disagreement.

    Examples
    --------
    >>> table, lines = compare_with_framework(res, framework_prediction(res))  # doctest: +SKIP
    >>> print("\\n".join(lines))  # doctest: +SKIP
    """
    if not isinstance(sweep, SweepResult) or not isinstance(prediction, FrameworkPrediction):
        raise ValueError("compare_with_framework needs a SweepResult and a FrameworkPrediction")
    m = sweep.table.merge(prediction.table, on=["rarity", "test_set"], suffixes=("", "_pred"))
    if len(m) != len(sweep.table):
        raise ValueError("the prediction does not cover the sweep's (rarity, test_set) rows")
    out = m[["rarity", "test_set"]].copy()
    for k in ("error", "disagreement", "gap", "split_fraction"):
        lo, hi = m[f"{k}_low"].to_numpy(), m[f"{k}_high"].to_numpy()
        pred = m[f"{k}_pred"].to_numpy()
        tol = split_tolerance if k == "split_fraction" else 0.0
        out[f"{k}_measured"], out[f"{k}_low"], out[f"{k}_high"] = m[k], lo, hi
        out[f"{k}_predicted"] = pred
        out[f"{k}_agrees"] = (pred >= lo - tol) & (pred <= hi + tol)
    meas_sign = np.where(m["gap_low"] > 0, 1, np.where(m["gap_high"] < 0, -1, 0))
    pred_sign = np.sign(m["gap_pred"].to_numpy()).astype(int)
    out["gap_sign_measured"] = meas_sign
    out["gap_sign_predicted"] = pred_sign
    out["gap_sign_agrees"] = (meas_sign == 0) | (meas_sign == pred_sign)

    p = prediction.params
    n = len(out)
    lines = [
        f"framework: t_d={p['t_d']} n_d={p['n_d']} p_d={p['p_d']:.3f} | t_r={p['t_r']} n_r={p['n_r']} "
        f"p_r={p['p_r']:.3f} | transfer={p['transfer']:.2f} | beta from same-wrong rate ({p['p_systematic']}); "
        f"fitted to errors: {', '.join(p['fitted']) or 'nothing'}",
    ]
    for k, what in (("error", "error (fitted where parameters were fitted)"), ("disagreement", "disagreement"),
                    ("gap", "gap dis - err"), ("split_fraction", "share of points some-but-not-all seeds get right")):
        ok = out[f"{k}_agrees"].to_numpy()
        worst = int(np.argmax(np.abs(out[f"{k}_predicted"] - out[f"{k}_measured"]).to_numpy()))
        lines.append(f"{what}: prediction inside the measured interval on {int(ok.sum())}/{n} rows; largest miss "
                     f"at r={out['rarity'].iloc[worst]} {out['test_set'].iloc[worst]}: measured "
                     f"{out[f'{k}_measured'].iloc[worst]:.3f}, predicted {out[f'{k}_predicted'].iloc[worst]:.3f}")
    ok_sign = out["gap_sign_agrees"].to_numpy()
    lines.append(f"sign of the gap: agrees on {int(ok_sign.sum())}/{n} rows"
                 + ("" if ok_sign.all() else "; differs at " + ", ".join(
                     f"r={r} {t}" for r, t in zip(out["rarity"][~ok_sign], out["test_set"][~ok_sign]))))
    rich = out[out["test_set"] == "subpopulation"]
    pos_meas = rich[rich["gap_sign_measured"] > 0]["rarity"].tolist()
    pos_pred = rich[rich["gap_sign_predicted"] > 0]["rarity"].tolist()
    lines.append(f"rich test set, disagreement significantly above error (the framework's rare-feature break) at "
                 f"r = {pos_meas or 'none'}; predicted above error at r = {pos_pred or 'none'}")
    return out, lines


def gde_breaks(sweep: SweepResult, *, test_set: str = "subpopulation") -> pd.DataFrame:
    """Per rarity: does disagreement differ significantly from error on ``test_set``, and which way?

    Significance is the paired bootstrap interval of the gap (dis - err) excluding 0; the
    seeds are held fixed, so this is about the test points, not about new seeds.

    Returns
    -------
    pandas.DataFrame with ``rarity, error, disagreement, gap, gap_low, gap_high,
    counterfactual_disagreement, same_wrong_rate, breaks`` (bool) and ``direction``
    (``"dis > err"``, ``"dis < err"`` or ``"holds"``).

    Examples
    --------
    >>> gde_breaks(res)[["rarity", "gap", "direction"]]  # doctest: +SKIP
    """
    if not isinstance(sweep, SweepResult):
        raise ValueError(f"sweep must be a SweepResult, got {type(sweep).__name__}")
    if test_set not in TEST_SETS:
        raise ValueError(f"unknown test_set={test_set!r}; choose one of {TEST_SETS}")
    t = sweep.table[sweep.table["test_set"] == test_set]
    out = t[["rarity", "error", "disagreement", "gap", "gap_low", "gap_high", "counterfactual_disagreement",
             "same_wrong_rate"]].reset_index(drop=True)
    out["breaks"] = (out["gap_low"] > 0) | (out["gap_high"] < 0)
    out["direction"] = np.where(out["gap_low"] > 0, "dis > err", np.where(out["gap_high"] < 0, "dis < err", "holds"))
    return out
