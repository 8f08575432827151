#!/usr/bin/env python
"""Build the IFT book: execute every chapter with papermill, then build the site with Jupyter Book.

Each chapter is a jupytext percent-format notebook in ``notebooks/``. For every chapter listed in
``_toc.yml`` (entries under ``notebooks/_executed/``) this script

1. checks the user's ``-p NAME VALUE`` parameters against the chapter's parameters cell (names,
   types; papermill's own inspection reads the cell), refusing a misspelt name or a wrongly typed
   value before anything runs (``--list-parameters NB`` prints a chapter's parameters),
2. converts ``notebooks/<name>.py`` to an ipynb with the ``python3`` kernel (jupytext),
3. executes it with papermill, passing ``-p profile <profile>`` and the parameters the chapter
   declares, into ``notebooks/_executed/<name>.ipynb``; the chapter's verdicts
   (``ift_core.claims.record``) are saved to ``notebooks/_executed/verdicts/`` (``$IFT_VERDICTS``),
4. records a stamp (source, parameters, profile, ``ift_core`` version and source hash), so a
   rebuild skips every chapter whose inputs did not change, and a run record (seconds, what the
   run added to ``ift_core``'s cache) for the execution-statistics page,

then executes the pages that read what every chapter saved (:data:`AFTER_CHAPTERS`: the
reproduction scorecard, ``notebooks/scorecard.py``, which shows each chapter's verdict; its stamp
also covers the saved verdicts and run records, so it reruns whenever a chapter did), and
puts each chapter's expected run time under its title (``book/chapter_times.json``, updated
by every build of the default profile and parameters), writes its student notebook
(``scripts/make_student_notebooks.py``) and the execution-statistics page, runs ``jupyter-book
build`` and prints the path of the site's ``index.html``. ``--student`` builds the student edition
(student notebooks, no exercise solutions) into ``<build-dir>/student/html`` instead.
Chapters share trained ensembles through ``ift_core``'s cache; they are run in the order of the
table of contents.

Interruptions leave nothing broken: the site is built afresh into a staging folder and swapped in
when complete (a reader sees the old site or the new one, never a half-written one, and a rerun
always repairs an interrupted build); papermill and jupyter-book die with this script (also after
SIGKILL); each run removes what killed runs left behind (``.NAME.running-pidN.ipynb``, temporary
``ift-*-pidN-*`` folders, staging folders), only where that pid no longer runs.

Examples
--------
Build the default (CPU) book, or the fast test book::

    python scripts/build_book.py --profile cpu
    python scripts/build_book.py --profile tiny

Rerun one chapter with other parameters and rebuild the site (what ``make chapter`` does)::

    python scripts/build_book.py --only notebooks/04_long_tail.py -p n_models 20

List a chapter's parameters, and build the student edition for a course::

    python scripts/build_book.py --list-parameters 04
    python scripts/build_book.py --student

Build into a scratch folder without touching the repository's executed chapters::

    python scripts/build_book.py --profile tiny --work-dir /tmp/ift-book --build-dir /tmp/ift-book/_build
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import book_pages  # noqa: E402
from chapter_parameters import check_parameters, format_parameters, inspect_chapter, parse_value  # noqa: E402,F401
from ift_core import locks  # noqa: E402
from ift_core.cache import cache_root  # noqa: E402
from make_student_notebooks import write_student_notebook  # noqa: E402

NOTEBOOKS = REPO / "notebooks"
EXECUTED_PREFIX = "notebooks/_executed/"
from ift_core.train.config import PROFILE_NAMES as PROFILES  # noqa: E402  (no torch)
KERNEL = "python3"
# Bump when the way chapters are executed changes, so every stamp goes stale.
STAMP_VERSION = 1
# What a scratch book root (--work-dir) needs besides the executed chapters.
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
# Generated beside the executed chapters: the verdicts each chapter recorded (ift_core.claims),
# the execution-statistics page, the student notebooks and the downloadable sources.
VERDICTS_DIR = "verdicts"
STATISTICS_PAGE = "execution_statistics"
STUDENT_DIR = "student"
DOWNLOADS_DIR = "downloads"
CHAPTER_TIMES = Path("book") / "chapter_times.json"
# Pages executed after every chapter, in this order, when _toc.yml lists them (under
# notebooks/_executed/): they read the verdicts and run records the chapters saved.
AFTER_CHAPTERS = ("scorecard",)


# --------------------------------------------------------------------------- chapters
@dataclass(frozen=True)
class Chapter:
    name: str          # e.g. "04_long_tail"
    source: Path       # notebooks/04_long_tail.py

    @property
    def number(self) -> int | str:
        """The chapter's number in the book (its file's prefix; ``_toc.yml`` numbers them in order);
        ``""`` for an unnumbered page (:data:`AFTER_CHAPTERS`)."""
        prefix = self.name.split("_", 1)[0]
        return int(prefix) if prefix.isdigit() else ""

    def output(self, exec_dir: Path) -> Path:
        return exec_dir / f"{self.name}.ipynb"

    def stamp(self, exec_dir: Path) -> Path:
        return exec_dir / f"{self.name}.stamp.json"

    def failed(self, exec_dir: Path) -> Path:
        return exec_dir / f"{self.name}.failed.ipynb"


def _executed_names(toc_path: Path) -> list[str]:
    """The names of the pages ``_toc.yml`` lists under ``notebooks/_executed/``, in its order."""
    toc = yaml.safe_load(toc_path.read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    names = [f[len(EXECUTED_PREFIX):] for f in files if f.startswith(EXECUTED_PREFIX)]
    return [n[:-len(".ipynb")] if n.endswith(".ipynb") else n for n in names]


def chapters_from_toc(toc_path: Path = REPO / "_toc.yml") -> list[Chapter]:
    """The chapters the table of contents lists, in its order."""
    # Chapters are numbered notebooks; the build's own pages (execution statistics) live there too.
    return [Chapter(n, NOTEBOOKS / f"{n}.py") for n in _executed_names(toc_path) if n.split("_", 1)[0].isdigit()]


def pages_after_chapters(toc_path: Path = REPO / "_toc.yml") -> list[Chapter]:
    """The notebooks executed after every chapter (:data:`AFTER_CHAPTERS` that ``_toc.yml`` lists)."""
    listed = set(_executed_names(toc_path))
    return [Chapter(n, NOTEBOOKS / f"{n}.py") for n in AFTER_CHAPTERS if n in listed]


def saved_inputs_digest(exec_dir: Path) -> str:
    """A hash of what the chapters saved for the pages after them: the verdicts and run records."""
    digest = hashlib.sha256()
    # The pages' own run records are left out: each is written after its page ran, so counting it
    # would make the page stale at every rebuild.
    records = [p for p in exec_dir.glob("*.run.json") if p.name[: -len(".run.json")] not in AFTER_CHAPTERS]
    for path in sorted([*(exec_dir / VERDICTS_DIR).glob("*.json"), *records]):
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def resolve_only(only: str, chapters: list[Chapter]) -> Chapter:
    """Find the chapter ``--only`` names: a path, a file name, a stem or its number prefix."""
    key = Path(only).name
    key = key[:-3] if key.endswith(".py") else key
    key = key[:-6] if key.endswith(".ipynb") else key
    exact = [c for c in chapters if c.name == key]
    if exact:
        return exact[0]
    prefix = [c for c in chapters if c.name.split("_", 1)[0] == key]
    if len(prefix) == 1:
        return prefix[0]
    names = ", ".join(c.name for c in chapters)
    raise SystemExit(f"--only {only!r}: no such chapter in _toc.yml (chapters: {names})")


# --------------------------------------------------------------------------- stamps
def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ift_core_fingerprint(root: Path = REPO / "ift_core") -> dict:
    """Version and a hash of every ``ift_core`` source file: a code change reruns the chapters."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    version = "unknown"
    init = root / "__init__.py"
    if init.exists():
        for line in init.read_text().splitlines():
            if line.startswith("__version__"):
                version = line.split("=", 1)[1].strip().strip("\"'")
                break
    return {"version": version, "sha256": digest.hexdigest()}


