"""OpenAI chat completions served by the Anthropic Messages API.

A provider of kind ``anthropic`` answers ``POST /v1/chat/completions`` by translation,
so a GPT call can become a Claude call (in an experiment, or by changing ``model``)
and the client, written for OpenAI, keeps working. Everything here is pure: the proxy
feeds it bodies and stream events and sends on what comes back.

Request (OpenAI -> Anthropic), `chat_to_messages`:

* ``system`` and ``developer`` messages -> the top-level ``system`` prompt (Anthropic
  has no system role inside ``messages``; a system message in mid-conversation is
  moved there too, with a note);
* ``user`` text and ``image_url`` parts (``data:`` base64 URLs and http(s) URLs) ->
  text and image blocks; ``file`` parts holding a base64 PDF -> document blocks;
* ``assistant`` ``tool_calls`` -> ``tool_use`` blocks (arguments parsed from their JSON
  string); ``tool`` messages -> ``tool_result`` blocks in a user turn; the legacy
  ``function_call`` / ``function`` role likewise;
* consecutive messages of one role are merged into one turn, tool results first, as
  Anthropic requires;
* ``tools`` / ``functions`` -> ``tools`` with ``input_schema``; ``tool_choice``
  ``auto``/``none``/``required``/named -> ``auto``/``none``/``any``/``tool``;
  ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``;
* ``max_completion_tokens`` (else ``max_tokens``, else `DEFAULT_MAX_TOKENS`),
  ``temperature`` (clamped to Anthropic's 0..1), ``top_p``, ``stop`` ->
  ``stop_sequences``, ``stream``, ``user`` -> ``metadata.user_id``;
* ``response_format``: ``json_schema`` -> Anthropic structured outputs
  (``output_config.format``; models without structured outputs refuse it, and that
  upstream error reaches the client); ``json_object`` has no Anthropic equivalent and
  is best-effort: an instruction appended to the system prompt;
* ``top_k`` and ``thinking`` (Anthropic's own, sent through the OpenAI SDK's
  ``extra_body``) pass through; every other field is dropped and listed in
  `MessagesRequest.dropped` (`OPENAI_ONLY_FIELDS` says which are known).

Response (Anthropic -> OpenAI): `message_to_chat` for a whole message,
`ChatStreamTranslator` for a stream (``chat.completion.chunk`` events: a role chunk,
content deltas, tool call deltas with index/id/name then argument fragments, the
finish chunk, a usage chunk when ``stream_options.include_usage`` asked, then
``[DONE]``), and `error_to_chat` for error bodies. Thinking text becomes
``reasoning_content`` (the field DeepSeek-style OpenAI clients read); server-side tool
blocks (web search...) and citations are not represented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import InvalidRequest, UpstreamProtocol
from gateway.proxy.providers.anthropic_response import (
    ChatStreamTranslator,
    error_to_chat,
    message_to_chat,
    upstream_summary,
)

# Anthropic requires max_tokens on every request; OpenAI makes it optional (the model
# may then write up to its limit). 4096 is the largest output every Claude model
# accepts (Claude 3 Haiku/Opus stop there), so a default never makes a request invalid;
# a client that wants more says so with max_tokens / max_completion_tokens.
DEFAULT_MAX_TOKENS = 4096
# Anthropic's temperature range is 0..1; OpenAI's is 0..2.
MAX_TEMPERATURE = 1.0

# OpenAI request fields with no Anthropic counterpart: dropped, and listed on the span.
OPENAI_ONLY_FIELDS = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "n",
        "seed",
        "store",
        "metadata",
        "service_tier",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "reasoning_effort",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
    }
)
# Anthropic fields a client may send through an OpenAI SDK (``extra_body``): kept.
ANTHROPIC_PASSTHROUGH_FIELDS = frozenset({"top_k", "thinking"})
# Fields this module translates (everything else is dropped).
TRANSLATED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "user",
        "response_format",
    }
)

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)((?:;[\w.+-]+=[^;,]*)*);base64,(.*)$", re.S)

Block = dict[str, Any]
UNEXPECTED_BODY_KEPT = 2000  # bytes of an untranslatable upstream body kept on the span


@dataclass(slots=True)
class MessagesRequest:
    """An OpenAI chat request translated to the Anthropic Messages API."""

    body: dict[str, Any]
    stream: bool
    include_usage: bool  # the client asked for a usage chunk (stream_options)
    dropped: list[str] = field(default_factory=list)  # request fields not sent
    notes: list[str] = field(default_factory=list)  # what was changed or approximated


# --- request ---------------------------------------------------------------------------


def chat_to_messages(chat: Mapping[str, Any], model: str) -> MessagesRequest:
    """Translate an OpenAI ``chat.completions`` request body for ``model`` (the
    upstream model name). Raises `InvalidRequest` for what cannot be translated."""
    notes: list[str] = []
    n = chat.get("n")
    if n not in (None, 1):
        raise InvalidRequest(
            f"n={n!r}: Anthropic returns one choice per request; send n=1.", param="n"
        )
    messages = chat.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list.", param="messages")
    system, turns = _convert_messages(messages, notes)

    body: dict[str, Any] = {"model": model}
    max_tokens = chat.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = chat.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
        notes.append(f"max_tokens not given: defaulted to {DEFAULT_MAX_TOKENS}")
    body["max_tokens"] = max_tokens
    body["messages"] = turns

    response_format = chat.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_object":
            system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
            notes.append("response_format json_object: asked for in the system prompt")
        elif kind == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            if not isinstance(schema, Mapping):
                raise InvalidRequest(
                    "response_format json_schema needs json_schema.schema.",
                    param="response_format",
                )
            body["output_config"] = {"format": {"type": "json_schema", "schema": dict(schema)}}
            notes.append("response_format json_schema: sent as output_config.format")
        elif kind not in (None, "text"):
            raise InvalidRequest(
                f"response_format type {kind!r} cannot be translated for Anthropic.",
                param="response_format",
            )
    if system:
        plain = all(set(block) == {"type", "text"} for block in system)
        body["system"] = "\n\n".join(b["text"] for b in system) if plain else system

    temperature = chat.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        if temperature > MAX_TEMPERATURE:
            notes.append(f"temperature {temperature:g} clamped to {MAX_TEMPERATURE:g}")
            temperature = MAX_TEMPERATURE
        body["temperature"] = temperature
    elif temperature is not None:
        body["temperature"] = temperature  # not a number: Anthropic says what is wrong
    if chat.get("top_p") is not None:
        body["top_p"] = chat["top_p"]
    stop = chat.get("stop")
    if isinstance(stop, str):
        body["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        body["stop_sequences"] = list(stop)
    user = chat.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}

    tools, tool_choice = _convert_tools(chat, notes)
    if tools:
        body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice

    for name in ANTHROPIC_PASSTHROUGH_FIELDS:
        if chat.get(name) is not None:
            body[name] = chat[name]
    stream = chat.get("stream") is True
    if stream:
        body["stream"] = True
    options = chat.get("stream_options")
    include_usage = stream and isinstance(options, Mapping) and bool(options.get("include_usage"))

    dropped: list[str] = []
    for name in sorted(chat):
        if name in TRANSLATED_FIELDS or name in ANTHROPIC_PASSTHROUGH_FIELDS:
            continue
        if name == "n" and chat[name] in (None, 1):
            continue  # one choice is what Anthropic gives anyway
        dropped.append(name)
        if name not in OPENAI_ONLY_FIELDS:
            notes.append(f"{name}: not an OpenAI chat field Spanlab knows; not sent")
    return MessagesRequest(body, stream, include_usage, dropped, notes)


def _convert_messages(
    messages: Sequence[Any], notes: list[str]
) -> tuple[list[Block], list[dict[str, Any]]]:
    """(system blocks, Anthropic turns) of OpenAI ``messages``."""
    system: list[Block] = []
    turns: list[tuple[str, list[Block] | str]] = []
    pending_functions: dict[str, list[str]] = {}  # legacy function_call name -> ids
    function_calls = 0
    seen_conversation = False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise InvalidRequest(f"{where} must be an object.", param=where)
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            if seen_conversation:
                notes.append(f"{where}: {role} message moved into the system prompt")
            system.extend(_text_blocks(content, where))
            continue
        seen_conversation = True
        if role == "user":
            turns.append(("user", _user_content(content, where)))
        elif role == "assistant":
            blocks = [b for b in _text_blocks(content, where, allow_refusal=True) if b["text"]]
            for j, call in enumerate(message.get("tool_calls") or []):
                blocks.append(_tool_use_block(call, f"{where}.tool_calls[{j}]"))
            legacy = message.get("function_call")
            if isinstance(legacy, Mapping):
                function_calls += 1
                name = str(legacy.get("name") or "")
                call_id = f"call_function_{function_calls}"
                pending_functions.setdefault(name, []).append(call_id)
                call = {"id": call_id, "function": legacy}
                blocks.append(_tool_use_block(call, f"{where}.function_call"))
            if not blocks:
                notes.append(f"{where}: empty assistant message left out")
                continue
            turns.append(("assistant", blocks))
        elif role == "tool":
            tool_call_id = message.get("tool_call_id")
            if not isinstance(tool_call_id, str) or not tool_call_id:
                raise InvalidRequest(f"{where} needs a tool_call_id.", param=where)
            turns.append(("user", [_tool_result_block(tool_call_id, content, where)]))
        elif role == "function":
            name = str(message.get("name") or "")
            ids = pending_functions.get(name)
            if not ids:
                raise InvalidRequest(
                    f"{where}: function result {name!r} follows no function_call.", param=where
                )
            turns.append(("user", [_tool_result_block(ids.pop(0), content, where)]))
        else:
            raise InvalidRequest(f"{where}: unknown role {role!r}.", param=f"{where}.role")
    if not turns:
        raise InvalidRequest(
            "'messages' has only system messages; Anthropic needs at least one user message.",
            param="messages",
        )
    return system, _merge_turns(turns)


def _merge_turns(turns: list[tuple[str, list[Block] | str]]) -> list[dict[str, Any]]:
    """One Anthropic turn per run of same-role messages; tool results lead a user turn."""
    merged: list[dict[str, Any]] = []
    for role, content in turns:
        if merged and merged[-1]["role"] == role:
            last = merged[-1]
            blocks = _as_blocks(last["content"]) + _as_blocks(content)
            if role == "user":
                results = [b for b in blocks if b.get("type") == "tool_result"]
                others = [b for b in blocks if b.get("type") != "tool_result"]
                blocks = results + others
            last["content"] = blocks
        else:
            merged.append({"role": role, "content": content})
    return merged


def _as_blocks(content: list[Block] | str) -> list[Block]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _text_blocks(content: Any, where: str, *, allow_refusal: bool = False) -> list[Block]:
    """Text-only content (system, assistant) as text blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list.", param=where)
    blocks: list[Block] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
        elif kind == "refusal" and allow_refusal and isinstance(part.get("refusal"), str):
            blocks.append({"type": "text", "text": part["refusal"]})
        else:
            raise InvalidRequest(
                f"{where}.content[{j}]: only text parts are allowed here, got {kind!r}.",
                param=f"{where}.content",
            )
    return blocks


