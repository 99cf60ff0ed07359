"""Providers and routing: which upstream a request goes to, under which model name,
and how its URL and credentials are formed.

A request's ``model`` routes in this order:

1. ``provider/model`` where ``provider`` is a configured provider: that provider,
   model name without the prefix;
2. a bare name listed in ``[models]``: the provider (and model) it maps to;
3. a bare ``claude-*`` name, when ``default_provider`` is not of kind ``anthropic``
   but an Anthropic provider is configured (the one named ``anthropic``, else the only
   one of that kind): that provider, so Claude models work out of the box over both
   ``/v1/messages`` and (translated) ``/v1/chat/completions``. An OpenAI-compatible
   aggregator that serves bare Claude names is reached through ``[models]`` or its
   ``provider/`` prefix;
4. otherwise ``default_provider``, model unchanged (so ``meta-llama/Llama-3`` on a
   provider that is not called ``meta-llama`` still works).

The upstream URL always comes from the configuration: no request can name its own
upstream and so receive a configured key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import ProviderConfig, Settings
from gateway.errors import UnknownModel, UnknownProvider

PROVIDER_HEADER = "x-spanlab-provider"
CLAUDE_PREFIX = "claude-"


@dataclass(frozen=True, slots=True)
class Route:
    provider: ProviderConfig
    upstream_model: str | None  # None for calls without a model (GET /v1/models)


class Router:
    def __init__(self, settings: Settings) -> None:
        self.providers: Mapping[str, ProviderConfig] = settings.providers
        self.models = settings.models
        self.default = settings.default_provider or None
        self.claude = self._claude_provider()

    def _claude_provider(self) -> ProviderConfig | None:
        """Where bare ``claude-*`` names go when no ``[models]`` entry says (rule 3)."""
        default = self.providers.get(self.default) if self.default else None
        if default is not None and default.kind == "anthropic":
            return None  # the default route already speaks Anthropic
        named = self.providers.get("anthropic")
        if named is not None and named.kind == "anthropic":
            return named
        kinds = [p for p in self.providers.values() if p.kind == "anthropic"]
        return kinds[0] if len(kinds) == 1 else None

    def provider(self, name: str) -> ProviderConfig:
        try:
            return self.providers[name]
        except KeyError:
            have = ", ".join(sorted(self.providers)) or "none"
            raise UnknownProvider(
                f"Unknown provider {name!r}. Configured providers: {have}.",
                param="model",
            ) from None

    def resolve(self, model: str | None, provider_hint: str | None = None) -> Route:
        """The route for ``model``; ``provider_hint`` is the x-spanlab-provider header."""
        if provider_hint:
            provider = self.provider(provider_hint)
            if model and model.startswith(provider.name + "/"):
                model = model[len(provider.name) + 1 :]
            return Route(provider, model)
        if model is None:
            if self.default is None:
                raise UnknownProvider(
                    "No default_provider is configured; name one with the"
                    f" {PROVIDER_HEADER} header.",
                )
            return Route(self.provider(self.default), None)
        prefix, sep, rest = model.partition("/")
        if sep and prefix in self.providers and rest:
            return Route(self.providers[prefix], rest)
        target = self.models.get(model)
        if target is not None:
            name, _, mapped = target.partition("/")
            return Route(self.provider(name), mapped or model)
        if self.claude is not None and model.startswith(CLAUDE_PREFIX):
            return Route(self.claude, model)
        if self.default is None:
            have = ", ".join(sorted(self.providers)) or "none"
            raise UnknownModel(
                f"Model {model!r} is not routed to any provider. Use 'provider/model'"
                f" (providers: {have}) or map it under [models] in the config.",
                param="model",
            )
        return Route(self.provider(self.default), model)