def stamp_for(chapter: Chapter, params: dict, fingerprint: dict) -> dict:
    return {
        "stamp_version": STAMP_VERSION,
        "chapter": chapter.name,
        "source_sha256": _sha256_file(chapter.source),
        "parameters": params,
        "ift_core": fingerprint,
        "kernel": KERNEL,
    }


def is_fresh(chapter: Chapter, exec_dir: Path, stamp: dict) -> bool:
    out, path = chapter.output(exec_dir), chapter.stamp(exec_dir)
    if not (out.exists() and path.exists()):
        return False
    try:
        return json.loads(path.read_text()) == json.loads(json.dumps(stamp))
    except (OSError, ValueError):
        return False


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.pid{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- children and leftovers
# A child runs its program after ift_core.locks.die_with_parent(<this pid>): killed with this script,
# even by SIGKILL (the kernel papermill starts exits when papermill does: ipykernel polls its parent).
_CHILD = ("import sys; from ift_core.locks import die_with_parent; die_with_parent(int(sys.argv[1])); "
          "sys.argv = sys.argv[2:]; ")
PROGRAMS = {
    "papermill": _CHILD + "from papermill.cli import papermill; papermill()",
    "jupyter-book": _CHILD + "from jupyter_book.cli.main import main; sys.exit(main())",
}


def child_command(program: str, *args: str) -> list[str]:
    """The command line running ``program`` (a key of :data:`PROGRAMS`) with ``args`` in a child
    process that dies with this one."""
    return [sys.executable, "-c", PROGRAMS[program], str(os.getpid()), program, *args]


def remove_leftovers(exec_dir: Path, build_dir: Path) -> list[Path]:
    """Remove what killed builds left: running notebooks, temporary folders, staging sites (only of
    pids that no longer run; a running notebook of the old name, without a pid, too). Returns them."""
    removed = locks.remove_stale_temporaries(".*.running-pid*.ipynb", dir=exec_dir)
    for legacy in exec_dir.glob(".*.running.ipynb"):  # written by versions before pids were in the name
        legacy.unlink(missing_ok=True)
        removed.append(legacy)
    removed += locks.remove_stale_temporaries("ift-*")  # chapter folders, ift-ensemble-* of cache=False
    out = site_dir(build_dir).parent
    if out.is_dir():
        removed += locks.remove_stale_temporaries(".staging-pid*", dir=out)
        removed += locks.remove_stale_temporaries(".html.pid*", dir=out)
        removed += locks.remove_stale_temporaries(".*.pid*.tmp", dir=exec_dir)
    for sub in (exec_dir / STUDENT_DIR, exec_dir / VERDICTS_DIR):
        if sub.is_dir():
            removed += locks.remove_stale_temporaries(".*.pid*.tmp", dir=sub)
    student = student_site_dir(build_dir).parent
    if student.is_dir():
        for pattern in (".staging-pid*", ".html.pid*", ".student-book-pid*"):
            removed += locks.remove_stale_temporaries(pattern, dir=student)
    return removed


# --------------------------------------------------------------------------- execution
@dataclass
class Result:
    chapter: Chapter
    status: str        # "ran", "cached", "failed"
    seconds: float
    error: str = ""
    record: book_pages.RunRecord | None = None


def _to_ipynb(chapter: Chapter, dest: Path) -> None:
    """``jupytext --set-kernel python3 --to ipynb``, in process (saves a Python start per chapter)."""
    import jupytext

    nb = jupytext.read(chapter.source)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    jupytext.write(nb, dest, fmt="ipynb")


def _error_summary(notebook: Path, stderr: str) -> str:
    """The failing cell's exception (from the saved notebook) and the tail of papermill's log."""
    lines: list[str] = []
    try:
        nb = json.loads(notebook.read_text())
        for i, cell in enumerate(nb.get("cells", [])):
            for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
                if out.get("output_type") == "error":
                    src = "".join(cell.get("source", ""))
                    lines.append(f"cell In [{cell.get('execution_count')}] (cell {i} of the executed notebook): "
                                 f"{out.get('ename')}: {out.get('evalue')}")
                    lines.append("  source: " + src.strip().splitlines()[0][:120] if src.strip() else "")
    except (OSError, ValueError):
        pass
    log = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    # papermill's own report (the failing cell's traceback) follows its exception's name;
    # the click frames before it say nothing about the chapter.
    starts = [i for i, ln in enumerate(log) if "PapermillExecutionError" in ln]
    tail = log[starts[-1]:][:60] if starts else log[-25:]
    if tail:
        lines.append("papermill said:")
        lines.extend("  " + ln for ln in tail)
    return "\n".join(ln for ln in lines if ln)


def execute_chapter(chapter: Chapter, params: dict, exec_dir: Path, *, timeout: float | None,
                    stamp: dict, track_cache: bool = True) -> Result:
    """Run one chapter with papermill; on success replace its executed notebook, stamp and run record.

    The chapter's verdicts go to ``<exec_dir>/verdicts`` (``$IFT_VERDICTS``), its stale ones
    removed first; with ``track_cache`` the run record says what it added to the cache.
    """
    start = time.perf_counter()
    verdicts = exec_dir / VERDICTS_DIR
    verdicts.mkdir(exist_ok=True)
    for stale in verdicts.glob(f"{chapter.name}.*.json"):
        stale.unlink(missing_ok=True)
    cache_before = book_pages.cache_files(cache_root()) if track_cache else None
    # The pid in both names lets a later run remove them if this process is killed.
    running = exec_dir / f".{chapter.name}.running-pid{os.getpid()}.ipynb"
    with tempfile.TemporaryDirectory(prefix=f"ift-{chapter.name}-pid{os.getpid()}-") as tmp:
        source_nb = Path(tmp) / f"{chapter.name}.ipynb"
        params_file = Path(tmp) / "parameters.yaml"
        try:
            _to_ipynb(chapter, source_nb)
        except Exception as exc:  # a malformed source is this chapter's failure, not the build's
            return Result(chapter, "failed", time.perf_counter() - start,
                          f"jupytext could not read {chapter.source}: {exc}")
        params_file.write_text(yaml.safe_dump(params, sort_keys=True))
        args = [str(source_nb), str(running), "-f", str(params_file), "-k", KERNEL, "--cwd", str(REPO),
                "--no-progress-bar"]
        if timeout:
            args += ["--execution-timeout", str(int(timeout))]
        env = dict(os.environ)
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiets the debugger's warning
        env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        env["JUPYTER_RUNTIME_DIR"] = str(Path(tmp) / "runtime")  # the kernel's connection file goes too
        env["IFT_VERDICTS"] = str(verdicts)
        try:
            proc = subprocess.run(child_command("papermill", *args), cwd=REPO, env=env, capture_output=True,
                                  text=True)
        except BaseException:  # Ctrl-C, SIGTERM: subprocess.run has killed papermill
            running.unlink(missing_ok=True)
            raise
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not running.exists():
        failed = chapter.failed(exec_dir)
        if running.exists():
            os.replace(running, failed)
        message = _error_summary(failed, proc.stderr)
        if failed.exists():
            message += f"\nexecuted notebook with the error: {failed}"
        return Result(chapter, "failed", seconds, message)
    os.replace(running, chapter.output(exec_dir))
    chapter.failed(exec_dir).unlink(missing_ok=True)
    _write_atomic(chapter.stamp(exec_dir), json.dumps(stamp, indent=2, sort_keys=True))
    cache = (book_pages.cache_state(cache_before, book_pages.cache_files(cache_root()))
             if cache_before is not None else None)
    record = book_pages.RunRecord(chapter.name, round(seconds, 2), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  params.get("profile", ""), {k: v for k, v in params.items() if k != "profile"},
                                  cache)
    record.save(exec_dir)
    return Result(chapter, "ran", seconds, record=record)


def run_after_pages(pages: list[Chapter], params: dict[str, dict], exec_dir: Path, *, force: bool,
                    timeout: float | None) -> list[Result]:
    """Execute the pages of :data:`AFTER_CHAPTERS`, one after the other, after every chapter: each is
    stale when its source, parameters, ``ift_core`` or what the chapters saved changed."""
    fingerprint = ift_core_fingerprint()
    results: list[Result] = []
    for page in pages:
        if not page.source.exists():
            results.append(Result(page, "failed", 0.0, f"missing source file {page.source}"))
        else:
            stamp = {**stamp_for(page, params[page.name], fingerprint), "saved": saved_inputs_digest(exec_dir)}
            if not force and is_fresh(page, exec_dir, stamp):
                results.append(Result(page, "cached", 0.0))
            else:
                results.append(execute_chapter(page, params[page.name], exec_dir, timeout=timeout, stamp=stamp))
        _report(results[-1])
    return results


def _report(result: Result) -> None:
    label = {"ran": "executed", "cached": "unchanged, kept", "failed": "FAILED"}[result.status]
    print(f"  {result.chapter.name:<32s} {result.seconds:8.1f} s  {label}", flush=True)
    if result.status == "failed":
        print(f"    chapter {result.chapter.source.relative_to(REPO)} failed:", flush=True)
        print("    " + result.error.replace("\n", "\n    "), flush=True)


def run_chapters(chapters: list[Chapter], params: dict[str, dict], exec_dir: Path, *, jobs: int,
                 force: bool, timeout: float | None) -> list[Result]:
    """Execute the chapters whose stamps are stale; ``params`` holds each chapter's parameters by name."""
    fingerprint = ift_core_fingerprint()
    results: list[Result] = []
    todo: list[tuple[Chapter, dict]] = []
    for chapter in chapters:
        if not chapter.source.exists():
            results.append(Result(chapter, "failed", 0.0, f"missing source file {chapter.source}"))
            _report(results[-1])
            continue
        stamp = stamp_for(chapter, params[chapter.name], fingerprint)
        if not force and is_fresh(chapter, exec_dir, stamp):
            results.append(Result(chapter, "cached", 0.0))
            _report(results[-1])
        else:
            todo.append((chapter, stamp))
    if not todo:
        return results
    # The first chapter trains the profile's ensemble; run it alone so parallel chapters
    # find it in the cache instead of training it twice.
    first, rest = todo[:1], todo[1:]
    for chapter, stamp in first:
        results.append(execute_chapter(chapter, params[chapter.name], exec_dir, timeout=timeout, stamp=stamp))
        _report(results[-1])
    if jobs <= 1:
        for chapter, stamp in rest:
            results.append(execute_chapter(chapter, params[chapter.name], exec_dir, timeout=timeout, stamp=stamp))
            _report(results[-1])
    else:
        # Chapters running at once share the cache: what each added cannot be told apart.
        with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(execute_chapter, c, params[c.name], exec_dir, timeout=timeout, stamp=s,
                                   track_cache=False) for c, s in rest]
            for future in cf.as_completed(futures):
                results.append(future.result())
                _report(results[-1])
    return results


