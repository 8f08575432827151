"""Chapter 11's measured study: a rare sub-population swept from absent to common on real images.

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
features. :func:`gde_breaks` reads off, per rarity, whether and which way GDE breaks.

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
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import gde
from ..internal import check_bool, check_choice, check_int, check_real
from ..tensor import TensorOptions, build_interaction_tensor

__all__ = [
    "TEST_SETS",
    "SWEEP_TENSOR_OPTIONS",
    "SweepProfile",
    "SWEEP_PROFILES",
    "get_sweep_profile",
    "SweepResult",
    "subpopulation_sweep",
    "gde_breaks",
]

#: The two test sets of every rarity: the ordinary test set and the one rich in the sub-population.
TEST_SETS = ("ordinary", "subpopulation")

#: The tensor of the sweep (book/definitions.md §6): K = 20 components per model (lowered to the
#: smallest numerical rank) and an absolute |corr| threshold of 0.5.
SWEEP_TENSOR_OPTIONS = TensorOptions(n_components=20, cap_at_rank=True, gamma_corr=0.5)

_METRICS = ("error", "disagreement", "gap", "cace", "ece", "split_fraction")
# The gap's exact parts (ift_core.gde.gap_decomposition) kept per cell.
_DECOMPOSITION = ("both_wrong", "same_wrong", "gap_identity", "both_wrong_independent", "dependence",
                  "break_even_both_wrong", "counterfactual_gap")


def _boot_seed(seed: int, r: int, test_set: int) -> int:
    """One non-negative integer seed per (sweep seed, rarity, test set) for the two-level bootstrap."""
    return int(np.random.SeedSequence([seed, r, test_set, 2]).generate_state(1)[0])


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
    feature_construction : str
        The feature-only family's construction (``"texture,..."``,
        :class:`ift_core.data.TextureSpec`).
    feature_rarities : tuple of int
        Its rarities (feature-only points per class added to training).
    full_rarities, full_feature_rarities : tuple of int
        The denser grids of a full run (empty: the same as the default ones).
    natural_constructions : tuple of str
        More natural variants of ``feature_construction`` (other backgrounds, smaller or
        fainter textures, several per class), each run at ``natural_rarities``.
    natural_rarities : tuple of int
    """

    config: Any
    rarities: tuple[int, ...]
    transform: str = "rotate90"
    next_constructions: tuple[str, ...] = ("rotate90+invert",)
    note: str = ""
    feature_construction: str = "texture"
    feature_rarities: tuple[int, ...] = ()
    full_rarities: tuple[int, ...] = ()
    full_feature_rarities: tuple[int, ...] = ()
    natural_constructions: tuple[str, ...] = ()
    natural_rarities: tuple[int, ...] = ()


