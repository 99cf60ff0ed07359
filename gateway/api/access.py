"""Access over HTTP: the web UI's session (``/session``), keys (``/keys``) and
projects (``/projects``). Their scopes are in `gateway.access.routes`; the check is
done before these handlers run (`gateway.access.guard`)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.access.guard import PRINCIPAL, SESSION, SESSION_COOKIE, principal_of
from gateway.access.policy import SESSION_TTL_S, AccessPolicy, access_policy
from gateway.access.store import AccessStore, KeyRecord, ProjectRecord, expiry_from
from gateway.api import json_response, read_json
from gateway.errors import InvalidRequest, ServiceUnavailable, Unauthorized
from gateway.quotas.ledger import KEY, PROJECT
from gateway.quotas.limits import limit_changes
from gateway.quotas.service import QuotaService
from gateway.quotas.store import QuotaStore


def _store(policy: AccessPolicy) -> AccessStore:
    if policy.store is None:
        raise ServiceUnavailable("Keys need a SQL database.", code="keys_unavailable")
    return policy.store


def _quotas(request: Request) -> QuotaService:
    quotas: QuotaService = request.app.state.quotas
    return quotas


def _quota_store(quotas: QuotaService) -> QuotaStore:
    if quotas.store is None:
        raise ServiceUnavailable("Limits need the SQLite store.", code="quotas_unavailable")
    return quotas.store


async def _with_limits(
    quotas: QuotaService, kind: str, record: KeyRecord | ProjectRecord
) -> dict[str, Any]:
    """A key's or project's answer with its own limits (null: none) and its usage in
    the current windows (with the limits in force: a key's own, else the defaults)."""
    limits = await _quota_store(quotas).limits_of(kind, record.id)
    return {**record.as_dict(), "limits": limits.as_dict(), "usage": quotas.usage(kind, record.id)}


async def _set_limits(
    quotas: QuotaService, kind: str, subject_id: str, changes: dict[str, int | float | None]
) -> None:
    if not changes:
        return
    store = _quota_store(quotas)
    limits = (await store.limits_of(kind, subject_id)).merged(changes)
    await store.set_limits(kind, subject_id, limits)
    await quotas.reload()  # in force from the next call


def _whoami(request: Request, policy: AccessPolicy) -> dict[str, Any]:
    principal = principal_of(request.scope)
    return {
        "auth": policy.enabled,
        "insecure": policy.insecure and not policy.enabled,
        "principal": None
        if principal is None
        else {
            "key_id": principal.key_id,
            "name": principal.name,
            "project_id": principal.project_id,
            "scopes": list(principal.scopes),
        },
    }


async def get_session(request: Request) -> Response:
    """Whether keys are on, and who the caller is (the UI asks before anything)."""
    return json_response(_whoami(request, access_policy(request)))


async def sign_in(request: Request) -> Response:
    """``{"key": "..."}`` -> a session cookie (HttpOnly, SameSite=Strict; the key is
    not in it: a random session id the gateway holds in memory)."""
    policy = access_policy(request)
    body = await read_json(request)
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key.strip():
        raise InvalidRequest('Send {"key": "..."}.', param="key")
    principal = policy.authenticate(key.strip())
    if principal is None:
        address = request.client.host if request.client else "?"
        delay = policy.failed(address, "bad_sign_in", "POST", "/session")
        if delay:
            await asyncio.sleep(delay)
        raise Unauthorized("The key is unknown, revoked or expired.", code="bad_key")
    sid = policy.start_session(principal)
    request.scope[PRINCIPAL] = principal
    response = json_response(_whoami(request, policy))
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        max_age=int(SESSION_TTL_S),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def sign_out(request: Request) -> Response:
    policy = access_policy(request)
    sid = request.scope.get(SESSION)
    if isinstance(sid, str):
        policy.end_session(sid)
    request.scope.pop(PRINCIPAL, None)
    response = json_response(_whoami(request, policy))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def list_keys(request: Request) -> Response:
    store = _store(access_policy(request))
    quotas = _quotas(request)
    include = request.query_params.get("include_revoked", "true") != "false"
    keys = await store.list_keys(include_revoked=include)
    return json_response({"data": [await _with_limits(quotas, KEY, k) for k in keys]})


async def create_key(request: Request) -> Response:
    policy = access_policy(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("Send a JSON object.")
    name, scopes = body.get("name"), body.get("scopes")
    project_id, days = body.get("project_id"), body.get("expires_in_days")
    if not isinstance(name, str):
        raise InvalidRequest("'name' must be a string.", param="name")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidRequest("'scopes' must be a list of strings.", param="scopes")
    if project_id is not None and not isinstance(project_id, str):
        raise InvalidRequest("'project_id' must be a string.", param="project_id")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int | float)):
        raise InvalidRequest("'expires_in_days' must be a number.", param="expires_in_days")
    changes = limit_changes(body)  # checked before anything is written
    quotas = _quotas(request)
    record, key = await _store(policy).create_key(
        name, scopes, project_id=project_id or None, expires_at=expiry_from(days)
    )
    await _set_limits(quotas, KEY, record.id, changes)
    await policy.reload()
    answer = await _with_limits(quotas, KEY, record)
    return json_response({**answer, "key": key}, status_code=201)


