"""The migrations loader: numbered SQL files, one folder per SQL dialect.

The files live in the top-level ``migrations/<dialect>/`` folder of a checkout; a
wheel carries the same folder inside the package as ``gateway/migrations/``
(pyproject's force-include). Each file is ``NNNN_name.sql``; a dialect's files are
applied in order of their number, each once (the database records which).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
DIALECTS = ("sqlite", "postgresql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def migrations_root() -> Traversable:
    """The folder holding one folder of migrations per dialect: inside the installed
    package, else the source tree's top-level ``migrations/``."""
    packaged = resources.files("gateway").joinpath("migrations")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def available_migrations(dialect: str) -> list[Migration]:
    """The dialect's migrations, in order. An unknown dialect is a programming error."""
    if dialect not in DIALECTS:
        raise ValueError(f"no migrations for SQL dialect {dialect!r} (known: {DIALECTS})")
    found = []
    for entry in migrations_root().joinpath(dialect).iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
            )
    return sorted(found, key=lambda m: m.version)
