"""Monte Carlo simulation of the framework's generative story, vectorised over replicates.

:func:`simulate` samples one experiment (its ground truth kept in a :class:`Simulation`),
:func:`monte_carlo` the expected metrics with standard errors, and
:func:`compare_with_simulation` sets them against the closed forms.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..internal import check_bool, check_count, check_int, check_memory, pair_agreement, vote_counts
from ._common import TRAINING, _check_seed
from .model import FeatureModel, Group, _check_model

__all__ = ["Simulation", "simulate", "monte_carlo", "compare_with_simulation", "random_models"]


def _simulation_bytes(model: "FeatureModel", n_reps: int, n_models: int, n_points: int) -> float:
    """Bytes of the largest arrays one batch of :func:`_simulate_batch` holds at once."""
    F, K = model.n_features, model.n_classes
    nmax = max(g.n for g in model.groups)
    n_sets = n_reps if model.training == "shared" else n_reps * n_models
    # training points' features (int64), seen and learned features, test points, per-model answers
    # (and the (R, M, P, K) vote comparison of the agreement)
    train = 0.0 if model.n_train == math.inf else float(n_sets) * model.n_train * (2 * nmax + 3) * 8
    return (train + float(n_sets) * (F + 1) + float(n_reps) * n_models * F * 9
            + float(n_reps) * n_points * (nmax + 2) * 8 + float(n_reps) * n_models * n_points * (nmax + 25 + K))


def _sample_subsets(rng: np.random.Generator, rows: int, t: int, n: int) -> np.ndarray:
    """``rows`` uniform ``n``-subsets of ``range(t)``, shape ``(rows, n)``.

    Robert Floyd's algorithm, vectorised over rows (O(rows n^2)) when ``n`` is small;
    a random permutation prefix (O(rows t log t)) otherwise.
    """
    if rows == 0:
        return np.zeros((0, n), np.int64)
    if n * n <= 4 * t or n <= 8:
        out = np.empty((rows, n), np.int64)
        for j, J in enumerate(range(t - n, t)):
            r = rng.integers(0, J + 1, size=rows)
            dup = (out[:, :j] == r[:, None]).any(1)
            out[:, j] = np.where(dup, J, r)
        return out
    return np.argsort(rng.random((rows, t)), axis=1)[:, :n].astype(np.int64)


def _group_layout(model: FeatureModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature ids: group-major, then class, then index: ``offset_g + k * t_g + i``."""
    K = model.n_classes
    t = np.array([g.t for g in model.groups])
    offset = np.concatenate([[0], np.cumsum(K * t)[:-1]])
    fgroup = np.repeat(np.arange(len(t)), K * t)
    fclass = np.concatenate([np.repeat(np.arange(K), g.t) for g in model.groups])
    return t, offset, fgroup, fclass


