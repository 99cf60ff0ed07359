"""Redaction: secrets are removed before anything is stored or logged.

Three layers, because a secret can hide in any of them:

* header names (``authorization``, ``x-api-key``, cookies, cloud signing headers...);
* query parameters and JSON body fields whose *name* says they hold a key;
* known secret *values* (the configured provider keys, the client's own credential)
  wherever they appear in the text about to be written, e.g. echoed back by an
  upstream's error message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

REDACTED = "[REDACTED]"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "x-auth-token",
        "x-access-token",
        "openai-api-key",
        "anthropic-api-key",
        "x-spanlab-key",
    }
)
SECRET_HEADER_PREFIXES = ("x-amz-", "x-goog-", "x-ms-")
# Name fragments that mark a header, query parameter or body field as a secret.
# "token" alone is deliberately absent: it would catch max_tokens.
_SECRET_NAME = re.compile(
    r"(^|[-_])(api[-_]?key|apikey|secret|password|passwd|access[-_]?token|"
    r"refresh[-_]?token|id[-_]?token|session[-_]?token|auth[-_]?token|bearer|"
    r"signature|credential|credentials|private[-_]?key|secret[-_]?key)$",
    re.IGNORECASE,
)
# Query parameters that carry keys under short names (Google's ``?key=``, signed URLs).
SECRET_QUERY_PARAMS = frozenset({"key", "token", "sig", "signature", "code", "auth"})
MIN_SECRET_VALUE = 8


# Verdicts of `is_secret_name` by name, read without a call by the walks over bodies
# (`has_secret_fields`, `body_secret_values`); bounded, as names come from clients.
_SECRET_NAMES: dict[Any, bool] = {}
_SECRET_NAMES_MAX = 4096


def is_secret_name(name: str) -> bool:
    # Cached: the same few dozen header and field names come by on every call.
    try:
        return _SECRET_NAMES[name]
    except KeyError:
        pass
    lowered = name.lower()
    secret = lowered in SECRET_HEADERS or lowered.startswith(SECRET_HEADER_PREFIXES)
    if not secret:
        secret = bool(_SECRET_NAME.search(lowered))
    if len(_SECRET_NAMES) < _SECRET_NAMES_MAX:
        _SECRET_NAMES[name] = secret
    return secret


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict for storage, every secret-bearing value replaced."""
    out: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        out[lowered] = REDACTED if is_secret_name(lowered) else value
    return out


def _is_secret_param(name: str) -> bool:
    return name.lower() in SECRET_QUERY_PARAMS or is_secret_name(name)


def redact_query(query: str, secrets: Sequence[str] = ()) -> str:
    """``query`` for storage: secret-named parameters replaced, and known secret values
    (``secrets``) removed wherever they are, as written or percent-decoded (a client's
    bearer token repeated in ``?foo=``)."""
    if not query:
        return query
    if secrets:
        query = scrub_values(query, secrets)
    pairs = parse_qsl(query, keep_blank_values=True)
    if secrets:
        pairs = [(scrub_values(k, secrets), scrub_values(v, secrets)) for k, v in pairs]
    return urlencode([(k, REDACTED if _is_secret_param(k) else v) for k, v in pairs])


def redact_url(url: str) -> str:
    """``url`` with its userinfo (basic-auth credentials, or a token) replaced."""
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return url
    return url.replace(netloc, f"{REDACTED}@{netloc.rsplit('@', 1)[1]}", 1)


# JSON's leaves: tested first, with the cheap exact-type check, because an isinstance
# check against the Mapping ABC is slow and most values of a request are leaves.
_LEAVES = frozenset({str, int, float, bool, type(None)})
# orjson, which encodes every stored value, nests containers 254 levels deep at most
# (it reads 1,024): a value nested deeper cannot be stored, so the walks below stop
# there (`NestingTooDeep`) instead of recursing into a RecursionError.
MAX_STORED_DEPTH = 254


