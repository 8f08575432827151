"""Sphinx helpers for the IFT book (loaded through ``sphinx: local_extensions`` in _config.yml).

Jupyter Book 1.0.4 with Sphinx 7.4 registers some extension scripts twice (sphinx-thebe's
``const THEBE_JS_URL`` inline script among them), which makes every page throw
"Identifier 'THEBE_JS_URL' has already been declared". Pages keep the first copy of each script.
"""
from __future__ import annotations


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


def setup(app):
    # Early: the event stops at the first handler that returns a template name, and the
    # duplicates are registered long before it fires.
    app.connect("html-page-context", dedupe_scripts, priority=100)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
