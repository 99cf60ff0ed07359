"""The gateway's effective settings: ``GET /settings`` (admin; audited as
``settings.shown``) and ``spanlab config show`` both print `shown_settings`.

What is shown is every setting in effect (defaults, file and ``SPANLAB_*``
environment), with what is secret masked: the admin key and the metrics token are
said to be set, never shown; a provider's API key is never read out (only whether its
environment variable is set), nor a provider's header values (a header may carry a
credential: only the names are shown); a URL's password (a proxy's, an OTLP
endpoint's, a provider's base URL) is replaced.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.api import json_response
from gateway.capture.redaction import redact_url
from gateway.config import Settings
from gateway.state import app_state
from gateway.store.postgres import redacted_url

logger = logging.getLogger(__name__)

SECRET_SETTINGS = ("admin_key", "metrics_token")  # said to be set, never shown
URL_SETTINGS = ("proxy", "otlp_endpoint")  # may carry a password
DATABASE_SETTINGS = ("db", "database_url")  # a PostgreSQL URL's password; its user stays
SET = "(set)"


def shown_settings(settings: Settings) -> dict[str, Any]:
    """The settings in effect, secrets masked (see the module's docstring)."""
    out: dict[str, Any] = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.name not in ("providers", "models", "prices")
    }
    for name in URL_SETTINGS:
        out[name] = redact_url(out[name]) if out[name] else out[name]
    for name in DATABASE_SETTINGS:
        out[name] = redacted_url(out[name])
    for name in SECRET_SETTINGS:
        out[name] = SET if out[name] else ""
    out["providers"] = {
        name: {
            "kind": p.kind,
            "base_url": redact_url(p.base_url),
            "api_key_env": p.api_key_env,
            "api_key_set": p.api_key() is not None,
            **({"headers": {h: SET for h in p.headers}} if p.headers else {}),
            **({"proxy": redact_url(p.proxy)} if p.proxy else {}),
            **({"verify": False} if not p.verify else {}),
            **{k: v for k in ("ca_bundle", "client_cert", "client_key") if (v := getattr(p, k))},
        }
        for name, p in settings.providers.items()
    }
    out["models"] = dict(settings.models)
    out["prices"] = {
        model: {k: v for k, v in dataclasses.asdict(price).items() if v is not None}
        for model, price in settings.prices.items()
    }
    return out


async def show_settings(request: Request) -> Response:
    """The settings in effect (admin), secrets masked."""
    return json_response(shown_settings(app_state(request).settings))


def routes() -> list[BaseRoute]:
    return [Route("/settings", show_settings, methods=["GET"])]
