"""OpenTelemetry GenAI semantic-convention attributes of a span.

Computed from the stored span when asked for (API, exporters) rather than stored, so
the store keeps one copy of each fact.
"""

from __future__ import annotations

from typing import Any

OPERATION_NAMES = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "models": "models",
    "count_tokens": "count_tokens",
}
REQUEST_PARAMETERS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
}


def genai_attributes(span: dict[str, Any], provider_kind: str | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION_NAMES.get(span.get("operation") or "", "chat"),
        "gen_ai.provider.name": provider_kind or span.get("provider"),
    }
    if span.get("request_model"):
        attrs["gen_ai.request.model"] = span["request_model"]
    if span.get("response_model"):
        attrs["gen_ai.response.model"] = span["response_model"]
    request = span.get("request")
    if isinstance(request, dict):
        for key, name in REQUEST_PARAMETERS.items():
            if request.get(key) is not None:
                attrs[name] = request[key]
    response = span.get("response")
    if isinstance(response, dict) and isinstance(response.get("id"), str):
        attrs["gen_ai.response.id"] = response["id"]
    if span.get("finish_reason"):
        attrs["gen_ai.response.finish_reasons"] = [span["finish_reason"]]
    usage = span.get("usage") or {}
    if usage.get("prompt_tokens") is not None:
        attrs["gen_ai.usage.input_tokens"] = usage["prompt_tokens"]
    if usage.get("completion_tokens") is not None:
        attrs["gen_ai.usage.output_tokens"] = usage["completion_tokens"]
    if span.get("thread_id"):
        attrs["gen_ai.conversation.id"] = span["thread_id"]
    error = span.get("error")
    if isinstance(error, dict) and error.get("type"):
        attrs["error.type"] = error.get("code") or error["type"]
    return attrs