# --------------------------------------------------------------------------- site
def copy_book_sources(from_root: Path, to_root: Path) -> None:
    """Copy the book's own sources (:data:`BOOK_SOURCES`) from one book root into another."""
    for name in BOOK_SOURCES:
        src, dst = from_root / name, to_root / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)


def prepare_work_dir(work_dir: Path) -> None:
    """Copy the book's own sources into a scratch book root."""
    work_dir.mkdir(parents=True, exist_ok=True)
    copy_book_sources(REPO, work_dir)


def site_dir(build_dir: Path) -> Path:
    """Where ``jupyter-book build --path-output`` puts the HTML for this ``--build-dir``."""
    # jupyter-book 1.0.4 always writes <path-output>/_build/html.
    return (build_dir if build_dir.name == "_build" else build_dir / "_build") / "html"


def publish_site(new: Path, site: Path) -> None:
    """Put the complete site ``new`` at ``site``: two renames, so a reader finds the old site, the
    new one, or (for an instant) none, never a part of one."""
    old = site.with_name(f".{site.name}.pid{os.getpid()}.old")
    if site.exists():
        os.rename(site, old)
    os.rename(new, site)
    shutil.rmtree(old, ignore_errors=True)


def student_site_dir(build_dir: Path) -> Path:
    """Where ``--student`` puts the student edition: beside the site, ``<_build>/student/html``."""
    return site_dir(build_dir).parent / STUDENT_DIR / "html"


