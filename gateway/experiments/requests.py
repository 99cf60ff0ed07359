"""What an experiment sends: validation of what clients save, and the rendering of a
saved experiment into the request body and headers of one run.

A run's request is the experiment's ``modified_request`` with its ``model_parameters``
merged on top (a null parameter removes the key), then its Mustache
``prompt_variables`` rendered into the messages, tools and headers (pystache: no HTML
escaping, a missing variable is an error, partials are never loaded from disk), then
without the fields capture redacted: a replay never sends ``"[REDACTED]"`` upstream as
if it were a credential.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import pystache
from pystache.common import PystacheError
from pystache.context import KeyNotFoundError
from pystache.parser import ParsingError

from gateway.capture.redaction import REDACTED, is_secret_name, nesting_depth
from gateway.errors import (
    InvalidJSON,
    InvalidRequest,
    MissingModel,
    SpanlabError,
    ValidationFailed,
)
from gateway.proxy.operations import DROP_REQUEST_HEADERS
from gateway.proxy.providers import Router
from gateway.proxy.providers.base import CREDENTIAL_HEADERS

REPLAYABLE = ("chat", "completions", "embeddings", "responses", "messages")
STREAMABLE = frozenset({"chat", "completions", "responses", "messages"})
# Where a request's prompt lives, per operation: what "no messages" means.
PROMPT_FIELD = {
    "chat": "messages",
    "messages": "messages",
    "responses": "input",
    "completions": "prompt",
    "embeddings": "input",
}
# Parts of a request the Mustache variables are rendered into.
TEMPLATED_FIELDS = ("messages", "tools", "functions", "system", "instructions", "input", "prompt")
# Original request headers worth carrying into a replay: API versions and betas.
REPLAYED_HEADER_PREFIXES = ("anthropic-", "openai-")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# What a header value may hold (RFC 9110 field-value: visible characters, spaces, tabs,
# latin-1 text). A line break would let a value add header lines of its own upstream.
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")
MAX_TAGS = 32
MAX_TAG_LENGTH = 64
# How deeply an experiment's JSON fields (requests, variables, parameters) may nest:
# they are stored again inside history snapshots and export documents, and the whole
# must stay within what the API reads (`gateway.api.MAX_BODY_DEPTH`).
MAX_REQUEST_DEPTH = 100
# The largest integer a stored number column takes (version, duration): exact in
# JavaScript (the UI) and far inside SQLite's 64 bits.
MAX_INTEGER = 2**53 - 1


def json_object(value: Any, param: str, *, nullable: bool = False) -> dict[str, Any] | None:
    """A JSON object given as an object or as JSON text (the UI's raw JSON editor)."""
    if value is None:
        if nullable:
            return None
        raise ValidationFailed(f"{param} is required and must be a JSON object.", param=param)
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSON(f"{param} is not valid JSON: {exc}", param=param) from None
    if not isinstance(value, dict):
        raise ValidationFailed(
            f"{param} must be a JSON object, got {type(value).__name__}.", param=param
        )
    check_depth(value, param)
    return value


def check_depth(value: Any, param: str) -> None:
    """Refuse a JSON value nested deeper than `MAX_REQUEST_DEPTH`."""
    if nesting_depth(value, MAX_REQUEST_DEPTH) > MAX_REQUEST_DEPTH:
        raise InvalidRequest(
            f"{param} nests more than {MAX_REQUEST_DEPTH} levels deep.",
            param=param,
            code="too_deeply_nested",
        )


def project_id(body: Mapping[str, Any]) -> str | None:
    """``project_id`` of ``body``; an empty one names no project (None), as a call
    without ``x-project-id`` does."""
    return optional_str(body, "project_id", limit=256) or None


def positive_int(value: Any, param: str) -> int:
    """A positive integer a stored column takes (at most `MAX_INTEGER`)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INTEGER:
        raise ValidationFailed(
            f"{param} must be an integer from 1 to {MAX_INTEGER}, got {value!r:.40}.",
            param=param,
        )
    return value


def optional_str(body: Mapping[str, Any], key: str, *, limit: int = 10_000) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{key} must be a string.", param=key)
    if len(value) > limit:
        raise ValidationFailed(f"{key} is longer than {limit} characters.", param=key)
    return value


def validate_request(
    request: Mapping[str, Any], operation: str, param: str, *, for_run: bool = False
) -> None:
    """A request body an experiment can send: a model, and a prompt for its operation."""
    model = request.get("model")
    if model is None or model == "":
        raise MissingModel(
            f'{param} has no "model". Name one, e.g. "gpt-4o-mini" or "openai/gpt-4o-mini".',
            param=f"{param}.model",
        )
    if not isinstance(model, str):
        raise ValidationFailed(f"{param}.model must be a string.", param=f"{param}.model")
    prompt = PROMPT_FIELD.get(operation, "messages")
    value = request.get(prompt)
    if prompt == "messages":
        if not isinstance(value, list):
            raise ValidationFailed(
                f'{param} has no "messages" list: a {operation} request needs one.',
                param=f"{param}.messages",
                code="missing_messages",
            )
        for i, message in enumerate(value):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ValidationFailed(
                    f"{param}.messages[{i}] must be an object with a string role.",
                    param=f"{param}.messages[{i}]",
                )
        if for_run and not value:
            raise ValidationFailed(
                f"{param}.messages is empty: there is nothing to send.",
                param=f"{param}.messages",
                code="missing_messages",
            )
    elif value is None or (for_run and value in ("", [])):
        raise ValidationFailed(
            f'{param} has no "{prompt}": a {operation} request needs one.',
            param=f"{param}.{prompt}",
            code="missing_messages",
        )


def validate_headers(value: Any) -> dict[str, str] | None:
    headers = json_object(value, "headers", nullable=True)
    if headers is None:
        return None
    out: dict[str, str] = {}
    for name, header_value in headers.items():
        lowered = name.lower()
        param = f"headers.{name}"
        if not _HEADER_NAME.match(name):
            raise ValidationFailed(f"{name!r} is not a valid header name.", param=param)
        if not isinstance(header_value, str) or not _HEADER_VALUE.match(header_value):
            raise ValidationFailed(
                f"Header {name!r} must be a single-line string of printable latin-1 characters.",
                param=param,
            )
        if lowered in CREDENTIAL_HEADERS or is_secret_name(lowered):
            raise ValidationFailed(
                f"Header {name!r} carries a credential, and Spanlab never stores credentials."
                " Send it with the run request instead (POST /experiments/{id}/run with your"
                " Authorization header, or `spanlab replay --api-key`).",
                param=param,
                code="credential_in_headers",
            )
        if lowered in DROP_REQUEST_HEADERS:
            raise ValidationFailed(
                f"Header {name!r} is set by the gateway and cannot be replayed.", param=param
            )
        out[lowered] = header_value
    return out or None


def validate_tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationFailed("tags must be a list of strings.", param="tags")
    tags: list[str] = []
    for tag in value:
        tag = tag.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise ValidationFailed(
                f"Tag {tag[:20]!r}... is longer than {MAX_TAG_LENGTH} characters.", param="tags"
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValidationFailed(f"At most {MAX_TAGS} tags.", param="tags")
    return tags


def validate_bool(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed(f"{param} must be true or false.", param=param)
    return value


def validate_templates(request: Mapping[str, Any], headers: Mapping[str, str] | None) -> None:
    """Mustache syntax errors are caught when an experiment is saved, not at run time."""
    for where, text in _template_strings(request, headers):
        try:
            pystache.parse(text)
        except (ParsingError, PystacheError) as exc:
            raise ValidationFailed(
                f"Mustache template in {where} does not parse: {exc}",
                param=where,
                code="invalid_template",
            ) from None


def _template_strings(
    request: Mapping[str, Any], headers: Mapping[str, str] | None
) -> Iterable[tuple[str, str]]:
    def walk(value: Any, path: str) -> Iterable[tuple[str, str]]:
        if isinstance(value, str):
            if "{{" in value:
                yield path, value
        elif isinstance(value, dict):
            for key, sub in value.items():
                yield from walk(sub, f"{path}.{key}")
        elif isinstance(value, list):
            for i, sub in enumerate(value):
                yield from walk(sub, f"{path}[{i}]")

    for key in TEMPLATED_FIELDS:
        if key in request:
            yield from walk(request[key], f"modified_request.{key}")
    for name, value in (headers or {}).items():
        yield from walk(value, f"headers.{name}")


def merge_parameters(
    request: Mapping[str, Any], parameters: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``parameters`` over ``request`` at the top level; a null parameter removes a key."""
    merged = copy.deepcopy(dict(request))
    for key, value in (parameters or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def render(value: Any, variables: Mapping[str, Any], where: str) -> Any:
    """Every string in ``value`` rendered as a Mustache template with ``variables``."""
    renderer = pystache.Renderer(escape=lambda text: text, missing_tags="strict", partials={})

    def walk(item: Any, path: str) -> Any:
        if isinstance(item, str):
            if "{{" not in item:
                return item
            try:
                return renderer.render(item, variables)
            except KeyNotFoundError as exc:
                raise ValidationFailed(
                    f"{path} uses a Mustache variable that prompt_variables does not define"
                    f" ({exc}). Defined: {', '.join(sorted(variables)) or 'none'}.",
                    param="prompt_variables",
                    code="missing_variable",
                ) from None
            except (ParsingError, PystacheError) as exc:
                raise ValidationFailed(
                    f"Mustache template in {path} does not render: {exc}",
                    param=path,
                    code="invalid_template",
                ) from None
        if isinstance(item, dict):
            return {k: walk(v, f"{path}.{k}") for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(item)]
        return item

    return walk(value, where)


def drop_redacted(value: Any) -> Any:
    """A copy without the fields capture redacted: never send a placeholder upstream."""
    if isinstance(value, dict):
        return {
            k: drop_redacted(v)
            for k, v in value.items()
            if not (v == REDACTED and is_secret_name(str(k)))
        }
    if isinstance(value, list):
        return [drop_redacted(v) for v in value]
    return value


def prepare_request(
    experiment: Mapping[str, Any], *, stream: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and extra headers a run of ``experiment`` sends (steps 1 and 2)."""
    operation = experiment.get("operation") or "chat"
    payload = merge_parameters(experiment["modified_request"], experiment.get("model_parameters"))
    headers = dict(experiment.get("headers") or {})
    variables = experiment.get("prompt_variables") or {}
    if variables:
        for key in TEMPLATED_FIELDS:
            if key in payload:
                payload[key] = render(payload[key], variables, f"modified_request.{key}")
        headers = render(headers, variables, "headers")
        for name, value in headers.items():  # checked again once variables are in
            if not _HEADER_VALUE.match(value):
                raise ValidationFailed(
                    f"Header {name!r} renders to a value with a line break, a control"
                    " character or a character past latin-1; check prompt_variables.",
                    param=f"headers.{name}",
                    code="invalid_header",
                )
    payload = drop_redacted(payload)
    headers = {k: v for k, v in headers.items() if v != REDACTED}
    if stream and operation in STREAMABLE:
        payload["stream"] = True
    if not payload.get("stream"):
        # Capture records the stream_options the proxy added to a streamed call; a
        # replay that does not stream must not send them (OpenAI refuses the pair).
        payload.pop("stream_options", None)
    validate_request(payload, operation, "modified_request", for_run=True)
    return payload, headers


def replayable_request(span: Mapping[str, Any], router: Router) -> dict[str, Any]:
    """The captured request, addressed so a replay reaches the same provider and model.

    The stored request is usually the body as sent upstream, its ``model`` the
    provider's name for it (a translated call keeps the client's body instead). The
    model the client asked for (``request_model``) is kept when it still routes to the
    same provider and model; otherwise the replay names ``provider/model``."""
    request = span.get("request")
    if not isinstance(request, dict):
        raise ValidationFailed(
            f"Span {span.get('span_id')!r} has no JSON request body to replay.",
            param="original_span_id",
        )
    request = copy.deepcopy(request)
    stored_model = request.get("model")
    client_model = span.get("request_model")
    provider = span.get("provider")
    if not isinstance(stored_model, str) or provider not in router.providers:
        return request
    route = None
    if isinstance(client_model, str):
        try:
            route = router.resolve(client_model)
        except SpanlabError:
            route = None
    if (
        route is not None
        and route.provider.name == provider
        and stored_model in (route.upstream_model, client_model)
    ):
        request["model"] = client_model
    elif stored_model != client_model:
        request["model"] = f"{provider}/{stored_model}"
    return request


def replayable_headers(span: Mapping[str, Any]) -> dict[str, str] | None:
    """The original's API version and beta headers (never a credential)."""
    headers = span.get("request_headers") or {}
    kept = {
        k: v
        for k, v in headers.items()
        if k.startswith(REPLAYED_HEADER_PREFIXES)
        and not is_secret_name(k)
        and k not in CREDENTIAL_HEADERS
        and v != REDACTED
    }
    return kept or None


def check_content(experiment: Mapping[str, Any]) -> None:
    for key in ("original_request", "modified_request", "prompt_variables", "model_parameters"):
        check_depth(experiment.get(key), key)  # a span's request may nest up to 254
    operation = experiment["operation"]
    validate_request(experiment["original_request"], operation, "original_request")
    effective = merge_parameters(experiment["modified_request"], experiment.get("model_parameters"))
    validate_request(effective, operation, "modified_request")
    validate_templates(effective, experiment.get("headers"))
