"""The package's layout rules (docs/architecture.md): import directions, no cycles, nothing private crossing a
module boundary, `__all__` everywhere, modules of one size, ruff clean."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "leukoreport"
# Modules allowed over MAX_LINES because each holds one concept, with that concept.
MAX_LINES = 600
ONE_CONCEPT: dict[str, str] = {}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def leukoreport_imports(path: Path) -> list[tuple[str, str, int]]:
    """(module, imported name, line) of every `from leukoreport... import name` in `path`, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("leukoreport"):
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def code_files() -> list[Path]:
    """The package, the workflow scripts and the project scripts."""
    return [*PACKAGE.rglob("*.py"), *(ROOT / "workflow" / "scripts").glob("*.py"), *(ROOT / "scripts").glob("*.py")]


def test_import_contracts_hold():
    """import-linter's contracts in pyproject.toml: layers and the forbidden imports of torch and matplotlib."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "broken" not in proc.stdout.split("Contracts:")[-1].split("\n")[0] or " 0 broken" in proc.stdout


@pytest.mark.parametrize("module, planted, contract", [
    ("stats/intervals.py", "import matplotlib.pyplot", "Drawing only in report.figures and bench"),
    ("data/split.py", "import torch", "torch and fastai only in training, inference and bench"),
    ("base/errors.py", "from leukoreport.stats import metrics", "Layers"),
])
def test_import_contracts_catch_a_planted_violation(tmp_path, module, planted, contract):
    """The contracts can fail: a copy of the package with one forbidden import breaks the named contract."""
    shutil.copytree(PACKAGE, tmp_path / "leukoreport", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "leukoreport" / module
    target.write_text(target.read_text() + f"\n{planted}  # planted\n")
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    broken = [line for line in proc.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), proc.stdout[-3000:]


def test_no_private_name_crosses_a_module_boundary():
    offences = [f"{path.relative_to(ROOT)}:{line}: {module}.{name}"
                for path in code_files() for module, name, line in leukoreport_imports(path)
                if name.startswith("_")]
    assert not offences, "\n".join(offences)


def test_every_module_declares_all_and_imports_only_what_others_export():
    missing, unexported = [], []
    for name in modules():
        module = importlib.import_module(name)
        if not hasattr(module, "__all__"):
            missing.append(name)
    for path in code_files():
        for module, name, line in leukoreport_imports(path):
            target = importlib.import_module(module)
            if hasattr(target, "__all__") and name not in target.__all__:
                unexported.append(f"{path.relative_to(ROOT)}:{line}: {module}.{name}")
    assert not missing, "modules without __all__: " + ", ".join(missing)
    assert not unexported, "imported but not in __all__:\n" + "\n".join(unexported)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (the import cycles)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_strongly_connected_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("leukoreport")
    edges = {m: {n for n in graph.find_modules_directly_imported_by(m) if n.startswith("leukoreport")}
             for m in graph.modules if m.startswith("leukoreport")}
    assert strongly_connected(edges) == []


def test_modules_stay_small_unless_they_hold_one_concept():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert set(long) <= set(ONE_CONCEPT), f"modules over {MAX_LINES} lines: {long}"


def test_ruff_is_clean():
    exe = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run([exe, "check", "--no-cache", "leukoreport", "workflow", "scripts", "tests"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
