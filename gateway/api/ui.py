"""The web UI: the built single-page app (``gateway/ui_dist``, made by ``make ui``) served
under ``/ui/``.

Hashed assets under ``/ui/assets/`` are cached for good; every other ``/ui/...`` path
is the app's own route and gets ``index.html`` (the SPA fallback), never cached so a
new build shows at once. Every UI response carries a Content-Security-Policy that
allows only the gateway's own scripts: the UI renders trace content as text, and the
policy is the second line of defence should markup ever slip through.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

UI_DIST = Path(__file__).resolve().parents[1] / "ui_dist"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # React style attributes and the code editor's injected styles
        "style-src 'self' 'unsafe-inline'",
        # no remote images: an image URL from a trace is shown as a link, never loaded
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = (
    "The Spanlab web UI is not built. Run `make ui` (needs Node.js) in the source tree,"
    " or install a release, which ships the built UI.\n"
)


def _file_response(path: Path, cache_control: str) -> Response:
    media_type, _ = mimetypes.guess_type(path.name)
    if path.suffix == ".js":
        media_type = "text/javascript"
    return FileResponse(
        path,
        media_type=media_type,
        headers={**SECURITY_HEADERS, "cache-control": cache_control},
    )


def _inside(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``root``, or None if it escapes or is missing."""
    try:
        candidate = (root / relative).resolve()
    except (OSError, ValueError):
        return None
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def make_ui_endpoint(dist: Path = UI_DIST) -> Callable[[Request], Awaitable[Response]]:
    root = dist.resolve()

    async def serve_ui(request: Request) -> Response:
        relative = request.path_params.get("path", "")
        index = root / "index.html"
        if not index.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=503, headers=SECURITY_HEADERS)
        if relative.startswith("assets/"):
            asset = _inside(root, relative)
            if asset is None:
                return PlainTextResponse("Not found\n", status_code=404, headers=SECURITY_HEADERS)
            return _file_response(asset, IMMUTABLE)
        found = _inside(root, relative) if relative else None
        if found is not None and found.name != "index.html":
            return _file_response(found, "no-cache")
        return _file_response(index, "no-cache")

    return serve_ui


def ui_routes(dist: Path = UI_DIST) -> list[BaseRoute]:
    endpoint = make_ui_endpoint(dist)
    return [
        Route("/ui", lambda request: RedirectResponse("/ui/"), methods=["GET", "HEAD"]),
        Route("/ui/{path:path}", endpoint, methods=["GET", "HEAD"]),
    ]
