"""A chapter's parameters as papermill reads them, and ``-p NAME VALUE`` checked against them.

papermill's own inspection (:func:`papermill.inspect_notebook`, what ``papermill NB.ipynb
--help-notebook`` prints) reads the cell tagged ``parameters``: one ``name: type = value  # help``
per line. A name it does not list, or a value that does not fit the type, is refused here
*before* the chapter executes, with the chapter's whole list in the message; papermill itself
would only warn and run the defaults.

Types are the annotation where the cell gives one (``Optional[int]``, ``list[float]``...: the
forms papermill's pattern reads, which excludes ``int | None``), else the type of the default
(``20`` is an ``int``, ``[0.8, 0.9]`` a ``list[float]``). ``float`` accepts an integer, ``bool``
only ``True``/``False``, ``str`` any text, ``None`` only ``None`` (where the annotation allows it),
a list a YAML/Python list such as ``"[0, 2, 5]"``.

Examples
--------
>>> spec = Parameter("n_components", "int", "20", "K, principal components per model")
>>> spec.convert("30")
30
>>> spec.convert("thirty")
Traceback (most recent call last):
...
ValueError: n_components is int (default 20); 'thirty' is not an int: give a whole number, e.g. -p n_components 20
"""
from __future__ import annotations

import ast
import difflib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Parameter", "inspect_chapter", "check_parameters", "format_parameters", "parse_value"]

KERNEL = "python3"
_SCALARS = ("bool", "int", "float", "str", "None")


def parse_value(text: str):
    """Parse a ``-p`` value exactly as papermill's command line does.

    ``True``/``False``/``None`` become those constants, integers and floats become numbers,
    anything else stays a string.

    Examples
    --------
    >>> [parse_value(v) for v in ("20", "0.5", "True", "None", "cifar10")]
    [20, 0.5, True, None, 'cifar10']
    """
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# --------------------------------------------------------------------------- types
def _type_tree(annotation: str):
    """``"Optional[list[int]]"`` -> ``("union", [("list", "int"), "None"])``; scalars are strings."""
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        raise ValueError(f"annotation {annotation!r} is not a type") from None

    def walk(n):
        if isinstance(n, ast.Constant) and n.value is None:
            return "None"
        if isinstance(n, ast.Name) and n.id in _SCALARS:
            return n.id
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            return ("union", [walk(n.left), walk(n.right)])
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name):
            head, inner = n.value.id, n.slice
            args = inner.elts if isinstance(inner, ast.Tuple) else [inner]
            if head == "Optional" and len(args) == 1:
                return ("union", [walk(args[0]), "None"])
            if head == "Union":
                return ("union", [walk(a) for a in args])
            if head in ("list", "List") and len(args) == 1:
                return ("list", walk(args[0]))
        raise ValueError(f"annotation {annotation!r}: only bool, int, float, str, None, Optional[...], "
                         f"Union[...] and list[...] are understood")

    return walk(node)


def _flatten(tree) -> list:
    return [t for sub in tree[1] for t in _flatten(sub)] if isinstance(tree, tuple) and tree[0] == "union" else [tree]


def _name(tree) -> str:
    if isinstance(tree, str):
        return tree
    if tree[0] == "list":
        return f"list[{_name(tree[1])}]"
    return " or ".join(_name(t) for t in tree[1])


