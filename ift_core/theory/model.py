"""The framework's model: feature groups, :class:`FeatureModel` and its closed forms.

See :mod:`ift_core.theory` for the generative story. The per-group quantities here
(``rho_s``, ``E_s``, ``miss_s``, ``both_s``) and the per-type accuracy and agreement are the
closed forms every other file of the package evaluates, vectorised or not.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import gammaln, xlogy

from ..internal import as_float_array, check_count, check_memory, check_probability
from ._common import PARAMETERS, _check_training

if TYPE_CHECKING:
    from .simulation import Simulation

__all__ = ["Group", "FeatureModel"]


def _check_z(z: Any) -> np.ndarray:
    """Arguments of a generating function ``E_s(z)``: numbers in [0, 1] (probabilities)."""
    z = as_float_array(z, name="z").astype(float)
    if z.size and (np.isnan(z).any() or z.min() < 0 or z.max() > 1):
        raise ValueError(f"z must hold numbers in [0, 1] (E_s(z) = E[z^B] is a generating function at a "
                         f"probability), got {z.ravel()[:5]!r}")
    return z


def _check_model(model: Any) -> "FeatureModel":
    if not isinstance(model, FeatureModel):
        raise ValueError(f"model must be a FeatureModel, got {type(model).__name__}")
    return model


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
        object.__setattr__(self, "t", check_count(self.t, f"{label}.t"))
        object.__setattr__(self, "n", check_count(self.n, f"{label}.n"))
        if self.n > self.t:
            raise ValueError(f"{label}.n must be <= {label}.t (a point carries distinct features), "
                             f"got n={self.n} > t={self.t}")
        object.__setattr__(self, "p", check_probability(self.p, f"{label}.p"))
        object.__setattr__(self, "weight", check_probability(self.weight, f"{label}.weight"))


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
        alpha_d = check_probability(alpha_d, "alpha_d")
        for name, value in (("t_d", t_d), ("t_r", t_r), ("n_d", n_d), ("n_r", n_r)):
            check_count(value, name)
        if n_d > t_d:
            raise ValueError(f"n_d must be <= t_d, got n_d={n_d} > t_d={t_d}")
        if n_r > t_r:
            raise ValueError(f"n_r must be <= t_r, got n_r={n_r} > t_r={t_r}")
        p_d = check_probability(p_d, "p_d")
        p_r = check_probability(p_r, "p_r")
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
        self._n_classes = check_count(n_classes, "n_classes", minimum=2)
        self._n_train = check_count(n_train, "n_train", minimum=0, allow_inf=True)
        self._training = _check_training(training)
        self._p_systematic = check_probability(p_systematic, "p_systematic")
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
        from .simulation import simulate  # the simulation file builds on this one

        return simulate(self, n_models=n_models, n_points=n_points, seed=seed)

    def monte_carlo(self, *, n_reps: int = 200, n_models: int = 4, n_points: int = 500,
                    seed: int = 0) -> dict[str, float]:
        """Monte Carlo estimates (with standard errors) of the expected metrics; see :func:`monte_carlo`."""
        from .simulation import monte_carlo  # the simulation file builds on this one

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
        from .calibration import vote_calibration  # the calibration file builds on this one

        return vote_calibration(self, n_models=n_models)

    def cace(self, n_models: int | None = None) -> float:
        """Class-aggregated calibration error of the vote ensemble; see :func:`vote_cace`.

        Examples
        --------
        >>> fm = FeatureModel()
        >>> abs(fm.gde_gap()) <= fm.cace() + 1e-12
        True
        """
        from .calibration import vote_cace  # the calibration file builds on this one

        return vote_cace(self, n_models=n_models)


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
