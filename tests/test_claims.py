"""Claim checks: the verdict word follows from the parts, rendering keeps every fact, saving round-trips."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ift_core import claims
from ift_core.claims import CLAIMS, Part, Verdict, load_verdicts, record


def _verdict(*statuses_shares, key="O1"):
    parts = []
    for i, (status, share) in enumerate(statuses_shares):
        parts.append(Part(f"part {i}", status, facts=(f"fact {i}a", f"fact {i}b"), share=share))
    return Verdict(key, tuple(parts), facts=("M=10, K=20",), setting={"M": 10})


@pytest.mark.parametrize("statuses, word", [
    ((("holds", None), ("holds", 1.0)), "HOLDS"),
    ((("does not hold", None), ("does not hold", 0.0)), "DOES NOT HOLD"),
    ((("holds", None), ("does not hold", None)), "HOLDS IN PART"),
    ((("holds in part", 0.8),), "HOLDS IN PART"),
    ((("holds", None), ("not tested", None)), "HOLDS"),
    ((("not tested", None),), "NOT TESTED"),
])
def test_word_is_derived_from_the_parts(statuses, word):
    assert _verdict(*statuses).word == word


def test_word_matches_a_brute_force_rule_on_random_verdicts():
    rng = np.random.default_rng(0)
    for _ in range(200):
        shares = rng.choice([0.0, 0.3, 1.0, -1.0], size=rng.integers(1, 5))
        parts = tuple(Part(f"p{i}", "not tested") if s < 0 else Part.from_share(f"p{i}", float(s))
                      for i, s in enumerate(shares))
        tested = [s for s in shares if s >= 0]
        expected = ("NOT TESTED" if not tested else "HOLDS" if all(s == 1 for s in tested)
                    else "DOES NOT HOLD" if all(s == 0 for s in tested) else "HOLDS IN PART")
        assert Verdict("O2", parts).word == expected


@pytest.mark.parametrize("share, status", [(1.0, "holds"), (1, "holds"), (0.5, "holds in part"),
                                           (1e-9, "holds in part"), (0.0, "does not hold")])
def test_from_share(share, status):
    assert Part.from_share("x", share).status == status


def test_from_bool_accepts_numpy_booleans():
    assert Part.from_bool("x", np.bool_(True)).status == "holds"


@pytest.mark.parametrize("make, message", [
    (lambda: Part("x", "HOLDS"), "status must be one of"),
    (lambda: Part("x", "holds in part"), "needs a share strictly between 0 and 1"),
    (lambda: Part("x", "holds in part", share=1.0), "needs a share strictly between 0 and 1"),
    (lambda: Part("x", "holds", share=0.5), "contradicts share 0.5"),
    (lambda: Part("x", "does not hold", share=1.0), "contradicts share"),
    (lambda: Part("x", "holds", share=True), "share must be a number in"),
    (lambda: Part("x", "holds", share=float("nan")), "share must be a number in"),
    (lambda: Part("", "holds"), "claim must be a non-empty string"),
    (lambda: Part("x", "holds", facts=[1.5]), "facts must hold strings"),
    (lambda: Part.from_share("x", 1.5), "share must be a number in"),
    (lambda: Part.from_bool("x", 1), "holds must be a boolean"),
    (lambda: Verdict("O9", (Part("x", "holds"),)), "unknown claim 'O9'"),
    (lambda: Verdict("O1", ()), "non-empty sequence of Part"),
    (lambda: Verdict("O1", ("holds",)), "non-empty sequence of Part"),
    (lambda: record("HOLDS"), "verdict must be a Verdict"),
])
def test_bad_input_is_refused(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_text_wraps_and_keeps_every_fact():
    long_fact = "rho = 0.123 " * 30
    v = Verdict("O2", (Part("confident points carry fewer features", "does not hold", facts=(long_fact,)),),
                facts=("M=20, N=10000, K=50",))
    text = v.text(width=70)
    assert all(len(line) <= 70 for line in text.splitlines())
    assert text.splitlines()[0].startswith("DOES NOT HOLD -- O2")
    assert " ".join(text.split()).count("rho = 0.123") == 30
    assert "M=20, N=10000, K=50" in text


def test_html_escapes_and_carries_word_and_every_part():
    v = Verdict("O4", (Part("overlap <-> agreement", "holds in part", share=0.25, facts=("a < b",)),))
    out = v._repr_html_()
    assert 'data-word="HOLDS IN PART"' in out and "holds in part, 25%" in out
    assert "overlap &lt;-&gt; agreement" in out and "a &lt; b" in out and "<-> " not in out


def test_save_load_round_trip(tmp_path):
    v = _verdict(("holds", None), ("holds in part", 0.4))
    path = v.save(tmp_path)
    assert path.name == f"{CLAIMS['O1'].chapter}.O1.json"
    back = load_verdicts(tmp_path)["O1"]
    assert back == v and back.word == "HOLDS IN PART"


def test_load_refuses_a_tampered_word(tmp_path):
    path = _verdict(("does not hold", None)).save(tmp_path)
    d = json.loads(path.read_text())
    d["word"] = "HOLDS"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="says 'HOLDS' but its parts give 'DOES NOT HOLD'"):
        load_verdicts(tmp_path)


def test_load_refuses_a_missing_folder_and_garbage(tmp_path):
    with pytest.raises(ValueError, match="no verdicts folder"):
        load_verdicts(tmp_path / "nowhere")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="x.json: not a saved verdict"):
        load_verdicts(tmp_path)


def test_record_saves_to_the_environment_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(claims.VERDICTS_ENV, str(tmp_path))
    v = record(_verdict(("holds", None)))
    assert (tmp_path / f"{v.claim.chapter}.O1.json").exists()
    assert capsys.readouterr().out.startswith("HOLDS -- O1")


def test_every_claim_names_an_existing_chapter():
    from pathlib import Path
    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    for c in CLAIMS.values():
        assert (notebooks / f"{c.chapter}.py").exists(), c


@pytest.mark.parametrize("share, status, kept", [(0.85, "holds", None), (0.8, "holds", None), (1.0, "holds", 1.0),
                                                 (0.79, "holds in part", 0.79), (0.05, "holds in part", 0.05),
                                                 (0.049, "does not hold", None), (0.0, "does not hold", 0.0)])
def test_from_share_with_the_checks_own_thresholds(share, status, kept):
    # The thresholds of ift_core.readings.CRITERIA: holds from 80%, does not hold below 5%.
    part = Part.from_share("x", share, holds_at=0.8, fails_below=0.05)
    assert part.status == status and part.share == kept
    if kept is None:  # a share the part cannot carry is kept for the scorecard
        assert part.statistics["share"] == share
    assert Part.from_share("x", share).status == ("holds" if share == 1 else "does not hold" if share == 0
                                                  else "holds in part")


def test_from_share_thresholds_match_readings_criteria():
    from ift_core.theory.readings import CRITERIA

    for share in np.linspace(0, 1, 101):
        part = Part.from_share("x", float(share), holds_at=CRITERIA.holds, fails_below=CRITERIA.fails)
        assert part.status == CRITERIA.verdict(float(share)), share


@pytest.mark.parametrize("kwargs, message", [
    ({"holds_at": 1.5}, "holds_at must be a number in [0, 1]"),
    ({"fails_below": -0.1}, "fails_below must be a number in [0, 1]"),
    ({"holds_at": 0.3, "fails_below": 0.5}, "fails_below must be below holds_at"),
    ({"holds_at": True}, "holds_at must be a number in [0, 1]"),
])
def test_from_share_refuses_bad_thresholds(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Part.from_share("x", 0.5, **kwargs)


def test_from_observation_keeps_the_statistic_and_the_judgement():
    from ift_core.observations import Observation

    o = Observation("O2", "rho < 0", -0.2, (-0.3, -0.1), True, table=None)
    part = Part.from_observation(o, facts="n=100")
    assert part.status == "holds" and part.claim == "rho < 0" and part.facts == ("n=100",)
    assert part.statistics == {"statistic": -0.2, "low": -0.3, "high": -0.1}
    o = Observation("O2", "rho < 0", 0.1, (-0.1, 0.3), False, table=None)
    assert Part.from_observation(o, claim="confident points carry fewer features").status == "does not hold"
    with pytest.raises(ValueError, match="observation must have claim, holds, statistic and ci"):
        Part.from_observation(object())


def test_plain_text_representation_is_the_wrapped_text():
    from IPython.lib.pretty import pretty

    v = _verdict(("holds", None), ("does not hold", None))
    assert pretty(v) == v.text()