def _inferred_type(default: Any) -> str | None:
    """The type a default literal implies; ``None`` when it implies none (``None``, an empty list)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, (int, float, str)):
        return type(default).__name__
    if isinstance(default, list) and default:
        inner = {_inferred_type(v) for v in default}
        if inner == {"int", "float"}:
            inner = {"float"}
        if len(inner) == 1 and None not in inner:
            return f"list[{inner.pop()}]"
    return None


_HINTS = {"int": "a whole number", "float": "a number", "bool": "True or False", "str": "a text",
          "None": "None"}


def _accept(value: Any, tree) -> tuple[bool, Any]:
    """(fits, value as the chapter receives it) for a parsed value and one alternative of a type."""
    if tree == "None":
        return value is None, value
    if tree == "bool":
        return isinstance(value, bool), value
    if tree == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if tree == "float":  # an int is a float; given as one, so the injected cell and the stamp agree
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tree == "str":
        return isinstance(value, str), value
    if isinstance(tree, tuple) and tree[0] == "list":
        if not isinstance(value, list):
            return False, value
        out = []
        for item in value:
            ok, item = _accept(item, tree[1])
            if not ok:
                return False, value
            out.append(item)
        return True, out
    for alternative in _flatten(tree):
        ok, converted = _accept(value, alternative)
        if ok:
            return True, converted
    return False, value


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Parameter:
    """One parameter of a chapter, as papermill's inspection reports it.

    ``type_name`` is papermill's ``inferred_type_name`` (the annotation, or ``"None"`` when the
    cell gives none), ``default`` and ``help`` its source text and comment.
    """

    name: str
    type_name: str
    default: str
    help: str = ""

    @property
    def default_value(self) -> Any:
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError):
            return self.default

    @property
    def type(self) -> str:
        """The type checked, in words: the annotation, else the default's (``"None"`` if neither says)."""
        return _name(self._tree)

    @property
    def _tree(self):
        if self.type_name not in ("", "None"):
            return _type_tree(self.type_name)
        return _type_tree(_inferred_type(self.default_value) or "None")

    def convert(self, text: str) -> Any:
        """The value ``-p NAME text`` passes to the chapter, or ``ValueError`` naming the type.

        The text is parsed like papermill's ``-p`` first; a ``str`` parameter takes the text as
        given (``-p severities 3`` is the text ``"3"``), a list parameter a YAML list.
        """
        tree = self._tree
        alternatives = _flatten(tree)
        value = parse_value(text)
        ok, converted = _accept(value, tree)
        if not ok and "str" in alternatives and not isinstance(value, (bool, type(None))):
            ok, converted = True, text
        if not ok and isinstance(value, str) and any(isinstance(a, tuple) for a in alternatives):
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError:
                parsed = None
            ok, converted = _accept(parsed, tree) if isinstance(parsed, list) else (False, value)
        if ok:
            return converted
        sample = self.default if self.default.startswith("[") else "[1, 2]"
        hints = " or ".join(_HINTS[a] if isinstance(a, str) else f"a list such as {sample}" for a in alternatives)
        article = "an" if self.type[0] in "aeiou" else "a"
        raise ValueError(f"{self.name} is {self.type} (default {self.default}); {text!r} is not {article} "
                         f"{self.type}: give {hints}, e.g. -p {self.name} {self._example(alternatives)}")

    def _example(self, alternatives: list) -> str:
        default = self.default_value
        if default is not None:
            text = str(default)
            return f'"{text}"' if " " in text else text
        first = next(a for a in alternatives if a != "None")
        return {"int": "10", "float": "0.5", "bool": "True", "str": "text"}.get(first, '"[1, 2]"') \
            if isinstance(first, str) else '"[1, 2]"'


def inspect_chapter(source: str | Path) -> dict[str, Parameter]:
    """The parameters of a chapter (a jupytext ``.py`` or an ``.ipynb``), by papermill's inspection.

    Raises ``ValueError`` when the parameters cell assigns a name papermill does not list (a
    line its pattern cannot read: an ``=`` in the comment, an annotation with ``|``), or a
    parameter's type cannot be known (default ``None`` without an annotation).
    """
    import jupytext
    import papermill

    path = Path(source)
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    with tempfile.TemporaryDirectory(prefix="ift-inspect-") as tmp:
        ipynb = Path(tmp) / f"{path.stem}.ipynb"
        jupytext.write(nb, ipynb, fmt="ipynb")
        found = papermill.inspect_notebook(str(ipynb))
    params = {name: Parameter(name, str(p["inferred_type_name"]), str(p["default"]), str(p["help"]))
              for name, p in found.items()}
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assigned: list[str] = []
    for cell in cells[:1]:
        for node in ast.parse(cell.source).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, ast.AnnAssign) else []
            assigned += [t.id for t in targets if isinstance(t, ast.Name)]
    unread = [n for n in assigned if n not in params]
    if unread:
        raise ValueError(f"{path.name}: papermill cannot read the parameters {unread} of its parameters cell "
                         f"(one 'name: type = value  # help' per line; no '=' in the comment, no '|' in the type: "
                         f"write Optional[int] for int | None)")
    for p in params.values():
        try:
            kind = p.type
        except ValueError as exc:
            raise ValueError(f"{path.name}: parameter {p.name}: {exc}") from None
        if kind == "None":
            raise ValueError(f"{path.name}: parameter {p.name} defaults to {p.default} and has no annotation; "
                             f"annotate it, e.g. {p.name}: Optional[int] = {p.default}")
    return params


