"""The body of ``POST /playground/complete``, validated into a `CompletionRequest`.

The seed's fields are accepted as written (``modelProvider``, ``modelName``,
``prompt``, ``systemPrompt``, ``temperature``, ``topP``, ``maxTokens``, ``stream``,
``sessionId``) and so are their snake_case names; ours add ``messages`` (instead of
``prompt``), ``models`` (several models side by side: names, or ``{model, provider}``
objects) and ``project_id``. Ranges are the seed's schema's: temperature 0..2, top_p
0..1, max_tokens 1..32768.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ValidationFailed

ALIASES = {
    "modelProvider": "provider",
    "model_provider": "provider",
    "modelName": "model",
    "model_name": "model",
    "systemPrompt": "system_prompt",
    "topP": "top_p",
    "maxTokens": "max_tokens",
    "sessionId": "session_id",
    "projectId": "project_id",
}
FIELDS = frozenset(
    {
        "provider",
        "model",
        "models",
        "prompt",
        "messages",
        "system_prompt",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "session_id",
        "project_id",
    }
)
ROLES = ("system", "user", "assistant")
MAX_MODELS = 8
MAX_TOKENS = 32768


@dataclass(frozen=True, slots=True)
class Target:
    """One model to ask: its name as the router takes it, and a provider if named."""

    model: str
    provider: str | None = None

    @property
    def label(self) -> str:
        """The model as answers and history name it (``provider/model`` when named)."""
        if self.provider and not self.model.startswith(self.provider + "/"):
            return f"{self.provider}/{self.model}"
        return self.model


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    targets: list[Target]
    messages: list[dict[str, str]]  # this turn's new messages
    system_prompt: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, max_tokens
    stream: bool = False
    session_id: str | None = None
    project_id: str | None = None

    def config(self) -> dict[str, Any]:
        """The snapshot a new session keeps."""
        return {
            "models": [{"model": t.model, "provider": t.provider} for t in self.targets],
            **self.parameters,
        }


def parse_request(body: Any) -> CompletionRequest:
    if not isinstance(body, Mapping):
        raise ValidationFailed("The body must be a JSON object.", param="body")
    values: dict[str, Any] = {}
    for key, value in body.items():
        name = ALIASES.get(str(key), str(key))
        if name in values:
            raise ValidationFailed(f"{key!r} is given twice (under two names).", param=name)
        values[name] = value
    unknown = set(values) - FIELDS
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(sorted(unknown))}. Accepted: {', '.join(sorted(FIELDS))}"
            " (and the seed's camelCase names).",
            param=sorted(unknown)[0],
        )
    return CompletionRequest(
        targets=_targets(values),
        messages=_messages(values),
        system_prompt=_optional_text(values, "system_prompt"),
        parameters=_parameters(values),
        stream=_bool(values.get("stream", False), "stream"),
        session_id=_optional_text(values, "session_id"),
        project_id=_optional_text(values, "project_id"),
    )


def _targets(values: Mapping[str, Any]) -> list[Target]:
    provider = _optional_text(values, "provider")
    models = values.get("models")
    if models is not None:
        if "model" in values:
            raise ValidationFailed("Give either model or models, not both.", param="models")
        if not isinstance(models, list) or not models:
            raise ValidationFailed("models must be a non-empty list.", param="models")
        if len(models) > MAX_MODELS:
            raise ValidationFailed(f"At most {MAX_MODELS} models at once.", param="models")
        targets = []
        for i, entry in enumerate(models):
            if isinstance(entry, str) and entry.strip():
                targets.append(Target(entry.strip(), provider))
            elif isinstance(entry, Mapping):
                model = entry.get("model") or entry.get("modelName")
                own = entry.get("provider") or entry.get("modelProvider") or provider
                if not isinstance(model, str) or not model.strip():
                    raise ValidationFailed(f"models[{i}] has no model name.", param="models")
                if own is not None and not isinstance(own, str):
                    raise ValidationFailed(f"models[{i}].provider must be text.", param="models")
                targets.append(Target(model.strip(), own or None))
            else:
                raise ValidationFailed(
                    f"models[{i}] must be a model name or a {{model, provider}} object.",
                    param="models",
                )
        return targets
    model = values.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ValidationFailed(
            "A model is required: model (or modelName), or models for several at once.",
            param="model",
            code="model_required",
        )
    return [Target(model.strip(), provider)]


def _messages(values: Mapping[str, Any]) -> list[dict[str, str]]:
    prompt = values.get("prompt")
    messages = values.get("messages")
    if prompt is not None and messages is not None:
        raise ValidationFailed("Give either prompt or messages, not both.", param="messages")
    if messages is None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValidationFailed(
                "A prompt (non-empty text) or messages is required.", param="prompt"
            )
        return [{"role": "user", "content": prompt}]
    if not isinstance(messages, list) or not messages:
        raise ValidationFailed("messages must be a non-empty list.", param="messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValidationFailed(f"messages[{i}] must be an object.", param="messages")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValidationFailed(
                f"messages[{i}].role must be one of {', '.join(ROLES)}.", param="messages"
            )
        if not isinstance(content, str):
            raise ValidationFailed(f"messages[{i}].content must be text.", param="messages")
        out.append({"role": str(role), "content": content})
    return out


def _parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = values.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise ValidationFailed(f"{name} must be a number from {low:g} to {high:g}.", param=name)
        out[name] = value
    max_tokens = values.get("max_tokens")
    if max_tokens is not None:
        if (
            isinstance(max_tokens, bool)
            or not isinstance(max_tokens, int)
            or not 1 <= max_tokens <= MAX_TOKENS
        ):
            raise ValidationFailed(
                f"max_tokens must be an integer from 1 to {MAX_TOKENS}.", param="max_tokens"
            )
        out["max_tokens"] = max_tokens
    return out


def _optional_text(values: Mapping[str, Any], name: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{name} must be text.", param=name)
    return value or None


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed(f"{name} must be true or false.", param=name)
    return value