def _user_content(content: Any, where: str) -> list[Block] | str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list.", param=where)
    return [_user_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]


def _user_part(part: Any, where: str) -> Block:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return _with_cache_control({"type": "text", "text": part["text"]}, part)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise InvalidRequest(f"{where}: image_url needs a url.", param=where)
        return _with_cache_control({"type": "image", "source": _image_source(url, where)}, part)
    if kind == "file":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, Mapping) else None
        match = _DATA_URL.match(data) if isinstance(data, str) else None
        if match is None or match.group(1) != "application/pdf":
            raise InvalidRequest(
                f"{where}: only file parts with a base64 PDF in file_data can be sent to"
                " Anthropic (file_id refers to OpenAI's file store).",
                param=where,
            )
        source = {"type": "base64", "media_type": "application/pdf", "data": match.group(3)}
        return _with_cache_control({"type": "document", "source": source}, part)
    raise InvalidRequest(
        f"{where}: content part {kind!r} cannot be translated for Anthropic"
        " (text, image_url and PDF file parts can).",
        param=where,
    )


def _image_source(url: str, where: str) -> dict[str, str]:
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequest(
            f"{where}: an image must be an http(s) URL or a base64 data: URL.", param=where
        )
    media_type = match.group(1).lower()
    if media_type not in IMAGE_MEDIA_TYPES:
        raise InvalidRequest(
            f"{where}: image type {media_type!r} is not accepted by Anthropic"
            f" ({', '.join(sorted(IMAGE_MEDIA_TYPES))}).",
            param=where,
        )
    return {"type": "base64", "media_type": media_type, "data": match.group(3)}