def format_parameters(chapter: str, params: dict[str, Parameter]) -> str:
    """The parameters as a table: name, type, default, help."""
    rows = [(p.name, p.type, p.default, p.help) for p in params.values()]
    w = [max(len(r[i]) for r in rows + [("name", "type", "default", "")]) for i in range(3)]
    w = [min(x, 28) for x in w]
    lines = [f"Parameters of {chapter} (change one with -p NAME VALUE):",
             f"  {'name':<{w[0]}}  {'type':<{w[1]}}  {'default':<{w[2]}}  what it does"]
    for name, kind, default, text in rows:
        lines.append(f"  {name:<{w[0]}}  {kind:<{w[1]}}  {default:<{w[2]}}  {text}")
    return "\n".join(lines)


def check_parameters(given: list[tuple[str, str]], chapters: dict[str, dict[str, Parameter]], *,
                     reserved: tuple[str, ...] = ("profile",)) -> dict[str, dict[str, Any]]:
    """Each chapter's values for the ``-p NAME VALUE`` pairs ``given``, every name and value checked.

    A name goes to the chapters that declare it; a name none of ``chapters`` declares is refused
    with the closest valid name and the list of parameters, a value that does not fit a
    chapter's type with the type expected. Raises ``ValueError``.

    Examples
    --------
    >>> specs = {"04_long_tail": {"n_components": Parameter("n_components", "None", "20", "K")}}
    >>> check_parameters([("n_components", "30")], specs)
    {'04_long_tail': {'n_components': 30}}
    >>> check_parameters([("n_component", "30")], specs)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: -p n_component 30: 04_long_tail has no parameter 'n_component'; did you mean 'n_components'? ...
    """
    out: dict[str, dict[str, Any]] = {name: {} for name in chapters}
    for name, text in given:
        if name in reserved:
            raise ValueError(f"-p {name} {text}: set {name} with --{name}, not -p")
        holders = [c for c, params in chapters.items() if name in params]
        if not holders:
            valid = sorted({n for params in chapters.values() for n in params if n not in reserved})
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            where = next(iter(chapters)) if len(chapters) == 1 else "no chapter"
            guess = f"did you mean {close[0]!r}?" if close else "no parameter has a similar name."
            table = "\n\n".join(format_parameters(c, p) for c, p in chapters.items()) if len(chapters) == 1 \
                else "valid names: " + ", ".join(valid)
            subject = f"{where} has no parameter {name!r}" if len(chapters) == 1 \
                else f"no chapter has a parameter {name!r}"
            raise ValueError(f"-p {name} {text}: {subject}; {guess} Nothing was executed.\n{table}")
        for chapter in holders:
            try:
                out[chapter][name] = chapters[chapter][name].convert(text)
            except ValueError as exc:
                raise ValueError(f"-p {name} {text}: in {chapter}, {exc}. Nothing was executed.") from None
    return out


if __name__ == "__main__":  # pragma: no cover - a convenience: print a chapter's parameters
    import sys

    for arg in sys.argv[1:]:
        print(format_parameters(Path(arg).stem, inspect_chapter(arg)))
