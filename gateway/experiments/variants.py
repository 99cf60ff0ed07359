"""Variants and inputs of an experiment: what clients send (validated), and one cell's
request: a variant rendered onto an input.

A **template** variant builds a chat request from the input: its ``config.messages``
(default: one user message ``{{content}}``) rendered as Mustache with the input's
variables (plus ``content`` and ``key``), its system prompt first, its model,
parameters and tools. An **override** variant takes the input's own captured request
and changes only what it names: model, parameters, the system prompt (``system_mode``
``replace``, the default, or ``prepend``), tools added (``tools``, by function name)
or removed (``remove_tools``). A null parameter removes the key. See docs/api.md.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Collection, Mapping
from typing import Any

import pystache
from pystache.common import PystacheError
from pystache.parser import ParsingError

from gateway.errors import SpanlabError, ValidationFailed
from gateway.experiments.requests import (
    REPLAYABLE,
    check_depth,
    drop_redacted,
    render,
    validate_request,
)
from gateway.proxy.providers import PROVIDER_HEADER, Router

VARIANT_FIELDS = frozenset({"name", "description", "system_prompt", "config", "kind"})
INPUT_FIELDS = frozenset(
    {
        "key",
        "content",
        "variables",
        "request",
        "operation",
        "expected_output",
        "metadata",
        "source_span_id",
    }
)
ALIASES = {
    "systemPrompt": "system_prompt",
    "expected": "expected_output",
    "expectedOutput": "expected_output",
    "sourceSpanId": "source_span_id",
    "datasetId": "dataset_id",
    "inputIds": "input_ids",
    "variantIds": "variant_ids",
}
# config keys that are instructions, not request fields.
RESERVED = frozenset({"messages", "system_mode", "remove_tools", "provider"})
NUMBER_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
INTEGER_PARAMS = ("max_tokens", "max_completion_tokens", "n", "seed")
MAX_KEY = 200
MAX_INPUTS = 10_000


def snake_case(body: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's camelCase names accepted beside our snake_case ones."""
    return {ALIASES.get(key, key): value for key, value in body.items()}


def _text(value: Any, param: str, *, limit: int = 1_000_000) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationFailed(
            f"{param} must be a string (at most {limit} characters).", param=param
        )
    return value


