#!/usr/bin/env python
"""Student notebooks from the executed chapters, after Neuromatch Academy's convention.

A code cell tagged ``solution`` (in the chapter's source: ``# %% tags=["solution"]
student="what to write"``) is what a student writes. In the student notebook its code becomes a
stub that names the variables the later cells need and raises
``NotImplementedError("Student exercise: <what to write>")``, and its output in the executed
chapter is kept below it as the **expected output**: pictures as embedded PNG images, tables as
HTML, text as text. Every other cell, and its output, stays as executed; papermill's injected
parameters cell is dropped, so the notebook runs with the defaults of its parameters cell.

    python scripts/make_student_notebooks.py notebooks/_executed/*.ipynb -o notebooks/_executed/student

``scripts/build_book.py`` runs it after executing the chapters; the site links each student
notebook from the execution-statistics page, and ``build_book.py --student`` builds a whole
site from them.
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import sys
from pathlib import Path

import nbformat

__all__ = ["SOLUTION_TAG", "student_notebook", "stub_source", "expected_output", "write_student_notebook"]

SOLUTION_TAG = "solution"
#: Cell metadata key with the task in words ("compute the mean test error ...").
TASK_KEY = "student"


def defined_names(source: str) -> list[str]:
    """Names a cell binds at its top level (assignments, imports, functions, classes), in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []

    def add(target):
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                add(t)

    for node in tree.body:
        if isinstance(node, ast.Assign):
            for t in node.targets:
                add(t)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            add(node.target)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.For, ast.With)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Assign):
                    for t in sub.targets:
                        add(t)
    return list(dict.fromkeys(n for n in names if not n.startswith("_")))


def stub_source(task: str, names: list[str]) -> str:
    """The student's cell: what to write, which names the chapter uses next, and the raise.

    Examples
    --------
    >>> print(stub_source("compute the mean test error", ["err"]))
    # Student exercise: compute the mean test error.
    # The cells below use: err
    raise NotImplementedError("Student exercise: compute the mean test error")
    """
    task = task.strip().rstrip(".")
    lines = [f"# Student exercise: {task}."]
    if names:
        lines.append("# The cells below use: " + ", ".join(names))
    lines.append(f"raise NotImplementedError({json.dumps('Student exercise: ' + task)})")
    return "\n".join(lines)


def expected_output(outputs: list) -> str | None:
    """The outputs of a solution cell as markdown: images embedded, tables as HTML, text fenced."""
    parts: list[str] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = "".join(out.get("text", ""))
            if text.strip():
                parts.append("```text\n" + text.rstrip("\n") + "\n```")
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            png = data.get("image/png")
            if png:
                png = "".join(png).replace("\n", "")
                parts.append(f"![expected output](data:image/png;base64,{png})")
            elif "text/html" in data and "<table" in "".join(data["text/html"]):
                parts.append("".join(data["text/html"]).strip())
            elif "text/plain" in data:
                parts.append("```text\n" + "".join(data["text/plain"]).rstrip("\n") + "\n```")
        elif kind == "error":
            parts.append("```text\n" + f"{out.get('ename')}: {out.get('evalue')}" + "\n```")
    if not parts:
        return None
    return "**Expected output** (from the full chapter):\n\n" + "\n\n".join(parts)


def student_notebook(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """The student version of an executed chapter, and how many cells became exercises."""
    out = copy.deepcopy(nb)
    cells = []
    n = 0
    for cell in out.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            continue
        if cell.cell_type == "code" and SOLUTION_TAG in tags:
            n += 1
            task = cell.metadata.get(TASK_KEY) or "write the code of this cell (see the text above)"
            expected = expected_output(cell.get("outputs", []))
            stub = nbformat.v4.new_code_cell(stub_source(task, defined_names(cell.source)))
            if "id" in cell:  # the solution's id, so the same chapter gives the same student notebook
                stub["id"] = cell["id"]
            stub.metadata["tags"] = [t for t in tags if t != SOLUTION_TAG] + ["student-exercise"]
            cells.append(stub)
            if expected:
                note = nbformat.v4.new_markdown_cell(expected)
                if "id" in cell:
                    note["id"] = f"{cell['id']}"[:55] + "-expected"
                note.metadata["tags"] = ["expected-output"]
                cells.append(note)
            continue
        cell.metadata.pop("papermill", None)
        cells.append(cell)
    out.cells = cells
    out.metadata.pop("papermill", None)
    return out, n


def write_student_notebook(executed: Path, dest: Path) -> int:
    """Write the student version of ``executed`` at ``dest`` atomically; returns the number of exercises."""
    nb = nbformat.read(executed, as_version=4)
    student, n = student_notebook(nb)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.pid{os.getpid()}.tmp")
    nbformat.write(student, tmp)
    os.replace(tmp, dest)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="executed chapters (.ipynb)")
    parser.add_argument("-o", "--out-dir", type=Path, required=True, help="folder for the student notebooks")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        n = write_student_notebook(path, args.out_dir / path.name)
        print(f"{path.name}: {n} exercise(s) -> {args.out_dir / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
