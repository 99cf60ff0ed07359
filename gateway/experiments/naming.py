"""The default name of an experiment the user did not name: the original's first
words, the model and the time, so that experiments on similar calls can be told
apart in a list ("Name three colours of the… · gpt-4o-mini · 2026-12-02 00:52:20")."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

FIRST_WORDS = 6
FIRST_CHARS = 40
SEPARATOR = " \u00b7 "


def _text(value: Any) -> str:
    """The text of a message's content, a Responses input or a prompt: a string, or
    the text parts of a list of parts or messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, Mapping):
                if isinstance(item.get("text"), str):
                    parts.append(item["text"])
                elif "content" in item and item.get("role") in (None, "user"):
                    parts.append(_text(item["content"]))
        return " ".join(p for p in parts if p)
    return ""


def prompt_text(request: Mapping[str, Any]) -> str:
    """The first user message of ``request`` (or its input or prompt), as text."""
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping) and message.get("role") == "user":
                text = _text(message.get("content"))
                if text.strip():
                    return text
    for key in ("input", "prompt"):
        text = _text(request.get(key))
        if text.strip():
            return text
    return ""


def first_words(text: str) -> str:
    words = text.split()
    short = " ".join(words[:FIRST_WORDS])
    if len(short) > FIRST_CHARS:
        short = short[: FIRST_CHARS - 1].rstrip()
        return short + "\u2026"
    return short + ("\u2026" if len(words) > FIRST_WORDS else "")


def default_name(request: Mapping[str, Any], model: str | None, at: datetime) -> str:
    """ "first words · model · YYYY-MM-DD HH:MM:SS" (UTC), leaving out what is unknown."""
    parts = [first_words(prompt_text(request))]
    if not model and isinstance(request.get("model"), str):
        model = request["model"]
    parts.append(model or "")
    parts.append(at.strftime("%Y-%m-%d %H:%M:%S"))
    return SEPARATOR.join(p for p in parts if p)
