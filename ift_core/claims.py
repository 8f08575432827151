"""Claim checks: what the paper claims, part by part, and what the data in front of us show.

Every chapter of the book ends with a :class:`Verdict`. A verdict names one claim of the paper
(a row of :data:`CLAIMS`, the registry the reproduction scorecard is built from), splits it into
the parts the paper states, and judges each :class:`Part` separately:

``"holds"``
    every setting or cell that tests the part satisfies it;
``"holds in part"``
    some do: the part carries the *share* that does;
``"does not hold"``
    none does (or the one test fails);
``"not tested"``
    the data at hand cannot test it (say why in a fact).

The verdict's word is derived from its parts, never set by hand: **HOLDS** when every tested
part holds, **DOES NOT HOLD** when none does, **HOLDS IN PART** otherwise. So a check whose
mechanism failed cannot print HOLDS because some summary number happened to pass.

A verdict renders as a box in the book (``_repr_html_``: the word, then one part per line, then
one fact per line, wrapped at the column width) and as wrapped plain text elsewhere. :func:`record`
shows it and, when the environment variable ``IFT_VERDICTS`` names a folder (the book's build sets
it), saves it there as JSON, so the scorecard page shows exactly what each chapter concluded.

Examples
--------
>>> v = Verdict("O1", parts=(
...     Part("few features are dominant", "holds", facts=("12 of 112 features dominant",)),
...     Part.from_share("the histogram is bimodal", 0.4, facts=("bimodal in 4 of 10 settings",)),
... ))
>>> v.word
'HOLDS IN PART'
>>> print(v.text(width=60))  # doctest: +NORMALIZE_WHITESPACE
HOLDS IN PART -- O1: Feature frequency is long-tailed
  [holds] few features are dominant
      12 of 112 features dominant
  [holds in part, 40%] the histogram is bimodal
      bimodal in 4 of 10 settings
"""
from __future__ import annotations

import html
import json
import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .internal import atomic_path, to_jsonable

__all__ = [
    "STATUSES",
    "WORDS",
    "Claim",
    "CLAIMS",
    "Part",
    "Verdict",
    "record",
    "load_verdicts",
    "VERDICTS_ENV",
    "SCORECARD_PAGE",
    "OUR_CHOICES",
    "scorecard_link",
    "scorecard_rows",
    "scorecard_html",
]

#: A part's judgement.
STATUSES = ("holds", "holds in part", "does not hold", "not tested")
#: A verdict's word, derived from its parts.
WORDS = ("HOLDS", "HOLDS IN PART", "DOES NOT HOLD", "NOT TESTED")
#: Environment variable naming the folder where :func:`record` saves verdicts (set by the book build).
VERDICTS_ENV = "IFT_VERDICTS"