async def update_key(request: Request) -> Response:
    """``{"rpm": 60, "tokens_per_day": null, ...}``: the named limits change (null or
    0 removes one); the others stay."""
    policy = access_policy(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("Send a JSON object of limits.")
    changes = limit_changes(body)
    if not changes:
        raise InvalidRequest(
            "Name a limit to change: rpm, tokens_per_day, usd_per_day, usd_per_month.",
            param="limits",
        )
    record = await _store(policy).get_key(request.path_params["key_id"])
    quotas = _quotas(request)
    await _set_limits(quotas, KEY, record.id, changes)
    return json_response(await _with_limits(quotas, KEY, record))


async def revoke_key(request: Request) -> Response:
    policy = access_policy(request)
    record = await _store(policy).revoke_key(request.path_params["key_id"])
    await policy.reload()  # refused from the next request on
    return json_response(record.as_dict())


async def list_projects(request: Request) -> Response:
    store = _store(access_policy(request))
    quotas = _quotas(request)
    projects = await store.list_projects()
    return json_response({"data": [await _with_limits(quotas, PROJECT, p) for p in projects]})


async def create_project(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise InvalidRequest('Send {"id": "...", "name": "..."}.', param="id")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("'name' must be a string.", param="name")
    changes = limit_changes(body)
    quotas = _quotas(request)
    record = await _store(access_policy(request)).create_project(body["id"], name)
    await _set_limits(quotas, PROJECT, record.id, changes)
    return json_response(await _with_limits(quotas, PROJECT, record), status_code=201)


async def update_project(request: Request) -> Response:
    """``{"name": "..."}`` renames; limits (``rpm``...) change the named ones."""
    body = await read_json(request)
    name = body.get("name") if isinstance(body, dict) else None
    changes = limit_changes(body) if isinstance(body, dict) else {}
    if not isinstance(body, dict) or (not isinstance(name, str) and not changes):
        raise InvalidRequest('Send {"name": "..."} and/or limits ({"rpm": 60}).', param="name")
    store = _store(access_policy(request))
    project_id = request.path_params["project_id"]
    quotas = _quotas(request)
    if isinstance(name, str):
        record = await store.rename_project(project_id, name)
    else:
        record = await store.get_project(project_id)
    await _set_limits(quotas, PROJECT, record.id, changes)
    return json_response(await _with_limits(quotas, PROJECT, record))


def routes() -> list[BaseRoute]:
    return [
        Route("/session", get_session, methods=["GET"]),
        Route("/session", sign_in, methods=["POST"]),
        Route("/session", sign_out, methods=["DELETE"]),
        Route("/keys", list_keys, methods=["GET"]),
        Route("/keys", create_key, methods=["POST"]),
        Route("/keys/{key_id}", update_key, methods=["PATCH"]),
        Route("/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/projects", list_projects, methods=["GET"]),
        Route("/projects", create_project, methods=["POST"]),
        Route("/projects/{project_id}", update_project, methods=["PATCH"]),
    ]
