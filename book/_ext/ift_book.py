"""Sphinx helpers for the IFT book (loaded through ``sphinx: local_extensions`` in _config.yml).

* **One copy of each script.** Jupyter Book 1.0.4 with Sphinx 7.4 registers some extension
  scripts twice (sphinx-thebe's ``const THEBE_JS_URL`` inline script among them), which makes
  every page throw "Identifier 'THEBE_JS_URL' has already been declared". Pages keep the first
  copy of each script.
* **The book's style sheet** (``book/_static/ift.css``): verdict boxes that wrap at the column
  width, wide output tables that scroll with a visible hint.
* **The licence in the footer**: ``@LICENCE_PAGE@`` in ``html.extra_footer`` becomes the
  relative link to the licence page from each page.
* **The student edition** (``IFT_BOOK_EDITION=student``, set by ``build_book.py --student``):
  every block with the class ``solution`` (the exercises' solution toggles) is left out.
"""
from __future__ import annotations

import os
from pathlib import Path

from docutils import nodes

STATIC = Path(__file__).resolve().parent.parent / "_static"
LICENCE_PAGE = "book/licence"
EDITION_ENV = "IFT_BOOK_EDITION"


def _script_key(script) -> tuple[str, str]:
    # An inline script is registered once with filename None and once with "".
    filename = getattr(script, "filename", None) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return str(filename), repr(sorted(attributes.items()))


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def link_licence(app, pagename, templatename, context, doctree) -> None:
    footer = context.get("theme_extra_footer")
    if footer and "@LICENCE_PAGE@" in footer and "pathto" in context:
        context["theme_extra_footer"] = footer.replace("@LICENCE_PAGE@", context["pathto"](LICENCE_PAGE))


def student_edition() -> bool:
    return os.environ.get(EDITION_ENV, "full") == "student"


def remove_solutions(app, doctree) -> None:
    """Leave every node with the class ``solution`` out of the student edition."""
    if not student_edition():
        return
    for node in list(doctree.findall(nodes.Element)):
        if "solution" in node.get("classes", []) and node.parent is not None:
            node.parent.remove(node)


def add_static(app, config) -> None:
    config.html_static_path.append(str(STATIC))


def setup(app):
    # Early: the event stops at the first handler that returns a template name, and the
    # duplicates are registered long before it fires.
    app.connect("html-page-context", dedupe_scripts, priority=100)
    app.connect("html-page-context", link_licence)
    app.connect("config-inited", add_static)
    app.connect("doctree-read", remove_solutions)
    app.add_css_file("ift.css")
    return {"version": "2", "parallel_read_safe": True, "parallel_write_safe": True}
