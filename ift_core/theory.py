"""The conceptual framework of Jiang, Baek & Kolter (ICLR 2024, §5), solved exactly.

This module implements the framework as ``book/definitions.md`` §3 formalises it, plus the
extensions that page asks for (any number of classes, any number of feature
groups, systematic wrong answers), a vectorised Monte Carlo simulation of the
same generative story, parameter sweeps (the paper's Figure 4), GDE-breaking
constructions with the vote ensemble's calibration, and a moment-matching
:func:`fit` of the framework to a measured interaction tensor.

The generative story
--------------------
* ``K`` classes. Feature *group* ``g`` (``g = 0`` "dominant", ``g = 1`` "rare"
  in the paper's two-group case) owns ``t_g`` features per class, so there are
  ``K * sum_g t_g`` features in all, each belonging to one class and one group.
* A point has label ``y`` uniform on the ``K`` classes. With probability
  ``w_g`` (the group's ``weight``; ``alpha_d`` and ``alpha_r = 1 - alpha_d`` in
  the paper) it is a point of type ``g``: it carries ``n_g`` distinct features of
  group ``g`` and class ``y``, drawn uniformly without replacement.
* A model is trained on ``N = n_train`` such points. It learns every feature of
  group ``g`` that occurs at least once in its training set with probability
  ``p_g``, independently. Models share one training set (``training="shared"``,
  like DiffInit) or each draw their own (``"independent"``, like DiffData).
* A model predicts the true label of a test point if it learned at least one of
  the point's features. Otherwise it answers the point's designated wrong class
  ``w != y`` (uniform over the other ``K - 1`` classes, fixed per point) with
  probability ``beta = p_systematic``, and else a class drawn uniformly from all
  ``K``, independently between models.

Closed forms (derived in :meth:`FeatureModel.E_s` and :func:`expected_metrics`)
-------------------------------------------------------------------------------
For a point of type ``s`` with ``n = n_s``, ``t = t_s``::

    rho_s(b) = (w_s / K) (1 - C(t - b, n) / C(t, n))
    E_s(z)   = sum_b C(n, b) (1 - z)^b z^(n - b) (1 - rho_s(b))^N
    miss_s   = E_s(1 - p_s)
    both_s   = E_s((1 - p_s)^2)  (shared)   or   miss_s^2  (independent)
    E[acc]   = sum_s w_s [1 - miss_s (1 - (1 - beta)/K)]
    E[agr]   = sum_s w_s [1 - 2 miss_s + both_s + 2 (miss_s - both_s)(1 - beta)/K
                          + both_s (beta^2 + (1 - beta^2)/K)]

The *gap* reported everywhere is ``E[dis] - E[err] = E[acc] - E[agr]``: positive
when disagreement exceeds test error (the vote ensemble is under-confident),
zero under GDE, negative only when ``p_systematic > 0``.

Examples
--------
>>> from ift_core.theory import FeatureModel
>>> fm = FeatureModel(n_classes=2, t_d=10, t_r=1000, n_d=3, n_r=3, p_d=0.9, p_r=0.3,
...                   alpha_d=0.7, n_train=1000)
>>> round(fm.expected_accuracy(), 4), round(fm.expected_agreement(), 4)
(0.8934, 0.8682)
>>> fm.gde_gap() >= 0
True
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import gammaln, xlogy

from .internal import (
    as_float_array,
    as_int_array,
    check_bool,
    check_choice,
    check_int,
    check_labels,
    check_memory,
    check_real,
)
from .gde import same_wrong_rate  # re-exported: the framework reads p_systematic from it

__all__ = [
    "Group",
    "FeatureModel",
    "Simulation",
    "FitResult",
    "TRAINING",
    "PARAMETERS",
    "expected_metrics",
    "evaluate",
    "grid",
    "sweep",
    "sweeps",
    "coupled_sweep",
    "coupling_study",
    "models_from_grid",
    "simulate",
    "monte_carlo",
    "compare_with_simulation",
    "random_models",
    "vote_calibration",
    "vote_cace",
    "empirical_vote_calibration",
    "gde_constructions",
    "same_wrong_rate",
    "beta_from_same_wrong_rate",
    "fit",
]

#: Training regimes: one shared training set (DiffInit-like) or one per model (DiffData-like).
TRAINING = ("shared", "independent")

#: Parameters of the two-group (dominant / rare) model, in the paper's names.
PARAMETERS = ("n_classes", "t_d", "t_r", "n_d", "n_r", "p_d", "p_r", "alpha_d", "n_train", "p_systematic")

_INT_PARAMS = ("n_classes", "t_d", "t_r", "n_d", "n_r", "n_train")
_METRICS = ("accuracy", "agreement", "error", "disagreement", "gap")


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------
_MAX_COUNT = 2**53  # counts enter float arithmetic: above this they are no longer exact


def _check_count(value: Any, name: str, *, minimum: int = 1, allow_inf: bool = False) -> int | float:
    """A whole number in [minimum, 2**53] (a whole float is accepted); ``inf`` where allowed."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if allow_inf and value == math.inf:
        return math.inf
    if not isinstance(value, (int, np.integer)) and (not math.isfinite(value) or value != int(value)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if value > _MAX_COUNT:
        raise ValueError(f"{name} must be at most 2**53 (exact in floating point), got {value!r}"
                         + ("; use math.inf for the limit of infinitely many" if allow_inf else ""))
    return int(value)


def _check_model(model: Any) -> "FeatureModel":
    if not isinstance(model, FeatureModel):
        raise ValueError(f"model must be a FeatureModel, got {type(model).__name__}")
    return model


def _check_seed(seed: Any) -> int:
    return check_int(seed, "seed", minimum=0, remedy="a seed is a non-negative integer")


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


def _check_prob(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    value = float(value)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return value


def _check_training(training: Any) -> str:
    if training not in TRAINING:
        raise ValueError(f"training must be one of {TRAINING}, got {training!r}")
    return training


def _check_z(z: Any) -> np.ndarray:
    """Arguments of a generating function ``E_s(z)``: numbers in [0, 1] (probabilities)."""
    z = as_float_array(z, name="z").astype(float)
    if z.size and (np.isnan(z).any() or z.min() < 0 or z.max() > 1):
        raise ValueError(f"z must hold numbers in [0, 1] (E_s(z) = E[z^B] is a generating function at a "
                         f"probability), got {z.ravel()[:5]!r}")
    return z


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """One feature group: ``t`` features per class, ``n`` per point, learned with ``p``.

    Parameters
    ----------
    t : int
        Features of this group per class (``t_d``, ``t_r`` in the paper).
    n : int
        Distinct features a point of this group carries, ``1 <= n <= t``.
    p : float
        Probability that a model learns a feature of this group that occurs in its
        training set.
    weight : float
        Share of points of this type (``alpha_d``, ``alpha_r``).
    name : str
        A label for tables and plots.

    Examples
    --------
    >>> Group(t=10, n=3, p=0.9, weight=0.7, name="dominant").n
    3
    """

    t: int
    n: int
    p: float
    weight: float
    name: str = ""

    def __post_init__(self) -> None:
        label = self.name or "group"
        object.__setattr__(self, "t", _check_count(self.t, f"{label}.t"))
        object.__setattr__(self, "n", _check_count(self.n, f"{label}.n"))
        if self.n > self.t:
            raise ValueError(f"{label}.n must be <= {label}.t (a point carries distinct features), "
                             f"got n={self.n} > t={self.t}")
        object.__setattr__(self, "p", _check_prob(self.p, f"{label}.p"))
        object.__setattr__(self, "weight", _check_prob(self.weight, f"{label}.weight"))


class FeatureModel:
    """The framework of ``book/definitions.md`` §3: closed-form accuracy, agreement and GDE gap.

    The two-group (dominant / rare) constructor keeps the paper's names; any number
    of groups comes from :meth:`from_groups`. Instances are immutable; derive
    variants with :meth:`replace`.

    Parameters
    ----------
    n_classes : int
        Number of classes ``K >= 2`` (paper: 2).
    t_d, t_r : int
        Dominant / rare features per class.
    n_d, n_r : int
        Features carried by a dominant / rare point (``n_d <= t_d``, ``n_r <= t_r``).
    p_d, p_r : float
        Probability that a model learns a dominant / rare feature seen in training.
    alpha_d : float
        Share of dominant points (``alpha_r = 1 - alpha_d``).
    n_train : int or math.inf
        Training-set size ``N``. ``math.inf`` gives the limit in which every feature is
        seen: ``miss_s = (1 - p_s)^n_s``.
    training : {"shared", "independent"}
        One training set for all models (DiffInit-like) or one per model (DiffData-like).
    p_systematic : float
        ``beta``: probability that a model which knows none of a point's features
        answers the point's designated wrong class instead of guessing uniformly.

    Raises
    ------
    ValueError
        Naming the parameter: ``n > t``, probabilities outside [0, 1], weights not
        summing to 1, non-integer counts, ``n_classes < 2``, unknown ``training``.

    Examples
    --------
    >>> fm = FeatureModel(n_classes=2, t_d=10, t_r=1000, n_d=3, n_r=3, p_d=0.9, p_r=0.3,
    ...                   alpha_d=0.7, n_train=1000)
    >>> fm.miss_s().round(4)
    array([0.001 , 0.7081])
    >>> fm.replace(p_r=0.9).gde_gap() < fm.gde_gap()
    True
    """

    def __init__(self, n_classes: int = 2, t_d: int = 10, t_r: int = 1000, n_d: int = 3, n_r: int = 3,
                 p_d: float = 0.9, p_r: float = 0.3, alpha_d: float = 0.7, n_train: int | float = 1000,
                 training: str = "shared", p_systematic: float = 0.0) -> None:
        alpha_d = _check_prob(alpha_d, "alpha_d")
        for name, value in (("t_d", t_d), ("t_r", t_r), ("n_d", n_d), ("n_r", n_r)):
            _check_count(value, name)
        if n_d > t_d:
            raise ValueError(f"n_d must be <= t_d, got n_d={n_d} > t_d={t_d}")
        if n_r > t_r:
            raise ValueError(f"n_r must be <= t_r, got n_r={n_r} > t_r={t_r}")
        p_d = _check_prob(p_d, "p_d")
        p_r = _check_prob(p_r, "p_r")
        groups = (Group(t_d, n_d, p_d, alpha_d, "dominant"), Group(t_r, n_r, p_r, 1.0 - alpha_d, "rare"))
        self._setup(groups, n_classes=n_classes, n_train=n_train, training=training,
                    p_systematic=p_systematic, two_group=True)

    # -- construction -----------------------------------------------------------------
    def _setup(self, groups: Sequence[Group], *, n_classes: Any, n_train: Any, training: Any,
               p_systematic: Any, two_group: bool) -> None:
        if isinstance(groups, (str, bytes, Mapping)) or not isinstance(groups, (Sequence, np.ndarray)):
            raise ValueError(f"groups must be a non-empty sequence of Group, got {groups!r}")
        groups = tuple(groups)
        if not groups or not all(isinstance(g, Group) for g in groups):
            raise ValueError(f"groups must be a non-empty sequence of Group, got {groups!r}")
        total = sum(g.weight for g in groups)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"group weights must sum to 1, got {total!r}")
        self._groups = groups
        self._n_classes = _check_count(n_classes, "n_classes", minimum=2)
        self._n_train = _check_count(n_train, "n_train", minimum=0, allow_inf=True)
        self._training = _check_training(training)
        self._p_systematic = _check_prob(p_systematic, "p_systematic")
        self._two_group = two_group

    @classmethod
    def from_groups(cls, groups: Sequence[Group | Mapping[str, Any]], *, n_classes: int = 2,
                    n_train: int | float = 1000, training: str = "shared",
                    p_systematic: float = 0.0) -> "FeatureModel":
        """The general model: any number of feature groups, each with its own t, n, p, weight.

        Parameters
        ----------
        groups : sequence of Group (or dicts with keys t, n, p, weight[, name])
            Their weights must sum to 1.
        n_classes, n_train, training, p_systematic
            As in :class:`FeatureModel`.

        Examples
        --------
        >>> fm = FeatureModel.from_groups([Group(5, 2, 0.95, 0.5), Group(50, 2, 0.6, 0.3),
        ...                                Group(500, 2, 0.3, 0.2)], n_classes=10, n_train=2000)
        >>> len(fm.groups), 0 <= fm.gde_gap() < 1
        (3, True)
        """
        if isinstance(groups, (str, bytes, Mapping)) or not isinstance(groups, (Sequence, np.ndarray)):
            raise ValueError(f"groups must be a non-empty sequence of Group or of dicts with keys t, n, p, weight, "
                             f"got {groups!r}")
        built = []
        fields = {f.name for f in dataclasses.fields(Group)}
        for i, g in enumerate(groups):
            if isinstance(g, Mapping):
                missing = sorted({"t", "n", "p", "weight"} - set(g))
                unknown = sorted(set(g) - fields, key=str)
                if missing or unknown:
                    raise ValueError(f"groups[{i}] must be a dict with keys t, n, p, weight (and optionally name), "
                                     f"got keys {sorted(g, key=str)}: "
                                     + (f"missing {missing}" if missing else f"unknown {unknown}"))
                g = Group(**{"name": f"group{i}", **g})
            built.append(g)
        self = cls.__new__(cls)
        self._setup(built, n_classes=n_classes, n_train=n_train, training=training,
                    p_systematic=p_systematic, two_group=False)
        return self

    # -- read-only parameters -----------------------------------------------------------
    groups = property(lambda self: self._groups, doc="The feature groups (tuple of Group).")
    n_classes = property(lambda self: self._n_classes, doc="Number of classes K.")
    n_train = property(lambda self: self._n_train, doc="Training-set size N (int or inf).")
    training = property(lambda self: self._training, doc='"shared" or "independent".')
    p_systematic = property(lambda self: self._p_systematic, doc="beta, the systematic-wrong-answer rate.")

    def _pair(self, attr: str, i: int) -> Any:
        if len(self._groups) != 2:
            raise AttributeError(f"dominant/rare names need exactly 2 groups, this model has {len(self._groups)}")
        return getattr(self._groups[i], attr)

    t_d = property(lambda self: self._pair("t", 0))
    t_r = property(lambda self: self._pair("t", 1))
    n_d = property(lambda self: self._pair("n", 0))
    n_r = property(lambda self: self._pair("n", 1))
    p_d = property(lambda self: self._pair("p", 0))
    p_r = property(lambda self: self._pair("p", 1))
    alpha_d = property(lambda self: self._pair("weight", 0))

    @property
    def n_features(self) -> int:
        """Total number of features, ``K * sum_g t_g``."""
        return self._n_classes * sum(g.t for g in self._groups)

    def params(self) -> dict[str, Any]:
        """The parameters as a flat dict (paper names for two groups, ``t_0, n_0, ...`` otherwise)."""
        out: dict[str, Any] = {"n_classes": self._n_classes}
        if len(self._groups) == 2:
            d, r = self._groups
            out.update(t_d=d.t, t_r=r.t, n_d=d.n, n_r=r.n, p_d=d.p, p_r=r.p, alpha_d=d.weight)
        else:
            for i, g in enumerate(self._groups):
                out.update({f"t_{i}": g.t, f"n_{i}": g.n, f"p_{i}": g.p, f"weight_{i}": g.weight})
        out.update(n_train=self._n_train, training=self._training, p_systematic=self._p_systematic)
        return out

    def replace(self, **changes: Any) -> "FeatureModel":
        """A copy with some parameters changed (paper names for two groups, or ``groups=...``).

        Examples
        --------
        >>> FeatureModel().replace(n_classes=3).n_classes
        3
        """
        common = {k: changes.pop(k, getattr(self, k)) for k in ("n_classes", "n_train", "training", "p_systematic")}
        if "groups" in changes:
            groups = changes.pop("groups")
            if changes:
                raise ValueError(f"cannot combine groups= with {sorted(changes)}")
            return FeatureModel.from_groups(groups, **common)
        if not changes:
            new = FeatureModel.__new__(FeatureModel)
            new._setup(self._groups, two_group=self._two_group, **common)
            return new
        if len(self._groups) != 2:
            raise ValueError(f"unknown parameters {sorted(changes)} for a {len(self._groups)}-group model; "
                             "pass groups=[...]")
        unknown = set(changes) - set(PARAMETERS)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; known: {PARAMETERS}")
        base = {k: getattr(self, k) for k in ("t_d", "t_r", "n_d", "n_r", "p_d", "p_r", "alpha_d")}
        base.update(changes)
        return FeatureModel(**common, **base)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"FeatureModel({inner})" if len(self._groups) == 2 else f"FeatureModel.from_groups({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureModel) and self.params() == other.params() and \
            self._groups == other._groups

    def __hash__(self) -> int:
        return hash((self._groups, self._n_classes, self._n_train, self._training, self._p_systematic))

    # -- arrays over groups ---------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        g = self._groups
        return dict(t=np.array([x.t for x in g], float), n=np.array([x.n for x in g], float),
                    p=np.array([x.p for x in g], float), weight=np.array([x.weight for x in g], float))

    # -- per-point-type quantities -------------------------------------------------------
    def rho_s(self, b: int | np.ndarray) -> np.ndarray:
        """Chance that one training point contains at least one of ``b`` given features.

        Derivation: a training point can contain a given feature of class ``y`` and group
        ``s`` only if it has label ``y`` (probability ``1/K``) and type ``s`` (``w_s``).
        Such a point carries a uniform ``n_s``-subset of the ``t_s`` features; it avoids
        ``b`` given ones with probability ``C(t_s - b, n_s) / C(t_s, n_s)``, computed as
        the product ``prod_{i<b} (t_s - n_s - i) / (t_s - i)`` (exact, no overflow). So::

            rho_s(b) = (w_s / K) (1 - C(t_s - b, n_s) / C(t_s, n_s)).

        Parameters
        ----------
        b : int or array of int
            Number of given features, ``0 <= b <= n_s``.

        Returns
        -------
        ndarray, shape ``(G,) + np.shape(b)``

        Examples
        --------
        >>> FeatureModel(t_d=10, n_d=3).rho_s(0)
        array([0., 0.])
        """
        a = self._arrays()
        b = as_float_array(b, name="b").astype(float)
        t_max = int(a["t"].max())
        if b.size and (np.isnan(b).any() or (b != np.round(b)).any() or b.min() < 0 or b.max() > t_max):
            raise ValueError(f"b must hold whole numbers in [0, {t_max}] (features a point can carry), got "
                             f"{b.ravel()[:5]!r}")
        bb = b.reshape(1, -1) if b.ndim else b.reshape(1, 1)
        nmax = int(max(np.max(bb), 0))
        r = _avoid_prob(a["t"], a["n"], nmax)  # (G, nmax+1)
        idx = np.broadcast_to(bb.astype(int), (len(self._groups), bb.shape[1]))
        rr = np.take_along_axis(r, idx, axis=1)
        out = a["weight"][:, None] / self._n_classes * (1.0 - rr)
        return out.reshape((len(self._groups),) + b.shape)

    def E_s(self, z: float | np.ndarray) -> np.ndarray:
        """``E[z^B_s]``: the generating function of the number of a point's features seen in training.

        Derivation: let ``B`` be the set of the point's ``n`` features that occur in the
        training set. Write ``z^|B| = prod_f (z + (1 - z) 1[f unseen])`` over the point's
        features and expand: ``z^|B| = sum_{A subset} (1 - z)^|A| z^(n - |A|) 1[all of A
        unseen]``. The training points are i.i.d. (and independent of the test point), so
        ``P(all of A unseen) = (1 - rho_s(|A|))^N``. Grouping the ``C(n, b)`` subsets of
        size ``b``::

            E_s(z) = sum_b C(n, b) (1 - z)^b z^(n - b) (1 - rho_s(b))^N.

        Every term is non-negative for ``z`` in [0, 1], so the sum is stable in floating
        point. Read probabilistically, it is ``E[(1 - rho_s(b))^N]`` with
        ``b ~ Binomial(n, 1 - z)``: mark each feature with probability ``1 - z``; the event
        is that no marked feature was seen in training.

        Parameters
        ----------
        z : float or array in [0, 1]

        Returns
        -------
        ndarray, shape ``(G,) + np.shape(z)``

        Examples
        --------
        >>> fm = FeatureModel(n_train=math.inf)
        >>> bool(np.allclose(fm.E_s(0.5), 0.5 ** np.array([fm.n_d, fm.n_r])))
        True
        """
        a = self._arrays()
        z = _check_z(z)
        zz = z.reshape(-1)[None, :]
        shape = (len(self._groups), zz.shape[1])
        out = _E(np.broadcast_to(a["t"][:, None], shape), np.broadcast_to(a["n"][:, None], shape),
                 zz, a["weight"][:, None], self._n_train, self._n_classes)
        return out.reshape((len(self._groups),) + z.shape)

    def miss_s(self) -> np.ndarray:
        """Per group: probability that one model knows none of a point's features.

        A model learns each seen feature with probability ``p_s`` independently, so given
        the seen set ``B`` it misses with probability ``(1 - p_s)^|B|``. Averaging over the
        training set: ``miss_s = E[(1 - p_s)^|B|] = E_s(1 - p_s)``.

        Examples
        --------
        >>> FeatureModel(p_d=1.0, p_r=1.0, n_train=math.inf).miss_s()
        array([0., 0.])
        """
        return self.E_s_at(1.0 - self._arrays()["p"])

    def both_s(self) -> np.ndarray:
        """Per group: probability that two distinct models both know none of a point's features.

        Shared training: given the common seen set ``B``, the two models learn
        independently, so both miss with ``(1 - p_s)^(2|B|)`` and
        ``both_s = E_s((1 - p_s)^2)``. Independent training: the two models' training
        sets are independent, so ``both_s = miss_s^2``. In both cases
        ``both_s <= miss_s`` (``E[X^2] <= E[X]`` for ``X`` in [0, 1]).

        Examples
        --------
        >>> fm = FeatureModel(training="independent")
        >>> bool(np.allclose(fm.both_s(), fm.miss_s() ** 2))
        True
        """
        p = self._arrays()["p"]
        if self._training == "independent":
            return self.miss_s() ** 2
        return self.E_s_at((1.0 - p) ** 2)

    def E_s_at(self, z: np.ndarray) -> np.ndarray:
        """``E_s`` evaluated at one ``z`` per group (``z`` of shape ``(G,)``) -> shape ``(G,)``.

        Examples
        --------
        >>> fm = FeatureModel()
        >>> bool(np.allclose(fm.E_s_at(np.array([0.1, 0.7])), [fm.E_s(0.1)[0], fm.E_s(0.7)[1]]))
        True
        """
        a = self._arrays()
        z = _check_z(z)
        if z.shape != (len(self._groups),):
            raise ValueError(f"z must have shape ({len(self._groups)},), got {z.shape}")
        return _E(a["t"], a["n"], z, a["weight"], self._n_train, self._n_classes)

    def point_types(self) -> pd.DataFrame:
        """One row per point type: weight, t, n, p, miss_s, both_s, and its accuracy/agreement.

        Examples
        --------
        >>> list(FeatureModel().point_types()["group"])
        ['dominant', 'rare']
        """
        a = self._arrays()
        miss, both = self.miss_s(), self.both_s()
        acc, agr = _acc_agr_per_type(miss, both, self._n_classes, self._p_systematic)
        return pd.DataFrame({"group": [g.name or f"group{i}" for i, g in enumerate(self._groups)],
                             "weight": a["weight"], "t": a["t"].astype(int), "n": a["n"].astype(int),
                             "p": a["p"], "miss": miss, "both": both, "accuracy": acc, "agreement": agr,
                             "gap": acc - agr})

    # -- expected metrics ---------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """Expected accuracy, agreement, error, disagreement and gap (= dis - err) as a dict.

        Examples
        --------
        >>> m = FeatureModel().metrics()
        >>> bool(np.isclose(m["gap"], m["disagreement"] - m["error"]))
        True
        """
        w = self._arrays()["weight"]
        acc, agr = _acc_agr_per_type(self.miss_s(), self.both_s(), self._n_classes, self._p_systematic)
        acc, agr = float(w @ acc), float(w @ agr)
        return {"accuracy": acc, "agreement": agr, "error": 1 - acc, "disagreement": 1 - agr,
                "gap": acc - agr}

    def expected_accuracy(self) -> float:
        """``E[acc] = sum_s w_s [1 - miss_s (1 - (1 - beta)/K)]``.

        A model is right on a point it knows, and on a point it misses with probability
        ``(1 - beta)/K`` (the uniform guess hits ``y``; the systematic answer never does).

        Examples
        --------
        >>> FeatureModel(p_d=1.0, p_r=1.0, n_train=math.inf).expected_accuracy()
        1.0
        """
        return self.metrics()["accuracy"]

    def expected_agreement(self) -> float:
        """``E[agr]``: probability that two distinct models give the same answer.

        Per point type, with ``bk = 1 - 2 miss + both`` (both know: agree), exactly one
        knows (probability ``2 (miss - both)``): agree when the other hits ``y``, with
        ``(1 - beta)/K``; both miss (``both``): they agree when both answer ``w``
        (``beta^2``), or one answers ``w`` and the other's guess hits it, or both guess
        the same class, which sums to ``beta^2 + (1 - beta^2)/K``.

        Examples
        --------
        >>> round(FeatureModel(p_d=0.0, p_r=0.0).expected_agreement(), 6)  # random guesses, K = 2
        0.5
        """
        return self.metrics()["agreement"]

    def expected_error(self) -> float:
        """``1 - E[acc]``."""
        return self.metrics()["error"]

    def expected_disagreement(self) -> float:
        """``1 - E[agr]``."""
        return self.metrics()["disagreement"]

    def gde_gap(self) -> float:
        """``E[dis] - E[err] = E[acc] - E[agr]``.

        For ``beta = 0`` this is ``(1 - 1/K) sum_s w_s (miss_s - both_s) >= 0``: GDE holds
        exactly when the models either all know or all miss almost every point.

        Examples
        --------
        >>> FeatureModel().gde_gap() > 0
        True
        """
        return self.metrics()["gap"]

    # -- simulation, calibration --------------------------------------------------------------
    def simulate(self, n_models: int, n_points: int, seed: int = 0) -> "Simulation":
        """Sample a training set, each model's learned features, test points and predictions.

        See :func:`simulate`.

        Examples
        --------
        >>> sim = FeatureModel().simulate(5, 100, seed=0)
        >>> sim.predictions.shape
        (5, 100)
        """
        return simulate(self, n_models=n_models, n_points=n_points, seed=seed)

    def monte_carlo(self, *, n_reps: int = 200, n_models: int = 4, n_points: int = 500,
                    seed: int = 0) -> dict[str, float]:
        """Monte Carlo estimates (with standard errors) of the expected metrics; see :func:`monte_carlo`."""
        return monte_carlo(self, n_reps=n_reps, n_models=n_models, n_points=n_points, seed=seed)

    def seen_distribution(self) -> np.ndarray:
        """``P(|B_s| = j)``: law of how many of a type-``s`` point's features occur in training.

        Exact and free of cancellation: only training points of the test point's class and
        type (probability ``a = w_s/K`` each) can cover its features. One such point turns
        ``u`` covered features into ``u + h`` with the hypergeometric probability that its
        ``n``-subset of the ``t`` features hits ``h`` of the ``n - u`` uncovered ones
        (matrix ``T``). After ``N`` i.i.d. training points the law is
        ``e_0 ((1 - a) I + a T)^N``, a power of a stochastic matrix with non-negative
        entries (by repeated squaring).

        Returns
        -------
        ndarray, shape ``(G, max_n + 1)``; row ``s`` is zero beyond ``n_s``.

        Examples
        --------
        >>> d = FeatureModel().seen_distribution()
        >>> bool(np.allclose(d.sum(1), 1.0))
        True
        """
        nmax = max(g.n for g in self._groups)
        if self._n_train != math.inf:  # a dense (n + 1, n + 1) transition matrix and its powers
            check_memory(4 * 8.0 * (nmax + 1) ** 2, f"the seen-feature law of a group with n={nmax} features per point",
                         remedy="lower the groups' n")
        out = np.zeros((len(self._groups), nmax + 1))
        for s, g in enumerate(self._groups):
            out[s, : g.n + 1] = _seen_law(g.t, g.n, g.weight / self._n_classes, self._n_train)
        return out

    def vote_calibration(self, n_models: int | None = None) -> pd.DataFrame:
        """Exact calibration table of the vote ensemble; see :func:`vote_calibration`."""
        return vote_calibration(self, n_models=n_models)

    def cace(self, n_models: int | None = None) -> float:
        """Class-aggregated calibration error of the vote ensemble; see :func:`vote_cace`.

        Examples
        --------
        >>> fm = FeatureModel()
        >>> abs(fm.gde_gap()) <= fm.cace() + 1e-12
        True
        """
        return vote_cace(self, n_models=n_models)


# --------------------------------------------------------------------------------------
# vectorised closed forms
# --------------------------------------------------------------------------------------
def _avoid_prob(t: np.ndarray, n: np.ndarray, nmax: int) -> np.ndarray:
    """``C(t - b, n) / C(t, n)`` for ``b = 0..nmax`` along a new last axis (0 where b > t - n)."""
    i = np.arange(nmax, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        fac = np.clip(t[..., None] - n[..., None] - i, 0.0, None) / np.maximum(t[..., None] - i, 1.0)
    ones = np.ones(np.broadcast(t, n).shape + (1,))
    return np.concatenate([ones, np.cumprod(fac, axis=-1)], axis=-1)


def _E(t: np.ndarray, n: np.ndarray, z: np.ndarray, weight: np.ndarray, n_train: Any, n_classes: Any
       ) -> np.ndarray:
    """Vectorised ``E_s(z)``; all arguments broadcast together (a group axis is just an axis)."""
    t, n, z, weight = np.broadcast_arrays(*(np.asarray(x, float) for x in (t, n, z, weight)))
    n_train = np.asarray(n_train, float)
    n_classes = np.asarray(n_classes, float)
    nmax = int(np.max(n)) if n.size else 0
    b = np.arange(nmax + 1, dtype=float)
    rho = np.asarray(weight / n_classes)[..., None] * (1.0 - _avoid_prob(t, n, nmax))
    N = n_train[..., None] if n_train.ndim else n_train
    with np.errstate(divide="ignore", invalid="ignore"):
        log_keep = N * np.log1p(-rho)
    # 0 * inf (no chance to be seen, infinitely many draws) is "never seen": keep = 1.
    log_keep = np.where(rho == 0.0, 0.0, log_keep)
    keep = np.exp(log_keep)
    nn = n[..., None]
    zz = z[..., None]
    valid = b <= nn
    expo = np.where(valid, nn - b, 0.0)
    # binomial pmf in log space (no overflow of C(n, b) for large n; xlogy gives 0 log 0 = 0)
    log_pmf = gammaln(nn + 1.0) - gammaln(b + 1.0) - gammaln(expo + 1.0) + xlogy(b, 1.0 - zz) + xlogy(expo, zz)
    pmf = np.where(valid, np.exp(log_pmf), 0.0)
    return (pmf * keep).sum(-1)


def _acc_agr_per_type(miss: np.ndarray, both: np.ndarray, K: Any, beta: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-type accuracy and agreement from miss and both (book/definitions.md §3, with ``beta``)."""
    K = np.asarray(K, float)
    beta = np.asarray(beta, float)
    acc = 1.0 - miss * (1.0 - (1.0 - beta) / K)
    agr = (1.0 - 2.0 * miss + both) + 2.0 * (miss - both) * (1.0 - beta) / K \
        + both * (beta ** 2 + (1.0 - beta ** 2) / K)
    return acc, agr


def _validate_arrays(t: np.ndarray, n: np.ndarray, p: np.ndarray, weight: np.ndarray, n_train: np.ndarray,
                     n_classes: np.ndarray, beta: np.ndarray) -> None:
    def whole(x: np.ndarray, name: str, minimum: float, allow_inf: bool = False) -> None:
        if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{name} must hold whole numbers, got dtype {x.dtype}")
        xf = x.astype(float)
        finite = np.isfinite(xf)
        if np.isnan(xf).any() or (not allow_inf and not finite.all()):
            raise ValueError(f"{name} must be finite whole numbers, got {x.ravel()[~finite.ravel()][:3]}")
        bad = finite & (xf != np.round(xf))
        if bad.any():
            raise ValueError(f"{name} must hold whole numbers, got {xf[bad][:3]}")
        if (xf < minimum).any():
            raise ValueError(f"{name} must be >= {minimum}, got {xf[xf < minimum][:3]}")

    def prob(x: np.ndarray, name: str) -> None:
        xf = np.asarray(x, float)
        if np.isnan(xf).any() or (xf < 0).any() or (xf > 1).any():
            bad = xf[np.isnan(xf) | (xf < 0) | (xf > 1)]
            raise ValueError(f"{name} must be probabilities in [0, 1], got {bad[:3]}")

    whole(t, "t", 1)
    whole(n, "n", 1)
    whole(n_train, "n_train", 0, allow_inf=True)
    whole(n_classes, "n_classes", 2)
    tb, nb = np.broadcast_arrays(t, n)
    if (nb > tb).any():
        raise ValueError(f"n must be <= t, got n={nb[nb > tb][:3]} > t={tb[nb > tb][:3]}")
    prob(p, "p")
    prob(weight, "weight")
    prob(beta, "p_systematic")
    total = np.asarray(weight, float).sum(-1)
    if not np.allclose(total, 1.0, atol=1e-9, rtol=0):
        raise ValueError(f"weights must sum to 1 over the group axis, got sums {np.ravel(total)[:3]}")


def expected_metrics(*, t: Any, n: Any, p: Any, weight: Any, n_train: Any, n_classes: Any = 2,
                     training: str = "shared", p_systematic: Any = 0.0, validate: bool = True
                     ) -> dict[str, np.ndarray]:
    """Closed-form metrics for whole arrays of settings, by numpy broadcasting.

    Parameters
    ----------
    t, n, p, weight : array_like, shape ``(..., G)``
        Per-group parameters; the last axis is the group axis (weights sum to 1 along it).
    n_train, n_classes, p_systematic : array_like, shape broadcastable to ``(...)``
        Per-setting scalars (``n_train`` may be ``inf``).
    training : {"shared", "independent"}
    validate : bool
        Check every entry (set False in inner loops that already validated).

    Returns
    -------
    dict
        ``accuracy, agreement, error, disagreement, gap`` of shape ``(...)`` and
        ``miss, both`` of shape ``(..., G)``.

    Notes
    -----
    The cost is one pass over ``max(n) + 1`` terms per group and setting: 100,000
    two-group settings take well under a second (``benchmarks/bench_theory.py``).

    Examples
    --------
    >>> out = expected_metrics(t=[[10, 1000], [10, 100]], n=[3, 3], p=[0.9, 0.3], weight=[0.7, 0.3],
    ...                        n_train=1000)
    >>> out["accuracy"].shape
    (2,)
    """
    _check_training(training)
    validate = check_bool(validate, "validate")
    t, n, p, weight = (np.asarray(x) for x in (t, n, p, weight))
    if min(x.ndim for x in (t, n, p, weight)) < 1:
        raise ValueError("t, n, p and weight need a trailing group axis (shape (..., G))")
    lead = np.broadcast_shapes(t.shape, n.shape, p.shape, weight.shape)[:-1]
    N, K, beta = (np.asarray(x) for x in (n_train, n_classes, p_systematic))
    if validate:
        _validate_arrays(t, n, p, weight, N, K, beta)
    lead = np.broadcast_shapes(lead, N.shape, K.shape, beta.shape)
    G = np.broadcast_shapes(t.shape, n.shape, p.shape, weight.shape)[-1]
    full = lead + (G,)
    t, n, p, weight = (np.broadcast_to(x.astype(float), full) for x in (t, n, p, weight))
    Ng = np.broadcast_to(N.astype(float), lead)[..., None]
    Kg = np.broadcast_to(K.astype(float), lead)[..., None]
    miss = _E(t, n, 1.0 - p, weight, Ng, Kg)
    if training == "shared":
        both = _E(t, n, (1.0 - p) ** 2, weight, Ng, Kg)
    else:
        both = miss ** 2
    bg = np.broadcast_to(beta.astype(float), lead)[..., None]
    acc_s, agr_s = _acc_agr_per_type(miss, both, Kg, bg)
    acc = (weight * acc_s).sum(-1)
    agr = (weight * agr_s).sum(-1)
    return {"accuracy": acc, "agreement": agr, "error": 1.0 - acc, "disagreement": 1.0 - agr,
            "gap": acc - agr, "miss": miss, "both": both}


def _check_values(values: Any, *, name: str = "values") -> np.ndarray:
    """Sweep values: a non-empty 1-D float array of finite numbers."""
    v = as_float_array(values, name=name).astype(float).ravel()
    if v.size == 0:
        raise ValueError(f"{name} must hold at least one number, got an empty array")
    return v


def _base_params(base: FeatureModel | None) -> dict[str, Any]:
    base = FeatureModel() if base is None else base
    if not isinstance(base, FeatureModel) or len(base.groups) != 2:
        raise ValueError(f"base must be a two-group FeatureModel, got {base!r}")
    return {k: v for k, v in base.params().items() if k != "training"}


def evaluate(*, base: FeatureModel | None = None, training: str | None = None, **params: Any
             ) -> dict[str, np.ndarray]:
    """Closed-form metrics of the two-group model for arrays of its parameters (broadcast).

    Parameters
    ----------
    base : FeatureModel, optional
        Supplies every parameter not given (default: ``FeatureModel()``).
    training : {"shared", "independent"}, optional
        Defaults to the base's.
    **params : array_like
        Any of ``n_classes, t_d, t_r, n_d, n_r, p_d, p_r, alpha_d, n_train, p_systematic``;
        arrays broadcast together.

    Returns
    -------
    dict of ndarray
        ``accuracy, agreement, error, disagreement, gap`` over the broadcast shape.

    Examples
    --------
    >>> out = evaluate(p_r=np.linspace(0, 1, 5))
    >>> out["gap"].shape
    (5,)
    """
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; known: {PARAMETERS}")
    training = training or (base.training if base is not None else "shared")
    v = {**_base_params(base), **{k: np.asarray(x) for k, x in params.items()}}
    shape = np.broadcast_shapes(*(np.shape(x) for x in v.values()))
    b = {k: np.broadcast_to(np.asarray(x), shape) for k, x in v.items()}
    out = expected_metrics(t=np.stack([b["t_d"], b["t_r"]], -1), n=np.stack([b["n_d"], b["n_r"]], -1),
                           p=np.stack([b["p_d"], b["p_r"]], -1),
                           weight=np.stack([b["alpha_d"], 1.0 - b["alpha_d"].astype(float)], -1),
                           n_train=b["n_train"], n_classes=b["n_classes"], training=training,
                           p_systematic=b["p_systematic"])
    return {k: out[k] for k in _METRICS}


def grid(*, base: FeatureModel | None = None, training: str | None = None, **values: Any) -> pd.DataFrame:
    """Tidy table of the closed-form metrics over the cartesian product of parameter values.

    Examples
    --------
    >>> df = grid(p_r=[0.1, 0.5], t_r=[100, 1000])
    >>> len(df), "gap" in df
    (4, True)
    """
    names = list(values)
    arrays = np.meshgrid(*(np.asarray(values[k]).ravel() for k in names), indexing="ij")
    flat = {k: a.ravel() for k, a in zip(names, arrays)}
    out = evaluate(base=base, training=training, **flat)
    df = pd.DataFrame(flat)
    for k in _METRICS:
        df[k] = np.broadcast_to(out[k], (len(df),)) if len(df) else out[k]
    return df


def sweep(parameter: str, values: Any, *, base: FeatureModel | None = None) -> pd.DataFrame:
    """One parameter varied, the others at ``base``: one row per value.

    Columns ``parameter, value, accuracy, agreement, error, disagreement, gap``.

    Examples
    --------
    >>> sweep("p_r", [0.1, 0.5, 0.9])["gap"].shape
    (3,)
    """
    if parameter not in PARAMETERS:
        raise ValueError(f"unknown parameter {parameter!r}; known: {PARAMETERS}")
    values = _check_values(values)
    out = evaluate(base=base, **{parameter: values})
    df = pd.DataFrame({"parameter": parameter, "value": values.astype(float)})
    for k in _METRICS:
        df[k] = out[k]
    return df


def sweeps(ranges: Mapping[str, Any], *, base: FeatureModel | None = None) -> pd.DataFrame:
    """Several single-parameter sweeps stacked into one long table (Figure 4, left columns).

    Examples
    --------
    >>> df = sweeps({"t_r": [100, 1000], "p_r": [0.2, 0.8]})
    >>> sorted(df["parameter"].unique())
    ['p_r', 't_r']
    """
    if not isinstance(ranges, Mapping) or not ranges:
        raise ValueError(f"ranges must be a non-empty mapping parameter -> values, got {ranges!r}")
    return pd.concat([sweep(k, v, base=base) for k, v in ranges.items()], ignore_index=True)


def coupled_sweep(lead: str, follow: str, values: Any, *, base: FeatureModel | None = None,
                  ratio: float | None = None) -> pd.DataFrame:
    """Two parameters moved together (Figure 4, right column): ``follow = ratio * lead``.

    Parameters
    ----------
    lead, follow : str
        E.g. ``("t_r", "t_d")`` or ``("n_r", "n_d")``.
    values : array_like
        Values of ``lead``.
    ratio : float, optional
        Default: keep the base's ratio ``base.follow / base.lead``. Counts are rounded
        to the nearest integer (at least 1), and clipped so that ``n <= t`` still holds
        for the follower (a coupled ``t_d`` never drops below ``n_d``).

    Returns
    -------
    DataFrame with columns ``lead, follow, <lead>, <follow>, accuracy, ...``, plus the
    uncoupled sweep of ``lead`` alone in rows with ``coupled == False`` for comparison.

    Examples
    --------
    >>> df = coupled_sweep("t_r", "t_d", [100, 200, 400])
    >>> df.groupby("coupled").size().to_dict()
    {False: 3, True: 3}
    """
    for name in (lead, follow):
        if name not in PARAMETERS:
            raise ValueError(f"unknown parameter {name!r}; known: {PARAMETERS}")
    bp = _base_params(base)
    values = _check_values(values)
    ratio = float(bp[follow]) / float(bp[lead]) if ratio is None else check_real(ratio, "ratio", minimum=0,
                                                                                 open_low=True)
    follow_vals = ratio * values
    if follow in _INT_PARAMS:
        follow_vals = np.maximum(np.round(follow_vals), 1)
    # keep n <= t for the follower: a coupled t never drops below its n, a coupled n never exceeds its t
    if follow in ("t_d", "t_r"):
        follow_vals = np.maximum(follow_vals, bp["n" + follow[1:]])
    elif follow in ("n_d", "n_r"):
        follow_vals = np.minimum(follow_vals, bp["t" + follow[1:]])
    rows = []
    for coupled in (False, True):
        params = {lead: values}
        if coupled:
            params[follow] = follow_vals
        out = evaluate(base=base, **params)
        df = pd.DataFrame({"lead": lead, "follow": follow, "coupled": coupled, lead: values,
                           follow: follow_vals if coupled else np.full(len(values), float(bp[follow]))})
        for k in _METRICS:
            df[k] = out[k]
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def models_from_grid(*, base: FeatureModel | None = None, **values: Any) -> list[FeatureModel]:
    """One two-group :class:`FeatureModel` per combination of parameter values (cartesian product).

    Combinations with ``n > t`` are skipped. Parameters not given come from ``base``.

    Examples
    --------
    >>> ms = models_from_grid(t_r=[2, 100], n_r=[1, 3])
    >>> len(ms)  # (t_r=2, n_r=3) is skipped
    3
    """
    unknown = set(values) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; known: {PARAMETERS}")
    bp = _base_params(base)
    training = base.training if base is not None else "shared"
    names = list(values)
    out = []
    for combo in itertools.product(*(np.asarray(values[k]).ravel().tolist() for k in names)):
        params = {**bp, **dict(zip(names, combo))}
        if params["n_d"] > params["t_d"] or params["n_r"] > params["t_r"]:
            continue
        out.append(FeatureModel(training=training, **params))
    return out


def coupling_study(bases: Sequence[FeatureModel], lead: str = "t_r", follow: str = "t_d", *,
                   factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)) -> pd.DataFrame:
    """Does coupling ``follow`` to ``lead`` keep GDE better than moving ``lead`` alone? One row per base.

    For each base, ``lead`` takes the values ``base.lead * factors`` (rounded; an ``n`` is
    clipped to ``[1, t]``), once alone and once with ``follow`` scaled by the same factor
    (:func:`coupled_sweep`). Reported: the mean and the maximum of ``|E[dis] - E[err]|``
    along each sweep, and whether the coupled sweep stays closer to GDE (smaller mean).

    Examples
    --------
    >>> df = coupling_study([FeatureModel(), FeatureModel(t_d=50, n_train=100)], "t_r", "t_d")
    >>> list(df.columns[-3:])
    ['max_gap_alone', 'max_gap_coupled', 'coupled_closer']
    """
    if isinstance(bases, FeatureModel) or not isinstance(bases, (Sequence, np.ndarray)):
        raise ValueError(f"bases must be a sequence of FeatureModel, got {type(bases).__name__}; "
                         "wrap a single model in a list")
    factors = _check_values(factors, name="factors")
    if factors.min() <= 0:
        raise ValueError(f"factors must be positive (they scale {lead}), got {factors.tolist()}")
    rows = []
    for i, base in enumerate(bases):
        bp = _base_params(base)
        vals = np.maximum(np.round(float(bp[lead]) * factors), 1)
        if lead in ("n_d", "n_r"):
            vals = np.minimum(vals, bp["t" + lead[1:]])
        elif lead in ("t_d", "t_r"):
            vals = np.maximum(vals, bp["n" + lead[1:]])
        vals = np.unique(vals)
        df = coupled_sweep(lead, follow, vals, base=base)
        alone, coupled = df[~df["coupled"]]["gap"].abs(), df[df["coupled"]]["gap"].abs()
        rows.append({"base": i, **{k: v for k, v in base.params().items()}, "lead": lead, "follow": follow,
                     "mean_gap_alone": float(alone.mean()), "mean_gap_coupled": float(coupled.mean()),
                     "max_gap_alone": float(alone.max()), "max_gap_coupled": float(coupled.max()),
                     "coupled_closer": bool(coupled.mean() < alone.mean())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------
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
    M = preds.shape[1]
    acc = (preds == labels[:, None, :]).mean(axis=(1, 2))
    counts = (preds[..., None] == np.arange(K)).sum(1)  # (R, P, K)
    agr_pt = ((counts.astype(float) ** 2).sum(-1) - M) / (M * (M - 1))
    return acc, agr_pt.mean(-1)


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
    _check_count(n_models, "n_models")
    _check_count(n_points, "n_points")
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
    _check_count(n_reps, "n_reps", minimum=2)
    _check_count(n_models, "n_models", minimum=2)
    _check_count(n_points, "n_points")
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
    accs, agrs = [], []
    for start in range(0, n_reps, chunk):
        r = min(chunk, n_reps - start)
        out = _simulate_batch(model, rng, r, n_models, n_points)
        a, g = _rep_metrics(out["predictions"], out["labels"], model.n_classes)
        accs.append(a)
        agrs.append(g)
    acc, agr = np.concatenate(accs), np.concatenate(agrs)
    gap = acc - agr
    se = lambda x: float(x.std(ddof=1) / math.sqrt(x.size))  # noqa: E731
    return {"accuracy": float(acc.mean()), "agreement": float(agr.mean()), "gap": float(gap.mean()),
            "accuracy_se": se(acc), "agreement_se": se(agr), "gap_se": se(gap), "n_reps": int(n_reps)}


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


# --------------------------------------------------------------------------------------
# the vote ensemble's calibration
# --------------------------------------------------------------------------------------
def _seen_law(t: int, n: int, a: float, N: Any) -> np.ndarray:
    """Law of the number of a point's ``n`` features covered by the training set (length n + 1)."""
    if N == math.inf:
        out = np.zeros(n + 1)
        out[n if a > 0 else 0] = 1.0
        return out
    from scipy.stats import hypergeom

    T = np.zeros((n + 1, n + 1))
    for u in range(n + 1):
        h = np.arange(0, n - u + 1)
        # a random n-subset of t hits h of the n - u uncovered features
        T[u, u + h] = hypergeom.pmf(h, t, n - u, n)
    step = (1.0 - a) * np.eye(n + 1) + a * T
    law = np.linalg.matrix_power(step, int(N))[0]
    law = np.clip(law, 0.0, None)
    return law / law.sum()


def _binom_pmf(k: np.ndarray, n: Any, q: Any) -> np.ndarray:
    from scipy.stats import binom

    return binom.pmf(k, n, q)


def _vote_masses(model: FeatureModel, n_models: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atoms of the vote share: ``(value, sum_k P(Y=k, h_k=value), sum_k P(h_k=value))`` (unmerged).

    The vote share of class ``k`` is ``h_k = (votes for k) / M``. Condition on the point's
    type and on ``J``, the number of models that know it: under shared training, given
    ``|B| = j`` seen features each model knows independently with ``q_j = 1 - (1-p)^j``
    (law of ``|B|`` from :meth:`FeatureModel.seen_distribution`), so ``J | j ~
    Binomial(M, q_j)``; under independent training ``J ~ Binomial(M, 1 - miss_s)``. The
    ``L = M - J`` others vote ``w`` with ``beta + (1 - beta)/K``, and ``y`` or each of the
    other ``K - 2`` classes with ``(1 - beta)/K`` each, so votes for ``y`` are
    ``J + Binomial(L, (1-beta)/K)``, for ``w`` ``Binomial(L, beta + (1-beta)/K)``, and for
    any other class ``Binomial(L, (1-beta)/K)``. ``n_models=None`` is the infinite
    ensemble: ``h_y = q + (1 - q)(1 - beta)/K`` etc., with ``q`` the knowing probability.
    """
    K, beta = model.n_classes, model.p_systematic
    g_other = (1.0 - beta) / K
    g_wrong = beta + g_other
    w = np.array([g.weight for g in model.groups])
    vals, m_true, m_all = [], [], []
    if model.training == "shared":
        law = model.seen_distribution()
        per_type = []
        for s, g in enumerate(model.groups):
            j = np.arange(g.n + 1)
            per_type.append((w[s] * law[s, : g.n + 1], 1.0 - (1.0 - g.p) ** j))
    else:
        miss = model.miss_s()
        per_type = [(np.array([w[s]]), np.array([1.0 - miss[s]])) for s in range(len(model.groups))]
    for mass, q in per_type:
        if n_models is None:
            hy = q + (1 - q) * g_other
            hw = (1 - q) * g_wrong
            ho = (1 - q) * g_other
            vals += [hy, hw, ho]
            m_true += [mass, 0 * mass, 0 * mass]
            m_all += [mass, mass, (K - 2) * mass]
            continue
        M = n_models
        Jv = np.arange(M + 1)
        pJ = mass[:, None] * _binom_pmf(Jv[None, :], M, q[:, None])  # (atoms, M+1)
        pJ = pJ.sum(0)  # law of J (times the type's weight)
        v = np.arange(M + 1)
        L = M - Jv  # (M+1,)
        # votes for y = J + Binomial(L, g_other)
        py = np.zeros(M + 1)
        pw = np.zeros(M + 1)
        po = np.zeros(M + 1)
        for J in range(M + 1):
            if pJ[J] == 0:
                continue
            ext = _binom_pmf(v - J, L[J], g_other) * (v >= J)
            py += pJ[J] * ext
            pw += pJ[J] * _binom_pmf(v, L[J], g_wrong)
            po += pJ[J] * _binom_pmf(v, L[J], g_other)
        vals += [v / M] * 3
        m_true += [py, 0 * pw, 0 * po]
        m_all += [py, pw, (K - 2) * po]
    return np.concatenate(vals), np.concatenate(m_true), np.concatenate(m_all)


def vote_calibration(model: FeatureModel, *, n_models: int | None = None, decimals: int = 12) -> pd.DataFrame:
    """Exact class-aggregated calibration table of the vote ensemble.

    The vote ensemble ``h_k(x)`` is the share of models predicting class ``k``. For every
    value ``q`` the vote share takes, the table gives ``mass_true = sum_k P(Y = k, h_k =
    q)`` and ``mass = sum_k P(h_k = q)`` (averaged over the training set and the points),
    the class-aggregated accuracy ``mass_true / mass`` at confidence ``q``, and the CACE
    term ``|mass_true - q mass|``. See :func:`_vote_masses` for the enumeration.

    Parameters
    ----------
    model : FeatureModel
    n_models : int, optional
        Size of the vote ensemble; ``None`` = infinitely many models (the quantity whose
        CACE bounds the closed-form gap exactly, Jiang et al. 2022, Thm 4.2).
    decimals : int
        Values equal to this many decimals are one atom.

    Returns
    -------
    DataFrame with columns ``confidence, mass, mass_true, accuracy, cace_term``.

    Examples
    --------
    >>> tab = vote_calibration(FeatureModel(), n_models=5)
    >>> bool(np.isclose(tab["mass"].sum(), 2))  # K = 2 vote shares per point
    True
    """
    _check_model(model)
    if n_models is not None:
        n_models = _check_count(n_models, "n_models")
    decimals = check_int(decimals, "decimals")
    vals, mt, ma = _vote_masses(model, n_models)
    key = np.round(vals, decimals)
    uniq, inv = np.unique(key, return_inverse=True)
    mass = np.bincount(inv, weights=ma, minlength=uniq.size)
    mass_true = np.bincount(inv, weights=mt, minlength=uniq.size)
    keep = mass > 0
    uniq, mass, mass_true = uniq[keep], mass[keep], mass_true[keep]
    return pd.DataFrame({"confidence": uniq, "mass": mass, "mass_true": mass_true,
                         "accuracy": mass_true / mass, "cace_term": np.abs(mass_true - uniq * mass)})


def vote_cace(model: FeatureModel, *, n_models: int | None = None) -> float:
    """Class-aggregated calibration error (Jiang et al. 2022) of the vote ensemble, exactly.

    ``CACE = sum_q |sum_k P(Y = k, h_k = q) - q sum_k P(h_k = q)|`` over the (finitely
    many) values ``q`` of the vote share. With ``n_models=None`` (infinite ensemble),
    ``|E[dis] - E[err]| <= CACE`` holds exactly for :meth:`FeatureModel.gde_gap`; with a
    finite ``M`` it is the CACE a size-``M`` vote ensemble shows in expectation over the
    pooled points (it bounds the gap measured with replacement, ``(1 - 1/M) E[dis] -
    E[err]``).

    Examples
    --------
    >>> fm = FeatureModel(p_r=0.5)
    >>> fm.gde_gap() <= vote_cace(fm) + 1e-12
    True
    """
    return float(vote_calibration(model, n_models=n_models)["cace_term"].sum())


def empirical_vote_calibration(predictions: Any, labels: Any, *, n_classes: int | None = None) -> pd.DataFrame:
    """The same table measured from predictions (M, N) [or stacked replicates (R, M, N)].

    Examples
    --------
    >>> sim = FeatureModel().simulate(5, 200, seed=0)
    >>> tab = empirical_vote_calibration(sim.predictions, sim.labels, n_classes=2)
    >>> bool(np.isclose(tab["mass"].sum(), 2))
    True
    """
    preds = as_int_array(predictions, name="predictions")
    labels = as_int_array(labels, name="labels")
    if preds.ndim == 2:
        preds, labels = preds[None], labels[None]
    if preds.ndim != 3 or labels.shape != (preds.shape[0], preds.shape[2]) or preds.size == 0:
        raise ValueError(f"predictions (M, N) and labels (N,) do not match: {preds.shape} vs {labels.shape}")
    K = None if n_classes is None else check_int(n_classes, "n_classes", minimum=2)
    check_labels(preds.ravel(), "predictions", n_classes=K)
    check_labels(labels.ravel(), "labels", n_classes=K)
    if K is None:
        K = max(int(max(preds.max(), labels.max())) + 1, 2)
    M = preds.shape[1]
    # Votes per point and class from the classes that occur (each absent class has 0 votes
    # at every point: mass 1 at confidence 0), so nothing is sized by K.
    uniq, inv = np.unique(np.concatenate([preds.ravel(), labels.ravel()]), return_inverse=True)
    k_used = uniq.size
    cp = inv[: preds.size].reshape(preds.shape)
    y = inv[preds.size:]
    R, _, N = preds.shape
    point = np.arange(R)[:, None, None] * N + np.arange(N)[None, None, :]
    counts = np.bincount((point * k_used + cp).ravel(), minlength=R * N * k_used).reshape(R * N, k_used)
    n_pts = y.size
    mass = np.bincount(counts.ravel(), minlength=M + 1) / n_pts
    mass[0] += K - k_used
    mass_true = np.bincount(counts[np.arange(n_pts), y], minlength=M + 1) / n_pts
    q = np.arange(M + 1) / M
    keep = mass > 0
    return pd.DataFrame({"confidence": q[keep], "mass": mass[keep], "mass_true": mass_true[keep],
                         "accuracy": mass_true[keep] / mass[keep],
                         "cace_term": np.abs(mass_true[keep] - q[keep] * mass[keep])})


# --------------------------------------------------------------------------------------
# GDE-breaking constructions
# --------------------------------------------------------------------------------------
_DEFAULT_SEARCH = {
    "t_r": [20, 50, 100, 200, 500, 1000, 2000],
    "n_r": [1, 2, 3, 5],
    "p_r": list(np.round(np.linspace(0.05, 0.95, 19), 2)),
    "alpha_d": [0.3, 0.5, 0.6, 0.7, 0.8, 0.9],
}


def gde_constructions(target_accuracy: float, *, base: FeatureModel | None = None,
                      search: Mapping[str, Any] | None = None, solve_for: str = "p_d",
                      n_models: int | None = None, n_best: int = 1, tol: float = 1e-6) -> pd.DataFrame:
    """Settings at a target accuracy that break GDE the most, and ones that keep it.

    For every combination of ``search`` values (default: ``t_r, n_r, p_r, alpha_d``; other
    parameters from ``base``), the parameter ``solve_for`` (default ``p_d``, a probability,
    on which accuracy is monotone) is set by vectorised bisection so that the expected
    accuracy equals ``target_accuracy``; combinations that cannot reach it are dropped.
    Among the rest the function reports:

    * ``"max_gap"``: the largest ``E[dis] - E[err]`` (disagreement above error),
    * ``"min_gap"``: the most negative gap (only when some ``p_systematic > 0``),
    * ``"keeps_gde"``: the smallest ``|gap|``,

    each with its exact vote-ensemble CACE (``n_models`` as in :func:`vote_cace`), which
    bounds ``|gap|`` (Jiang et al. 2022).

    Returns
    -------
    DataFrame, one row per construction (``n_best`` per kind), with the parameters,
    ``accuracy, agreement, error, disagreement, gap, cace``.

    Examples
    --------
    >>> df = gde_constructions(0.8, search={"p_r": [0.2, 0.5, 0.8], "t_r": [100, 1000]})
    >>> list(df["kind"])
    ['max_gap', 'keeps_gde']
    >>> bool(np.allclose(df["accuracy"], 0.8))
    True
    """
    target_accuracy = check_real(target_accuracy, "target_accuracy", minimum=0, maximum=1, open_low=True)
    solve_for = check_choice(solve_for, "solve_for", ("p_d", "p_r", "alpha_d"))
    n_best = check_int(n_best, "n_best", minimum=1)
    tol = check_real(tol, "tol", minimum=0, maximum=1, remedy="an accuracy tolerance such as 1e-6")
    search = dict(_DEFAULT_SEARCH if search is None else search)
    search.pop(solve_for, None)
    bp = _base_params(base)
    names = list(search)
    arrays = np.meshgrid(*(np.asarray(search[k], float).ravel() for k in names), indexing="ij")
    flat = {k: a.ravel() for k, a in zip(names, arrays)}
    size = arrays[0].size if arrays else 1
    # keep valid combinations only (n <= t)
    full = {k: np.broadcast_to(np.asarray(flat.get(k, bp[k]), float), (size,)) for k in bp}
    ok = (full["n_d"] <= full["t_d"]) & (full["n_r"] <= full["t_r"])
    flat = {k: v[ok] for k, v in flat.items()}
    size = int(ok.sum())

    def acc_at(x: np.ndarray) -> np.ndarray:
        return evaluate(base=base, **flat, **{solve_for: x})["accuracy"]

    lo, hi = np.zeros(size), np.ones(size)
    a_lo, a_hi = acc_at(lo), acc_at(hi)
    increasing = a_hi >= a_lo
    reach = (np.minimum(a_lo, a_hi) <= target_accuracy + tol) & (np.maximum(a_lo, a_hi) >= target_accuracy - tol)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = acc_at(mid) < target_accuracy
        go_up = below == increasing
        lo = np.where(go_up, mid, lo)
        hi = np.where(go_up, hi, mid)
    x = 0.5 * (lo + hi)
    flat = {k: v[reach] for k, v in flat.items()}
    x = x[reach]
    if x.size == 0:
        raise ValueError(f"no setting in the search reaches target_accuracy={target_accuracy}")
    out = evaluate(base=base, **flat, **{solve_for: x})
    df = pd.DataFrame({**flat, solve_for: x})
    for k in _METRICS:
        df[k] = out[k]
    df = df[np.abs(df["accuracy"] - target_accuracy) <= max(tol, 1e-6)]
    picks = [("max_gap", df.nlargest(n_best, "gap"))]
    if (df["gap"] < -1e-12).any():
        picks.append(("min_gap", df.nsmallest(n_best, "gap")))
    picks.append(("keeps_gde", df.iloc[np.argsort(np.abs(df["gap"].to_numpy()), kind="stable")[:n_best]]))
    rows = []
    for kind, part in picks:
        for _, r in part.iterrows():
            params = {**bp, **{k: r[k] for k in flat}, solve_for: float(r[solve_for])}
            params = {k: (int(round(v)) if k in _INT_PARAMS and v != math.inf else v) for k, v in params.items()}
            fm = FeatureModel(training=(base.training if base is not None else "shared"), **params)
            rows.append({"kind": kind, **params, **{k: float(r[k]) for k in _METRICS},
                         "cace": vote_cace(fm, n_models=n_models)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# fitting the framework to a measured interaction tensor
# --------------------------------------------------------------------------------------
def beta_from_same_wrong_rate(rate: float, n_classes: int) -> float:
    """Invert ``P(same | both wrong)`` to ``p_systematic`` (K > 2).

    Given a miss, a model answers ``w`` with ``beta + (1 - beta)/K`` and each other wrong
    class with ``(1 - beta)/K``; conditioned on being wrong, ``w`` has probability
    ``a = (beta + (1-beta)/K) / (beta + (1-beta)(K-1)/K)``. Two independent wrong answers
    coincide with ``s = a^2 + (1 - a)^2/(K - 2)``; solve for ``a >= 1/(K-1)``, then
    ``beta = (a (K-1) - 1) / ((K-1) - a)``. Rates at or below chance give 0. For K = 2 the
    rate is always 1 and says nothing about beta: raises ValueError.

    Examples
    --------
    >>> round(beta_from_same_wrong_rate(1 / 2, 3), 6)  # chance level for K = 3
    0.0
    """
    K = _check_count(n_classes, "n_classes", minimum=2)
    if K == 2:
        raise ValueError("n_classes=2: two wrong answers always agree, p_systematic is not identifiable")
    s = check_real(rate, "rate", minimum=0, maximum=1, remedy="a rate is a probability")
    # (1 + 1/(K-2)) a^2 - 2a/(K-2) + 1/(K-2) - s = 0
    A, B, C = 1 + 1 / (K - 2), -2 / (K - 2), 1 / (K - 2) - s
    disc = max(B * B - 4 * A * C, 0.0)
    a = (-B + math.sqrt(disc)) / (2 * A)
    a = min(max(a, 1 / (K - 1)), 1.0)
    return float(min(max((a * (K - 1) - 1) / ((K - 1) - a), 0.0), 1.0))


@dataclass
class FitResult:
    """What :func:`fit` estimated and how well the fitted framework predicts the ensemble.

    Attributes
    ----------
    model : FeatureModel
        The fitted framework.
    params : dict
        The estimates (including intermediate ones: visible features per point, learner
        rates, same-wrong rate).
    measured, predicted : dict
        ``accuracy, agreement, gap`` measured from the predictions and predicted by
        ``model``'s closed forms.
    diagnostics : dict
        ``acc_known`` (accuracy where the tensor shows the model has a feature of the
        point), ``acc_unknown``, ``known_rate``.

    Examples
    --------
    >>> sim = FeatureModel(n_classes=3).simulate(8, 1000, seed=0)
    >>> omega, groups = sim.planted_omega()
    >>> res = fit(omega, sim.predictions, sim.labels, dominant=groups == 0, n_train=1000)
    >>> list(res.table()["quantity"])
    ['accuracy', 'agreement', 'gap']
    """

    model: FeatureModel
    params: dict[str, Any]
    measured: dict[str, float]
    predicted: dict[str, float]
    diagnostics: dict[str, float] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Tidy comparison: ``quantity, measured, predicted, difference``."""
        rows = [{"quantity": k, "measured": self.measured[k], "predicted": self.predicted[k],
                 "difference": self.predicted[k] - self.measured[k]} for k in ("accuracy", "agreement", "gap")]
        return pd.DataFrame(rows)


def _otsu_split(x: np.ndarray) -> float:
    """Threshold maximising the between-class variance of a 1-D sample (two groups)."""
    xs = np.sort(x)
    if xs[0] == xs[-1]:
        return float(xs[0])
    best, thr = -1.0, xs[0]
    for c in np.unique(xs)[:-1]:
        lo, hi = xs[xs <= c], xs[xs > c]
        v = lo.size * hi.size * (lo.mean() - hi.mean()) ** 2
        if v > best:
            best, thr = v, c
    return float(thr)


def _truncated_binomial_p(mean_count: float, M: int) -> float:
    """Solve ``M p / (1 - (1-p)^M) = mean_count`` for p (mean of a zero-truncated binomial)."""
    from scipy.optimize import brentq

    if mean_count <= 1.0 + 1e-12:
        return 0.0 if M > 1 else 1.0
    if mean_count >= M - 1e-12:
        return 1.0
    f = lambda p: M * p / (1.0 - (1.0 - p) ** M) - mean_count  # noqa: E731
    return float(brentq(f, 1e-12, 1.0 - 1e-12))


def _solve_n(vbar: float, x: float) -> float:
    """Solve ``n x / (1 - (1 - x)^n) = vbar`` for n >= 1 (mean of a zero-truncated binomial)."""
    from scipy.optimize import brentq

    if x <= 0 or vbar <= 1.0 + 1e-12:
        return 1.0
    h = lambda n: n * x / -np.expm1(n * np.log1p(-x)) - vbar if x < 1 else n - vbar  # noqa: E731
    hi = 2.0
    while h(hi) < 0 and hi < 1e7:
        hi *= 2
    return float(brentq(h, 1.0, hi)) if h(1.0) < 0 else 1.0


def _solve_r(u: float, n: float, x: float, m: float) -> float:
    """Solve ``(n / r) x (1 - (1 - r)^m) = u`` for the share ``r = n / t`` in (0, 1]."""
    from scipy.optimize import brentq

    g = lambda r: n / r * x * -np.expm1(m * np.log1p(-r)) - u if r < 1 else n * x - u  # noqa: E731
    lo = 1e-12
    if g(1.0) >= 0:
        return 1.0
    if g(lo) <= 0:
        return lo
    return float(brentq(g, lo, 1.0))


def _fit_group(*, f: float, vbar: float, u: float, theta: float, M: int, K: int, n_train: float,
               n_test: int, training: str) -> dict[str, float]:
    """Moment equations of one group (see :func:`fit`, Notes), solved for ``w, n, t, p``.

    With ``x`` the chance that a given feature of a point is visible (seen in training by a
    model that learned it, for some of the M models) and the features of a point treated as
    independently visible:

    * typed share        ``f = w (1 - (1 - x)^n)``
    * visible per point  ``vbar = n x / (1 - (1 - x)^n)``  (typed points have >= 1)
    * distinct per class ``u = t x (1 - (1 - n/t)^m)``, ``m = n_test w / K``

    Independent training or ``n_train = inf``: ``x = 1 - (1 - theta)^M`` is known and the
    three equations are solved one after the other. Shared training with a finite
    ``n_train``: ``x = pi c`` with ``c = 1 - (1 - theta)^M`` and the training coverage
    ``pi = 1 - (1 - w r / K)^N`` depends on ``w`` and ``r = n / t``; the equations are
    then solved jointly for ``(w, r)`` by least squares.
    """
    from scipy.optimize import least_squares

    c = 1.0 - (1.0 - theta) ** M

    def given(w: float, r: float) -> tuple[float, float]:
        pi = 1.0 if n_train == math.inf else 1.0 - (1.0 - w * r / K) ** n_train
        return pi, (pi * c if training == "shared" else c)

    def solve_rest(x: float) -> tuple[float, float, float]:
        n = _solve_n(vbar, x)
        w = min(f / max(-np.expm1(n * np.log1p(-x)) if x < 1 else 1.0, 1e-300), 1.0)
        r = _solve_r(u, n, x, n_test * w / K)
        return n, w, r

    if training == "independent" or n_train == math.inf:
        n, w, r = solve_rest(c)  # x does not depend on pi here: no feedback
    else:
        n0, w0, r0 = solve_rest(c)

        def resid(z: np.ndarray) -> np.ndarray:
            w, r = z[0], math.exp(z[1])
            pi, x = given(w, r)
            n = _solve_n(vbar, x)
            shown = -np.expm1(n * np.log1p(-x)) if x < 1 else 1.0
            m = n_test * w / K
            dist = n / r * x * -np.expm1(m * np.log1p(-r)) if r < 1 else n * x
            return np.array([w * shown / f - 1.0, dist / u - 1.0])

        sol = least_squares(resid, x0=[min(max(w0, f), 1.0), math.log(min(max(r0, 1e-9), 1.0))],
                            bounds=([f, math.log(1e-9)], [1.0, 0.0]), xtol=1e-12, ftol=1e-12)
        w, r = float(sol.x[0]), math.exp(sol.x[1])
        pi, x = given(w, r)
        n = _solve_n(vbar, x)
    pi, _ = given(w, r)
    p = theta if training == "shared" else min(theta / max(pi, 1e-300), 1.0)
    return {"w": w, "n": n, "t": n / r, "p": p, "pi": pi}


def fit(omega: Any, predictions: Any, labels: Any, *, dominant: Any = None, feature_groups: Any = None,
        n_classes: int | None = None, n_train: int | float | None = None, training: str = "shared"
        ) -> FitResult:
    """Estimate the framework's parameters from an interaction tensor and the models' predictions.

    Parameters
    ----------
    omega : array (M, N, T) bool
        ``omega[m, n, t]``: feature ``t`` of model ``m`` is present in test point ``n``.
    predictions : array (M, N) int
    labels : array (N,) int
    dominant : array (T,) bool, optional
        Which features are dominant (two groups). Default: split log feature frequency
        (points carrying the feature) into two by Otsu's criterion (observation O1).
    feature_groups : array (T,) int, optional
        Any number of groups instead of ``dominant`` (group 0 first).
    n_classes : int, optional
        Default: ``max(labels, predictions) + 1``.
    n_train : int or inf, optional
        The models' training-set size. ``None`` = ``inf``: every feature the fitted model
        has counts as seen in training (the tensor cannot tell training coverage apart
        from fewer features per point; with ``n_train`` given it can, see Notes).
    training : {"shared", "independent"}

    Returns
    -------
    FitResult

    Notes
    -----
    The estimators are moment matches; each uses only what the tensor shows: a feature
    is *visible* if some model has it in some point, a model *learned* a visible feature
    if the feature is present for that model in some point, and a point's visible
    features are those any model has in it.

    1. **Groups.** ``dominant`` / ``feature_groups`` or the Otsu split of log frequency.
    2. **Point types.** A point's type is the group holding most of its visible features.
       Points with none ("featureless": every model missed every feature) are typed by
       the model itself: with ``P0_s`` the fitted chance that all ``M`` models miss a
       type-``s`` point (``E_s((1-p_s)^M)`` shared, ``miss_s^M`` independent), the
       shares are ``w_s ∝ f_s / (1 - P0_s)`` where ``f_s`` is the share of points typed
       ``s``; iterated to a fixed point.
    3. **p_s.** A visible feature's learner count is a zero-truncated
       ``Binomial(M, theta)``: its mean ``M theta / (1 - (1-theta)^M)`` is solved for
       ``theta`` (``= p_s`` shared; ``= p_s pi_s`` independent, ``pi_s`` the chance a
       model's training set holds the feature, step 5).
    4. **n_s and t_s.** With ``c_s = 1 - (1 - theta)^M`` (visible given seen) and ``pi_s``
       the training coverage of a feature, the mean visible count per type-``s`` point
       is ``v_s = n_s pi_s c_s`` (corrected for the featureless points left out by
       ``/(1 - P0_s)``), and the distinct visible features per class is
       ``u_s = t_s pi_s c_s (1 - (1 - r_s)^m_s)`` with ``r_s = n_s / t_s`` and
       ``m_s = N_test w_s / K`` points of that type per class in the test set. The ratio
       ``v_s / u_s = r_s / (1 - (1 - r_s)^m_s)`` gives ``r_s``; ``pi_s = 1 - (1 - w_s
       r_s / K)^N`` (1 for ``n_train=None``); then ``n_s = v_s / (pi_s c_s)`` and
       ``t_s = n_s / r_s``, rounded.
    5. **p_systematic.** From ``s = P(same answer | both wrong)`` over pairs of models
       (:func:`same_wrong_rate`, inverted by :func:`beta_from_same_wrong_rate`); for
       ``K = 2`` (rate always 1) from the accuracy where the tensor shows the model knows
       no feature of the point: ``beta = 1 - K acc_unknown`` (0 when there are none).

    Examples
    --------
    >>> sim = FeatureModel(p_systematic=0.5, n_classes=4).simulate(8, 1000, seed=0)
    >>> omega, groups = sim.planted_omega()
    >>> res = fit(omega, sim.predictions, sim.labels, dominant=groups == 0, n_train=1000)
    >>> abs(res.predicted["accuracy"] - res.measured["accuracy"]) < 0.05
    True
    """
    omega = np.asarray(omega)
    if omega.ndim != 3:
        raise ValueError(f"omega must have shape (M, N, T), got {omega.shape}")
    if omega.dtype != bool:
        if not np.isin(omega, (0, 1)).all():
            raise ValueError(f"omega must be boolean (0/1), got dtype {omega.dtype} with other values")
        omega = omega.astype(bool)
    M, Npts, T = omega.shape
    preds = as_int_array(predictions, name="predictions", ndim=2)
    labels = as_int_array(labels, name="labels", ndim=1)
    if preds.shape != (M, Npts):
        raise ValueError(f"predictions must have shape {(M, Npts)} to match omega, got {preds.shape}")
    if labels.shape != (Npts,):
        raise ValueError(f"labels must have shape {(Npts,)} to match omega, got {labels.shape}")
    if M < 2:
        raise ValueError(f"omega needs at least 2 models to measure agreement, got M={M}")
    _check_training(training)
    K = int(max(preds.max(), labels.max()) + 1) if n_classes is None else _check_count(n_classes, "n_classes", minimum=2)
    if max(preds.max(), labels.max()) >= K or min(preds.min(), labels.min()) < 0:
        raise ValueError(f"labels and predictions must lie in [0, {K}), got range "
                         f"[{min(preds.min(), labels.min())}, {max(preds.max(), labels.max())}]")
    N_tr = math.inf if n_train is None else _check_count(n_train, "n_train", minimum=1, allow_inf=True)

    # 1. groups
    freq = omega.any(0).sum(0)  # points carrying each feature
    visible = freq > 0
    if feature_groups is not None:
        fg = as_int_array(feature_groups, name="feature_groups", ndim=1)
        if fg.shape != (T,) or fg.min() < 0:
            raise ValueError(f"feature_groups must be (T,)={T} non-negative ints, got shape {fg.shape}")
    elif dominant is not None:
        dm = np.asarray(dominant)
        if dm.shape != (T,) or dm.dtype != bool:
            raise ValueError(f"dominant must be a boolean mask of shape ({T},), got {dm.dtype} {dm.shape}")
        fg = np.where(dm, 0, 1)
    else:
        lf = np.log(np.maximum(freq[visible], 1))
        thr = _otsu_split(lf) if lf.size else 0.0
        fg = np.where(np.log(np.maximum(freq, 1)) > thr, 0, 1)
    G = int(fg.max()) + 1 if T else 1

    # 2. point types from visible features
    present = omega.any(0)  # (N, T)
    per_group = np.stack([present[:, fg == g].sum(1) for g in range(G)], 1)  # (N, G)
    n_vis = per_group.sum(1)
    ptype = np.where(n_vis > 0, per_group.argmax(1), -1)
    f_typed = np.array([(ptype == g).mean() for g in range(G)])
    used = [g for g in range(G) if f_typed[g] > 0 and (visible & (fg == g)).any()]
    if not used:
        raise ValueError("omega shows no feature in any point: nothing to fit")

    # 3. learner counts of visible features -> theta
    learned = omega.any(1)  # (M, T)
    counts = learned.sum(0)
    theta = {g: _truncated_binomial_p(float(counts[visible & (fg == g)].mean()), M) for g in used}
    vbar = {g: float(n_vis[ptype == g].mean()) for g in used}  # among typed points
    distinct = {g: float((visible & (fg == g)).sum()) / K for g in used}

    # 5. p_systematic
    knows = omega.any(2)
    correct = preds == labels[None]
    acc_known = float(correct[knows].mean()) if knows.any() else float("nan")
    acc_unknown = float(correct[~knows].mean()) if (~knows).any() else float("nan")
    rate = same_wrong_rate(preds, labels)
    if K > 2 and np.isfinite(rate):
        beta = beta_from_same_wrong_rate(rate, K)
    elif np.isfinite(acc_unknown):
        beta = float(min(max(1.0 - K * acc_unknown, 0.0), 1.0))
    else:
        beta = 0.0

    # 2./4. per group: weight, n and t from the typed share, visible counts and distinct features
    est = {g: _fit_group(f=float(f_typed[g]), vbar=vbar[g], u=distinct[g], theta=theta[g], M=M, K=K,
                         n_train=N_tr, n_test=Npts, training=training) for g in used}
    names = [("dominant" if g == 0 else "rare") if G == 2 else f"group{g}" for g in used]
    total = sum(est[g]["w"] for g in used)
    groups = []
    for g, name in zip(used, names):
        n_int = max(int(round(est[g]["n"])), 1)
        t_int = max(int(round(est[g]["t"])), n_int)
        groups.append(Group(t_int, n_int, est[g]["p"], est[g]["w"] / total, name))
    groups[-1] = dataclasses.replace(groups[-1], weight=max(0.0, 1.0 - sum(x.weight for x in groups[:-1])))
    model = FeatureModel.from_groups(groups, n_classes=K, n_train=N_tr, training=training, p_systematic=beta)

    # measured
    acc_m = float(correct.mean())
    counts_cls = (preds[..., None] == np.arange(K)).sum(0)
    agr_m = float((((counts_cls.astype(float) ** 2).sum(-1) - M) / (M * (M - 1))).mean())
    predicted = model.metrics()
    if len(model.groups) == 2:
        params = {k: v for k, v in model.params().items()}
    else:
        params = dict(model.params())
    params.update({"same_wrong_rate": rate, "featureless_share": float((ptype < 0).mean())})
    for i, g in enumerate(used):
        params.update({f"visible_per_point_{i}": vbar[g], f"distinct_per_class_{i}": distinct[g],
                       f"typed_share_{i}": float(f_typed[g]), f"coverage_{i}": est[g]["pi"],
                       f"n_continuous_{i}": est[g]["n"], f"t_continuous_{i}": est[g]["t"]})
    return FitResult(model=model, params=params,
                     measured={"accuracy": acc_m, "agreement": agr_m, "gap": acc_m - agr_m},
                     predicted={k: predicted[k] for k in ("accuracy", "agreement", "gap")},
                     diagnostics={"acc_known": acc_known, "acc_unknown": acc_unknown,
                                  "known_rate": float(knows.mean())})
