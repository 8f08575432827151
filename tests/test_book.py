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
HOLDS_LINE = re.compile(r"(?m)^\s*(HOLDS|DOES NOT HOLD)\b")
# An exception's name at the start of a line, as a traceback's last line prints it.
ERROR_LINE = re.compile(r"(?m)^\s*(Traceback \(most recent call last\)|[A-Za-z_.]*(Error|Exception): )")
PLOTTING = re.compile(r"\bplots\.|\bplt\.|\.plot\(|sns\.|savefig|imshow")


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
    assert sorted(keys) == sorted(mine), f"{path.name}: verdicts for {keys}, the registry's claims of this chapter: {mine}"
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
    chapters = [c.name for c in build_book().chapters_from_toc()]
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
        links = page.eval_on_selector_all("nav.bd-docs-nav a.reference.internal", "els => els.map(e => e.href)")
        links = list(dict.fromkeys(link.split("#")[0] for link in links))
        chapter_links = {Path(link).stem: link for link in links if "/notebooks/_executed/" in link}
        assert set(chapter_links) == set(chapters), (
            f"navigation lists chapters {sorted(chapter_links)}, _toc.yml has {chapters}")
        pages = [link for link in links if "/notebooks/_executed/" not in link]
        assert any(link.endswith("book/exercises.html") for link in pages), pages

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
            if name not in chapter_links:
                continue

            # Chapter checks: figures, no error outputs, a verdict.
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
            text = "\n".join(texts)
            bad = ERROR_LINE.search(text)
            if errors or bad:
                problems.append(f"{label}: error output on the page: {bad.group(0) if bad else errors}")
            if not HOLDS_LINE.search(text):
                problems.append(f"{label}: no line starting HOLDS or DOES NOT HOLD in the outputs")

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
    cmd = _build_command(work, "--only", "11", "--no-site")  # the longest tiny chapter (~50 s)
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
        started = any("ipykernel" in n for n in names) and any(executed.glob(".11_*.running*"))
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
    assert (executed / "11_breaking_gde_real.ipynb").exists()
    stale = list(executed.glob(".*running*")) + list(scratch.glob("ift-*"))
    assert not stale, f"the rerun left the killed build's temporaries: {stale}"
