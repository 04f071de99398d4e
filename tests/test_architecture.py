"""The structure docs/architecture.md describes: no import cycles, a child package that stands alone,
and one place that composes launcher, runner and suite."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = {"kit.cli": ROOT / "cli", "kit.grader": ROOT / "grader"}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder)
            if rel.parts[0] == "suites":
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """kit modules that `name` imports anywhere in its body (functions included)."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_child_package_imports_nothing_else_of_kit():
    for name, targets in graph().items():
        if name.startswith("kit.grader.child"):
            assert all(t.startswith("kit.grader.child") for t in targets), (name, targets)


def test_only_grade_composes_a_suite_run_and_only_open_runner_makes_a_runner():
    for name, path in modules().items():
        source = path.read_text()
        if name != "kit.grader.grade":
            assert "pytest.main(" not in source, name
        if name != "kit.grader.runner":
            assert "Runner(" not in source.replace("open_runner(", ""), name


def test_the_rest_of_kit_imports_only_the_childs_torch_free_modules():
    """child.wire and child.control import no torch: a grading worker that imported more of the child
    package would import torch before starting its fork server, and the two imports would not overlap."""
    allowed = {"kit.grader.child.wire", "kit.grader.child.control"}
    for name, targets in graph().items():
        if not name.startswith("kit.grader.child"):
            assert {t for t in targets if t.startswith("kit.grader.child")} <= allowed, name
