"""Spanlab: an OpenAI-compatible LLM gateway that records every call as a trace span."""

from __future__ import annotations

__version__ = "0.1.0"
