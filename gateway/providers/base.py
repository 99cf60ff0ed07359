"""How a request is addressed to one kind of upstream."""

from __future__ import annotations

from urllib.parse import quote

from gateway.config import ProviderConfig

# The path under a provider's base_url for each operation the proxy forwards.
UPSTREAM_PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
    "models": "/models",
    "messages": "/messages",
    "count_tokens": "/messages/count_tokens",
}
# What stays unescaped in a model id placed in a path segment: RFC 3986's pchar, less
# "/" (the OpenAI and Anthropic SDKs escape a model id the same way).
SEGMENT_SAFE = "!$&'()*+,;=:@"

ANTHROPIC_VERSION = "2023-06-01"


def upstream_url(provider: ProviderConfig, operation: str, query: str = "") -> str:
    url = provider.base_url + UPSTREAM_PATHS[operation]
    return f"{url}?{query}" if query else url


def model_url(provider: ProviderConfig, model: str, query: str = "") -> str:
    """The URL of one model's details (``GET /models/{model}``)."""
    url = f"{provider.base_url}/models/{quote(model, safe=SEGMENT_SAFE)}"
    return f"{url}?{query}" if query else url


def auth_headers(provider: ProviderConfig) -> dict[str, str]:
    """The credential headers of a provider with a configured key, else nothing
    (and the client's own credential is forwarded)."""
    key = provider.api_key()
    if key is None:
        return {}
    if provider.kind == "anthropic":
        return {"x-api-key": key}
    return {"authorization": f"Bearer {key}"}


# Headers that carry a client credential; replaced when the provider has its own key.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})
