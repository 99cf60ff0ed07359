"""The package's rooms keep their rules: each subpackage imports only from the rooms
below it (the table in README's Architecture section), no module imports a private
name of another, and there is no import cycle between modules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"

# room -> the rooms it may import from (besides itself). A room is a subpackage, or a
# top-level module by its name.
BASE = {"config", "errors", "metrics"}
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "metrics": set(),
    "config_table": set(),
    "config": {"errors", "config_table"},
    "http": {"config", "errors"},
    "capture": {"config", "errors"},
    "store": BASE | {"capture"},
    "export": BASE | {"capture"},
    "fanout": BASE,
    "writer": BASE | {"capture", "store", "export"},
    "proxy": BASE | {"http", "capture", "writer"},
    "datasets": BASE | {"capture", "store"},
    "access": BASE | {"http", "store"},
    "quotas": BASE | {"capture", "store", "access"},
    "experiments": BASE | {"http", "capture", "store", "writer", "proxy", "datasets"},
    "playground": BASE | {"http", "capture", "store", "writer", "proxy", "experiments"},
    "evaluation": BASE | {"http", "capture", "store", "writer", "proxy", "experiments", "datasets"},
    "api": BASE
    | {
        "fanout",
        "access",
        "quotas",
        "http",
        "capture",
        "store",
        "writer",
        "proxy",
        "experiments",
        "datasets",
        "playground",
        "evaluation",
        "state",
    },
    "state": BASE
    | {
        "fanout",
        "access",
        "quotas",
        "http",
        "capture",
        "store",
        "writer",
        "proxy",
        "experiments",
        "datasets",
        "playground",
        "evaluation",
        "api",
    },
    "app": BASE
    | {
        "fanout",
        "access",
        "quotas",
        "http",
        "capture",
        "store",
        "export",
        "writer",
        "proxy",
        "experiments",
        "datasets",
        "playground",
        "evaluation",
        "api",
        "state",
    },
    # The background process: a whole app without an HTTP server.
    "background": BASE | {"app", "fanout", "metrics"},
    "cli": {"*"},
    "__main__": {"cli"},
    "__init__": set(),
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(GATEWAY.rglob("*.py")):
        parts = path.relative_to(GATEWAY.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, *, runtime_only: bool) -> Iterator[ast.ImportFrom | ast.Import]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skip:
            yield node


def gateway_targets(node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("gateway")]
    if node.module and node.module.startswith("gateway"):
        return [node.module]
    return []


ALL = list(modules())


@pytest.mark.parametrize(("module", "path"), ALL, ids=[m for m, _ in ALL])
def test_a_module_imports_only_from_the_rooms_below_its_own(module: str, path: Path) -> None:
    own = room(module)
    allowed = MAY_IMPORT[own]
    for node in imports(path, runtime_only=False):
        for target in gateway_targets(node):
            other = room(target) if target != "gateway" else "__init__"
            if other in (own, "__init__") or "*" in allowed:
                continue
            assert other in allowed, f"{module} imports {target}: {own}/ may not import {other}"


@pytest.mark.parametrize(("module", "path"), ALL, ids=[m for m, _ in ALL])
def test_no_module_imports_a_private_name_of_another(module: str, path: Path) -> None:
    for node in imports(path, runtime_only=False):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway"):
            private = [
                a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"
            ]
            assert not private, f"{module} imports {private} from {node.module}"


def test_there_is_no_import_cycle_between_modules() -> None:
    names = {m for m, _ in ALL}
    graph: dict[str, set[str]] = {}
    for module, path in ALL:
        edges = graph.setdefault(module, set())
        for node in imports(path, runtime_only=True):
            for target in gateway_targets(node):
                if isinstance(node, ast.ImportFrom):
                    # `from gateway.pkg import module` names a module too
                    for alias in node.names:
                        if f"{target}.{alias.name}" in names:
                            edges.add(f"{target}.{alias.name}")
                if target in names and target != module:
                    edges.add(target)
    # A package's __init__ runs before its modules: importing gateway.a.b imports gateway.a.
    for module in names:
        parent = module.rsplit(".", 1)[0]
        if parent in names and parent != module and module.count(".") > 1:
            graph[module].add(parent)
    seen: dict[str, int] = {}  # 1: on the path, 2: done
    path_stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        path_stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                cycle = [*path_stack[path_stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt)
        path_stack.pop()
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module)