def _with_cache_control(block: Block, part: Mapping[str, Any]) -> Block:
    # Some OpenAI-format clients (LiteLLM's convention) mark prompt-cache breakpoints
    # on content parts; Anthropic reads the same field on blocks.
    if isinstance(part.get("cache_control"), Mapping):
        block["cache_control"] = dict(part["cache_control"])
    return block


def _tool_use_block(call: Any, where: str) -> Block:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not function.get("name"):
        raise InvalidRequest(f"{where} needs function.name.", param=where)
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where} needs an id.", param=where)
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        tool_input: Any = {}
    elif isinstance(arguments, str):
        try:
            tool_input = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            tool_input = None
    else:
        tool_input = arguments
    if not isinstance(tool_input, dict):
        raise InvalidRequest(
            f"{where}.function.arguments must be a JSON object (Anthropic tool input is"
            f" an object), got {arguments!r}.",
            param=where,
        )
    return {"type": "tool_use", "id": call_id, "name": function["name"], "input": tool_input}


def _tool_result_block(call_id: str, content: Any, where: str) -> Block:
    block: Block = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        block["content"] = content
    elif isinstance(content, list):
        parts: list[Block] = []
        for j, part in enumerate(content):
            converted = _user_part(part, f"{where}.content[{j}]")
            if converted["type"] == "document":
                raise InvalidRequest(
                    f"{where}.content[{j}]: a tool result holds text and images only.",
                    param=where,
                )
            parts.append(converted)
        block["content"] = parts
    elif content is not None:
        raise InvalidRequest(f"{where}.content must be a string or a list.", param=where)
    return block


