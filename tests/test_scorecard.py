"""The reproduction scorecard: one row per claim, each row's verdict the one its chapter saved,
each chapter's verdict box linking to its row, and the page built after every chapter."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import yaml

from ift_core import claims
from ift_core.claims import CLAIMS, Part, Verdict, load_verdicts, record

REPO = Path(__file__).resolve().parent.parent


def build_book():
    spec = importlib.util.spec_from_file_location("build_book", REPO / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_book", module)
    spec.loader.exec_module(module)
    return module


def _saved(tmp_path):
    """One verdict per claim, words cycling through the four, saved as the chapters save them."""
    statuses = ("holds", "does not hold", "not tested")
    for i, key in enumerate(CLAIMS):
        parts = (Part("only part", statuses[i % 3]),)  # HOLDS, DOES NOT HOLD, NOT TESTED
        if i % 4 == 3:
            parts = (Part.from_share("a share", 0.5, statistics={"statistic": 0.1, "low": -0.2, "high": 0.4}),)
        record(Verdict(key, parts), directory=tmp_path, show=False)
    return load_verdicts(tmp_path)


def test_every_row_shows_its_chapters_saved_verdict(tmp_path):
    saved = _saved(tmp_path)
    on_disk = {json.loads(p.read_text())["key"]: json.loads(p.read_text())["word"] for p in tmp_path.glob("*.json")}
    rows = claims.scorecard_rows(saved, flips={"O2": "K: x"}, compute={"05_confidence": "12 s"})
    assert [r["key"] for r in rows] == list(CLAIMS)
    assert {r["key"]: r["word"] for r in rows} == on_disk
    assert len(set(on_disk.values())) >= 3  # the check could fail: the words differ between rows
    o2 = next(r for r in rows if r["key"] == "O2")
    assert o2["flip"] == "K: x" and o2["compute"] == "12 s" and o2["chapter"] == "05_confidence"
    html = claims.scorecard_html(rows)
    for key, word in on_disk.items():
        assert f'<tr id="claim-{key}" data-claim="{key}" data-word="{word}">' in html


def test_a_claim_without_a_saved_verdict_is_not_run():
    rows = claims.scorecard_rows({})
    assert {r["word"] for r in rows} == {"NOT RUN"}


def test_provenance_names_our_own_choices():
    rows = {r["key"]: r for r in claims.scorecard_rows({})}
    assert "sign alignment" in rows["O1"]["provenance"] and rows["O1"]["provenance"].startswith("ours")
    for key in ("closed_forms", "figure4", "gde_explained", "gde_breaking_sim"):
        assert "training-set size N" in rows[key]["provenance"] and "ours" in rows[key]["provenance"]
    assert "p_systematic" in rows["gde_breaking_sim"]["provenance"]
    assert rows["tensor"]["provenance"].startswith("the paper's")
    assert rows["figure4"]["quoted"] and not rows["O1"]["quoted"]


def test_each_verdict_box_links_to_its_scorecard_row():
    for key in CLAIMS:
        box = Verdict(key, (Part("p", "holds"),))._repr_html_()
        assert f'href="scorecard.html#claim-{key}"' in box
        assert claims.scorecard_link(key) == f"scorecard.html#claim-{key}"


def test_toc_puts_the_scorecard_right_after_the_intro_unnumbered():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    first = toc["parts"][0]
    assert [c["file"] for c in first["chapters"]] == ["notebooks/_executed/scorecard"]
    assert not first.get("numbered")  # chapters 1-13 keep their numbers
    assert all(p.get("numbered") for p in toc["parts"][1:5])
    assert "_executed/scorecard" in (REPO / "book" / "intro.md").read_text()


def test_the_build_runs_the_scorecard_after_every_chapter(tmp_path):
    bb = build_book()
    after = bb.pages_after_chapters()
    assert [p.name for p in after] == ["scorecard"]
    assert "scorecard" not in [c.name for c in bb.chapters_from_toc()]
    # Its stamp covers what the chapters saved: a changed verdict makes it stale.
    (tmp_path / bb.VERDICTS_DIR).mkdir()
    before = bb.saved_inputs_digest(tmp_path)
    record(Verdict("O1", (Part("p", "holds"),)), directory=tmp_path / bb.VERDICTS_DIR, show=False)
    one = bb.saved_inputs_digest(tmp_path)
    record(Verdict("O1", (Part("p", "does not hold"),)), directory=tmp_path / bb.VERDICTS_DIR, show=False)
    assert len({before, one, bb.saved_inputs_digest(tmp_path)}) == 3
    source = (REPO / "scripts" / "build_book.py").read_text()
    main = source[source.index("def main("):]
    assert main.index("run_chapters(") < main.index("run_after_pages(")


def test_scorecard_notebook_reads_the_saved_verdicts_and_checks_them():
    import jupytext

    nb = jupytext.read(REPO / "notebooks" / "scorecard.py")
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and re.search(r'^grid = "book"', params[0].source, re.M)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "claims.load_verdicts(" in code and "factors.factor_study(" in code
    assert "assert not mismatch" in nb.cells[-1].source or "assert not mismatch" in code