def _object(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(f"{param} must be a JSON object.", param=param)
    check_depth(value, param)
    return value


def _check_template(text: Any, param: str) -> None:
    if isinstance(text, str) and "{{" in text:
        try:
            pystache.parse(text)
        except (ParsingError, PystacheError) as exc:
            raise ValidationFailed(
                f"Mustache template in {param} does not parse: {exc}",
                param=param,
                code="invalid_template",
            ) from None
    elif isinstance(text, list):
        for i, item in enumerate(text):
            _check_template(item, f"{param}[{i}]")
    elif isinstance(text, dict):
        for key, item in text.items():
            _check_template(item, f"{param}.{key}")


def _tools(value: Any, param: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValidationFailed(f"{param} must be a list of tool objects.", param=param)
    for i, tool in enumerate(value):
        if not isinstance(tool_name(tool), str):
            raise ValidationFailed(f"{param}[{i}] has no function name.", param=f"{param}[{i}]")
    return value


def tool_name(tool: Mapping[str, Any]) -> Any:
    function = tool.get("function")
    return function.get("name") if isinstance(function, dict) else tool.get("name")


def check_config(kind: str, config: Mapping[str, Any], router: Router) -> None:
    """A variant's config, checked when it is saved (bad config: 422, nothing stored)."""
    model = config.get("model")
    if kind == "template" and (not isinstance(model, str) or not model):
        raise ValidationFailed(
            'A template variant needs config.model (e.g. "gpt-4o-mini").',
            param="config.model",
            code="missing_model",
        )
    if model is not None and not isinstance(model, str):
        raise ValidationFailed("config.model must be a string.", param="config.model")
    provider = _text(config.get("provider"), "config.provider", limit=200)
    if model or provider:
        router.resolve(model or None, provider)  # unknown provider: a clear 4xx now
    for name in NUMBER_PARAMS:
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValidationFailed(f"config.{name} must be a number.", param=f"config.{name}")
    for name in INTEGER_PARAMS:
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValidationFailed(f"config.{name} must be an integer.", param=f"config.{name}")
    if "messages" in config:
        if kind != "template":
            raise ValidationFailed(
                "config.messages belongs to a template variant; an override keeps each"
                " input's own messages.",
                param="config.messages",
            )
        messages = config["messages"]
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
        ):
            raise ValidationFailed(
                "config.messages must be a list of objects with a string role.",
                param="config.messages",
            )
        _check_template(messages, "config.messages")
    if config.get("tools") is not None:
        _tools(config["tools"], "config.tools")
    mode = config.get("system_mode", "replace")
    if mode not in ("replace", "prepend"):
        raise ValidationFailed(
            f"config.system_mode must be replace or prepend, got {mode!r}.",
            param="config.system_mode",
        )
    removed = config.get("remove_tools")
    if removed is not None and (
        not isinstance(removed, list) or not all(isinstance(n, str) for n in removed)
    ):
        raise ValidationFailed(
            "config.remove_tools must be a list of tool names.", param="config.remove_tools"
        )


def parse_variant(
    body: Any, router: Router, current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The variant's fields from a POST (``current`` None) or PUT body."""
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object.", param="body")
    body = snake_case(body)
    unknown = set(body) - VARIANT_FIELDS
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(sorted(unknown))}. Accepted: name, description,"
            " systemPrompt, config, kind.",
            param=sorted(unknown)[0],
        )
    values = dict(current or {})
    if "name" in body or current is None:
        name = _text(body.get("name"), "name", limit=200)
        if not name or not name.strip():
            raise ValidationFailed("name is required.", param="name")
        values["name"] = name.strip()
    if "description" in body:
        values["description"] = _text(body["description"], "description", limit=10_000)
    if "system_prompt" in body:
        values["system_prompt"] = _text(body["system_prompt"], "systemPrompt")
        _check_template(values["system_prompt"], "systemPrompt")
    if "kind" in body or current is None:
        kind = body.get("kind") or "template"
        if kind not in ("template", "override"):
            raise ValidationFailed(
                f"kind must be template or override, got {kind!r}.", param="kind"
            )
        values["kind"] = kind
    if "config" in body or current is None:
        config = body.get("config")
        values["config"] = _object(config, "config") or {}
    check_config(values["kind"], values["config"], router)
    return values


def parse_inputs(body: Any, taken: Collection[str] = ()) -> list[dict[str, Any]]:
    """``inputs``: each a string (its content) or an object; keys unique in the batch.
    An input without a key gets the first ``input-N`` that neither the batch nor
    ``taken`` (the experiment's keys already) holds, so a second paste adds on."""
    items = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise ValidationFailed(
            "inputs must be a non-empty list (or send datasetId to take a dataset's items).",
            param="inputs",
        )
    if len(items) > MAX_INPUTS:
        raise ValidationFailed(f"At most {MAX_INPUTS} inputs at once.", param="inputs")
    parsed = []
    keys: set[str] = set()
    named = {item.get("key") for item in items if isinstance(item, dict)}
    unavailable = set(taken) | {key for key in named if isinstance(key, str)}
    counter = itertools.count(1)
    for i, item in enumerate(items):
        where = f"inputs[{i}]"
        if isinstance(item, str):
            item = {"content": item}
        if not isinstance(item, dict):
            raise ValidationFailed(f"{where} must be a string or an object.", param=where)
        item = snake_case(item)
        unknown = set(item) - INPUT_FIELDS
        if unknown:
            raise ValidationFailed(
                f"{where} has unknown field(s): {', '.join(sorted(unknown))}.", param=where
            )
        key = item.get("key") or next(
            f"input-{n}" for n in counter if f"input-{n}" not in unavailable
        )
        if not isinstance(key, str) or len(key) > MAX_KEY:
            raise ValidationFailed(f"{where}.key must be a short string.", param=f"{where}.key")
        if key in keys:
            raise ValidationFailed(f"{where}.key {key!r} appears twice.", param=f"{where}.key")
        keys.add(key)
        value = {
            "key": key,
            "content": _text(item.get("content"), f"{where}.content"),
            "variables": _object(item.get("variables"), f"{where}.variables"),
            "request": _object(item.get("request"), f"{where}.request"),
            "operation": item.get("operation"),
            "expected_output": item.get("expected_output"),
            "metadata": _object(item.get("metadata"), f"{where}.metadata"),
            "source_span_id": _text(item.get("source_span_id"), f"{where}.source_span_id"),
        }
        if value["content"] is None and value["variables"] is None and value["request"] is None:
            raise ValidationFailed(f"{where} needs content, variables or a request.", param=where)
        if value["operation"] is not None and value["operation"] not in REPLAYABLE:
            raise ValidationFailed(
                f"{where}.operation must be one of {', '.join(REPLAYABLE)}.",
                param=f"{where}.operation",
            )
        parsed.append(value)
    return parsed


