"""The book: table of contents, chapter conventions, the build script, and the built site in a browser.

The fast tests check the sources (every notebook is in ``_toc.yml`` and has one ``parameters``
cell with ``profile``) and the build script's pure logic against references (papermill's own
parser, hand-written stamps). The browser test builds the whole book with the ``tiny`` profile
into a temporary folder, serves it on 127.0.0.1 and drives Debian's headless Chromium through
Playwright over every chapter in the navigation.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Where each chapter's verdict boxes, figures and wide tables sit relative to the content column.
LAYOUT_JS = """() => {
  const col = document.querySelector('article.bd-article') || document.querySelector('article');
  const c = col.getBoundingClientRect();
  const out = {verdicts: [], figures: [], tables: []};
  for (const v of document.querySelectorAll('.cell_output .ift-verdict')) {
    const r = v.getBoundingClientRect();
    let clipped = null;  // an ancestor inside the column that is wider than its box
    for (let e = v; e && e !== col; e = e.parentElement) {
      if (e.scrollWidth > e.clientWidth + 1) { clipped = e.tagName + '.' + e.className; break; }
    }
    out.verdicts.push({claim: v.dataset.claim, word: v.dataset.word, left: r.left - c.left, right: c.right - r.right,
                       viewport: window.innerWidth - r.right, clipped: clipped, text: v.innerText});
  }
  for (const img of document.querySelectorAll('.cell_output img')) {
    const block = img.closest('.output') || img.parentElement;
    out.figures.push({overflow: block.scrollWidth - block.clientWidth,
                      right: c.right - img.getBoundingClientRect().right,
                      natural: img.naturalWidth, rendered: img.getBoundingClientRect().width,
                      src: (img.getAttribute('src') || '').slice(0, 40)});
  }
  for (const t of document.querySelectorAll('.cell_output .output.text_html')) {
    if (t.scrollWidth > t.clientWidth + 1) {
      const s = getComputedStyle(t);
      out.tables.push({overflowX: s.overflowX, hint: s.backgroundImage.includes('gradient'),
                       scrollbar: s.scrollbarWidth});
    }
  }
  return out;
}"""
# An exception's name at the start of a line, as a traceback's last line prints it.
ERROR_LINE = re.compile(r"(?m)^\s*(Traceback \(most recent call last\)|[A-Za-z_.]*(Error|Exception): )")
PLOTTING = re.compile(r"\bplots\.|\bplt\.|\.plot\(|sns\.|savefig|imshow")
# Text in a figure is sized for a column this wide (ift_core.plots.style.COLUMN_PX).
COLUMN_PX = 700


@functools.lru_cache(maxsize=1)
def build_book():
    """scripts/build_book.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("build_book", REPO / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_book"] = module
    spec.loader.exec_module(module)
    return module


def notebook_sources() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("*.py") if re.match(r"\d\d_", p.name))


# --------------------------------------------------------------------------- sources
def test_toc_lists_every_notebook_once():
    names = [c.name for c in build_book().chapters_from_toc()]
    assert len(names) == len(set(names)), f"_toc.yml lists a chapter twice: {names}"
    on_disk = {p.stem for p in notebook_sources()}
    assert on_disk, "no chapters in notebooks/"
    assert set(names) == on_disk, (
        f"not in _toc.yml: {sorted(on_disk - set(names))}; in _toc.yml without a notebook: "
        f"{sorted(set(names) - on_disk)}")
    assert names == sorted(names), f"chapters must be in numeric order in _toc.yml: {names}"


def test_toc_pages_exist():
    import yaml

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    pages = [f for f in files if not f.startswith("notebooks/_executed/")]
    missing = [f for f in pages if not (REPO / f"{f}.md").exists()]
    assert not missing, f"_toc.yml names pages that do not exist: {missing}"
    assert (REPO / "book" / "references.bib").exists()