_PROVENANCE = ("paper", "third party", "ours")
#: The scorecard's page name: executed beside the chapters (``notebooks/_executed/scorecard``).
SCORECARD_PAGE = "scorecard"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: a row of the reproduction scorecard.

    Parameters
    ----------
    key : str
        Short identifier (``"O1"``, ``"gde_real"``), used by chapters and the scorecard.
    title : str
        The claim in a few words.
    paper_says : str
        What the paper claims, quoted where ``quoted`` is true, else our summary of it.
    quoted : bool
        Whether ``paper_says`` is the paper's own words.
    definition : str
        How this project makes the claim testable.
    provenance : {"paper", "third party", "ours"}
        Whose definition that is: the paper's, a third-party reimplementation's, or ours.
    chapter : str
        The chapter (notebook name) that checks it.
    """

    key: str
    title: str
    paper_says: str
    quoted: bool
    definition: str
    provenance: str
    chapter: str

    def __post_init__(self) -> None:
        if self.provenance not in _PROVENANCE:
            raise ValueError(f"provenance must be one of {_PROVENANCE}, got {self.provenance!r}")


#: The paper's claims that the book checks, in the order of the scorecard.
CLAIMS: dict[str, Claim] = {c.key: c for c in (
    Claim("seeds", "Seeds differ only in their predictions",
          "Models trained from different random seeds reach nearly the same accuracy but disagree "
          "on individual test points.", False,
          "Test accuracies of the M seeds lie within a stated spread, and their mean pairwise "
          "disagreement is above zero.", "ours", "01_overview"),
    Claim("training", "Models are trained to (near) zero training error",
          "The GDE regime: models trained to (near) zero training error.", False,
          "Every seed reaches the profile's target training accuracy.", "ours", "02_training"),
    Claim("tensor", "The interaction tensor",
          "Features are found by clustering the principal components of the models' penultimate "
          "activations across models (Algorithm 1, 'Cluster Features'); the tensor records which "
          "model has which feature in which data point.", False,
          "Algorithm 1 as stated in the Definitions page; the clustering merges components "
          "across seeds (T < M K) and leaves some features to few seeds.", "paper", "03_tensor"),
    Claim("O1", "Feature frequency is long-tailed",
          "Observation 1: the number of data points in which a feature occurs is long-tailed; "
          "a few dominant features occur in many points, most features are rare.", False,
          "Frequency = points in which a feature occurs for any seed; the dominant/rare split and "
          "the long-tail statistic are stated in the chapter.", "ours", "04_long_tail"),
    Claim("O2", "Confident points carry fewer features",
          "Observation 2: data points on which the ensemble is confident carry fewer features.", False,
          "Spearman's rho between the ensemble's mean true-class probability and the number of "
          "features per point, with a bootstrap interval.", "ours", "05_confidence"),
    Claim("O3", "Seeds learn different features",
          "Observation 3: dominant features are learned by most models, rare features by few; "
          "each model learns a different subset.", False,
          "Spearman's rho between a feature's frequency and the number of models having it.",
          "ours", "06_seeds_overlap"),
    Claim("O4", "Shared features, shared predictions",
          "Observation 4: two models that share more features agree more on their predictions.", False,
          "Correlation over model pairs between feature overlap and prediction agreement, with a "
          "jackknife interval and a Mantel test.", "ours", "06_seeds_overlap"),
    Claim("sensitivity", "The observations do not hinge on the thresholds",
          "The reviewers asked how sensitive the findings are to gamma_corr and gamma_data.", False,
          "Each observation's verdict over grids of the thresholds, the presence rule and K.",
          "ours", "07_sensitivity"),
    Claim("closed_forms", "Closed forms for accuracy and agreement",
          "The framework gives closed forms for the expected accuracy and agreement of two models.",
          False, "Our closed forms (Definitions) agree with a Monte Carlo simulation of the same "
          "generative story within its standard error.", "ours", "08_framework"),
    Claim("figure4", "Figure 4: coupling recovers GDE",
          "Changing t_r and n_r alone deviates from GDE, but if they are coupled with dominant "
          "features, we can recover GDE (approximately).", True,
          "Single-parameter and coupled sweeps over a grid of base settings; 'deviates' and "
          "'near GDE' are stated as numbers in the chapter.", "ours", "09_gde_explained"),
    Claim("gde_explained", "The framework exhibits GDE",
          "The model exhibits GDE without assuming calibration.", False,
          "|E[dis] - E[err]| below a stated tolerance over a stated region of parameters.",
          "ours", "09_gde_explained"),
    Claim("gde_breaking_sim", "Distributions that break GDE (simulation)",
          "Explicit data distributions break GDE.", False,
          "Settings of the framework at a given accuracy where disagreement departs from error "
          "beyond the CACE bound's slack.", "ours", "10_breaking_gde_simulation"),
    Claim("gde_breaking_real", "Distributions that break GDE (real images)",
          "The framework's mechanism (rare features learned by about half of the seeds) breaks GDE "
          "with disagreement above error.", False,
          "Rare sub-populations added to real training data; disagreement minus error on them, "
          "with intervals over seeds and points.", "ours", "11_breaking_gde_real"),
    Claim("gde_label_free", "GDE as a label-free estimate of test error",
          "Expected disagreement of two seeds equals expected test error (Jiang et al. 2022), so "
          "test error can be estimated from unlabeled data.", False,
          "Disagreement against error in distribution and under shift, with intervals, and the "
          "CACE bound.", "third party", "12_label_free_estimation"),
    Claim("own_models", "The analysis on your own models",
          "(Not a claim of the paper: the tensor's observations on an ensemble brought by the reader.)",
          False, "O1 and O3 on ensembles built outside the package's training code.", "ours",
          "13_your_own_models"),
)}


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _check_facts(facts: Any, name: str = "facts") -> tuple[str, ...]:
    if isinstance(facts, str):
        return (facts,)
    try:
        out = tuple(facts)
    except TypeError:
        raise ValueError(f"{name} must be a string or a sequence of strings, got {facts!r}") from None
    for f in out:
        if not isinstance(f, str):
            raise ValueError(f"{name} must hold strings, got {f!r} ({type(f).__name__})")
    return out


@dataclass(frozen=True)
class Part:
    """One part of a claim, judged on its own.

    Parameters
    ----------
    claim : str
        What this part of the paper's claim says, in a line.
    status : {"holds", "holds in part", "does not hold", "not tested"}
        The judgement.
    facts : sequence of str
        The numbers behind it, one fact per string (each rendered on its own line).
    share : float or None
        For ``"holds in part"``: the share (in (0, 1)) of settings or cells where the part holds.
        May be given with the other statuses too (1 with ``"holds"``, 0 with ``"does not hold"``).
    statistics : mapping
        Numbers to keep in the saved verdict (e.g. ``{"rho": 0.41, "low": 0.2, "high": 0.6}``).
    """

    claim: str
    status: str
    facts: tuple[str, ...] = ()
    share: float | None = None
    statistics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_text(self.claim, "claim")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "facts", _check_facts(self.facts))
        if self.share is not None:
            if isinstance(self.share, bool) or not isinstance(self.share, (int, float)) \
                    or not math.isfinite(self.share) or not 0 <= self.share <= 1:
                raise ValueError(f"share must be a number in [0, 1] or None, got {self.share!r}")
            object.__setattr__(self, "share", float(self.share))
        expected = {"holds": (1.0,), "does not hold": (0.0,), "holds in part": None, "not tested": ()}
        allowed = expected[self.status]
        if self.status == "holds in part":
            if self.share is None or not 0 < self.share < 1:
                raise ValueError(f"status 'holds in part' needs a share strictly between 0 and 1, "
                                 f"got {self.share!r}; use 'holds' or 'does not hold' at the ends")
        elif self.share is not None and self.share not in allowed:
            raise ValueError(f"status {self.status!r} contradicts share {self.share!r}: "
                             f"use Part.from_share to derive the status from the share")
        if not isinstance(self.statistics, Mapping):
            raise ValueError(f"statistics must be a mapping, got {type(self.statistics).__name__}")

    @classmethod
    def from_share(cls, claim: str, share: float, *, facts: Sequence[str] | str = (),
                   statistics: Mapping[str, Any] | None = None, holds_at: float = 1.0,
                   fails_below: float = 0.0) -> "Part":
        """The status that ``share`` (the fraction of settings where the part holds) implies.

        By default a part holds where every setting satisfies it and does not hold where none
        does. A check that states its own thresholds (a statement "holds" on at least 80 % of a
        region) passes them: ``share >= holds_at`` holds, ``share < fails_below`` (or 0) does
        not hold, anything between holds in part; the share is then kept in
        ``statistics["share"]`` where the part's own ``share`` cannot carry it.

        Examples
        --------
        >>> [Part.from_share("x", s).status for s in (1.0, 0.25, 0.0)]
        ['holds', 'holds in part', 'does not hold']
        >>> [Part.from_share("x", s, holds_at=0.8, fails_below=0.05).status for s in (0.85, 0.3, 0.01)]
        ['holds', 'holds in part', 'does not hold']
        """
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share) \
                or not 0 <= share <= 1:
            raise ValueError(f"share must be a number in [0, 1], got {share!r}")
        for value, name in ((holds_at, "holds_at"), (fails_below, "fails_below")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if not fails_below < holds_at:
            raise ValueError(f"fails_below must be below holds_at, got fails_below={fails_below!r}, "
                             f"holds_at={holds_at!r}")
        share = float(share)
        status = ("holds" if share >= holds_at else "does not hold" if share == 0 or share < fails_below
                  else "holds in part")
        kept = share if status == "holds in part" or share in (0.0, 1.0) else None
        stats = dict(statistics or {})
        if kept is None:
            stats.setdefault("share", share)
        return cls(claim, status, facts=facts, share=kept, statistics=stats)

    @classmethod
    def from_bool(cls, claim: str, holds: bool, *, facts: Sequence[str] | str = (),
                  statistics: Mapping[str, Any] | None = None) -> "Part":
        """``"holds"`` or ``"does not hold"`` from one test's outcome.

        Examples
        --------
        >>> Part.from_bool("rho < 0", False).status
        'does not hold'
        """
        if not isinstance(holds, (bool, np.bool_)):
            raise ValueError(f"holds must be a boolean, got {holds!r} ({type(holds).__name__})")
        return cls(claim, "holds" if bool(holds) else "does not hold", facts=facts,
                   statistics=dict(statistics or {}))

    @classmethod
    def from_observation(cls, observation: Any, *, claim: str | None = None,
                         facts: Sequence[str] | str = ()) -> "Part":
        """``"holds"`` or ``"does not hold"`` from a measured observation.

        ``observation`` is anything with ``claim``, ``holds``, ``statistic`` and ``ci`` (an
        :class:`ift_core.observations.Observation`); its statistic and interval are kept in
        ``statistics``. ``claim`` replaces the observation's wording of the claim.

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> o = SimpleNamespace(claim="skewness > 0", holds=True, statistic=2.1, ci=(1.5, 2.6))
        >>> Part.from_observation(o, facts="skewness 2.10").statistics
        {'statistic': 2.1, 'low': 1.5, 'high': 2.6}
        """
        try:
            holds, statistic, (low, high) = observation.holds, observation.statistic, observation.ci
            text = claim if claim is not None else observation.claim
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"observation must have claim, holds, statistic and ci (low, high), "
                             f"got {type(observation).__name__}") from None
        return cls.from_bool(text, holds, facts=facts,
                             statistics={"statistic": float(statistic), "low": float(low), "high": float(high)})

    @property
    def label(self) -> str:
        """The status as printed: ``holds in part, 40%`` carries its share."""
        if self.status == "holds in part":
            return f"holds in part, {self.share:.0%}"
        return self.status


@dataclass(frozen=True)
class Verdict:
    """A claim of :data:`CLAIMS` checked part by part on the data at hand.

    Parameters
    ----------
    key : str
        The claim's key in :data:`CLAIMS`.
    parts : sequence of Part
        At least one.
    facts : sequence of str
        Facts about the whole check (the setting it ran on: M, N, K, thresholds), one per line.
    setting : mapping
        The same setting as numbers, kept in the saved verdict.
    """

    key: str
    parts: tuple[Part, ...]
    facts: tuple[str, ...] = ()
    setting: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.key not in CLAIMS:
            raise ValueError(f"unknown claim {self.key!r}; known claims: {list(CLAIMS)}")
        parts = tuple(self.parts) if not isinstance(self.parts, Part) else (self.parts,)
        if not parts or not all(isinstance(p, Part) for p in parts):
            raise ValueError(f"parts must be a non-empty sequence of Part, got {self.parts!r}")
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "facts", _check_facts(self.facts))
        if not isinstance(self.setting, Mapping):
            raise ValueError(f"setting must be a mapping, got {type(self.setting).__name__}")

    @property
    def claim(self) -> Claim:
        """The claim this verdict checks."""
        return CLAIMS[self.key]

    @property
    def word(self) -> str:
        """HOLDS, HOLDS IN PART, DOES NOT HOLD, or NOT TESTED (no part was testable)."""
        tested = [p for p in self.parts if p.status != "not tested"]
        if not tested:
            return "NOT TESTED"
        if all(p.status == "holds" for p in tested):
            return "HOLDS"
        if all(p.status == "does not hold" for p in tested):
            return "DOES NOT HOLD"
        return "HOLDS IN PART"

    # ------------------------------------------------------------------ rendering
    def lines(self) -> list[tuple[int, str]]:
        """(indent level, text) for the heading, each part and each fact."""
        out = [(0, f"{self.word} -- {self.key}: {self.claim.title}")]
        for p in self.parts:
            out.append((1, f"[{p.label}] {p.claim}"))
            out.extend((2, f) for f in p.facts)
        out.extend((1, f) for f in self.facts)
        return out

    def text(self, width: int = 88) -> str:
        """Plain text, wrapped at ``width``: the word, one part per line, one fact per line."""
        rows = []
        for level, line in self.lines():
            indent = "  " * level + ("  " if level == 2 else "")
            rows.append(textwrap.fill(line, width=width, initial_indent=indent,
                                      subsequent_indent=indent + "  ", break_on_hyphens=False))
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer, cycle) -> None:
        # What IPython shows as text/plain (a notebook without HTML, a PDF build): the wrapped text.
        printer.text(self.text())

    def _repr_html_(self) -> str:
        kind = {"HOLDS": "tip", "HOLDS IN PART": "warning", "DOES NOT HOLD": "danger",
                "NOT TESTED": "note"}[self.word]
        esc = html.escape
        parts = []
        for p in self.parts:
            facts = "".join(f"<li>{esc(f)}</li>" for f in p.facts)
            parts.append(f'<li><strong class="ift-status">{esc(p.label)}</strong>: {esc(p.claim)}'
                         + (f"<ul>{facts}</ul>" if facts else "") + "</li>")
        general = "".join(f"<li>{esc(f)}</li>" for f in self.facts)
        link = (f'<p class="ift-scorecard-link"><a href="{esc(scorecard_link(self.key))}">This claim on the '
                f"reproduction scorecard</a>: every claim's verdict, the paper's setting against ours, and the "
                f"factor that flips it.</p>")
        return (f'<div class="admonition {kind} ift-verdict" data-claim="{esc(self.key)}" '
                f'data-word="{esc(self.word)}">'
                f'<p class="admonition-title">{esc(self.word)}: {esc(self.claim.title)}</p>'
                f"<ul>{''.join(parts)}</ul>"
                + (f'<ul class="ift-setting">{general}</ul>' if general else "")
                + link + "</div>")

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: key, word, parts, facts, setting."""
        return {"key": self.key, "word": self.word, "chapter": self.claim.chapter,
                "parts": [{"claim": p.claim, "status": p.status, "share": p.share, "facts": list(p.facts),
                           "statistics": to_jsonable(dict(p.statistics))} for p in self.parts],
                "facts": list(self.facts), "setting": to_jsonable(dict(self.setting))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Verdict":
        """Rebuild a verdict saved by :meth:`to_dict`; the word is re-derived and checked."""
        try:
            v = cls(d["key"], tuple(Part(p["claim"], p["status"], facts=tuple(p["facts"]), share=p["share"],
                                         statistics=p.get("statistics", {})) for p in d["parts"]),
                    facts=tuple(d.get("facts", ())), setting=d.get("setting", {}))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a saved verdict: missing or malformed field ({exc})") from None
        if "word" in d and d["word"] != v.word:
            raise ValueError(f"saved verdict {d['key']!r} says {d['word']!r} but its parts give {v.word!r}")
        return v

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``<directory>/<chapter>.<key>.json`` atomically; returns the path."""
        path = Path(directory) / f"{self.claim.chapter}.{self.key}.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        return path


def record(verdict: Verdict, *, directory: str | os.PathLike | None = None, show: bool = True) -> Verdict:
    """Show ``verdict`` (a box in a notebook, wrapped text elsewhere) and save it for the scorecard.

    The folder is ``directory``, else ``$IFT_VERDICTS``; with neither, nothing is saved.
    Returns the verdict, so a chapter can end with ``claims.record(Verdict(...))``.
    """
    if not isinstance(verdict, Verdict):
        raise ValueError(f"verdict must be a Verdict, got {type(verdict).__name__}")
    target = directory if directory is not None else os.environ.get(VERDICTS_ENV) or None
    if target is not None:
        verdict.save(target)
    if show:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython ships with the book's environment
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            display(verdict)
        else:
            print(verdict.text())
    return verdict


def load_verdicts(directory: str | os.PathLike) -> dict[str, Verdict]:
    """Every verdict saved under ``directory``, by claim key.

    Raises ``ValueError`` when two files carry the same claim (a chapter ran twice under two
    names), or a file is not a saved verdict.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ValueError(f"no verdicts folder at {folder}: build the chapters first")
    out: dict[str, Verdict] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            v = Verdict.from_dict(json.loads(path.read_text()))
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        if v.key in out:
            raise ValueError(f"two saved verdicts for claim {v.key!r} in {folder}")
        out[v.key] = v
    return out


# --------------------------------------------------------------------------- the scorecard
_TENSOR_CHOICES = ("the sign alignment of a feature's members before the presence test (ours; off is Algorithm 1 "
                   "as written)", "an absolute gamma_corr of 0.5 (ours; the paper: the 0.99 quantile of "
                   "cross-model |C|)")
_FRAMEWORK_CHOICES = ("the training-set size N and the rule that a feature must occur in training to be learned "
                      "(ours, not the paper's)",)
#: Choices of ours (not the paper's, not a third party's) that each claim's check rests on.
OUR_CHOICES: dict[str, tuple[str, ...]] = {
    "tensor": _TENSOR_CHOICES,
    "O1": _TENSOR_CHOICES + ("the skewness of frequency decides, no dominant/rare split (ours)",),
    "O2": _TENSOR_CHOICES,
    "O3": _TENSOR_CHOICES + ("the mixture split of log frequency (ours)",),
    "O4": _TENSOR_CHOICES + ("the jackknife over seeds and the Mantel test (ours)",),
    "sensitivity": _TENSOR_CHOICES,
    "closed_forms": _FRAMEWORK_CHOICES + ("the closed forms themselves (our formalization of the framework)",),
    "figure4": _FRAMEWORK_CHOICES + ("the numbers that say 'deviates' and 'near GDE' (ours)",),
    "gde_explained": _FRAMEWORK_CHOICES,
    "gde_breaking_sim": _FRAMEWORK_CHOICES + ("p_systematic, systematic wrong answers (ours)",),
    "gde_breaking_real": ("the rare sub-populations and their transforms (ours)",),
    "gde_label_free": ("the tolerance rel_tol for 'equals' (ours)",),
}


#: The last column for claims the factor study does not recompute.
_NOT_STUDIED = {
    "closed_forms": "no factor of a trained ensemble enters it (its chapter sweeps the framework's parameters)",
    "figure4": "no factor of a trained ensemble enters it (its chapter sweeps the framework's parameters)",
    "gde_explained": "no factor of a trained ensemble enters it (its chapter sweeps the framework's parameters)",
    "gde_breaking_sim": "no factor of a trained ensemble enters it (its chapter sweeps the framework's parameters)",
    "sensitivity": "it is itself a sweep of gamma_corr, gamma_data, the sign alignment, the split rule and K",
    "gde_breaking_real": "not in the factor study: chapter 11 sweeps its own ensembles (rarity, construction)",
}
_NOT_STUDIED_DEFAULT = "not in the factor study"


def scorecard_link(key: str, *, page: str = SCORECARD_PAGE) -> str:
    """The relative link from a chapter's page to claim ``key``'s row of the scorecard (both pages
    live in ``notebooks/_executed``).

    Examples
    --------
    >>> scorecard_link("O1")
    'scorecard.html#claim-O1'
    """
    if key not in CLAIMS:
        raise ValueError(f"unknown claim {key!r}; known claims: {list(CLAIMS)}")
    return f"{page}.html#claim-{key}"


def _headline(verdict: Verdict) -> str:
    """The statistic and interval of the first part that has one, else its first fact."""
    for p in verdict.parts:
        st = p.statistics
        if "statistic" in st and "low" in st and "high" in st:
            return f"{p.claim}: {float(st['statistic']):+.3f} [{float(st['low']):+.3f}, {float(st['high']):+.3f}]"
    for p in verdict.parts:
        if p.facts:
            return f"{p.claim}: {p.facts[0]}"
    return verdict.facts[0] if verdict.facts else ""


def scorecard_rows(verdicts: Mapping[str, Verdict], *, flips: Mapping[str, str] | None = None,
                   compute: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per claim of :data:`CLAIMS`, in its order, for the reproduction scorecard.

    Parameters
    ----------
    verdicts : mapping
        The saved verdicts by claim key (:func:`load_verdicts`); a claim without one gets the
        word ``"NOT RUN"``.
    flips : mapping, optional
        Per claim, the factor that flips its verdict (from the factor study), in words.
    compute : mapping, optional
        Per chapter name, the compute the chapter took, in words.

    Returns
    -------
    list of dict
        ``key``, ``claim``, ``paper_says``, ``quoted``, ``provenance`` (whose definition, and our
        own choices), ``word``, ``statistic``, ``parts``, ``chapter``, ``compute``, ``flip``.

    Examples
    --------
    >>> v = Verdict("O3", (Part("seeds differ", "holds"),))
    >>> row = scorecard_rows({"O3": v}, flips={"O3": "K: HOLDS -> DOES NOT HOLD at K=5"})[5]
    >>> row["key"], row["word"], row["flip"]
    ('O3', 'HOLDS', 'K: HOLDS -> DOES NOT HOLD at K=5')
    """
    flips, compute = dict(flips or {}), dict(compute or {})
    rows = []
    for key, claim in CLAIMS.items():
        v = verdicts.get(key)
        ours = OUR_CHOICES.get(key, ())
        provenance = {"paper": "the paper's definition", "third party": "a third-party reimplementation's",
                      "ours": "ours"}[claim.provenance]
        rows.append({
            "key": key, "claim": claim.title, "paper_says": claim.paper_says, "quoted": claim.quoted,
            "definition": claim.definition,
            "provenance": provenance + ("; resting on " + "; ".join(ours) if ours else ""),
            "word": v.word if v is not None else "NOT RUN",
            "statistic": _headline(v) if v is not None else "",
            "parts": [f"[{p.label}] {p.claim}" for p in v.parts] if v is not None else [],
            "chapter": claim.chapter, "compute": compute.get(claim.chapter, "not recorded"),
            "flip": flips.get(key, _NOT_STUDIED.get(key, _NOT_STUDIED_DEFAULT)),
        })
    return rows


def scorecard_html(rows: Sequence[Mapping[str, Any]], *, chapter_titles: Mapping[str, str] | None = None) -> str:
    """The scorecard as one HTML table; each row has ``id="claim-<key>"`` (what
    :func:`scorecard_link` points at) and ``data-word`` (the verdict's word).

    Examples
    --------
    >>> html_text = scorecard_html(scorecard_rows({}))
    >>> 'id="claim-O1"' in html_text and 'data-word="NOT RUN"' in html_text
    True
    """
    esc = html.escape
    titles = dict(chapter_titles or {})
    kind = {"HOLDS": "ift-holds", "HOLDS IN PART": "ift-in-part", "DOES NOT HOLD": "ift-fails"}
    head = ("claim", "what the paper says", "whose definition", "our verdict (statistic, interval)", "chapter",
            "compute", "what flips the verdict")
    out = ['<table class="ift-scorecard table">', "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
           + "</tr></thead><tbody>"]
    for r in rows:
        says = f"&ldquo;{esc(r['paper_says'])}&rdquo;" if r["quoted"] else (
            f"{esc(r['paper_says'])} <em>(our summary; see the Definitions)</em>")
        parts = "".join(f"<li>{esc(p)}</li>" for p in r["parts"])
        verdict = (f'<strong class="{kind.get(r["word"], "ift-other")}">{esc(r["word"])}</strong>'
                   + (f"<br>{esc(r['statistic'])}" if r["statistic"] else "")
                   + (f"<ul>{parts}</ul>" if parts else ""))
        title = titles.get(r["chapter"], r["chapter"])
        out.append(f'<tr id="claim-{esc(r["key"])}" data-claim="{esc(r["key"])}" data-word="{esc(r["word"])}">'
                   f"<td><strong>{esc(r['claim'])}</strong> <code>{esc(r['key'])}</code></td>"
                   f"<td>{says}</td><td>{esc(r['provenance'])}</td><td>{verdict}</td>"
                   f'<td><a href="{esc(r["chapter"])}.html">{esc(title)}</a></td>'
                   f"<td>{esc(r['compute'])}</td><td>{esc(r['flip'])}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
