"""The check in front of every request (`AccessGuard`), behind the Host/Origin guard.

With keys off it costs one attribute check. With keys on it finds the route's scope
(`gateway.access.routes`), the caller's credential, and who that is:

- ``x-spanlab-key: <key>``, or ``Authorization: Bearer <key>`` when the bearer is a
  Spanlab key (``slk_...``) or the admin key (so an unmodified SDK works with only its
  key changed, when the provider key is configured on the gateway: the LiteLLM
  "virtual key" convention). Any other bearer is a provider key and is left alone.
- the web UI's session cookie (``spanlab_session``). A state-changing request
  authenticated by the cookie must carry an ``Origin`` header, which the Host/Origin
  guard has already found to be the gateway's own (or an allowed host): with the
  cookie's SameSite=Strict, that is the CSRF defence.

The credential is then removed from the request (the header, or the cookie header),
so it never goes upstream nor into a span; a key bound to a project sets the call's
``x-project-id`` (the client's own is dropped: it cannot escape its project). The
resolved `Principal` goes on the ASGI scope as ``scope["spanlab.principal"]`` for what
comes after (quotas, the audit log).

A key is checked when the request starts: a stream already under way when its key is
revoked runs to its end; the key's next request is refused.

No credential, or one that is unknown, revoked or expired: 401 (slowed after a few
failures from one address, and recorded); a valid one without the scope: 403.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.access.keys import DEFAULT_PROJECT, Principal
from gateway.access.policy import AccessPolicy
from gateway.access.routes import METRICS, OPEN, RouteScopes
from gateway.errors import Forbidden, SpanlabError, Unauthorized

logger = logging.getLogger(__name__)

PRINCIPAL = "spanlab.principal"  # the ASGI scope key of the resolved Principal
SESSION = "spanlab.session"  # the session id, on a request authenticated by the cookie
SESSION_COOKIE = "spanlab_session"
KEY_HEADER = b"x-spanlab-key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def principal_of(scope: Scope) -> Principal | None:
    """Who the request acts as; None when keys are off (or on an open route without a
    credential)."""
    principal: Principal | None = scope.get(PRINCIPAL)
    return principal


def may_read(scope: Scope) -> bool:
    """Whether the request's principal may read (what ``/healthz`` asks before it
    tells more than the status)."""
    principal = principal_of(scope)
    return principal is not None and principal.allows("read")


def session_from_cookie(value: str) -> str | None:
    for part in value.split(";"):
        name, sep, content = part.strip().partition("=")
        if sep and name == SESSION_COOKIE and content:
            return content
    return None


class AccessGuard:
    def __init__(self, app: ASGIApp, policy: AccessPolicy, scopes: RouteScopes) -> None:
        self.app = app
        self.policy = policy
        self.scopes = scopes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.policy.enabled:
            await self.app(scope, receive, send)
            return
        error = await self.check(scope)
        if error is None:
            await self.app(scope, receive, send)
            return
        body = error.to_json()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if error.status_code == 401:
            headers.append((b"www-authenticate", b'Bearer realm="spanlab"'))
        await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def check(self, scope: Scope) -> SpanlabError | None:
        method: str = scope["method"]
        path: str = scope["path"]
        need = self.scopes.required(method, path)
        policy = self.policy
        key = bearer = sid = None
        has_origin = False
        kept: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            if name == KEY_HEADER:
                key = value.decode("latin-1").strip()
                continue
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").strip().partition(" ")
                token = token.strip()
                if scheme.lower() == "bearer" and token:
                    if policy.is_gateway_key(token):
                        bearer = token
                        continue
                    if need == METRICS and policy.metrics_token_ok(token):
                        return None  # a scraper's token: /metrics and nothing else
            elif name == b"cookie":
                found = session_from_cookie(value.decode("latin-1"))
                if found is not None:
                    sid = found
                    continue  # the cookie header goes no further
            elif name == b"origin":
                has_origin = True
            kept.append((name, value))
        principal: Principal | None = None
        presented = key or bearer
        if presented is not None:
            principal = policy.authenticate(presented)
        elif sid is not None:
            principal = policy.session_principal(sid)
            if principal is not None:
                scope[SESSION] = sid
        if principal is not None and principal.project_id is not None:
            kept = [(n, v) for n, v in kept if n != b"x-project-id"]
            if principal.project_id != DEFAULT_PROJECT:  # NULL means the default project
                kept.append((b"x-project-id", principal.project_id.encode()))
        if presented is not None or sid is not None:
            scope["headers"] = kept
        if principal is not None:
            scope[PRINCIPAL] = principal
        if need == OPEN:
            return None
        address = (scope.get("client") or ("?", 0))[0]
        if principal is None:
            reason = (
                "no_credential"
                if presented is None and sid is None
                else ("bad_key" if presented is not None else "bad_session")
            )
            delay = policy.failed(address, reason, method, path)
            if delay:
                await asyncio.sleep(delay)
            if reason == "no_credential":
                message = (
                    "This gateway needs a key: send it as x-spanlab-key (or as the"
                    " Authorization bearer), or sign in to the web UI."
                )
            elif reason == "bad_session":
                message = "Your session has ended (signed out, expired, or its key revoked)."
            else:
                message = "The key is unknown, revoked or expired."
            return Unauthorized(message, code=reason)
        required = "read" if need == METRICS else need
        if not principal.allows(required):
            policy.denied(principal, address, required, method, path)
            return Forbidden(
                f"This key lacks the {required!r} scope needed for {method} {path}"
                f" (it has: {', '.join(principal.scopes)}).",
                code="insufficient_scope",
            )
        if sid is not None and presented is None and method not in SAFE_METHODS and not has_origin:
            # The Host/Origin guard has checked any Origin; a browser sends one on every
            # state-changing request, so a cookie without it is not the web UI's own.
            return Forbidden(
                "A state-changing request signed in by the session cookie must carry an"
                " Origin header (CSRF protection).",
                code="csrf_origin_missing",
            )
        return None