class NestingTooDeep(ValueError):
    """A JSON value nests containers deeper than `MAX_STORED_DEPTH`."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_STORED_DEPTH} levels")


def nesting_depth(value: Any, limit: int = MAX_STORED_DEPTH) -> int:
    """How many containers deep ``value`` nests (a scalar: 0), counted up to the first
    level past ``limit``. Iterative: any depth Python's JSON parsers produce."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth + 1) for child in children if type(child) not in _LEAVES)
    return deepest


def redact_body(value: Any) -> Any:
    """A copy of a JSON value with secret-named fields replaced, at any depth (up to
    `MAX_STORED_DEPTH`: deeper raises `NestingTooDeep`)."""
    if type(value) in _LEAVES:
        return value
    return _redact_body(value, 0)


def _redact_body(value: Any, depth: int) -> Any:
    if depth >= MAX_STORED_DEPTH:
        raise NestingTooDeep()
    if type(value) is dict or isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(v, str):
                # Only string values: a secret is a string, while a dict under a key-like
                # name is more likely a tool's JSON schema, which must survive for replays.
                out[k] = REDACTED if v and is_secret_name(k) else v
            elif type(v) in _LEAVES:
                out[k] = v
            else:
                out[k] = _redact_body(v, depth + 1)
        return out
    if isinstance(value, list):
        return [v if type(v) in _LEAVES else _redact_body(v, depth + 1) for v in value]
    return value


def has_secret_fields(value: Any) -> bool:
    """Whether `redact_body` would replace anything in ``value`` (no copy made); raises
    `NestingTooDeep` as it does (on a container nested `MAX_STORED_DEPTH` deep, the
    one it would refuse: `redact_body` walks the same containers).

    A loop over a stack rather than recursion, with the names' verdicts from a dict:
    the writer runs this on every response and it was the largest Python cost of a
    span's record (the recursion made ~10 calls for a chat response: 2.05 -> 1.65 us
    on `bench.writer_bench`'s span, process time, best of 5).
    The order it visits containers in differs from a depth-first recursion only in
    whether a too-deep value raises here or in `redact_body`: the same error."""
    if type(value) in _LEAVES:
        return False
    known = _SECRET_NAMES
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth >= MAX_STORED_DEPTH:
            raise NestingTooDeep()
        if type(item) is dict or (type(item) is not list and isinstance(item, Mapping)):
            for k, v in item.items():
                if isinstance(v, str):
                    if v:
                        secret = known.get(k)
                        if secret is None:
                            secret = is_secret_name(k)
                        if secret:
                            return True
                elif type(v) not in _LEAVES:
                    push((v, depth + 1))
        elif isinstance(item, list):
            for v in item:
                if type(v) not in _LEAVES:
                    push((v, depth + 1))
    return False


def scrub_values(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of a known secret value in ``text``."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_VALUE and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def query_secret_values(query: str) -> list[str]:
    """The values of the secret-named parameters of a query string."""
    if not query:
        return []
    return [v for k, v in parse_qsl(query, keep_blank_values=True) if v and _is_secret_param(k)]


def body_secret_values(value: Any) -> list[str]:
    """The string values of secret-named fields of a JSON value, at any depth (the
    fields `redact_body` replaces): an upstream may echo them back in its response.
    Iterative, so a value too deep to store still gives up its secrets."""
    found: list[str] = []
    if type(value) in _LEAVES:
        return found
    known = _SECRET_NAMES
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in _LEAVES:
            continue
        if type(item) is list:  # before the Mapping check, which is slow for a list
            stack.extend(item)
        elif type(item) is dict or isinstance(item, Mapping):
            for k, v in item.items():
                if isinstance(v, str):
                    if v and (known.get(k) or (k not in known and is_secret_name(k))):
                        found.append(v)
                elif type(v) not in _LEAVES:
                    stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def credential_values(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The secret values a request carries in its headers (``Bearer x`` gives ``x`` too)."""
    values: list[str] = []
    for name, value in headers:
        if is_secret_name(name) and value:
            values.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                values.append(token.strip())
    return values