def _profiles() -> dict[str, SweepProfile]:
    from ..train import get_profile

    return {
        # Seconds: 4 MLPs on scikit-learn's digits (1347 training images, ~135 per class).
        "tiny": SweepProfile(get_profile("tiny", n_models=4, epochs=15), rarities=(0, 2, 10),
                             note="digits + MLP, 4 seeds, 3 rarities: well under a minute on one core",
                             feature_construction="texture,size=3", feature_rarities=(0, 2, 10),
                             natural_constructions=("texture,size=3,per_class=2",), natural_rarities=(10,)),
        # Minutes on 2 cores: 10 small CNNs per rarity on 500 Fashion-MNIST images (50 per class),
        # trained to (near) zero training error (batch 25, lr 0.05, 20 epochs), for both
        # families: transformed images replacing r per class (rare, up to 12 of 50) and
        # feature-only points joining the 500 (r per class).
        "cpu": SweepProfile(get_profile("cpu", n_train=500, n_test=1000, width=16, n_models=10, epochs=20,
                                        batch_size=25, lr=0.05),
                            rarities=(0, 2, 5),
                            note="Fashion-MNIST 500/1000 + small CNN (width 16), 10 seeds per rarity",
                            feature_construction="texture", feature_rarities=(0, 2, 3, 5, 8),
                            full_rarities=(0, 1, 2, 3, 5, 8, 12, 20, 30),
                            full_feature_rarities=(0, 1, 2, 3, 5, 8, 12, 20, 30),
                            natural_constructions=("texture,background=digits", "texture,size=4",
                                                   "texture,alpha=0.5", "texture,per_class=3",
                                                   "texture,position=random"),
                            natural_rarities=(5,)),
        # The paper's regime: 20 ResNet18 on all of CIFAR-10 (5000 per class) per rarity. Needs
        # the CIFAR-10 files and a GPU (7 rarities x 20 seeds x 30 epochs).
        "paper": SweepProfile(get_profile("paper"), rarities=(0, 5, 10, 25, 50, 100, 500),
                              note="CIFAR-10 + ResNet18, 20 seeds, 7 rarities: GPU hours",
                              feature_construction="texture", feature_rarities=(0, 5, 10, 25, 50, 100, 500),
                              natural_constructions=("texture,size=4", "texture,per_class=3"),
                              natural_rarities=(25,)),
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
    name = check_choice(name, "name", tuple(SWEEP_PROFILES), remedy="a sweep profile")
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
    from ..activations import ensemble_activations
    from ..train import train_ensemble

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


def _tensor_view(acts_ord: np.ndarray, acts_sub: np.ndarray, *, options: TensorOptions,
                 enrichment: float, min_rate: float) -> tuple[dict[str, float], Any]:
    """How many seeds hold the sub-population's features, from the interaction tensor.

    The tensor is built on the ordinary and the rich test points together (2N points). A
    feature is a *sub-population feature* when it is present in at least ``min_rate`` of the
    transformed points and at least ``enrichment`` times as often on them as on ordinary
    points. For those, ``models_per_feature`` counts the seeds that have the feature.
    """
    acts = np.concatenate([acts_ord, acts_sub], axis=1)
    it = build_interaction_tensor(acts, options, progress=False)
    n = acts_ord.shape[1]
    pf = it.point_feature_matrix()
    rate_ord, rate_sub = pf[:n].mean(axis=0), pf[n:].mean(axis=0)
    is_sub = (rate_sub >= min_rate) & (rate_sub >= enrichment * rate_ord)
    mpf = it.models_per_feature()
    m = it.n_models
    sub_m = mpf[is_sub]
    other = mpf[~is_sub]
    view = {
        "tensor_components": it.n_components,
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
    for i, r in enumerate(rs):
        check_int(r, f"rarities[{i}]", minimum=0, remedy="sub-population examples per class in training")
    if len(set(rs)) != len(rs):
        raise ValueError(f"rarities must be distinct, got {rarities!r}")
    return tuple(sorted(int(r) for r in rs))


def subpopulation_sweep(config: Any, *, rarities: Sequence[int] = (0, 1, 2, 5, 10, 50), transform: str = "rotate90",
                        n_models: int | None = None, seed: int = 0, n_boot: int = 200, level: float = 0.95,
                        tensor: bool = True, tensor_options: TensorOptions | None = None,
                        n_components: int | str | None = None, corr_threshold: float | None = None,
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
        (:func:`ift_core.data.parse_subpopulation_transform`), or a feature-only construction
        ``"texture,..."`` (:class:`ift_core.data.TextureSpec`: ``r`` points per class showing
        only a class-coded texture join the training set; any ``r``).
    n_models : int, optional
        Override ``config.n_models`` (at least 2).
    seed : int
        Which training images form the sub-population (nested in ``r``), and the bootstrap.
    n_boot, level : int, float
        Bootstrap replicates over points and the coverage of the intervals.
    tensor : bool
        Build the interaction tensor per rarity (columns ``tensor_*``; NaN when False).
    tensor_options : TensorOptions, optional
        The tensor's options (default :data:`SWEEP_TENSOR_OPTIONS`: K = 20 components per model,
        lowered to the activations' rank where needed, and an absolute |corr| threshold of 0.5,
        book/definitions.md §6); every option can be varied.
    n_components, corr_threshold : optional
        Change those two options only (``corr_threshold`` is ``gamma_corr``), as before
        ``tensor_options`` existed.
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
        * the gap taken apart (:func:`ift_core.gde.gap_decomposition`: ``gap = error - (1 +
          same_wrong) both_wrong`` exactly): ``both_wrong`` (B, P(two seeds both wrong)),
          ``same_wrong`` (s, the same as ``same_wrong_rate``), ``gap_identity``,
          ``both_wrong_independent`` (B if seeds erred independently), ``dependence`` (their
          ratio), ``break_even_both_wrong`` (dis > err iff B is below it) and
          ``counterfactual_gap`` (s replaced by 1/(K-1));
        * two-level intervals (seeds resampled, then points:
          :func:`ift_core.gde.two_level_bootstrap`, ``n_boot`` replicates) as ``<name>_low2``
          and ``<name>_high2`` for ``error``, ``disagreement``, ``gap``, ``both_wrong``,
          ``same_wrong`` and ``split_fraction``: these also count the luck of the seeds;
        * the tensor's view, per rarity (repeated on both rows; ``tensor_components`` is the K
          used): the tensor is built on the
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
    from ..data import check_construction, is_texture_construction, load_data
    from ..train import BACKENDS, TrainConfig

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
    transform = check_construction(transform)
    backend = check_choice(backend, "backend", BACKENDS)
    seed = check_int(seed, "seed", minimum=0)
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    level = check_real(level, "level", minimum=0, maximum=1, open_low=True, open_high=True,
                       remedy="e.g. 0.95 for a 95 % interval")
    tensor = check_bool(tensor, "tensor")
    progress = check_bool(progress, "progress")
    if tensor_options is not None and not isinstance(tensor_options, TensorOptions):
        raise ValueError(f"tensor_options must be a TensorOptions (or None for SWEEP_TENSOR_OPTIONS), got "
                         f"{type(tensor_options).__name__}")
    tensor_options = (tensor_options or SWEEP_TENSOR_OPTIONS).replace(
        **{k: v for k, v in (("n_components", n_components), ("gamma_corr", corr_threshold)) if v is not None})

    # The ordinary sets (whatever construction config.data may already carry).
    config = config.replace(subpopulation_per_class=0, subpopulation_transform=transform, subpopulation_seed=seed)
    train, test = load_data(config.data)
    k = train.n_classes
    smallest = int(np.bincount(train.y.numpy(), minlength=k).min())
    if rs[-1] > smallest and not is_texture_construction(transform):  # feature-only points are added, not taken
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
                                    options=tensor_options,
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
            parts = gde.gap_decomposition(preds, y, k)
            row.update({key: parts[key] for key in _DECOMPOSITION})
            ci2 = gde.two_level_bootstrap(preds, y, n_boot=int(n_boot), level=float(level), seed=_boot_seed(seed, r, ti))
            for key in gde.BOOTSTRAP_STATISTICS:
                row[f"{key}_low2"], row[f"{key}_high2"] = float(ci2.loc[key, "low"]), float(ci2.loc[key, "high"])
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


def gde_breaks(sweep: SweepResult, *, test_set: str = "subpopulation", interval: str = "points") -> pd.DataFrame:
    """Per rarity: does disagreement differ significantly from error on ``test_set``, and which way?

    Significance is the paired bootstrap interval of the gap (dis - err) excluding 0. With
    ``interval="points"`` the seeds are held fixed, so this is about the test points, not about
    new seeds; ``interval="two_level"`` uses the intervals over seeds and points
    (``gap_low2``, ``gap_high2``), which also count the luck of the seeds drawn.

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
    test_set = check_choice(test_set, "test_set", TEST_SETS)
    interval = check_choice(interval, "interval", ("points", "two_level"))
    t = sweep.table[sweep.table["test_set"] == test_set]
    out = t[["rarity", "error", "disagreement", "gap", "gap_low", "gap_high", "counterfactual_disagreement",
             "same_wrong_rate"]].reset_index(drop=True)
    if interval == "two_level":
        out["gap_low"], out["gap_high"] = t["gap_low2"].to_numpy(), t["gap_high2"].to_numpy()
    out["breaks"] = (out["gap_low"] > 0) | (out["gap_high"] < 0)
    out["direction"] = np.where(out["gap_low"] > 0, "dis > err", np.where(out["gap_high"] < 0, "dis < err", "holds"))
    return out
