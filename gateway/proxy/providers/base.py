"""How a request is addressed to one kind of upstream."""

from __future__ import annotations

import functools
from urllib.parse import quote, unquote, urlsplit

from gateway.capture.redaction import credential_values
from gateway.config import ProviderConfig
from gateway.http.upstream import UpstreamRequestError, UpstreamURL

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


@functools.lru_cache(maxsize=256)
def url_secret_values(base_url: str) -> tuple[str, ...]:
    """The secrets a ``base_url``'s userinfo (``https://user:pass@host``) stands for:
    the Authorization header the proxy builds from it, that header's token, and the
    password (decoded, and as written). An upstream that echoes its Authorization
    header must not put them into a span. Cached: called on every proxied call."""
    parts = urlsplit(base_url)
    if parts.password is None and parts.username is None:
        return ()
    try:
        header = UpstreamURL.parse(base_url).basic_auth
    except UpstreamRequestError:  # an unusable URL: the call fails before it is sent
        header = None
    values = credential_values([("authorization", header)]) if header else []
    password = parts.password or ""
    user = unquote(parts.username or "")
    values += [unquote(password), password, f"{user}:{unquote(password)}"]
    return tuple(dict.fromkeys(v for v in values if v))


def provider_secret_values(provider: ProviderConfig) -> list[str]:
    """The values a provider's configuration sends upstream as credentials, besides its
    key (which is read at call time): credential headers, base_url userinfo."""
    return credential_values(provider.headers.items()) + list(url_secret_values(provider.base_url))
