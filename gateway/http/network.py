"""How the upstream client reaches an origin: through which proxy, trusting which CAs.

Decided once per origin (scheme, host, port) when the client first connects to it, and
kept (`Network.route`): a call on a kept-alive connection pays nothing for any of this,
and with no proxy configured anywhere the client never looks at a route per call.

Trust: certifi's bundle (what httpx trusts) plus, when set, ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` and the ``ca_bundle`` setting (global, or the provider's own): a
private CA, or the CA of a TLS-inspecting network, is added to the public ones.
``verify = false`` (a provider's only) turns verification off for that provider, and
is logged as a WARNING at start. ``client_cert`` / ``client_key``: a client certificate
for mutual TLS.

Proxies: a provider's ``proxy``, else the global ``proxy`` setting, else
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` (lower case first, as curl does) by the
origin's scheme. ``NO_PROXY`` (a comma-separated list of hosts, ``.suffix`` or
``suffix`` matching the host and its subdomains, ``host:port``, IPs and CIDR blocks,
or ``*``) bypasses the global and environment proxies; a provider's own ``proxy`` is
always used. ``proxy = "direct"`` goes without one. An https origin is reached by a
CONNECT tunnel, TLS inside it; an http origin by absolute-form requests to the proxy.
Credentials in the proxy URL go as ``Proxy-Authorization: Basic`` to the proxy only;
they are never logged, and spans treat them as secrets (`proxy_secret_values`).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import ipaddress
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import certifi

from gateway.config import ProviderConfig, Settings
from gateway.errors import ConfigError

__all__ = [
    "DIRECT",
    "Network",
    "OriginOptions",
    "ProxyURL",
    "Route",
    "network_secret_values",
    "proxy_secret_values",
]

logger = logging.getLogger(__name__)

DIRECT = "direct"  # a proxy setting that means: no proxy, whatever the environment says

OriginKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """An ``http://[user:pass@]host:port`` proxy."""

    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value its userinfo stands for

    @property
    def address(self) -> str:
        """host:port, for messages (never the credentials)."""
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str, where: str = "proxy") -> ProxyURL:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme.lower() != "http":
            raise ConfigError(
                f"{where}: only http:// proxies are supported (CONNECT is used for https"
                f" upstreams), got scheme {parts.scheme!r}"
            )
        try:
            port = parts.port or 80
        except ValueError:
            raise ConfigError(f"{where}: the proxy URL has an invalid port") from None
        if not parts.hostname:
            raise ConfigError(f"{where}: the proxy URL has no host")
        authorization = None
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(host=parts.hostname, port=port, authorization=authorization)


@dataclass(frozen=True, slots=True)
class OriginOptions:
    """What one origin (a provider's base_url) is reached with."""

    proxy: str = ""  # "": the global setting / environment; DIRECT: none
    ca_bundle: str = ""
    verify: bool = True
    client_cert: str = ""
    client_key: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """The decision for one origin."""

    proxy: ProxyURL | None
    ssl: ssl.SSLContext | None  # None for http origins


@functools.lru_cache(maxsize=16)
def proxy_secret_values(url: str) -> tuple[str, ...]:
    """The secrets a proxy URL's userinfo stands for: its Proxy-Authorization value,
    that header's token, and the password (decoded, and as written)."""
    if not url or url == DIRECT:
        return ()
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.password is None and parts.username is None:
        return ()
    try:
        header = ProxyURL.parse(url).authorization
    except ConfigError:
        header = None
    password = parts.password or ""
    user = unquote(parts.username or "")
    values = [header or "", header.split(" ", 1)[1] if header else ""]
    values += [unquote(password), password, f"{user}:{unquote(password)}"]
    return tuple(dict.fromkeys(v for v in values if v))


def network_secret_values(settings: Settings, env: Mapping[str, str] | None = None) -> list[str]:
    """Every proxy credential the client may send (the global and providers' proxy
    settings, the environment's proxies): secrets a span must never keep, should an
    upstream or a proxy echo them."""
    proxies, _ = environment_proxies(os.environ if env is None else env)
    urls = [settings.proxy, *proxies.values()]
    urls += [provider.proxy for provider in settings.providers.values()]
    return list(dict.fromkeys(v for url in urls for v in proxy_secret_values(url)))