def build_site(book_root: Path, build_dir: Path, *, site: Path | None = None, edition: str = "full",
               quiet: bool = False) -> tuple[int, Path]:
    """``jupyter-book build`` afresh into a staging folder, swapped in at ``site`` on success.

    ``site`` defaults to ``site_dir(build_dir)``; ``edition="student"`` tells the book's Sphinx
    extension to leave exercise solutions out. Never incremental: Sphinx's saved environment
    outlives an interrupted build and would make a rerun skip pages whose images and search
    entries were never written.
    """
    site = site or site_dir(build_dir)
    out = site.parent
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".staging-pid{os.getpid()}-", dir=out))
    env = dict(os.environ, IFT_BOOK_EDITION=edition)
    try:
        # jupyter-book 1.0.4 writes <path-output>/_build/html
        cmd = child_command("jupyter-book", "build", str(book_root), "--path-output", str(stage))
        proc = subprocess.run(cmd, cwd=book_root, capture_output=True, text=True, env=env)
        if proc.returncode == 0:
            publish_site(stage / "_build" / "html", site)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log = proc.stdout + proc.stderr
    warnings = [ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln]
    if proc.returncode != 0:
        print(log[-6000:], flush=True)
    elif warnings and not quiet:
        print(f"jupyter-book: {len(warnings)} warning(s):", flush=True)
        for ln in warnings[:40]:
            print("  " + ln, flush=True)
    return proc.returncode, site


