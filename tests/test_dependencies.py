"""pyproject.toml declares what the gateway imports, and imports what it declares: a
third-party module imported anywhere in gateway/ comes from a declared dependency (an
undeclared one works only while another package happens to pull it in), and a declared
dependency is imported (or listed below with why it is needed without an import)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Declared, and used without being imported by name in gateway/.
USED_WITHOUT_IMPORT = {
    # uvicorn's http="httptools" parser, under the server protocol gateway/http/server.py
    # subclasses.
    "httptools",
    # uvicorn's loop="uvloop", chosen by `spanlab serve` (gateway/cli/main.py).
    "uvloop",
}
# Extras the gateway imports itself when a setting asks for them (never at start-up):
# their distributions count as declared for its imports.
IMPORTED_EXTRAS = ("otlp", "postgres")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        normalize(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]
    }


def declared_extras() -> set[str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    return {
        normalize(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0])
        for name in IMPORTED_EXTRAS
        for dep in extras[name]
    }


def namespace_siblings(allowed: set[str]) -> set[str]:
    """The distributions sharing a namespace package with an allowed one (opentelemetry:
    api, sdk, proto, exporters...): an import of the namespace names them all."""
    siblings: set[str] = set()
    for dists in packages_distributions().values():
        names = {normalize(d) for d in dists}
        if len(names) > 1 and names & allowed:
            siblings |= names
    return siblings


def imported_distributions() -> dict[str, set[str]]:
    """Distribution -> the gateway modules importing it (third-party imports only)."""
    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top == "gateway" or top in sys.stdlib_module_names:
                    continue
                for dist in owners.get(top, [top]):
                    found.setdefault(normalize(dist), set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_every_third_party_import_is_a_declared_dependency() -> None:
    extras = declared_extras()
    allowed = declared() | extras | namespace_siblings(extras)
    undeclared = {d: sorted(m) for d, m in imported_distributions().items() if d not in allowed}
    assert not undeclared, f"imported but not in pyproject.toml dependencies: {undeclared}"


def test_every_declared_dependency_is_imported() -> None:
    unused = declared() - set(imported_distributions()) - USED_WITHOUT_IMPORT
    assert not unused, f"declared in pyproject.toml but imported nowhere in gateway/: {unused}"