def environment_proxies(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """{scheme: proxy URL} and the NO_PROXY list from the environment."""

    def first(*names: str) -> str:
        for name in names:
            value = env.get(name, "").strip()
            if value:
                return value
        return ""

    everything = first("all_proxy", "ALL_PROXY")
    proxies = {
        "http": first("http_proxy", "HTTP_PROXY") or everything,
        "https": first("https_proxy", "HTTPS_PROXY") or everything,
    }
    return {k: v for k, v in proxies.items() if v}, first("no_proxy", "NO_PROXY")


def bypasses_proxy(no_proxy: str, host: str, port: int) -> bool:
    """Whether ``NO_PROXY`` names this host (curl's rules, plus CIDR blocks)."""
    host = host.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = entry, None
        if entry.startswith("[") and "]" in entry:  # [::1]:443
            entry_host, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] if rest.startswith(":") else None
        elif entry.count(":") == 1:
            entry_host, entry_port = entry.split(":")
        if entry_port is not None and entry_port != str(port):
            continue
        if address is not None and "/" in entry_host:
            try:
                if address in ipaddress.ip_network(entry_host, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry_host = entry_host.lstrip("*").lstrip(".").rstrip(".")
        if host == entry_host or host.endswith("." + entry_host):
            return True
    return False


def _ssl_context(options: OriginOptions, env: Mapping[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    cafile, capath = env.get("SSL_CERT_FILE", ""), env.get("SSL_CERT_DIR", "")
    try:
        if cafile or capath:
            context.load_verify_locations(cafile=cafile or None, capath=capath or None)
        if options.ca_bundle:
            context.load_verify_locations(cafile=options.ca_bundle)
        if options.client_cert:
            context.load_cert_chain(options.client_cert, options.client_key or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS settings: {exc}") from None
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Network:
    """Per-origin options from the settings, and the routes decided from them."""

    default: OriginOptions = field(default_factory=OriginOptions)
    origins: Mapping[OriginKey, OriginOptions] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _routes: dict[OriginKey, Route] = field(default_factory=dict)
    _contexts: dict[OriginOptions, ssl.SSLContext] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env_proxies, self.no_proxy = environment_proxies(self.env)
        # Read per call by the client: with no proxy anywhere it skips route lookups.
        self.any_proxy = bool(
            self.env_proxies
            or (self.default.proxy and self.default.proxy != DIRECT)
            or any(o.proxy and o.proxy != DIRECT for o in self.origins.values())
        )

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> Network:
        default = OriginOptions(
            proxy=settings.proxy,
            ca_bundle=settings.ca_bundle,
            client_cert=settings.client_cert,
            client_key=settings.client_key,
        )
        origins: dict[OriginKey, OriginOptions] = {}
        for provider in settings.providers.values():
            key = origin_key(provider.base_url)
            if key is not None and key not in origins:
                origins[key] = provider_options(provider, default)
        network = cls(default, origins, dict(os.environ if env is None else env))
        for name, provider in settings.providers.items():
            if not provider.verify:
                logger.warning(
                    "TLS VERIFICATION IS OFF for provider %r (%s): anyone on the path can"
                    " read and change its calls, API key included. Use ca_bundle instead.",
                    name,
                    origin_text(provider.base_url),
                )
        # A bad CA file or client certificate fails the start, not the first call (the
        # plain context, certifi and the environment's, is left for the first call).
        for options in {default, *origins.values()}:
            if options.ca_bundle or options.client_cert:
                network.context(options)
        for url in (default.proxy, *(o.proxy for o in origins.values())):
            if url and url != DIRECT:
                ProxyURL.parse(url)
        return network

    def context(self, options: OriginOptions) -> ssl.SSLContext:
        """One context per set of TLS options, shared by the origins that have it."""
        tls = dataclasses.replace(options, proxy="")
        context = self._contexts.get(tls)
        if context is None:
            context = self._contexts[tls] = _ssl_context(tls, self.env)
        return context

    def route(self, key: OriginKey) -> Route:
        """The route to an origin, decided the first time and kept."""
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self._decide(key)
        return route

    def _decide(self, key: OriginKey) -> Route:
        scheme, host, port = key
        options = self.origins.get(key, self.default)
        context = self.context(options) if scheme == "https" else None
        own = options is not self.default and bool(options.proxy)
        url = options.proxy if own else self.default.proxy or self.env_proxies.get(scheme, "")
        if url == DIRECT or not url:
            return Route(None, context)
        if not own and bypasses_proxy(self.no_proxy, host, port):
            return Route(None, context)
        return Route(ProxyURL.parse(url), context)


def origin_key(url: str) -> OriginKey | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return None
    return (scheme, parts.hostname.lower(), port)


def origin_text(url: str) -> str:
    key = origin_key(url)
    return f"{key[0]}://{key[1]}:{key[2]}" if key else "?"


def provider_options(provider: ProviderConfig, default: OriginOptions) -> OriginOptions:
    """A provider's options: its own where set, else the global ones."""
    return OriginOptions(
        proxy=provider.proxy,  # its own only: the global one is NO_PROXY's to bypass
        ca_bundle=provider.ca_bundle or default.ca_bundle,
        verify=provider.verify,
        client_cert=provider.client_cert or default.client_cert,
        client_key=provider.client_key if provider.client_cert else default.client_key,
    )
