"""No module reaches into another module's private names through an object: an
attribute ``x._name`` (``x`` not ``self``/``cls``) is used only in the module that
defines ``_name``. (tests/test_layout.py checks private *imports*; this checks the
attribute uses an import check cannot see, such as ``pipeline._check_dialect(...)``
called from the experiment runner.)"""

from __future__ import annotations

import ast
from pathlib import Path

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"

# Private attributes of third-party objects the gateway still relies on, each with why.
THIRD_PARTY = {
    # aiosqlite's wrapped sqlite3 connection, for the writer's executemany in one
    # thread hop (the store's part of issue 10 removes it).
    ("store/sqlite.py", "_conn"),
}


def defined_private_names(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, attributes it assigns
    (``self._x = ...``, ``_x: int`` in a class body, ``__slots__`` entries)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
    return {n for n in names if n.startswith("_")}


def foreign_private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    own = defined_private_names(tree)
    relative = path.relative_to(GATEWAY).as_posix()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in own:
            continue
        if ast.unparse(node.value) in ("self", "cls") or (relative, name) in THIRD_PARTY:
            continue
        found.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_a_private_attribute_another_module_defines() -> None:
    found = [use for path in sorted(GATEWAY.rglob("*.py")) for use in foreign_private_uses(path)]
    assert found == [], "private names used across modules:\n" + "\n".join(found)


def test_stream_formats_are_defined_once() -> None:
    # One table of operation -> stream dialect (it was defined twice, and could drift).
    defining = [
        path.relative_to(GATEWAY).as_posix()
        for path in sorted(GATEWAY.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and "STREAM_FORMATS"
        in ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target)
    ]
    assert defining == ["proxy/operations.py"]
