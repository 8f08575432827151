"""The Definitions page and the package agree: one table of defaults, read back and compared.

``book/definitions.md`` writes the book's defaults down once, in the table after the label
``(defaults-table)=``. This test parses that table and compares every cell with the package
(``ift_core.train.PROFILES`` and ``ift_core.tensor.PROFILE_OPTIONS``), so that a change of a
profile fails here until the page says the same. It also checks that the page is reader text:
no instructions to authors, no references to a design document, mathematics in LaTeX.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ift_core.tensor import PROFILE_OPTIONS
from ift_core.train import PROFILES

PAGE = Path(__file__).resolve().parents[1] / "book" / "definitions.md"
LABEL = "(defaults-table)="


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def defaults_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the first table after :data:`LABEL`."""
    if LABEL not in text:
        raise AssertionError(f"definitions.md has no {LABEL} label before its table of defaults")
    lines = text.split(LABEL, 1)[1].strip().splitlines()
    table = []
    for line in lines:
        if not line.startswith("|"):
            if table:
                break
            continue
        table.append(line)
    header, rule, *rows = table
    assert set(rule.replace("|", "").strip()) <= set("-: "), "second line must be the table's rule"
    return _cells(header), [_cells(r) for r in rows]


def parse_cell(cell: str):
    """A table cell as the value the package holds: ``all`` is None, yes/no are booleans,
    numbers lose their thousands separators, backticks are dropped."""
    text = cell.strip().strip("`")
    if text == "all":
        return None
    if text in ("yes", "no"):
        return text == "yes"
    plain = text.replace(",", "")
    if re.fullmatch(r"-?\d+", plain):
        return int(plain)
    try:
        return float(plain)
    except ValueError:
        return text


def package_value(profile: str, option: str):
    """The package's value of ``option`` (``data.x``, a TrainConfig field or a TensorOptions field)."""
    config = PROFILES[profile]
    if option.startswith("data."):
        return getattr(config.data, option[5:])
    if hasattr(config, option):
        return getattr(config, option)
    return getattr(PROFILE_OPTIONS[profile], option)


def _table():
    header, rows = defaults_table(PAGE.read_text(encoding="utf-8"))
    profiles = [h.strip("`") for h in header[3:]]
    return header, profiles, rows


def test_table_names_every_profile():
    header, profiles, rows = _table()
    assert header[:3] == ["Setting", "Symbol", "Option"]
    assert profiles == list(PROFILES) == list(PROFILE_OPTIONS)
    assert all(len(r) == len(header) for r in rows), "every row has one cell per column"


def test_table_covers_every_tensor_option_and_training_setting():
    import dataclasses

    _, _, rows = _table()
    options = {r[2].strip("`") for r in rows}
    training = {"data.name", "data.n_train", "data.n_test", "arch", "n_models", "epochs", "lr", "momentum",
                "weight_decay", "batch_size", "schedule", "mode"}
    tensor = {f.name for f in dataclasses.fields(type(PROFILE_OPTIONS["cpu"]))}
    missing = (training | tensor) - options
    assert not missing, f"settings the table of defaults does not state: {sorted(missing)}"


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_cell_equals_the_package(profile):
    header, profiles, rows = _table()
    column = 3 + profiles.index(profile)
    wrong = []
    for row in rows:
        option = row[2].strip("`")
        page, package = parse_cell(row[column]), package_value(profile, option)
        same = (page == package) if not isinstance(package, float) else page == pytest.approx(package)
        if not same or type(page) is bool and type(package) is not bool:
            wrong.append(f"{option}: page says {row[column]!r}, package has {package!r}")
    assert not wrong, f"definitions.md, profile {profile!r}, disagrees with the package:\n" + "\n".join(wrong)


def test_parse_cell_reads_what_the_page_writes():
    assert [parse_cell(c) for c in ("all", "10,000", "0.0001", "`q0.99`", "yes", "no", "`mlp`", "0.5")] == \
        [None, 10_000, 0.0001, "q0.99", True, False, "mlp", 0.5]


def test_a_wrong_cell_is_caught():
    """The comparison can fail: a table that says 11 models for ``cpu`` is refused."""
    text = PAGE.read_text(encoding="utf-8")
    header, rows = defaults_table(text)
    row = next(r for r in rows if r[2] == "`n_models`")
    cpu = 3 + [h.strip("`") for h in header[3:]].index("cpu")
    assert parse_cell(row[cpu]) == package_value("cpu", "n_models")
    assert parse_cell(str(PROFILES["cpu"].n_models + 1)) != package_value("cpu", "n_models")


def test_page_is_reader_text():
    text = PAGE.read_text(encoding="utf-8")
    for phrase in ("design document", "design note", "specification", "Facts to design", "Offer the alternative",
                   "and say so", "must not", "should "):
        assert phrase not in text, f"definitions.md still speaks to authors: {phrase!r}"
    # Mathematics is LaTeX, not ASCII in code blocks.
    assert "    rho_s(b)" not in text and "E[acc]   =" not in text
    assert text.count("$$") >= 6
    blocks = re.findall(r"```.*?```", text, flags=re.S)
    assert not blocks, "definitions.md has code blocks; write formulas as $$...$$"


def test_no_page_or_chapter_cites_a_design_document():
    root = PAGE.parents[1]
    sources = [*root.glob("book/*.md"), *root.glob("notebooks/*.py")]
    hits = [str(p.relative_to(root)) for p in sources if "design document" in p.read_text(encoding="utf-8")]
    assert not hits, f"pages that cite a design document the site does not contain: {hits}"
