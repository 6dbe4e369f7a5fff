"""The layer folders: no import circle, counting every import statement, and import-linter's contracts.

The scan reads each module's syntax tree, so it sees function-level imports and the imports under
``if TYPE_CHECKING:`` too (the lazy back-edges that hid the old circles). The contracts themselves
are in pyproject.toml (``[tool.importlinter]``) and run by ``make lint``; the test runs them too,
and checks that a planted upward import breaks them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "baselines", "magnet", "perf")
LAYERS = ("core", "data", "models", "runtime", "evaluation", "weights", "training", "pipeline", "report", "checks",
          "cli")


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of :data:`PACKAGES` under ``root``."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its file (functions and TYPE_CHECKING included)."""
    mods = modules(root)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in targets:
                found = owner(target)
                if found and found != name:
                    graph[name].add(found)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_counting_function_level_imports():
    assert circles(import_graph(REPO)) == []


def test_the_scan_sees_a_lazy_back_edge(tmp_path):
    # the old circle's shape: a lower module importing a higher one inside a function
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "bench" / "low.py").write_text("def f():\n    from bench.high import g\n")
    (tmp_path / "bench" / "high.py").write_text("from bench.low import f\n\ndef g():\n    pass\n")
    assert circles(import_graph(tmp_path)) == [["bench.high", "bench.low"]]


def test_bench_is_its_layer_folders():
    loose = sorted(p.name for p in (REPO / "bench").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "_moved.py"]
    assert sorted(p.name for p in (REPO / "bench").iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


def test_every_layer_is_a_layer_of_the_contract():
    text = (REPO / "pyproject.toml").read_text()
    for layer in LAYERS:
        assert f'"bench.{layer}",' in text


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports is missing: `pip install -e .[dev]` installs import-linter")
    return subprocess.run([exe, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)})


def test_import_linter_contracts_pass_and_catch_an_upward_function_level_import(tmp_path):
    run = _lint_imports(REPO)
    assert run.returncode == 0, run.stdout[-3000:]
    copy = tmp_path / "repo"
    for name in (*PACKAGES, "pyproject.toml"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy / name)
    metrics = copy / "bench" / "evaluation" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n\ndef _planted():\n    from bench.report import tables  # noqa\n")
    run = _lint_imports(copy)
    assert run.returncode == 1 and "bench.evaluation.metrics -> bench.report.tables" in run.stdout, run.stdout[-2000:]