def _convert_tools(
    chat: Mapping[str, Any], notes: list[str]
) -> tuple[list[Block], dict[str, Any] | None]:
    """(Anthropic tools, tool_choice) from ``tools``/``tool_choice`` or the legacy
    ``functions``/``function_call``."""
    tools: list[Block] = []
    for i, tool in enumerate(chat.get("tools") or []):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            raise InvalidRequest(
                f"{where}: tool type {kind!r} cannot be translated; only function tools can.",
                param=where,
            )
        tools.append(_tool(tool.get("function"), where, notes))
    for i, function in enumerate(chat.get("functions") or []):
        tools.append(_tool(function, f"functions[{i}]", notes))

    choice = chat.get("tool_choice")
    if choice is None:
        legacy = chat.get("function_call")
        if isinstance(legacy, Mapping):
            choice = {"type": "function", "function": legacy}
        elif legacy is not None:
            choice = legacy
    if not tools:
        if choice is not None:
            notes.append("tool_choice without tools: left out")
        return tools, None
    converted: dict[str, Any] | None
    if choice is None:
        converted = None
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "none":
        converted = {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("tool_choice.function needs a name.", param="tool_choice")
        converted = {"type": "tool", "name": name}
    else:
        raise InvalidRequest(
            f"tool_choice {choice!r} cannot be translated for Anthropic"
            " (auto, none, required or a named function can).",
            param="tool_choice",
        )
    if chat.get("parallel_tool_calls") is False and (converted or {}).get("type") != "none":
        converted = {**(converted or {"type": "auto"}), "disable_parallel_tool_use": True}
    return tools, converted


def _tool(function: Any, where: str, notes: list[str]) -> Block:
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"{where} needs a function with a name.", param=where)
    parameters = function.get("parameters")
    tool: Block = {"name": function["name"]}
    if isinstance(function.get("description"), str):
        tool["description"] = function["description"]
    if isinstance(parameters, Mapping):
        tool["input_schema"] = dict(parameters)
    else:  # OpenAI allows a function without parameters; Anthropic needs a schema
        tool["input_schema"] = {"type": "object", "properties": {}}
    if function.get("strict"):
        notes.append(f"{where}: strict is not sent (Anthropic has no strict tool mode)")
    return tool