# --------------------------------------------------------------------------- pages made from the build
def _chapter_title(notebook: Path) -> str:
    try:
        nb = json.loads(notebook.read_text())
    except (OSError, ValueError):
        return ""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def finish_chapters(chapters: list[Chapter], results: list[Result], exec_dir: Path, *, profile: str,
                    update_times: bool, book_root: Path) -> None:
    """After execution: the times table, each chapter's run-time note, student notebook and
    downloads, and the execution-statistics page.

    ``update_times`` (the default profile and parameters, one chapter at a time) folds the run
    times of the chapters executed now into ``book/chapter_times.json`` (the repository's, and
    the scratch book's copy under ``--work-dir``).
    """
    times_path = REPO / CHAPTER_TIMES
    if update_times:
        ran = [r.record for r in results if r.status == "ran" and r.record is not None]
        if ran:
            book_pages.update_chapter_times(times_path, ran)
            if book_root != REPO:
                shutil.copy2(times_path, book_root / CHAPTER_TIMES)
    times = book_pages.load_times(times_path)
    status = {r.chapter.name: r.status for r in results}
    words = {"ran": "executed", "cached": "unchanged, not rerun", "failed": "FAILED"}
    student_dir, downloads = exec_dir / STUDENT_DIR, exec_dir / DOWNLOADS_DIR
    downloads.mkdir(exist_ok=True)
    rows = []
    for chapter in chapters_from_toc(book_root / "_toc.yml") + pages_after_chapters(book_root / "_toc.yml"):
        executed = chapter.output(exec_dir)
        note = book_pages.runtime_note(times["chapters"].get(chapter.name), times["profile"])
        links = []
        if executed.exists():
            book_pages.add_runtime_note(executed, note)
            write_student_notebook(executed, student_dir / executed.name)
            shutil.copy2(chapter.source, downloads / chapter.source.name)
            links = [("source (.py)", f"{DOWNLOADS_DIR}/{chapter.source.name}"),
                     ("notebook", executed.name), ("student notebook", f"{STUDENT_DIR}/{executed.name}")]
        rows.append({"number": chapter.number, "name": chapter.name, "title": _chapter_title(executed),
                     "status": words.get(status.get(chapter.name), "not executed yet" if not executed.exists()
                                         else "kept from an earlier build"),
                     "record": book_pages.RunRecord.load(exec_dir, chapter.name), "expected": note,
                     "downloads": links})
    page = book_pages.statistics_page(rows, profile=profile, built=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    _write_atomic(exec_dir / f"{STATISTICS_PAGE}.md", page)


def stage_student_book(book_root: Path, exec_dir: Path, stage: Path) -> None:
    """A book root at ``stage`` whose chapters are the student notebooks (the rest as in ``book_root``)."""
    copy_book_sources(book_root, stage)
    target = stage / EXECUTED_PREFIX.rstrip("/")
    shutil.copytree(exec_dir, target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".*", "*.failed.ipynb"))
    for student in (exec_dir / STUDENT_DIR).glob("*.ipynb"):
        shutil.copy2(student, target / student.name)


