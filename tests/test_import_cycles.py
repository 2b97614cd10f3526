"""No import cycle among engine/ and wizard/ modules, counting imports inside functions too: a cycle
hidden in a function is still two modules that cannot be understood (or split) one at a time."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGES = ("engine", "wizard")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in its body (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            found.add(stem)
            found |= {f"{stem}.{a.name}" for a in node.names}  # `from . import backends`
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    paths = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_graph_sees_function_level_and_relative_imports():
    edges = graph()
    assert "engine.pipeline" in edges["engine.worker"]  # imported inside main()
    assert "engine.backends" in edges["engine.plan"]  # `from . import backends`


def test_no_import_cycle_among_engine_and_wizard_modules():
    assert cycles(graph()) == []