def _sample_points(rng: np.random.Generator, model: FeatureModel, size: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, types and padded feature ids (``-1`` pad; shape ``(size, max_n)``) of ``size`` points."""
    K = model.n_classes
    w = np.array([g.weight for g in model.groups])
    nmax = max(g.n for g in model.groups)
    t, offset, _, _ = _group_layout(model)
    labels = rng.integers(0, K, size=size)
    types = rng.choice(len(w), size=size, p=w / w.sum())
    feats = np.full((size, nmax), -1, np.int64)
    for s, g in enumerate(model.groups):
        idx = np.flatnonzero(types == s)
        local = _sample_subsets(rng, idx.size, g.t, g.n)
        feats[idx, : g.n] = offset[s] + labels[idx, None] * g.t + local
    return labels, types, feats


def _simulate_batch(model: FeatureModel, rng: np.random.Generator, n_reps: int, n_models: int,
                    n_points: int) -> dict[str, np.ndarray]:
    """``n_reps`` independent experiments at once (leading axis R)."""
    R, M, P = n_reps, n_models, n_points
    K, F = model.n_classes, model.n_features
    _, _, fgroup, _ = _group_layout(model)
    n_sets = R if model.training == "shared" else R * M
    N = model.n_train
    p_feat = np.array([g.p for g in model.groups])[fgroup]
    if N == math.inf:
        # every feature with a chance to be seen is seen: those of groups with weight > 0
        w_feat = np.array([g.weight for g in model.groups])[fgroup]
        seen = np.broadcast_to(w_feat > 0, (n_sets, F)).copy()
    else:
        _, _, tfeats = _sample_points(rng, model, n_sets * int(N))
        seen = np.zeros((n_sets, F + 1), bool)
        rows = np.repeat(np.arange(n_sets), int(N))
        cols = np.where(tfeats < 0, F, tfeats)
        seen[rows[:, None], cols] = True
        seen = seen[:, :F]
    seen = seen.reshape(R, 1 if model.training == "shared" else M, F)
    learned = seen & (rng.random((R, M, F)) < p_feat)
    labels, types, feats = _sample_points(rng, model, R * P)
    labels, types = labels.reshape(R, P), types.reshape(R, P)
    feats = feats.reshape(R, P, -1)
    lp = np.concatenate([learned, np.zeros((R, M, 1), bool)], axis=2)
    idx = np.where(feats < 0, F, feats).reshape(R, 1, -1)
    knows = np.take_along_axis(lp, np.broadcast_to(idx, (R, M, idx.shape[2])), axis=2)
    knows = knows.reshape(R, M, P, -1).any(-1)
    wrong = (labels + 1 + rng.integers(0, K - 1, size=(R, P))) % K
    systematic = rng.random((R, M, P)) < model.p_systematic
    guess = rng.integers(0, K, size=(R, M, P))
    preds = np.where(knows, labels[:, None, :], np.where(systematic, wrong[:, None, :], guess))
    return dict(predictions=preds, labels=labels, types=types, features=feats, learned=learned,
                seen=np.broadcast_to(seen, (R, M, F)), knows=knows, wrong=wrong)


def _rep_metrics(preds: np.ndarray, labels: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-replicate accuracy and mean pairwise agreement (distinct pairs) of ``(R, M, P)`` preds."""
    acc = (preds == labels[:, None, :]).mean(axis=(1, 2))
    return acc, pair_agreement(vote_counts(preds, K), preds.shape[1]).mean(-1)


@dataclass
class Simulation:
    """One sampled experiment of the framework: the ground truth behind the predictions.

    Attributes
    ----------
    model : FeatureModel
    predictions : ndarray (M, N) int64
    labels : ndarray (N,) int64
    point_group : ndarray (N,) int64
        Type (group index) of each test point.
    point_features : ndarray (N, max_n) int64
        Feature ids of each point, ``-1`` padded.
    wrong_class : ndarray (N,) int64
        The point's designated systematic wrong answer.
    learned : ndarray (M, F) bool
        Each model's learned features.
    seen : ndarray (M, F) bool
        Features in each model's training set (identical rows under shared training).
    knows : ndarray (M, N) bool
        Whether model m learned at least one feature of point n.
    feature_group, feature_class : ndarray (F,) int64

    Examples
    --------
    >>> sim = FeatureModel().simulate(4, 50, seed=1)
    >>> omega, groups = sim.planted_omega()
    >>> omega.shape[:2], bool((omega.any(-1) == sim.knows).all())
    ((4, 50), True)
    """

    model: FeatureModel
    predictions: np.ndarray
    labels: np.ndarray
    point_group: np.ndarray
    point_features: np.ndarray
    wrong_class: np.ndarray
    learned: np.ndarray
    seen: np.ndarray
    knows: np.ndarray
    feature_group: np.ndarray
    feature_class: np.ndarray

    @property
    def n_models(self) -> int:
        return int(self.predictions.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.predictions.shape[1])

    def feature_matrix(self) -> np.ndarray:
        """``(N, F)`` bool: which features each test point carries."""
        F = self.feature_group.size
        out = np.zeros((self.n_points, F + 1), bool)
        cols = np.where(self.point_features < 0, F, self.point_features)
        out[np.arange(self.n_points)[:, None], cols] = True
        return out[:, :F]

    def planted_omega(self, *, drop_absent: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The interaction tensor this ground truth plants: ``omega[m, n, f] = f in point n and learned by m``.

        Parameters
        ----------
        drop_absent : bool
            Keep only features that at least one model learned and one point carries
            (what an interaction tensor can see); otherwise all ``F`` features.

        Returns
        -------
        omega : ndarray (M, N, T) bool
        groups : ndarray (T,) int64
            Group of each kept feature (``groups == 0`` is the dominant mask).
        """
        drop_absent = check_bool(drop_absent, "drop_absent")
        X = self.feature_matrix()
        omega = X[None, :, :] & self.learned[:, None, :]
        keep = omega.any(axis=(0, 1)) if drop_absent else np.ones(X.shape[1], bool)
        return omega[:, :, keep], self.feature_group[keep]

    def accuracy(self) -> float:
        """Mean accuracy over models and points."""
        return float((self.predictions == self.labels[None]).mean())

    def agreement(self) -> float:
        """Mean agreement over distinct pairs of models (needs n_models >= 2)."""
        if self.n_models < 2:
            raise ValueError(f"agreement is over distinct pairs of models: it needs n_models >= 2, this simulation "
                             f"has n_models={self.n_models}; simulate more models")
        _, agr = _rep_metrics(self.predictions[None], self.labels[None], self.model.n_classes)
        return float(agr[0])


def simulate(model: FeatureModel, *, n_models: int, n_points: int, seed: int = 0) -> Simulation:
    """Sample one experiment: training set(s), learned features, test points, predictions.

    Parameters
    ----------
    model : FeatureModel
    n_models : int
        Number of models M (seeds).
    n_points : int
        Number of test points.
    seed : int
        Same seed -> bit-identical result.

    Returns
    -------
    Simulation

    Examples
    --------
    >>> sim = simulate(FeatureModel(n_classes=3), n_models=3, n_points=20, seed=0)
    >>> int(sim.labels.max()) < 3
    True
    """
    _check_model(model)
    check_count(n_models, "n_models")
    check_count(n_points, "n_points")
    seed = _check_seed(seed)
    check_memory(_simulation_bytes(model, 1, int(n_models), int(n_points)),
                 f"simulate(n_models={n_models}, n_points={n_points}, n_train={model.n_train})",
                 remedy="lower n_models, n_points or the model's n_train")
    rng = np.random.default_rng(seed)
    out = _simulate_batch(model, rng, 1, int(n_models), int(n_points))
    _, _, fgroup, fclass = _group_layout(model)
    return Simulation(model=model, predictions=out["predictions"][0].astype(np.int64),
                      labels=out["labels"][0].astype(np.int64), point_group=out["types"][0].astype(np.int64),
                      point_features=out["features"][0], wrong_class=out["wrong"][0].astype(np.int64),
                      learned=out["learned"][0], seen=np.ascontiguousarray(out["seen"][0]),
                      knows=out["knows"][0], feature_group=fgroup.astype(np.int64),
                      feature_class=fclass.astype(np.int64))


def monte_carlo(model: FeatureModel, *, n_reps: int = 200, n_models: int = 4, n_points: int = 500,
                seed: int = 0, chunk: int | None = None) -> dict[str, float]:
    """Monte Carlo estimates of accuracy, agreement and gap, with standard errors.

    ``n_reps`` independent experiments (each: fresh training set(s), ``n_models`` models,
    ``n_points`` test points) are simulated, vectorised over replicates. The training
    set is shared within an experiment, so points are correlated; the standard error is
    therefore the spread of the replicate means over ``sqrt(n_reps)``, which the closed
    forms (averaged over training sets) must match.

    Returns
    -------
    dict
        ``accuracy, agreement, gap`` and ``*_se``, plus ``n_reps``.

    Examples
    --------
    >>> mc = monte_carlo(FeatureModel(), n_reps=20, n_models=3, n_points=100, seed=0)
    >>> sorted(k for k in mc if k.endswith("_se"))
    ['accuracy_se', 'agreement_se', 'gap_se']
    """
    _check_model(model)
    check_count(n_reps, "n_reps", minimum=2)
    check_count(n_models, "n_models", minimum=2)
    check_count(n_points, "n_points")
    seed = _check_seed(seed)
    if chunk is not None:
        chunk = check_int(chunk, "chunk", minimum=1, remedy="replicates simulated at once; None picks it")
    check_memory(_simulation_bytes(model, chunk or 1, int(n_models), int(n_points)),
                 f"monte_carlo(n_models={n_models}, n_points={n_points}, n_train={model.n_train}, chunk={chunk})",
                 remedy="lower n_models, n_points, chunk or the model's n_train")
    rng = np.random.default_rng(seed)
    if chunk is None:  # keep each batch's arrays around a few million entries
        F = model.n_features
        per_rep = n_models * (F + n_points * (max(g.n for g in model.groups) + model.n_classes))
        if model.n_train != math.inf:
            per_rep += (n_models if model.training == "independent" else 1) * (F + int(model.n_train) * 4)
        chunk = max(1, int(4e6 // max(per_rep, 1)))
    batches = (_simulate_batch(model, rng, min(chunk, n_reps - start), n_models, n_points)
               for start in range(0, n_reps, chunk))
    return _replicate_summary(((b["predictions"], b["labels"]) for b in batches), model.n_classes)


def _replicate_summary(batches: Iterable[tuple[np.ndarray, np.ndarray]], n_classes: int) -> dict[str, float]:
    """Means and standard errors over replicates of batches of ``(predictions, labels)``.

    Each replicate is one independent experiment, so the standard error of a mean is the spread
    of the replicate means over ``sqrt(n_reps)``. Batches are consumed in order (they may draw
    from one generator).
    """
    accs, agrs = [], []
    for preds, labels in batches:
        a, g = _rep_metrics(preds, labels, n_classes)
        accs.append(a)
        agrs.append(g)
    acc, agr = np.concatenate(accs), np.concatenate(agrs)
    gap = acc - agr
    se = lambda x: float(x.std(ddof=1) / math.sqrt(x.size))  # noqa: E731
    return {"accuracy": float(acc.mean()), "agreement": float(agr.mean()), "gap": float(gap.mean()),
            "accuracy_se": se(acc), "agreement_se": se(agr), "gap_se": se(gap), "n_reps": int(acc.size)}


def compare_with_simulation(models: Sequence[FeatureModel], *, n_reps: int = 200, n_models: int = 4,
                            n_points: int = 500, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Closed form against Monte Carlo for each model: a tidy table (one row per model and metric).

    Columns ``setting, metric, closed, simulated, se, z`` with
    ``z = (simulated - closed) / se``.

    Examples
    --------
    >>> df = compare_with_simulation([FeatureModel()], n_reps=10, n_points=50, progress=False)
    >>> sorted(df["metric"])
    ['accuracy', 'agreement', 'gap']
    """
    from tqdm import tqdm

    progress = check_bool(progress, "progress")
    if isinstance(models, FeatureModel) or not isinstance(models, (Sequence, np.ndarray)):
        raise ValueError(f"models must be a sequence of FeatureModel, got {type(models).__name__}; "
                         "wrap a single model in a list")
    for fm in models:
        _check_model(fm)
    rows = []
    for i, fm in enumerate(tqdm(list(models), desc="monte carlo", disable=not progress)):
        closed = fm.metrics()
        mc = monte_carlo(fm, n_reps=n_reps, n_models=n_models, n_points=n_points, seed=seed + i)
        for k in ("accuracy", "agreement", "gap"):
            se = mc[f"{k}_se"]
            rows.append({"setting": i, "metric": k, "closed": closed[k], "simulated": mc[k], "se": se,
                         "z": (mc[k] - closed[k]) / se if se > 0 else (0.0 if mc[k] == closed[k] else np.inf),
                         "n_classes": fm.n_classes, "n_groups": len(fm.groups), "training": fm.training,
                         "p_systematic": fm.p_systematic})
    return pd.DataFrame(rows)


def random_models(n: int, *, seed: int = 0, n_groups: int | Sequence[int] = 2,
                  n_classes: int | Sequence[int] = (2, 3, 5), training: Sequence[str] = TRAINING,
                  p_systematic: Sequence[float] = (0.0, 0.5), n_train: Sequence[int] = (20, 50, 200, 1000)
                  ) -> list[FeatureModel]:
    """``n`` random settings spread over the regimes (for tests, notebooks and benchmarks).

    Counts are kept moderate so that a Monte Carlo run of each is cheap; the settings
    cycle through every combination of ``n_groups, n_classes, training, p_systematic``
    (all appear once ``n`` reaches the number of combinations).

    Examples
    --------
    >>> ms = random_models(6, seed=0)
    >>> {m.training for m in ms} == {"shared", "independent"}
    True
    """
    n = check_int(n, "n", minimum=0)
    rng = np.random.default_rng(_check_seed(seed))
    groups_, classes_ = (np.atleast_1d(np.asarray(v, dtype=object)).tolist() for v in (n_groups, n_classes))
    for name, values, low in (("n_groups", groups_, 1), ("n_classes", classes_, 2)):
        for v in values:
            check_int(v, name, minimum=low, remedy="an integer or a sequence of integers")
    regimes = list(itertools.product(groups_, classes_, list(training), list(p_systematic)))
    out = []
    for i in range(n):
        G, K, tr, beta = regimes[i % len(regimes)]
        G = int(G)
        t = rng.integers(2, 60, size=G)
        nn = np.minimum(rng.integers(1, 6, size=G), t)
        p = rng.uniform(0.1, 0.95, size=G)
        w = rng.dirichlet(np.full(G, 2.0))
        groups = [Group(int(t[g]), int(nn[g]), float(p[g]), float(w[g]), f"group{g}") for g in range(G)]
        groups[-1] = dataclasses.replace(groups[-1], weight=max(0.0, 1.0 - sum(g.weight for g in groups[:-1])))
        out.append(FeatureModel.from_groups(groups, n_classes=int(K), n_train=int(n_train[i % len(n_train)]),
                                            training=tr, p_systematic=float(beta)))
    return out