# --------------------------------------------------------------------------- main
def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Execute the book's chapters with papermill and build the site with Jupyter Book.",
        epilog="Example: python scripts/build_book.py --only notebooks/04_long_tail.py -p n_models 20")
    parser.add_argument("--profile", choices=PROFILES, default="cpu",
                        help="training profile every chapter runs with (default: cpu)")
    parser.add_argument("--only", metavar="NOTEBOOK",
                        help="rerun only this chapter (path, file name, or number such as 04), then rebuild the site")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a chapter parameter (see --list-parameters), parsed like papermill's -p and "
                             "checked against the chapter's parameters cell before anything runs (repeatable)")
    parser.add_argument("--build-dir", type=Path, default=REPO / "_build",
                        help="the _build folder; the site is written to <build-dir>/html (default: _build; "
                             "jupyter-book 1.0.4 names this folder itself, so another name X gives X/_build/html)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="scratch book root: pages are copied there and executed chapters written to "
                             "<work-dir>/notebooks/_executed, leaving the repository's untouched")
    parser.add_argument("--jobs", type=int, default=1, help="chapters executed at once (default: 1)")
    parser.add_argument("--force", action="store_true", help="re-execute chapters even when unchanged")
    parser.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds (default: none)")
    parser.add_argument("--no-site", action="store_true", help="execute the chapters, skip jupyter-book build")
    parser.add_argument("--keep-going", action="store_true",
                        help="build the site even when a chapter failed (the build still exits non-zero)")
    parser.add_argument("--student", action="store_true",
                        help="build the student edition into <build-dir>/student/html instead of the full site: "
                             "chapters as student notebooks, exercise solutions left out")
    parser.add_argument("--list-parameters", metavar="NOTEBOOK",
                        help="print a chapter's parameters (name, type, default, what it does) and exit")
    return parser


