"""The built wheel carries what an installed gateway needs: migrations, prices, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_migrations_and_runs_from_its_install(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("spanlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("gateway/migrations/"))
    assert shipped == sorted(
        f"gateway/{p.relative_to(ROOT).as_posix()}" for p in ROOT.glob("migrations/*/*.sql")
    )
    assert "gateway/migrations/sqlite/0001_spans.sql" in shipped
    assert "gateway/prices.json" in names
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    # Run from the installed copy only: not from this source tree.
    env = {**os.environ, "PYTHONPATH": str(target)}
    db = tmp_path / "installed.db"
    code = (
        "import gateway, sys; from gateway.cli.main import main;"
        f" assert gateway.__file__.startswith({str(target)!r}), gateway.__file__;"
        " sys.argv = ['spanlab', 'migrate', '--db', sys.argv[1]]; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(db)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "0001_spans" in result.stdout
    assert db.exists()
