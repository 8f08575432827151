"""What the build learns about each chapter, and the pages and notes it writes from that.

* :func:`cache_files` / :func:`cache_state`: what a chapter added to ``ift_core``'s cache while
  it ran (seeds trained, other results computed), found by listing the cache before and after.
* :class:`RunRecord`: one chapter's last execution (seconds, date, profile, parameters, cache
  state), kept beside the executed notebook as ``<name>.run.json``.
* :func:`update_chapter_times`: the committed table of expected times (``book/chapter_times.json``),
  updated by every build of the default profile and parameters: ``cold_s`` from a run that
  trained models, ``cached_s`` from one that found everything in the cache.
* :func:`runtime_note` / :func:`add_runtime_note`: the line at the top of each chapter page that
  says how long it takes.
* :func:`statistics_page`: the execution-statistics page of the site.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import nbformat

__all__ = ["cache_files", "cache_state", "RunRecord", "update_chapter_times", "runtime_note",
           "add_runtime_note", "statistics_page", "RUNTIME_TAG"]

#: Tag of the note cell :func:`add_runtime_note` puts under each chapter's title.
RUNTIME_TAG = "ift-runtime"
#: The profile whose times the table keeps, and the machine they are measured on.
TIMED_PROFILE = "cpu"
MACHINE = f"{os.cpu_count() or 2} CPU cores"


# --------------------------------------------------------------------------- the cache
def cache_files(root: Path) -> dict[str, tuple[int, int]]:
    """The results under the cache ``root``: relative path -> (size, modification time in ns).

    Locks, claims and temporaries (dot files) and ``config.json`` are left out. The time tells a
    result rewritten in place (a checkpoint of an older format, retrained) from one only read.
    """
    if not root.is_dir():
        return {}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name != "config.json":
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:  # removed while we looked
                    continue
                out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return out


def cache_state(before: Mapping[str, tuple], after: Mapping[str, tuple]) -> dict[str, int]:
    """``{"trained_seeds": n, "computed": m}``: seeds (``ensembles/*/seed_*``) and other results
    the run wrote (new, or rewritten)."""
    new = [p for p, sig in after.items() if before.get(p) != sig]
    seeds = sum(1 for p in new if p.startswith("ensembles" + os.sep) and os.path.basename(p).startswith("seed_"))
    return {"trained_seeds": seeds, "computed": len(new) - seeds}


def describe_cache(state: Mapping[str, int] | None) -> str:
    """The cache state in words, for the statistics page."""
    if state is None:
        return "not recorded"
    seeds, other = state.get("trained_seeds", 0), state.get("computed", 0)
    if not seeds and not other:
        return "nothing trained: every cached result it used was already there"
    words = []
    if seeds:
        words.append(f"trained {seeds} seed{'s' if seeds != 1 else ''}")
    if other:
        words.append(f"cached {other} new result{'s' if other != 1 else ''}")
    return ", ".join(words)


# --------------------------------------------------------------------------- run records
@dataclass
class RunRecord:
    """One chapter's last execution."""

    chapter: str
    seconds: float
    finished: str                  # ISO date and time, UTC
    profile: str
    parameters: dict = field(default_factory=dict)
    cache: dict | None = None      # cache_state() of the run

    @staticmethod
    def path(exec_dir: Path, chapter: str) -> Path:
        return exec_dir / f"{chapter}.run.json"

    def save(self, exec_dir: Path) -> None:
        path = self.path(exec_dir, self.chapter)
        tmp = path.with_name(f".{path.name}.pid{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(tmp, path)

    @classmethod
    def load(cls, exec_dir: Path, chapter: str) -> "RunRecord | None":
        try:
            return cls(**json.loads(cls.path(exec_dir, chapter).read_text()))
        except (OSError, ValueError, TypeError):
            return None


# --------------------------------------------------------------------------- expected times
def load_times(path: Path) -> dict:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    table.setdefault("profile", TIMED_PROFILE)
    table.setdefault("chapters", {})
    return table


def update_chapter_times(path: Path, records: list[RunRecord]) -> dict:
    """Fold the runs of a full default-profile build into the table at ``path``; returns the table.

    A run that trained seeds sets the chapter's ``cold_s`` (unless an earlier cold run trained
    more of them: retraining one lost seed is not a cold start), one that trained nothing its
    ``cached_s``; each with the date it was measured. A run whose cache state is unknown (chapters
    run in parallel) changes nothing.
    """
    table = load_times(path)
    for rec in records:
        if rec.profile != TIMED_PROFILE or rec.parameters or rec.cache is None:
            continue
        entry = table["chapters"].setdefault(rec.chapter, {})
        seeds = rec.cache.get("trained_seeds", 0)
        if seeds:
            if seeds < entry.get("cold_seeds", 0):
                continue
            entry.update(cold_s=round(rec.seconds, 1), cold_measured=rec.finished[:10], cold_seeds=seeds)
        else:
            entry.update(cached_s=round(rec.seconds, 1), cached_measured=rec.finished[:10])
        entry["machine"] = MACHINE
    table["chapters"] = dict(sorted(table["chapters"].items()))
    tmp = path.with_name(f".{path.name}.pid{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return table


def _duration(seconds: float) -> str:
    """About 40 s, about 3 min, about 1.5 h."""
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s" if seconds >= 5 else f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60):.0f} min"
    return f"{seconds / 3600:.1f} h"


def runtime_note(entry: Mapping[str, Any] | None, profile: str = TIMED_PROFILE) -> str | None:
    """The line under a chapter's title: how long it runs, from its row of the times table.

    Examples
    --------
    >>> runtime_note({"cold_s": 190.0, "cold_measured": "2026-12-01", "cached_s": 11.0,
    ...               "cached_measured": "2026-12-02", "machine": "2 CPU cores"})
    'Runs in about 3 min on 2 CPU cores (cpu profile, measured 2026-12-01); about 10 s once the ensembles are cached.'
    >>> runtime_note({"cached_s": 42.0, "cached_measured": "2026-12-02", "machine": "2 CPU cores"})
    'Runs in about 40 s on 2 CPU cores (cpu profile, measured 2026-12-02).'
    """
    if not entry:
        return None
    machine = entry.get("machine", MACHINE)
    cold, cached = entry.get("cold_s"), entry.get("cached_s")
    if cold is not None:
        note = (f"Runs in about {_duration(cold)} on {machine} ({profile} profile, measured "
                f"{entry.get('cold_measured', '?')})")
        if cached is not None and _duration(cached) != _duration(cold):
            note += f"; about {_duration(cached)} once the ensembles are cached"
        return note + "."
    if cached is not None:
        return (f"Runs in about {_duration(cached)} on {machine} ({profile} profile, measured "
                f"{entry.get('cached_measured', '?')}).")
    return None


def add_runtime_note(notebook: Path, note: str | None) -> bool:
    """Put ``note`` under the chapter's title (a markdown cell tagged :data:`RUNTIME_TAG`).

    The title line of the first markdown cell gets a cell of its own, so the note sits between
    the title and the claim. Idempotent: a second call replaces the note (or removes it when
    ``note`` is None). Returns whether the file changed.
    """
    nb = nbformat.read(notebook, as_version=4)
    old = nbformat.writes(nb)
    cells = [c for c in nb.cells if RUNTIME_TAG not in c.metadata.get("tags", [])]
    if note is not None:
        first = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"), None)
        at = 0
        if first is not None:
            lines = cells[first].source.split("\n")
            at = first + 1
            if lines[0].startswith("# ") and len(lines) > 1:  # the title alone, then the note, then the claim
                head = nbformat.v4.new_markdown_cell(lines[0])
                if "id" in cells[first]:  # ids chosen, not drawn: the same notebook gives the same file
                    head["id"] = f"{cells[first]['id']}"[:58] + "-title"
                cells[first].source = "\n".join(lines[1:]).lstrip("\n")
                cells.insert(first, head)
                at = first + 1
        cell = nbformat.v4.new_markdown_cell(f"> **Run time.** {note}")
        cell["id"] = RUNTIME_TAG
        cell.metadata["tags"] = [RUNTIME_TAG]
        cells.insert(at, cell)
    nb.cells = cells
    new = nbformat.writes(nb)
    if new == old:
        return False
    tmp = notebook.with_name(f".{notebook.name}.pid{os.getpid()}.tmp")
    tmp.write_text(new)
    os.replace(tmp, notebook)
    return True


# --------------------------------------------------------------------------- the statistics page
def statistics_page(rows: list[dict], *, profile: str, built: str, times_profile: str = TIMED_PROFILE) -> str:
    """The execution-statistics page (MyST markdown), one row per chapter.

    Each row: ``number``, ``name``, ``status`` (this build: executed, unchanged, failed, not
    executed), ``record`` (:class:`RunRecord` or None), ``expected`` (runtime note or None),
    ``downloads`` (list of (label, relative path)).
    """
    lines = [
        "---",
        "nosearch: true",  # it changes with every build; the search index of a rebuilt site does not
        "---",
        "",
        "# Execution statistics",
        "",
        f"How long each chapter took in the last build of this site ({built}, profile `{profile}`), "
        "and what it found in `ift_core`'s cache: a chapter that trains its seed ensembles is slow "
        "once, and fast whenever they are already cached (`.cache/ift`, or the folder in `$IFT_CACHE`). "
        "A chapter whose sources, parameters and `ift_core` code did not change is not executed again; "
        "its row shows the run that produced the page. The last column is the time measured for the "
        f"`{times_profile}` profile with the default parameters (the table `book/chapter_times.json`, "
        "updated by every such build), shown at the top of each chapter too.",
        "",
        "| chapter | this build | last run | run time | cache | expected time | download |",
        "|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for r in rows:
        rec = r.get("record")
        seconds = f"{rec.seconds:.1f} s" if rec else "-"
        total += rec.seconds if rec else 0.0
        when = rec.finished[:16].replace("T", " ") + " UTC" if rec else "-"
        cache = describe_cache(rec.cache) if rec else "-"
        expected = (r.get("expected") or "not measured yet").replace("|", "\\|")
        links = " · ".join(f"{{download}}`{label} <{path}>`" for label, path in r.get("downloads", []))
        number = f"{r['number']}. " if r["number"] != "" else ""
        lines.append(f"| {number}{{doc}}`{r['name']}` | {r['status']} | {when} | {seconds} | {cache} | "
                     f"{expected} | {links or '-'} |")
    lines += ["", f"Total run time of the runs shown: {total / 60:.1f} min.", "",
              "The downloads are the chapter's source (a jupytext `.py` file), the executed notebook, and its "
              "student version (see {doc}`../../book/run_locally`)."]
    return "\n".join(lines) + "\n"