@pytest.mark.parametrize("path", notebook_sources(), ids=lambda p: p.stem)
def test_notebook_has_one_parameters_cell_with_profile(path):
    import jupytext

    nb = jupytext.read(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected exactly 1"
    cell = tagged[0]
    assert cell.cell_type == "code", f"{path.name}: the parameters cell must be a code cell"
    tree = ast.parse(cell.source)
    assigned = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and node.value is not None:
                assigned[target.id] = node.value
    assert "profile" in assigned, f"{path.name}: the parameters cell does not set `profile`"
    default = ast.literal_eval(assigned["profile"])
    assert default == "cpu", f"{path.name}: profile defaults to {default!r}, the book's default is 'cpu'"
    first = next(c for c in nb.cells if c.source.strip())
    assert first.cell_type == "markdown", f"{path.name}: the first cell must state the claim (markdown)"


def _code_cells(path: Path):
    import jupytext

    return [c for c in jupytext.read(path).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", notebook_sources(), ids=lambda p: p.stem)
def test_notebook_ends_with_a_verdict_per_claim(path):
    from ift_core.claims import CLAIMS

    last = _code_cells(path)[-1].source
    keys = re.findall(r"\bVerdict\(\s*[\"']([^\"']+)[\"']", last)
    assert "record(" in last and keys, f"{path.name}: the last cell must record its verdicts (ift_core.claims.record)"
    mine = [k for k, c in CLAIMS.items() if c.chapter == path.stem]
    assert sorted(keys) == sorted(mine), f"{path.name}: verdicts for {keys}, its claims in the registry: {mine}"
    printed = re.search(r"print\(f?[\"'](HOLDS|DOES NOT HOLD)", last)
    assert not printed, f"{path.name}: the verdict word is derived from the parts, never printed by hand"


@pytest.mark.parametrize("path", notebook_sources(), ids=lambda p: p.stem)
def test_notebook_has_student_exercises(path):
    solutions = [c for c in _code_cells(path) if "solution" in c.metadata.get("tags", [])]
    assert solutions, f"{path.name}: no code cell tagged 'solution' (the student notebook would have no exercise)"
    for cell in solutions:
        task = cell.metadata.get("student", "")
        assert len(task.split()) >= 5, f"{path.name}: a solution cell says what to write in `student=...`: {task!r}"
        assert "record(" not in cell.source, f"{path.name}: the verdict cell cannot be an exercise"


# --------------------------------------------------------------------------- build script logic
@pytest.mark.parametrize("text", ["20", "-3", "0.5", "1e-3", "True", "False", "None", "cifar10",
                                  "1_000", "nan", "inf", "0x10", "", " 7 "])
def test_parse_value_matches_papermill(text):
    from papermill.cli import _resolve_type  # the reference: papermill's own -p parser

    got, want = build_book().parse_value(text), _resolve_type(text)
    assert type(got) is type(want)
    assert got == want or (got != got and want != want)  # nan


def test_cli_parses_repeated_parameters_and_only():
    bb = build_book()
    args = bb.make_parser().parse_args(
        ["--profile", "tiny", "--only", "notebooks/04_long_tail.py", "-p", "n_models", "20", "-p", "k", "0.5"])
    assert args.profile == "tiny" and args.only == "notebooks/04_long_tail.py"
    assert args.parameter == [["n_models", "20"], ["k", "0.5"]]
    with pytest.raises(SystemExit):
        bb.make_parser().parse_args(["--profile", "huge"])


def test_resolve_only_accepts_path_stem_and_number():
    bb = build_book()
    chapters = [bb.Chapter("03_tensor", NOTEBOOKS / "03_tensor.py"),
                bb.Chapter("04_long_tail", NOTEBOOKS / "04_long_tail.py")]
    for key in ("notebooks/04_long_tail.py", "04_long_tail.py", "04_long_tail", "04",
                "notebooks/_executed/04_long_tail.ipynb"):
        assert bb.resolve_only(key, chapters).name == "04_long_tail"
    with pytest.raises(SystemExit, match="no such chapter"):
        bb.resolve_only("99_nothing", chapters)


def test_stamp_skips_only_unchanged_chapters(tmp_path):
    bb = build_book()
    src = tmp_path / "05_x.py"
    src.write_text("# %%\nprofile = 'cpu'\n")
    chapter, exec_dir = bb.Chapter("05_x", src), tmp_path / "executed"
    exec_dir.mkdir()
    fp = {"version": "0.1.0", "sha256": "abc"}
    stamp = bb.stamp_for(chapter, {"profile": "tiny", "n_models": 3}, fp)
    assert not bb.is_fresh(chapter, exec_dir, stamp), "no output yet"
    chapter.output(exec_dir).write_text("{}")
    chapter.stamp(exec_dir).write_text(json.dumps(stamp))
    assert bb.is_fresh(chapter, exec_dir, stamp)
    assert not bb.is_fresh(chapter, exec_dir, bb.stamp_for(chapter, {"profile": "cpu", "n_models": 3}, fp))
    assert not bb.is_fresh(chapter, exec_dir, bb.stamp_for(chapter, {"profile": "tiny", "n_models": 4}, fp))
    assert not bb.is_fresh(chapter, exec_dir, bb.stamp_for(chapter, {"profile": "tiny", "n_models": 3},
                                                           {"version": "0.1.0", "sha256": "abd"}))
    src.write_text("# %%\nprofile = 'cpu'  # edited\n")
    assert not bb.is_fresh(chapter, exec_dir, bb.stamp_for(chapter, {"profile": "tiny", "n_models": 3}, fp))
    chapter.output(exec_dir).unlink()
    assert not bb.is_fresh(chapter, exec_dir, stamp), "output deleted"


def test_ift_core_fingerprint_follows_source_files(tmp_path):
    bb = build_book()
    pkg = tmp_path / "ift_core"
    (pkg / "plots").mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "9.8.7"\n')
    (pkg / "plots" / "a.py").write_text("x = 1\n")
    first = bb.ift_core_fingerprint(pkg)
    assert first["version"] == "9.8.7" and len(first["sha256"]) == 64
    assert bb.ift_core_fingerprint(pkg) == first
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    (pkg / "notes.txt").write_text("not code")
    assert bb.ift_core_fingerprint(pkg) == first, "bytecode and non-Python files must not matter"
    (pkg / "plots" / "a.py").write_text("x = 2\n")
    assert bb.ift_core_fingerprint(pkg)["sha256"] != first["sha256"]
    real = bb.ift_core_fingerprint()
    assert real["version"] != "unknown"


@functools.lru_cache(maxsize=None)
def chapter_specs(stem: str) -> dict:
    """A chapter's parameters by papermill's inspection (scripts/chapter_parameters.py)."""
    build_book()  # puts scripts/ on sys.path
    import chapter_parameters

    return chapter_parameters.inspect_chapter(NOTEBOOKS / f"{stem}.py")


def _stem(number: str) -> str:
    return next(p.stem for p in notebook_sources() if p.stem.startswith(number))


# --------------------------------------------------------------------------- parameters refused before execution
@pytest.mark.parametrize("path", notebook_sources(), ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_with_a_type_its_default_fits(path):
    import jupytext

    specs = chapter_specs(path.stem)  # raises where papermill would miss a name
    cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
    names = [t.id for node in ast.parse(cell.source).body
             for t in (node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)])
             if isinstance(t, ast.Name)]
    assert list(specs) == names, f"{path.name}: papermill reads {list(specs)}, the cell assigns {names}"
    for p in specs.values():
        default = ast.literal_eval(p.default)
        text = default if isinstance(default, str) else str(default)
        assert p.convert(text) == default, f"{path.name}: {p.name}'s default {p.default} does not fit its type {p.type}"


def test_papermills_own_help_lists_the_annotations(tmp_path):
    """The reference: `papermill NB --help-notebook`, what a reader running papermill alone sees."""
    import jupytext

    nb = jupytext.read(NOTEBOOKS / f"{_stem('11')}.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    jupytext.write(nb, tmp_path / "11.ipynb", fmt="ipynb")
    out = subprocess.run([sys.executable, "-m", "papermill", str(tmp_path / "11.ipynb"), "--help-notebook"],
                         capture_output=True, text=True, timeout=120).stdout
    for p in chapter_specs(_stem("11")).values():
        assert f"{p.name}: " in out, f"papermill --help-notebook does not list {p.name}:\n{out}"
    assert "rarities: Optional[list[int]] (default None)" in out, out


def test_unknown_parameter_is_refused_with_the_closest_name_and_the_list():
    import chapter_parameters as cp

    stem = _stem("04")
    with pytest.raises(ValueError) as err:
        cp.check_parameters([("n_component", "30")], {stem: chapter_specs(stem)})
    message = str(err.value)
    assert f"{stem} has no parameter 'n_component'; did you mean 'n_components'?" in message
    assert "Nothing was executed" in message
    for p in chapter_specs(stem).values():  # the whole list: name, type, default
        assert re.search(rf"^\s+{p.name}\s+{re.escape(p.type)}\s+{re.escape(p.default)}\s", message, re.M), p
    every = {p.stem: chapter_specs(p.stem) for p in notebook_sources()}
    with pytest.raises(ValueError, match="no chapter has a parameter 'n_componnts'; did you mean 'n_components'"):
        cp.check_parameters([("n_componnts", "30")], every)
    with pytest.raises(ValueError, match="set profile with --profile"):
        cp.check_parameters([("profile", "tiny")], every)


@pytest.mark.parametrize("number, name, text, expected", [
    ("04", "n_components", "thirty", "n_components is int or None (default None); 'thirty' is not an int or None: "
                                     "give a whole number"),
    ("04", "n_components", "2.5", "'2.5' is not an int"),
    ("04", "n_components", "True", "'True' is not an int"),
    ("04", "n_bootstrap", "None", "'None' is not an int"),
    ("04", "presence_quantile", "high", "presence_quantile is float (default 0.9); 'high' is not a float"),
    ("03", "align_signs", "1", "align_signs is bool (default True); '1' is not a bool: give True or False"),
    ("07", "align_signs", "[1, 0]", "align_signs is list[bool]"),
    ("11", "rarities", "[0, 2, x]", "rarities is list[int] or None"),
    ("01", "max_accuracy_spread", "False", "max_accuracy_spread is float"),
])
def test_wrongly_typed_value_is_refused_naming_the_type(number, name, text, expected):
    import chapter_parameters as cp

    stem = _stem(number)
    with pytest.raises(ValueError, match=re.escape(f"-p {name} {text}: in {stem}, {name} is ")) as err:
        cp.check_parameters([(name, text)], {stem: chapter_specs(stem)})
    assert expected in str(err.value) and "Nothing was executed" in str(err.value)


@pytest.mark.parametrize("number, name, text, value", [
    ("04", "n_components", "30", 30),
    ("04", "gamma_corr", "None", None),           # None where the annotation allows it
    ("04", "gamma_corr", "0.6", 0.6),             # gamma_corr: a number ...
    ("04", "gamma_corr", "q0.995", "q0.995"),     # ... or a quantile rule, one knob
    ("01", "max_accuracy_spread", "1", 1.0),      # a float accepts an int, passed as a float
    ("03", "align_signs", "False", False),
    ("11", "rarities", "[0, 2, 5]", [0, 2, 5]),   # a list as YAML, like papermill's -y
    ("11", "n_models", "None", None),
    ("07", "split_rules", "[otsu, mixture]", ["otsu", "mixture"]),
    ("07", "corr_quantiles", "[0.9, 1]", [0.9, 1.0]),
    ("12", "severities", "3", "3"),               # a str takes the text as given
])
def test_values_reach_the_chapter_with_their_type(number, name, text, value):
    import chapter_parameters as cp

    stem = _stem(number)
    got = cp.check_parameters([(name, text)], {stem: chapter_specs(stem)})[stem][name]
    assert got == value and type(got) is type(value)


def test_a_full_build_gives_each_chapter_only_the_parameters_it_declares():
    import chapter_parameters as cp

    every = {p.stem: chapter_specs(p.stem) for p in notebook_sources()}
    got = cp.check_parameters([("n_models", "3")], every)
    holders = {stem for stem, specs in every.items() if "n_models" in specs}
    assert {stem for stem, params in got.items() if params} == holders
    assert _stem("09") not in holders and got[_stem("09")] == {}


def test_build_refuses_a_misspelt_parameter_before_anything_runs(tmp_path, capsys):
    bb = build_book()
    work = tmp_path / "book"
    code = bb.main(["--profile", "tiny", "--only", "04", "-p", "n_component", "30", "--work-dir", str(work),
                    "--build-dir", str(work / "_build")])
    err = capsys.readouterr().err
    assert code == 2 and "has no parameter 'n_component'; did you mean 'n_components'?" in err
    assert not work.exists(), "the build prepared a book root although it refused the parameter"
    code = bb.main(["--profile", "tiny", "--only", "04", "-p", "n_components", "thirty", "--work-dir", str(work)])
    assert code == 2 and "n_components is int or None (default None); 'thirty' is not an int" in capsys.readouterr().err


def test_list_parameters_prints_names_types_and_defaults(capsys):
    assert build_book().main(["--list-parameters", "notebooks/11_breaking_gde_real.py"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+rarities\s+list\[int\] or None\s+None\s+shape family: examples per class", out, re.M), out
    assert re.search(r"^\s+level\s+float\s+0\.95\s", out, re.M), out


@pytest.mark.parametrize("module", ["chapter_parameters", "book_pages", "make_student_notebooks"])
def test_build_script_examples_run(module):
    import doctest
    import importlib

    build_book()
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result


# --------------------------------------------------------------------------- pages the build writes
def test_runtime_note_under_the_title_is_idempotent(tmp_path):
    import nbformat

    pages = build_book().book_pages
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title\n\n**The claim.** Text."),
                                         nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    note = pages.runtime_note({"cold_s": 200.0, "cold_measured": "2026-12-01", "cached_s": 12.0,
                               "machine": "2 CPU cores"})
    assert note == ("Runs in about 3 min on 2 CPU cores (cpu profile, measured 2026-12-01); "
                    "about 10 s once the ensembles are cached.")
    assert pages.add_runtime_note(path, note)
    assert not pages.add_runtime_note(path, note), "a second call changed the notebook"
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source for c in cells[:3]] == ["# Title", f"> **Run time.** {note}", "**The claim.** Text."]
    pages.add_runtime_note(path, None)
    assert not any(pages.RUNTIME_TAG in c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells)


def test_chapter_times_take_cold_and_cached_runs_apart(tmp_path):
    pages = build_book().book_pages
    path = tmp_path / "times.json"
    rec = functools.partial(pages.RunRecord, finished="2026-12-01T10:00:00Z", profile="cpu")
    none = {"trained_seeds": 0, "computed": 0}
    pages.update_chapter_times(path, [rec("01_a", 300.0, cache={"trained_seeds": 10, "computed": 1}),
                                      rec("02_b", 20.0, cache=none),
                                      rec("03_c", 5.0, profile="tiny", cache=none),           # another profile
                                      rec("04_d", 5.0, parameters={"n_models": 3}, cache=none),  # other parameters
                                      rec("05_e", 5.0, cache=None)])                          # ran in parallel
    table = pages.update_chapter_times(path, [rec("01_a", 11.0, cache=none),
                                              rec("01_a", 40.0, cache={"trained_seeds": 1, "computed": 0})])
    assert set(table["chapters"]) == {"01_a", "02_b"}
    # One lost seed retrained is not a cold start: the run that trained all ten stays.
    assert table["chapters"]["01_a"]["cold_s"] == 300.0 and table["chapters"]["01_a"]["cached_s"] == 11.0
    assert "cold_s" not in table["chapters"]["02_b"] and table["chapters"]["02_b"]["cached_s"] == 20.0
    assert json.loads(path.read_text()) == table


def test_committed_chapter_times_cover_every_chapter():
    table = json.loads((REPO / "book" / "chapter_times.json").read_text())
    assert table["profile"] == "cpu"
    missing = [p.stem for p in notebook_sources()
               if not build_book().book_pages.runtime_note(table["chapters"].get(p.stem))]
    assert not missing, f"book/chapter_times.json has no time for {missing}: run `make book` (a full cpu build)"


def test_cache_state_counts_trained_seeds_and_other_results(tmp_path):
    pages = build_book().book_pages
    (tmp_path / "ensembles" / "abc").mkdir(parents=True)
    (tmp_path / "ensembles" / "abc" / "config.json").write_text("{}")
    (tmp_path / "ensembles" / "abc" / "seed_00000.pt").write_text("old format")
    before = pages.cache_files(tmp_path)
    time.sleep(0.01)
    for name in ("seed_00000.pt", "seed_00001.pt", ".seed_00002.claim"):  # seed 0 rewritten in place
        (tmp_path / "ensembles" / "abc" / name).write_text("x")
    (tmp_path / "activations" / "def").mkdir(parents=True)
    (tmp_path / "activations" / "def" / "test.npz").write_text("x")
    state = pages.cache_state(before, pages.cache_files(tmp_path))
    assert state == {"trained_seeds": 2, "computed": 1}
    assert pages.describe_cache(state) == "trained 2 seeds, cached 1 new result"
    assert pages.cache_state(before, before) == {"trained_seeds": 0, "computed": 0}


def test_student_notebook_stubs_the_solutions_and_keeps_their_output():
    import base64

    import nbformat

    build_book()
    from make_student_notebooks import student_notebook

    png = base64.b64encode(b"\x89PNG fake").decode()
    solution = nbformat.v4.new_code_cell("err = 0.1\ndis, pairs = 0.2, 3\nprint(err)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="0.1\n"),
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
        nbformat.v4.new_output("execute_result", data={"text/html": "<table><tr><td>1</td></tr></table>",
                                                       "text/plain": "  1"}, execution_count=3)])
    solution.metadata.update(tags=["solution"], student="compute the error and the disagreement")
    injected = nbformat.v4.new_code_cell('profile = "tiny"')
    injected.metadata["tags"] = ["injected-parameters"]
    other = nbformat.v4.new_code_cell("print(err)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="x")])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), injected, solution, other])
    student, n = student_notebook(nb)
    assert n == 1 and nb.cells[2].source.startswith("err = 0.1"), "the executed notebook itself was changed"
    assert [c.cell_type for c in student.cells] == ["markdown", "code", "markdown", "code"]
    stub, expected = student.cells[1], student.cells[2]
    assert "# The cells below use: err, dis, pairs" in stub.source and not stub.outputs
    with pytest.raises(NotImplementedError, match="^Student exercise: compute the error and the disagreement$"):
        exec(stub.source, {})
    assert "0.1" in expected.source and f"data:image/png;base64,{png}" in expected.source
    assert "<table>" in expected.source
    assert student.cells[3].outputs == other.outputs
    nbformat.validate(student)


def test_text_refers_only_to_chapters_that_exist():
    count = len(notebook_sources())
    pattern = re.compile(r"\b[Cc]hapters?\s+(\d+(?:\s*(?:-|–|,|and|or|to)\s*\d+)*)")
    bad = []
    for path in list(NOTEBOOKS.glob("[0-9][0-9]_*.py")) + list((REPO / "book").glob("*.md")):
        for match in pattern.finditer(path.read_text()):
            numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
            bad += [f"{path.name}: {match.group(0)!r}" for n in numbers if not 1 <= n <= count]
    assert not bad, f"references to chapters that do not exist: {bad}"


EXERCISES = REPO / "book" / "exercises.md"


def _exercise_sections() -> dict[str, str]:
    text = EXERCISES.read_text(encoding="utf-8")
    parts = re.split(r"(?m)^## (\d+)\. ", text)[1:]
    return {parts[i]: parts[i + 1] for i in range(0, len(parts), 2)}


def test_every_exercise_has_a_solution_the_student_edition_leaves_out():
    sections = _exercise_sections()
    assert len(sections) >= 8
    for number, body in sections.items():
        assert re.search(r":::\{admonition\} Solution\n:class: dropdown solution\n", body), (
            f"exercise {number}: no solution block with the class 'solution' (book/_ext removes those)")


def test_exercise_commands_use_parameters_their_chapter_declares():
    """Each `make chapter NB=... PARAMS="-p NAME VALUE ..."` of the exercises runs as written:
    the name is a parameter of that chapter and the value fits its type (exercise 7's single
    gamma_corr knob, exercise 8's modes)."""
    text = EXERCISES.read_text(encoding="utf-8")
    commands = re.findall(r'make chapter NB=notebooks/(\S+)\.py PARAMS="([^"]*)"', text)
    assert len(commands) >= 5, commands
    legacy = []
    for stem, params in commands:
        specs = chapter_specs(stem)
        words = params.split()
        assert words[0::3] == ["-p"] * len(words[0::3]) and len(words) % 3 == 0, params
        for name, value in zip(words[1::3], words[2::3]):
            if name not in specs and {"corr_quantile", "corr_threshold"} <= set(specs):
                legacy.append(f"{stem}: -p {name}")
                continue
            assert name in specs, f"exercise command for {stem}: no parameter {name!r}; it has {list(specs)}"
            specs[name].convert(value)  # raises with the expected type
    named = re.findall(r"make parameters NB=notebooks/(\S+)\.py", text)
    assert all((NOTEBOOKS / f"{stem}.py").exists() for stem in named)
    if legacy:
        pytest.skip(f"chapters that still have the two legacy knobs corr_quantile/corr_threshold instead of "
                    f"the single gamma_corr exercise 7 uses (issue 17 item 3): {legacy}")


def test_exercise_8_reads_what_chapter_2_prints():
    source = (NOTEBOOKS / "02_training.py").read_text(encoding="utf-8")
    assert "mean test error" in source and "mean disagreement" in source
    assert "error_vs_disagreement" in source
    assert "Test error and disagreement" in _exercise_sections()["8"]


def test_chapter_parts_are_numbered_across_parts():
    import yaml

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    for part in toc["parts"]:
        chapters = [c["file"] for c in part["chapters"] if build_book().EXECUTED_PREFIX in c["file"]
                    and Path(c["file"]).name[:2].isdigit()]
        assert bool(chapters) == bool(part.get("numbered")), f"part {part['caption']!r}: numbered iff it holds chapters"
    # Without it each part restarts at 1 and "chapter 7" would not be the page numbered 7.
    assert config["html"]["use_multitoc_numbering"] is True


def test_licence_is_stated_in_the_repository_and_the_book():
    import tomllib

    code, text = (REPO / "LICENSE").read_text(), (REPO / "LICENSE-text").read_text()
    assert code.startswith("MIT License") and "LICENSE-text" in code
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    assert "CC BY 4.0" in text and "https://creativecommons.org/licenses/by/4.0/legalcode" in text
    page = (REPO / "book" / "licence.md").read_text()
    assert "MIT" in page and "CC BY 4.0" in page and "book/licence" in (REPO / "_toc.yml").read_text()
    assert "@LICENCE_PAGE@" in (REPO / "_config.yml").read_text(), "the footer links the licence page"


def test_chapter_run_records_its_verdicts_and_clears_stale_ones(tmp_path):
    """execute_chapter on a two-cell chapter: $IFT_VERDICTS, stale verdicts removed, a run record."""
    bb = build_book()
    source = tmp_path / "01_overview.py"
    source.write_text('# %% tags=["parameters"]\nprofile = "cpu"\n\n# %%\n'
                      "from ift_core.claims import Part, Verdict, record\n"
                      'record(Verdict("seeds", (Part("a part", "holds"),)));\n')
    exec_dir = tmp_path / "executed"
    (exec_dir / "verdicts").mkdir(parents=True)
    stale = exec_dir / "verdicts" / "01_overview.old.json"
    stale.write_text("{}")
    kept = exec_dir / "verdicts" / "02_training.training.json"
    kept.write_text("{}")
    chapter = bb.Chapter("01_overview", source)
    result = bb.execute_chapter(chapter, {"profile": "tiny"}, exec_dir, timeout=120,
                                stamp=bb.stamp_for(chapter, {"profile": "tiny"}, {"version": "x", "sha256": "y"}))
    assert result.status == "ran", result.error
    assert not stale.exists() and kept.exists(), "only the rerun chapter's verdicts are replaced"
    saved = json.loads((exec_dir / "verdicts" / "01_overview.seeds.json").read_text())
    assert saved["word"] == "HOLDS"
    record = bb.book_pages.RunRecord.load(exec_dir, "01_overview")
    assert record.profile == "tiny" and record.seconds > 0 and record.cache is not None


# --------------------------------------------------------------------------- the site in a browser
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


def _build_command(work: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "build_book.py"), "--profile", "tiny",
            "--work-dir", str(work), "--build-dir", str(work / "_build"), *extra]


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """Build the book with the tiny profile into a temporary folder; yield (site dir, book root)."""
    root = tmp_path_factory.mktemp("book")
    work, build = root / "book", root / "book" / "_build"
    proc = subprocess.run(_build_command(work), cwd=REPO, capture_output=True, text=True, timeout=3600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"book build failed (exit {proc.returncode}):\n{log[-8000:]}"
    match = re.search(r"^Site: (.+index\.html)$", proc.stdout, re.M)
    assert match, f"the build did not print the site's path:\n{proc.stdout[-3000:]}"
    index = Path(match.group(1))
    assert index.exists() and index.parent == build / "html"
    yield index.parent, work
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def built_site(tiny_book):
    """The tiny book's site, for the browser test: (site dir, book root)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium "
                    "(`make test` installs it with apt-get when run as root)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    return tiny_book


@pytest.fixture(scope="module")
def served_site(built_site):
    site, work = built_site
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", work
    finally:
        server.shutdown()
        server.server_close()


def _executed_notebook(notebook: Path) -> tuple[int, str]:
    """Image outputs and code of an executed chapter (the code as run, not as edited since)."""
    nb = json.loads(notebook.read_text())
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    images = sum(1 for cell in code for out in cell.get("outputs", [])
                 if any(k.startswith("image/") for k in out.get("data", {})))
    source = "\n".join("".join(cell["source"]) for cell in code)
    return images, source


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(4500)  # includes the book build (its own limit: 3600 s)
def test_site_in_headless_chromium(served_site):
    from playwright.sync_api import sync_playwright

    base, work = served_site
    bb = build_book()
    numbers = {c.name: c.number for c in bb.chapters_from_toc()}
    chapters = list(numbers)
    times = json.loads((work / "book" / "chapter_times.json").read_text())["chapters"]
    from ift_core.claims import CLAIMS, WORDS

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        # Offline and hermetic: anything not served by our server (MathJax's CDN...) is refused.
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                      else route.abort())
        page = context.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))

        response = page.goto(base + "index.html", wait_until="load")
        assert response is not None and response.ok
        page.wait_for_selector("nav.bd-docs-nav a.reference.internal", timeout=30_000)
        entries = page.eval_on_selector_all("nav.bd-docs-nav a.reference.internal",
                                            "els => els.map(e => [e.href, e.innerText.trim()])")
        links = list(dict.fromkeys(link.split("#")[0] for link, _ in entries))
        nav_text = {link.split("#")[0]: text for link, text in entries}
        chapter_links = {Path(link).stem: link for link in links
                         if "/notebooks/_executed/" in link and Path(link).stem in numbers}
        assert set(chapter_links) == set(chapters), (
            f"navigation lists chapters {sorted(chapter_links)}, _toc.yml has {chapters}")
        pages = [link for link in links if link not in chapter_links.values()]
        for wanted in ("book/exercises.html", "book/licence.html", "book/run_locally.html",
                       "notebooks/_executed/execution_statistics.html"):
            assert any(link.endswith(wanted) for link in pages), f"{wanted} is not in the navigation: {pages}"
        seen_claims: dict[str, str] = {}

        for name in chapters + pages:
            url = chapter_links.get(name, name)
            label = name if name in chapter_links else url[len(base):]
            page_errors.clear()
            response = page.goto(url, wait_until="load")
            if response is None or not response.ok:
                problems.append(f"{label}: HTTP {response.status if response else 'no response'}")
                continue
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
            if page.locator("article h1").count() < 1:
                problems.append(f"{label}: no title (h1) in the article")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
            broken = [src for src, width in images if width <= 0]
            if broken:
                problems.append(f"{label}: images that did not load: {broken}")
            if page_errors:
                problems.append(f"{label}: JavaScript errors: {page_errors}")
            footer = page.locator("footer, .bd-footer-content, .extra_footer").all_inner_texts()
            if not any("MIT" in f and "CC BY 4.0" in f for f in footer):
                problems.append(f"{label}: the footer does not state the licence (MIT, CC BY 4.0): {footer}")
            if name not in chapter_links:
                continue

            # Chapter numbers: in the navigation and in the page's heading, as the text cites them.
            number = numbers[name]
            heading = page.locator("article h1").first.inner_text().strip()
            if not heading.startswith(f"{number}. "):
                problems.append(f"{label}: the heading {heading!r} does not start with its number {number}")
            if not nav_text.get(url, "").startswith(f"{number}. "):
                problems.append(f"{label}: the navigation shows {nav_text.get(url)!r}, not chapter {number}")
            note = bb.book_pages.runtime_note(times.get(name))
            if note:  # the expected time, between the title and the claim
                first = page.locator("article section > p, article section > blockquote").first.inner_text()
                if "Run time." not in first or note.split(";")[0] not in first.replace("\n", " "):
                    problems.append(f"{label}: no run-time note under the title (first paragraph: {first[:120]!r})")

            # Chapter checks: figures, no error outputs.
            output_images = page.locator(".cell_output img").count()
            executed = work / "notebooks" / "_executed" / f"{name}.ipynb"
            expected, code = _executed_notebook(executed)
            plots = bool(PLOTTING.search(code))
            if plots and output_images < 1:
                problems.append(f"{label}: the chapter plots but the page shows no figure")
            if output_images < expected:
                problems.append(f"{label}: {expected} figures executed, {output_images} shown")
            errors = page.locator(".cell_output .traceback, .cell_output .output.error").count()
            texts = page.eval_on_selector_all(".cell_output", "els => els.map(e => e.innerText)")
            bad = ERROR_LINE.search("\n".join(texts))
            if errors or bad:
                problems.append(f"{label}: error output on the page: {bad.group(0) if bad else errors}")

            # Verdicts a reader sees whole: a box per claim, inside the column, nothing scrolled away.
            layout = page.evaluate(LAYOUT_JS)
            if not layout["verdicts"]:
                problems.append(f"{label}: no verdict box (.ift-verdict) in the outputs")
            for v in layout["verdicts"]:
                seen_claims[v["claim"]] = name
                if v["word"] not in WORDS:
                    problems.append(f"{label}: verdict {v['claim']} has the word {v['word']!r}, not one of {WORDS}")
                if v["left"] < -1 or v["right"] < -1 or v["viewport"] < 0:
                    problems.append(f"{label}: verdict {v['claim']} reaches beyond the content column "
                                    f"(left {v['left']:.0f} px, right {v['right']:.0f} px)")
                if v["clipped"]:
                    problems.append(f"{label}: verdict {v['claim']} scrolls sideways inside {v['clipped']}")
                if not v["text"].startswith(v["word"]):
                    problems.append(f"{label}: verdict {v['claim']} does not open with its word: {v['text'][:60]!r}")
            for f in layout["figures"]:
                if f["overflow"] > 1 or f["right"] < -1:
                    problems.append(f"{label}: a figure block scrolls sideways or leaves the column ({f})")
                # The figure style (ift_core.plots.style) keeps text >= MIN_TEXT_PX when a figure is
                # shown at least min(natural width, COLUMN_PX) wide: the page must not shrink it more.
                if f["natural"] > 0 and f["rendered"] < 0.97 * min(f["natural"], COLUMN_PX):
                    problems.append(f"{label}: a figure {f['natural']} px wide is shown {f['rendered']:.0f} px "
                                    f"wide, below the {COLUMN_PX} px its text is sized for ({f['src']})")
            for t in layout["tables"]:  # wide tables scroll inside the column, and show that they do
                if t["overflowX"] not in ("auto", "scroll") or not t["hint"] or t["scrollbar"] == "none":
                    problems.append(f"{label}: a wide output is cut or scrolls without a visible hint ({t})")
        missing = sorted(set(CLAIMS) - set(seen_claims))
        if missing:
            problems.append(f"no chapter shows a verdict box for the claims {missing}")

        # The execution-statistics page lists every chapter with its run time and downloads.
        page.goto(base + "notebooks/_executed/execution_statistics.html", wait_until="load")
        rows = page.eval_on_selector_all("article table tbody tr", "els => els.map(e => e.innerText)")
        for name, number in numbers.items():
            row = next((r for r in rows if re.match(rf"{number}\.\s", r)), None)
            if row is None or not re.search(r"\d+\.\d s", row) or "student notebook" not in row:
                problems.append(f"execution statistics: chapter {number} has no row with run time and downloads: {row!r}")
        page.goto(base + "book/licence.html", wait_until="load")
        licence = page.locator("article").inner_text()
        if "MIT" not in licence or "CC BY 4.0" not in licence:
            problems.append("the licence page does not state MIT and CC BY 4.0")

        # Exercise solutions are hidden behind a toggle that opens on click.
        page.goto(base + "book/exercises.html", wait_until="load")
        solution = page.locator(".admonition.dropdown").first
        solution.wait_for()
        body = solution.locator(".admonition-title ~ *").first
        page.wait_for_function(
            "document.querySelector('.admonition.dropdown').classList.contains('toggle-hidden')",
            timeout=10_000)
        if body.is_visible():
            problems.append("exercises: the first solution is visible before its toggle is clicked")
        solution.locator(".admonition-title").click()
        body.wait_for(state="visible", timeout=10_000)

        # Formulas are typeset by the MathJax the site serves itself: the CDN is unreachable here.
        page.goto(base + "book/notation.html", wait_until="load")
        src = page.eval_on_selector_all("script[src*='tex-chtml']", "els => els.map(e => e.src)")
        if not src or not all(s.startswith(base) for s in src):
            problems.append(f"notation: MathJax is not served by the site itself: {src}")
        try:
            page.wait_for_selector("mjx-container", timeout=30_000)
        except Exception:  # playwright's TimeoutError
            problems.append("notation: no formula was typeset by MathJax")
        browser.close()
    assert not problems, "the site has problems:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- what the tiny build wrote
@pytest.mark.slow
def test_tiny_book_saves_one_verdict_per_claim_for_the_scorecard(tiny_book):
    from ift_core.claims import CLAIMS, load_verdicts

    executed = tiny_book[1] / "notebooks" / "_executed"
    saved = load_verdicts(executed / "verdicts")
    assert set(saved) == set(CLAIMS), f"verdicts missing for {sorted(set(CLAIMS) - set(saved))}"
    for chapter in build_book().chapters_from_toc():
        nb = json.loads(chapter.output(executed).read_text())
        html = [d for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
                for d in ["".join(o.get("data", {}).get("text/html", ""))] if "ift-verdict" in d]
        keys = [k for k, c in CLAIMS.items() if c.chapter == chapter.name]
        for key in keys:  # the page shows what the scorecard reads
            assert any(f'data-claim="{key}" data-word="{saved[key].word}"' in h for h in html), (chapter.name, key)
        record = build_book().book_pages.RunRecord.load(executed, chapter.name)
        assert record is not None and record.profile == "tiny" and record.cache is not None, chapter.name


@pytest.mark.slow
def test_tiny_book_prints_no_machine_path(tiny_book):
    """No output of any executed chapter names a folder of this machine (the repository, the
    scratch book, the cache, the home or temporary folder)."""
    import tempfile

    site, work = tiny_book
    roots = {str(REPO), str(work), str(Path.home()), tempfile.gettempdir() + "/"}
    if os.environ.get("IFT_CACHE"):
        roots.add(os.environ["IFT_CACHE"])
    roots = {r for r in roots if len(r) > 4}
    hits = []
    for notebook in sorted((work / "notebooks" / "_executed").glob("*.ipynb")):
        nb = json.loads(notebook.read_text())
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                texts = ["".join(out.get("text", ""))] + ["".join(v) for k, v in out.get("data", {}).items()
                                                          if k.startswith("text/")]
                texts.append("".join(out.get("traceback", [])))
                for root in roots:
                    if any(root in t for t in texts):
                        hits.append(f"{notebook.stem}: {root}")
    assert not hits, f"outputs that print this machine's paths: {sorted(set(hits))}"


@pytest.mark.slow
def test_tiny_book_student_notebooks_raise_where_the_student_writes(tiny_book):
    import nbformat

    executed = tiny_book[1] / "notebooks" / "_executed"
    for chapter in build_book().chapters_from_toc():
        student = nbformat.read(executed / "student" / f"{chapter.name}.ipynb", as_version=4)
        full = nbformat.read(chapter.output(executed), as_version=4)
        stubs = [i for i, c in enumerate(student.cells) if "student-exercise" in c.metadata.get("tags", [])]
        solutions = [c for c in full.cells if "solution" in c.metadata.get("tags", [])]
        assert len(stubs) == len(solutions) >= 1, chapter.name
        for i in stubs:
            with pytest.raises(NotImplementedError, match="^Student exercise: "):
                exec(compile(student.cells[i].source, chapter.name, "exec"), {})
            after = student.cells[i + 1]
            assert "expected-output" in after.metadata.get("tags", []), f"{chapter.name}: no expected output"
        assert not any("injected-parameters" in c.metadata.get("tags", []) for c in student.cells)
        assert sum(c.source.count("raise NotImplementedError") for c in student.cells) == len(stubs)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_student_edition_leaves_solutions_out(tiny_book, tmp_path):
    work = _copy_book(tiny_book, tmp_path / "book")
    proc = subprocess.run(_build_command(work, "--student"), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    site = work / "_build" / "student" / "html"
    assert re.search(rf"^Site: {re.escape(str(site / 'index.html'))}$", proc.stdout, re.M), proc.stdout[-2000:]
    assert "chapters: 0 executed" in proc.stdout, "the student edition re-executed chapters"
    full = (tiny_book[0] / "book" / "exercises.html").read_text()
    student = (site / "book" / "exercises.html").read_text()
    solution = re.compile(r'<div class="[^"]*\bsolution\b[^"]*"')
    assert len(solution.findall(full)) >= 8, "the full site lost its exercise solutions"
    assert not solution.search(student) and "union bound" not in student
    assert "union bound" in full
    for chapter in build_book().chapters_from_toc():
        page = (site / "notebooks" / "_executed" / f"{chapter.name}.html").read_text()
        assert "Student exercise: " in page and "Expected output" in page, chapter.name


# --------------------------------------------------------------------------- interrupted and killed builds
def _copy_book(tiny_book, dest: Path) -> Path:
    """The tiny book's root with its executed chapters (stamps fresh), without its site."""
    shutil.copytree(tiny_book[1], dest, ignore=shutil.ignore_patterns("_build"))
    return dest


def _site_files(site: Path) -> set[str]:
    return {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}


def _alive(procs) -> list:
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait(condition, timeout: float, what: str, poll: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = condition()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _gone_within(procs, timeout: float) -> list:
    """The processes of ``procs`` still running after ``timeout`` seconds (waiting for all to end)."""
    end = time.monotonic() + timeout
    while (left := _alive(procs)) and time.monotonic() < end:
        time.sleep(0.1)
    return left


def _stop(proc, family) -> None:
    for p in _alive(family):
        p.kill()
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the children through /proc (psutil)")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_site_build_is_repaired_by_a_rerun(tiny_book, tmp_path, sig):
    import psutil

    reference = tiny_book[0]
    work = _copy_book(tiny_book, tmp_path / "book")
    build, log = work / "_build", tmp_path / "build.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(_build_command(work), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    family = []
    try:
        # Interrupt jupyter-book while it writes the pages (wherever it writes them).
        _wait(lambda: proc.poll() is not None or any(build.rglob("01_overview.html")), 300,
              "jupyter-book to write the first chapter's page")
        assert proc.poll() is None, f"the build ended before it could be interrupted:\n{log.read_text()[-3000:]}"
        family = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        left = _gone_within(family, 15)
        assert not left, f"children outlived the build: {[p.pid for p in left]}"
    finally:
        _stop(proc, family)
    site = build / "html"
    # A reader never finds a half-written site: none yet (the first build), or a complete one.
    assert not site.exists() or _site_files(site) == _site_files(reference), "a half-written site is published"
    rerun = subprocess.run(_build_command(work), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-6000:]
    missing, extra = _site_files(reference) - _site_files(site), _site_files(site) - _site_files(reference)
    assert not missing and not extra, f"the rerun's site differs: missing {sorted(missing)[:20]}, extra {sorted(extra)[:20]}"
    assert (site / "searchindex.js").stat().st_size == (reference / "searchindex.js").stat().st_size
    assert [p.name for p in build.iterdir()] == ["html"], f"leftovers in {build}: {list(build.iterdir())}"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the children through /proc (psutil)")
def test_killed_build_takes_its_children_along_and_leaves_nothing(tiny_book, tmp_path):
    import psutil

    work = _copy_book(tiny_book, tmp_path / "book")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    # A chapter whose cells run for seconds after its kernel starts (chapter 9: ~4 s of cells, ~6 s
    # in all), so the kill lands while the kernel works, and the rerun below stays short.
    cmd = _build_command(work, "--only", "09", "--no-site")
    executed = work / "notebooks" / "_executed"
    with open(tmp_path / "build.log", "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    family = []

    def kernel_running():
        if proc.poll() is not None:
            return "exited"
        kids = psutil.Process(proc.pid).children(recursive=True)
        names = []
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                names.append(" ".join(kid.cmdline()))
        started = any("ipykernel" in n for n in names) and any(executed.glob(".09_*.running*"))
        return kids if started else None

    try:
        family = _wait(kernel_running, 300, "papermill's kernel to run the chapter", poll=0.1)
        assert family != "exited", (tmp_path / "build.log").read_text()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        left = _gone_within(family, 10)  # the kernel looks for its parent every second
        assert not left, f"papermill or its kernel outlived the killed build: {[p.pid for p in left]}"
    finally:
        _stop(proc, family)
    left_behind = list(executed.glob(".*running*")) + list(scratch.glob("ift-*"))
    assert left_behind, "the kill left nothing behind: nothing to clean was tested"
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-6000:]
    assert (executed / "09_gde_explained.ipynb").exists()
    stale = list(executed.glob(".*running*")) + list(scratch.glob("ift-*"))
    assert not stale, f"the rerun left the killed build's temporaries: {stale}"