def chapter_parameters(chapters: list[Chapter]) -> dict[str, dict]:
    """Each chapter's parameters by papermill's inspection (``ValueError`` where it cannot read them)."""
    import logging

    logging.getLogger("papermill").setLevel(logging.WARNING)  # its "Input Notebook: ..." line
    out = {}
    for chapter in chapters:
        if chapter.source.exists():
            out[chapter.name] = inspect_chapter(chapter.source)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    for name, value in args.parameter:
        if not name.isidentifier():
            parser.error(f"-p {name} {value}: {name!r} is not a valid parameter name")
        if name == "profile":
            parser.error("use --profile to choose the profile, not -p profile")

    all_chapters = chapters_from_toc()
    after = pages_after_chapters()
    if args.list_parameters:
        chapter = resolve_only(args.list_parameters, all_chapters + after)
        print(format_parameters(chapter.name, chapter_parameters([chapter])[chapter.name]))
        return 0
    chapters = [resolve_only(args.only, all_chapters + after)] if args.only else all_chapters
    if chapters and chapters[0] in after:  # --only scorecard: that page alone
        chapters, after = [], chapters

    # Every name and value is checked against the chapters' parameters cells before anything runs:
    # papermill itself would warn about an unknown name and run the defaults.
    try:
        # -p values go to the chapters asked for (the pages after them run with their defaults).
        declared = chapter_parameters(chapters or after)
        given = check_parameters([tuple(p) for p in args.parameter], declared)
    except ValueError as exc:
        print(f"build_book.py: {exc}", file=sys.stderr, flush=True)
        return 2
    params = {c.name: {"profile": args.profile, **given.get(c.name, {})} for c in chapters + after}

    book_root = REPO if args.work_dir is None else args.work_dir.resolve()
    if args.work_dir is not None:
        prepare_work_dir(book_root)
    exec_dir = book_root / EXECUTED_PREFIX.rstrip("/")
    exec_dir.mkdir(parents=True, exist_ok=True)
    build_dir = args.build_dir.resolve()
    # SIGTERM unwinds like Ctrl-C: children killed, temporaries removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    for path in remove_leftovers(exec_dir, build_dir):
        print(f"removed {path} (left by a killed build)", flush=True)

    extra = {k: v for p in given.values() for k, v in p.items()}
    print(f"IFT book: profile {args.profile}" + (f", parameters {extra}" if extra else "")
          + f", {len(chapters)} chapter(s) -> {exec_dir}", flush=True)
    t0 = time.perf_counter()
    results = run_chapters(chapters, params, exec_dir, jobs=args.jobs,
                           force=args.force or bool(args.only), timeout=args.timeout)
    # The scorecard after every chapter: it shows what each of them saved.
    results += run_after_pages(after, params, exec_dir, force=args.force, timeout=args.timeout)
    failed = [r for r in results if r.status == "failed"]
    print(f"chapters: {sum(r.status == 'ran' for r in results)} executed, "
          f"{sum(r.status == 'cached' for r in results)} unchanged, {len(failed)} failed "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    if args.only:
        missing = [c.name for c in all_chapters if not c.output(exec_dir).exists()]
        if missing:
            print(f"note: {len(missing)} chapter(s) not executed yet (run `make book`): {', '.join(missing)}")
    # Times of the default profile with the default parameters, one chapter at a time, are the
    # times a reader can expect: they go into the committed table.
    timed = not args.parameter and args.jobs == 1 and args.profile == book_pages.TIMED_PROFILE
    finish_chapters(chapters, results, exec_dir, profile=args.profile, update_times=timed, book_root=book_root)

    if failed:
        print("FAILED chapters: " + ", ".join(r.chapter.name for r in failed), flush=True)
        if not args.keep_going:
            print("site not rebuilt (use --keep-going to build it anyway)", flush=True)
            return 1
    if args.no_site:
        return 1 if failed else 0

    t1 = time.perf_counter()
    if args.student:
        site = student_site_dir(build_dir)
        site.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".student-book-pid{os.getpid()}-", dir=site.parent))
        try:
            stage_student_book(book_root, exec_dir, stage)
            code, html = build_site(stage, build_dir, site=site, edition="student")
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    else:
        code, html = build_site(book_root, build_dir)
    print(f"jupyter-book build: {time.perf_counter() - t1:.1f} s", flush=True)
    if code != 0:
        print(f"jupyter-book build failed (exit {code})", flush=True)
        return code
    print(f"total {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"Site: {html / 'index.html'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
