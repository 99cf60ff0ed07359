"""Routing of bare Claude model names (gateway/providers/__init__.py, rule 3)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import Settings
from gateway.errors import UnknownModel
from gateway.proxy.providers import Router

OPENAI = {"kind": "openai", "base_url": "http://openai.test/v1"}
ANTHROPIC = {"kind": "anthropic", "base_url": "http://anthropic.test/v1"}


def router(providers: dict[str, Any], **raw: Any) -> Router:
    return Router(Settings.from_mapping({"providers": providers, **raw}))


def routed(r: Router, model: str) -> tuple[str, str | None]:
    route = r.resolve(model)
    return route.provider.name, route.upstream_model


def test_bare_claude_name_goes_to_the_anthropic_provider() -> None:
    r = router({"openai": OPENAI, "anthropic": ANTHROPIC})
    assert routed(r, "claude-3-5-sonnet-latest") == ("anthropic", "claude-3-5-sonnet-latest")
    assert routed(r, "gpt-4o") == ("openai", "gpt-4o")
    # Only the claude- prefix: other names keep going to the default.
    assert routed(r, "claude") == ("openai", "claude")
    assert routed(r, "my-claude-3") == ("openai", "my-claude-3")


def test_the_only_anthropic_provider_is_used_whatever_its_name() -> None:
    r = router({"openai": OPENAI, "claude_direct": ANTHROPIC})
    assert routed(r, "claude-sonnet-4-5") == ("claude_direct", "claude-sonnet-4-5")


def test_two_anthropic_providers_prefer_the_one_named_anthropic() -> None:
    r = router({"openai": OPENAI, "anthropic": ANTHROPIC, "bedrockish": ANTHROPIC})
    assert routed(r, "claude-3-haiku") == ("anthropic", "claude-3-haiku")


def test_two_anthropic_providers_without_one_named_anthropic_leave_it_to_the_default() -> None:
    r = router({"openai": OPENAI, "a1": ANTHROPIC, "a2": ANTHROPIC})
    assert routed(r, "claude-3-haiku") == ("openai", "claude-3-haiku")


def test_an_anthropic_default_provider_keeps_claude_names() -> None:
    r = router({"mine": ANTHROPIC, "anthropic": ANTHROPIC}, default_provider="mine")
    assert routed(r, "claude-3-haiku") == ("mine", "claude-3-haiku")


def test_models_table_and_prefixes_win() -> None:
    r = router(
        {"openai": OPENAI, "anthropic": ANTHROPIC, "gateway": OPENAI},
        models={"claude-3-opus": "gateway", "claude-fast": "anthropic/claude-3-5-haiku-latest"},
    )
    assert routed(r, "claude-3-opus") == ("gateway", "claude-3-opus")
    assert routed(r, "claude-fast") == ("anthropic", "claude-3-5-haiku-latest")
    assert routed(r, "openai/claude-3-opus") == ("openai", "claude-3-opus")
    assert r.resolve("claude-3-opus", "openai").provider.name == "openai"


def test_without_anthropic_provider_claude_names_follow_the_default() -> None:
    r = router({"openai": OPENAI})
    assert routed(r, "claude-3-haiku") == ("openai", "claude-3-haiku")


def test_no_default_provider_still_routes_claude_names() -> None:
    r = router({"openai": OPENAI, "anthropic": ANTHROPIC}, default_provider="")
    assert routed(r, "claude-3-haiku") == ("anthropic", "claude-3-haiku")
    with pytest.raises(UnknownModel):
        r.resolve("gpt-4o")