# --- one cell's request ----------------------------------------------------------------


def _last_user_text(request: Mapping[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _parameters(config: Mapping[str, Any], skip: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RESERVED and k not in skip}


def render_cell(
    variant: Mapping[str, Any], item: Mapping[str, Any]
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The operation, body and headers of ``variant`` run on input ``item``."""
    config = variant.get("config") or {}
    content = item.get("content")
    if content is None and item.get("request"):
        content = _last_user_text(item["request"])
    variables = {**(item.get("variables") or {}), "content": content or "", "key": item["key"]}
    where = f"variant {variant['name']!r} on input {item['key']!r}"
    system = variant.get("system_prompt")
    if system:
        system = render(system, variables, f"{where}: systemPrompt")
    if variant.get("kind") == "override":
        operation, payload = _override(variant, item, config, system, content, where)
    else:
        operation = "chat"
        template = config.get("messages") or [{"role": "user", "content": "{{content}}"}]
        messages = render(copy.deepcopy(template), variables, f"{where}: config.messages")
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        payload = {**copy.deepcopy(_parameters(config, frozenset())), "messages": messages}
        payload = {k: v for k, v in payload.items() if v is not None}
    try:
        validate_request(payload, operation, "request", for_run=True)
    except SpanlabError as exc:
        exc.message = f"{where}: {exc.message}"
        raise
    headers = {PROVIDER_HEADER: config["provider"]} if config.get("provider") else {}
    return operation, payload, headers


def _override(
    variant: Mapping[str, Any],
    item: Mapping[str, Any],
    config: Mapping[str, Any],
    system: str | None,
    content: str | None,
    where: str,
) -> tuple[str, dict[str, Any]]:
    captured = item.get("request")
    if captured:
        payload: dict[str, Any] = drop_redacted(copy.deepcopy(captured))
        operation = item.get("operation") or "chat"
    else:
        payload = {"messages": [{"role": "user", "content": content or ""}]}
        operation = "chat"
    for key, value in _parameters(config, frozenset({"tools"})).items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = copy.deepcopy(value)
    if not payload.get("model"):
        raise ValidationFailed(
            f"{where}: the input has no captured request with a model, and the variant"
            " names none (config.model).",
            param="config.model",
            code="missing_model",
        )
    if system:
        _set_system(payload, operation, system, config.get("system_mode", "replace"))
    tools = list(payload.get("tools") or [])
    removed = set(config.get("remove_tools") or [])
    tools = [t for t in tools if tool_name(t) not in removed]
    names = {tool_name(t) for t in tools}
    tools += [copy.deepcopy(t) for t in config.get("tools") or [] if tool_name(t) not in names]
    if tools:
        payload["tools"] = tools
    else:
        payload.pop("tools", None)
        payload.pop("tool_choice", None)
    return operation, payload


def _set_system(payload: dict[str, Any], operation: str, system: str, mode: str) -> None:
    if operation == "messages":  # Anthropic: the system prompt is a top-level field
        old = payload.get("system")
        if mode == "prepend" and isinstance(old, str) and old:
            payload["system"] = f"{system}\n\n{old}"
        elif mode == "prepend" and isinstance(old, list):
            payload["system"] = [{"type": "text", "text": system}, *old]
        else:
            payload["system"] = system
        return
    if operation == "responses":
        old = payload.get("instructions")
        prepend = mode == "prepend" and isinstance(old, str) and old
        payload["instructions"] = f"{system}\n\n{old}" if prepend else system
        return
    messages = list(payload.get("messages") or [])
    if mode == "replace":
        messages = [
            m
            for m in messages
            if not (isinstance(m, dict) and m.get("role") in ("system", "developer"))
        ]
    payload["messages"] = [{"role": "system", "content": system}, *messages]
