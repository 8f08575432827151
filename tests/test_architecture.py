"""The import directions of ARCHITECTURE.md hold for every module of ift_core.

The allowed directions are read from the table in ARCHITECTURE.md (one source of truth). Every
module is parsed (ast, imports inside functions included) and each of its imports of ift_core is
checked against its row: the target may be imported at all, a name starting with ``_`` only from
``internal`` or a sibling file of the same package, and torch never where the row says so. Then
each module that must not pull in torch is imported in a fresh interpreter.

``import_violations(package_dir)`` can be pointed at any checkout, e.g. an older tree::

    python -c "import sys; sys.path.insert(0, 'tests'); import test_architecture as t; \\
               print(*t.import_violations(t.Path('/some/checkout/ift_core')), sep='\\n')"
"""
from __future__ import annotations

import ast
import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ift_core"
ANALYSIS = ("gde", "tensor", "observations", "theory", "claims")
TORCH = ("torch", "torchvision")


@dataclass(frozen=True)
class Rule:
    """One row of the table: what a unit (a module, or a package with all its files) may import."""

    allowed: frozenset[str]
    never: frozenset[str]
    no_torch: bool = False  # never imports torch, not even inside a function
    no_torch_at_import: bool = False  # may import torch inside functions only


def read_rules(text: str) -> dict[str, Rule]:
    """The table of ARCHITECTURE.md's section "Import directions" as unit -> Rule."""
    section = text.split("## Import directions", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    rules: dict[str, Rule] = {}
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            raise ValueError(f"ARCHITECTURE.md: a row of the import table needs 3 cells: {line!r}")
        unit = re.fullmatch(r"`([a-z_]+)(/\*)?`", cells[0])
        if not unit:
            raise ValueError(f"ARCHITECTURE.md: unreadable module cell {cells[0]!r}")
        may, never = cells[1], cells[2]
        if may == "everything above":
            allowed = set(rules)
        elif may == "nothing":
            allowed = set()
        else:
            allowed = set(re.findall(r"`([a-z_]+)`", may))
        banned = set(re.findall(r"`([a-z_]+)`", never))
        if "analysis" in never:
            banned |= set(ANALYSIS)
        rules[unit.group(1)] = Rule(frozenset(allowed), frozenset(banned),
                                    no_torch=bool(re.search(r"\btorch\b(?! at import time)", never)),
                                    no_torch_at_import="torch at import time" in never)
    return rules


RULES = read_rules((ROOT / "ARCHITECTURE.md").read_text())


# --------------------------------------------------------------------------- parsing the package
def _modules(package_dir: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (its __init__ files included)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _unit(dotted: str, top: str) -> str:
    """The row a module belongs to: ``ift_core.theory.model`` -> ``theory``; the top face -> ``""``."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == top else ""


def _is_package(dotted: str, modules: dict[str, Path]) -> bool:
    return modules.get(dotted, Path()).name == "__init__.py"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@dataclass(frozen=True)
class Import:
    target: str  # the ift_core module imported (or the module a name is imported from)
    names: tuple[str, ...]  # the names taken from it (``from X import a, b``), or ()
    line: int
    in_function: bool


def _imports(path: Path, dotted: str, modules: dict[str, Path], top: str) -> tuple[list[Import], list[tuple]]:
    """The ift_core imports of one file, the third-party top-level names it imports (with line and
    whether inside a function), and the private attributes it reads on imported ift_core modules."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = dotted if _is_package(dotted, modules) else dotted.rpartition(".")[0]
    found: list[Import] = []
    others: list[tuple] = []
    aliases: dict[str, str] = {}  # local name -> ift_core module it is bound to

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name == top or a.name.startswith(top + "."):
                        found.append(Import(a.name, (), child.lineno, in_function))
                        aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else top
                    else:
                        others.append((a.name.split(".")[0], child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                if not (source == top or source.startswith(top + ".")):
                    others.append((source.split(".")[0], child.lineno, in_function))
                    continue
                plain = []
                for a in child.names:
                    sub = f"{source}.{a.name}"
                    if sub in modules:  # ``from ift_core import gde``: the module itself
                        found.append(Import(sub, (), child.lineno, in_function))
                        aliases[a.asname or a.name] = sub
                    else:
                        plain.append(a.name)
                if plain:
                    found.append(Import(source, tuple(plain), child.lineno, in_function))
            elif isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name) \
                    and child.value.id in aliases and _private(child.attr):
                found.append(Import(aliases[child.value.id], (child.attr,), child.lineno, in_function))
            walk(child, inner)

    walk(tree, False)
    return found, others


def import_violations(package_dir: Path, rules: dict[str, Rule] = RULES) -> list[str]:
    """Every import of a module under ``package_dir`` that breaks ``rules``, as readable lines."""
    top = package_dir.name
    modules = _modules(package_dir)
    out = []
    for dotted, path in modules.items():
        unit = _unit(dotted, top)
        where = f"{path.relative_to(package_dir.parent)}"
        if unit and unit not in rules:
            out.append(f"{where}: module {unit!r} has no row in ARCHITECTURE.md's import table (add one)")
            continue
        rule = rules.get(unit)
        found, others = _imports(path, dotted, modules, top)
        for imp in found:
            target = _unit(imp.target, top)
            same_package = bool(unit) and target == unit and _is_package(f"{top}.{unit}", modules)
            if unit and target and target != unit:
                if target in rule.never or target not in rule.allowed:
                    out.append(f"{where}:{imp.line}: {unit} imports {imp.target} ({target} is not in its row: "
                               f"may import {sorted(rule.allowed) or 'nothing'})")
            module_parts = imp.target.split(".")[1:]
            private_module = any(_private(p) for p in module_parts)
            for name in imp.names + ((module_parts[-1],) if private_module and not imp.names else ()):
                if (_private(name) or private_module) and target != "internal" and not same_package:
                    out.append(f"{where}:{imp.line}: private {name!r} of {imp.target} used outside its package")
        if rule is not None:
            for name, line, in_function in others:
                if name in TORCH and (rule.no_torch or (rule.no_torch_at_import and not in_function)):
                    out.append(f"{where}:{line}: {unit} imports {name}" + (" when it is imported" if not in_function
                                                                            else ""))
    return out


def torch_free_modules(package_dir: Path = PACKAGE, rules: dict[str, Rule] = RULES) -> list[str]:
    """The modules that must not pull in torch when imported (their rows say torch, or torch at
    import time)."""
    top = package_dir.name
    return [d for d in _modules(package_dir) if _unit(d, top) in rules
            and (rules[_unit(d, top)].no_torch or rules[_unit(d, top)].no_torch_at_import)
            and not d.endswith("__main__")]


# One interpreter imports the third-party libraries the analysis modules use (none of them loads
# torch; checked), then forks a child per module: each child imports its module into a process
# that has no ift_core module and no torch yet, as a fresh interpreter would, without paying the
# seconds of numpy/scipy/pandas/matplotlib imports again for every module.
_FORKING_CHECKER = """
import importlib, json, os, sys
for name in ("numpy", "scipy", "scipy.stats", "scipy.optimize", "pandas", "matplotlib", "matplotlib.pyplot",
             "seaborn", "sklearn"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert "torch" not in sys.modules and not any(m.startswith("ift_core") for m in sys.modules), "preload"
results = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            message = "torch" if "torch" in sys.modules else "ok"
        except BaseException as exc:
            message = f"import failed: {type(exc).__name__}: {exc}"
        os.write(write, message.encode()[:4000])
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 4096):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    results[module] = b"".join(chunks).decode() or f"import failed: the child died (wait status {status})"
print(json.dumps(results))
"""


def torch_importers(modules: list[str], *, path: Path = ROOT) -> list[str]:
    """Those of ``modules`` whose import loads torch, each imported in its own forked child of
    an interpreter that has loaded no ift_core module and no torch (see ``_FORKING_CHECKER``)."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    proc = subprocess.run([sys.executable, "-c", _FORKING_CHECKER, *modules], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, f"the import checker failed:\n{proc.stderr[-3000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    bad = []
    for m in modules:
        if results[m] == "torch":
            bad.append(f"{m}: importing it loads torch")
        elif results[m] != "ok":
            bad.append(f"{m}: {results[m]}")
    return bad


# --------------------------------------------------------------------------- the tests
def test_the_table_reads_as_the_map():
    assert RULES["distributed"].allowed == frozenset() and not RULES["distributed"].no_torch
    assert RULES["observations"].allowed == {"tensor", "gde", "internal"} and RULES["observations"].no_torch
    assert set(ANALYSIS) <= RULES["train"].never and {"activations", "experiments"} <= RULES["train"].never
    assert RULES["experiments"].allowed >= {"train", "activations", "theory", "tensor"}
    assert RULES["plots"].no_torch_at_import and not RULES["plots"].no_torch and "train" in RULES["plots"].never


_UNITS = sorted({_unit(d, "ift_core") for d in _modules(PACKAGE)} | set(RULES))


@pytest.mark.parametrize("unit", _UNITS, ids=[u or "ift_core" for u in _UNITS])
def test_every_module_imports_along_the_allowed_directions(unit):
    """One case per row (and the top face): its modules' imports, against the table."""
    bad = _violations_by_unit().get(unit, [])
    assert not bad, "imports against ARCHITECTURE.md:\n" + "\n".join(bad)


@functools.cache
def _violations_by_unit() -> dict[str, list[str]]:
    by_unit: dict[str, list[str]] = {}
    for line in import_violations(PACKAGE):
        parts = Path(line.split(":", 1)[0]).with_suffix("").parts  # ift_core/<unit>[/...].py
        by_unit.setdefault(parts[1] if len(parts) > 1 and parts[1] != "__init__" else "", []).append(line)
    return by_unit


def test_the_checker_sees_what_it_must(tmp_path):
    """A planted tree with each kind of violation: every one is reported, nothing else."""
    pkg = tmp_path / "ift_core"
    for rel, text in {
        "__init__.py": "",
        "internal.py": "def _helper(): pass\n",
        "tensor.py": "from .internal import _helper\n",
        "observations.py": "from .tensor import _assemble\nfrom . import tensor\nx = tensor._other\n",
        "gde.py": "def f():\n    import torch\n",
        "distributed.py": "def g():\n    from .train import run\n",
        "theory/__init__.py": "from .model import _E\n",
        "theory/model.py": "from ..tensor import build\n",
        "plots/__init__.py": "",
        "plots/tensor.py": "import torch\ndef h():\n    import torch\n",
        "newthing.py": "",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    bad = import_violations(pkg)
    expected = ["observations.py:1: private '_assemble'", "observations.py:3: private '_other'",
                "gde.py:2: gde imports torch", "distributed.py:2: distributed imports ift_core.train",
                "plots/tensor.py:1: plots imports torch when it is imported", "newthing.py: module 'newthing'"]
    for e in expected:
        assert any(e in b for b in bad), (e, bad)
    assert len(bad) == len(expected), bad  # internal, a sibling and a lazy torch in plots are allowed


def test_analysis_modules_never_load_torch():
    modules = torch_free_modules()
    assert "ift_core.theory.fitting" in modules and "ift_core.plots.tensor" in modules
    assert "ift_core.train" not in modules and "ift_core.experiments" not in modules
    bad = torch_importers(modules)
    assert not bad, "\n".join(bad)


def test_the_studies_load_torch_only_when_they_run():
    assert not torch_importers(["ift_core.experiments"])


def test_torch_importers_tells_a_torch_import_from_a_clean_one_and_a_broken_one(tmp_path):
    pkg = tmp_path / "planted"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "clean.py").write_text("import numpy\n")
    (pkg / "heavy.py").write_text("import numpy\n\ndef f():\n    return 1\n\nimport torch\n")
    (pkg / "broken.py").write_text("raise RuntimeError('planted failure')\n")
    bad = torch_importers(["planted.clean", "planted.heavy", "planted.broken"], path=tmp_path)
    assert bad == ["planted.heavy: importing it loads torch",
                   "planted.broken: import failed: RuntimeError: planted failure"], bad