# --- the call ----------------------------------------------------------------------


@dataclass(slots=True)
class ChatOverMessages:
    """One OpenAI chat call served by an Anthropic provider: the translated request,
    and `record`, what the span keeps of the translation (in its attributes)."""

    request: MessagesRequest
    record: dict[str, Any]

    @classmethod
    def translate(cls, chat: Mapping[str, Any], model: str) -> ChatOverMessages:
        request = chat_to_messages(chat, model)
        record: dict[str, Any] = {
            "from": "openai.chat.completions",
            "to": "anthropic.messages",
            # Redacted with the rest of the span when it is stored (capture.to_record).
            "upstream_request": request.body,
        }
        if request.dropped:
            record["dropped"] = request.dropped
        if request.notes:
            record["notes"] = request.notes
        return cls(request, record)

    def upstream_body(self) -> bytes:
        return orjson.dumps(self.request.body)

    def response_body(self, status: int, body: bytes) -> bytes:
        """The OpenAI response (or error) body for the client, of the upstream's."""
        try:
            parsed: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", errors="replace")
        if status >= 400:
            return orjson.dumps(error_to_chat(status, parsed))
        if not isinstance(parsed, dict) or parsed.get("type") != "message":
            # The client gets a 502; the span keeps the start of what came instead.
            text = body[:UNEXPECTED_BODY_KEPT].decode("utf-8", errors="replace")
            self.record["upstream_response"] = {"status": status, "body": text}
            raise UpstreamProtocol(
                f"The Anthropic provider answered {status} with something that is not a"
                " message; it cannot be translated to a chat completion."
            )
        self.record["upstream_response"] = upstream_summary(parsed)
        return orjson.dumps(message_to_chat(parsed))

    def stream_translator(self) -> ChatStreamTranslator:
        """The translator of this call's stream. It always ends with a usage chunk;
        the proxy keeps it from a client that did not ask (`hide_usage`)."""
        return ChatStreamTranslator(include_usage=True, record=self.record)

    @property
    def hide_usage(self) -> bool:
        return not self.request.include_usage


def anthropic_credentials(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Upstream headers of a translated call with the client's OpenAI-style credential
    (``Authorization: Bearer KEY``, what an OpenAI SDK sends) moved to ``x-api-key``,
    where the Anthropic API reads a key. Headers that already carry an ``x-api-key``
    (the provider's configured key, or the client's own) are left as they are."""
    if any(name == "x-api-key" for name, _ in headers):
        return headers
    out: list[tuple[str, str]] = []
    for name, value in headers:
        scheme, _, token = value.partition(" ")
        if name == "authorization" and scheme.lower() == "bearer" and token.strip():
            out.append(("x-api-key", token.strip()))
        else:
            out.append((name, value))
    return out
