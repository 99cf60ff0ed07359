"""The web UI as the gateway serves it (in-process), and the UI's own checks: its
Vitest suite, the first-page bundle budget, that no markup sink appears in its source,
and that the build shipped in the package matches its source."""

from __future__ import annotations

import filecmp
import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.api.ui import CONTENT_SECURITY_POLICY, UI_DIST, ui_routes
from tests.conftest import Gateway

ROOT = Path(__file__).resolve().parent.parent
UI_SRC = ROOT / "ui"
BUNDLE_BUDGET_GZIP = 300 * 1024


def node_tools() -> Path:
    """ui/node_modules/.bin, or skip (fail under CI, which installs it with `make ui-deps`)."""
    bin_dir = UI_SRC / "node_modules" / ".bin"
    if not (bin_dir / "vite").exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("ui/node_modules is missing: run `make ui-deps`")
        pytest.skip("ui/node_modules is not installed (make ui-deps)")
    return bin_dir


async def test_root_redirects_to_ui(gateway: Gateway) -> None:
    response = await gateway.client.get("/")
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/ui/"
    response = await gateway.client.get("/ui")
    assert response.headers["location"] == "/ui/"


async def test_index_and_app_routes_carry_the_csp(gateway: Gateway) -> None:
    index = await gateway.client.get("/ui/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert index.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert index.headers["x-content-type-options"] == "nosniff"
    assert index.headers["cache-control"] == "no-cache"
    for route in ("/ui/experiments", "/ui/experiment?span_id=abc", "/ui/spans/x/y", "/ui/threads"):
        page = await gateway.client.get(route)
        assert page.status_code == 200, route
        assert page.text == index.text
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_assets_are_immutable_and_missing_ones_404(gateway: Gateway) -> None:
    index = (await gateway.client.get("/ui/")).text
    scripts = re.findall(r'src="(/ui/assets/[^"]+\.js)"', index)
    assert scripts
    js = await gateway.client.get(scripts[0])
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "content-security-policy" in js.headers
    missing = await gateway.client.get("/ui/assets/nope.js")
    assert missing.status_code == 404
    assert "<html" not in missing.text


async def test_paths_cannot_escape_the_build(gateway: Gateway) -> None:
    for path in (
        "/ui/assets/../../app.py",
        "/ui/assets/%2e%2e/%2e%2e/app.py",
        "/ui/%2e%2e/app.py",
        "/ui/..%2fapp.py",
    ):
        response = await gateway.client.get(path)
        assert "create_app" not in response.text, path


async def test_unbuilt_ui_explains_itself(tmp_path: Path) -> None:
    app = Starlette(routes=ui_routes(tmp_path / "nothing-here"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/ui/")
    assert response.status_code == 503
    assert "make ui" in response.text


async def test_management_routes_still_win_over_the_ui(gateway: Gateway) -> None:
    response = await gateway.client.get("/spans")
    assert response.headers["content-type"].startswith("application/json")


def test_no_markup_sinks_in_ui_source() -> None:
    """Trace content is rendered as text: no raw-HTML sink or string evaluation."""
    sinks = re.compile(
        r"dangerouslySetInnerHTML|\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write"
        r"|\beval\(|new Function\("
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (UI_SRC / "src").rglob("*.ts*")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if sinks.search(line)
    ]
    assert not offenders, offenders


def first_page_scripts(dist: Path) -> list[Path]:
    """The entry script and everything it imports statically (modulepreload)."""
    index = (dist / "index.html").read_text(encoding="utf-8")
    names = re.findall(r'<script type="module"[^>]*src="/ui/([^"]+)"', index)
    names += re.findall(r'<link rel="modulepreload"[^>]*href="/ui/([^"]+)"', index)
    return [dist / n for n in names]


def test_first_page_fits_the_bundle_budget() -> None:
    scripts = first_page_scripts(UI_DIST)
    assert scripts, "no entry script in the shipped index.html"
    total = sum(len(gzip.compress(p.read_bytes(), 9)) for p in scripts)
    print(f"first page: {len(scripts)} script(s), {total / 1024:.1f} KiB gzipped")
    assert total < BUNDLE_BUDGET_GZIP
    # the code editor and the diff library are loaded by the experiment page only
    entry = scripts[0].read_text(encoding="utf-8")
    assert "cm-editor" not in entry and "diffWords" not in entry


def test_vitest_suite() -> None:
    bin_dir = node_tools()
    result = subprocess.run(
        [str(bin_dir / "vitest"), "run", "--reporter=dot"],
        cwd=UI_SRC,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert re.search(r"Tests\s+\d+ passed", result.stdout), result.stdout[-2000:]


def test_shipped_build_matches_the_source(tmp_path: Path) -> None:
    """The UI in the package is what `make ui` builds from ui/ now (CI catches a stale one)."""
    bin_dir = node_tools()
    out = tmp_path / "dist"
    result = subprocess.run(
        [
            str(bin_dir / "vite"),
            "build",
            "--outDir",
            str(out),
            "--emptyOutDir",
            "--logLevel",
            "warn",
        ],
        cwd=UI_SRC,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    shipped = sorted(str(p.relative_to(UI_DIST)) for p in UI_DIST.rglob("*") if p.is_file())
    assert built == shipped, "gateway/ui_dist is stale: run `make ui` and commit it"
    _, mismatch, errors = filecmp.cmpfiles(out, UI_DIST, built, shallow=False)
    assert not mismatch and not errors, f"stale files: {mismatch + errors}; run `make ui`"
