"""Fixtures for the browser tests: a real upstream on loopback, a real `spanlab serve`
subprocess pointed at it, and Debian's Chromium driven by Playwright.

Chromium comes from the system (`apt-get install chromium`, done by `.ci/run`); no
browser is ever downloaded. Without it (or without the playwright package) the tests
skip on a developer machine and fail under CI, where both must be present.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.upstream import LoopbackUpstream
from tests.serve import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("SPANLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


try:
    import playwright  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    # On a developer machine without the package the browser tests are not collected
    # (their modules import playwright at the top); under CI its absence is an error.
    collect_ignore_glob = ["test_*.py"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    pytest.skip(reason)


class Server(GatewayProcess):
    """The suite's `GatewayProcess`, with what the browser tests ask of it."""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def wait_span(self, span_id: str, timeout: float = 10.0) -> str:
        """Wait until the background writer has stored ``span_id``; return it."""
        self.span(span_id, timeout)
        return span_id

    def has_experiments_api(self) -> bool:
        response = self.get("/experiments")
        return response.status_code == 200


@pytest.fixture(scope="module")
def upstream() -> Iterator[LoopbackUpstream]:
    with LoopbackUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def server(
    upstream: LoopbackUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = (
        "events_heartbeat_s = 1.0\n"
        "[providers.openai]\n"
        'kind = "openai"\n'
        f'base_url = "{upstream.base_url}"\n'
    )
    with Server(tmp_path_factory.mktemp("spanlab"), config) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.errors = errors
    try:
        yield page
    finally:
        if request.node.stash.get(FAILED, False):
            # what the browser showed when the test failed, and what it logged
            shot = screenshot(page, f"FAILED-{request.node.name}")
            shot.with_suffix(".log").write_text("\n".join(console + errors))
        context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
