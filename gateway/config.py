"""Settings: one table of every setting, loaded from defaults, a TOML file, the
environment and command-line flags, in that order of precedence (later wins).

`SETTINGS` is the single source of truth: `config.example.toml` is generated from it
(`spanlab config example`) and a test fails when the two drift apart.

Flat settings are overridden by ``SPANLAB_<NAME>`` (``SPANLAB_PORT=9000``). Nested
tables use a double underscore: ``SPANLAB_PROVIDERS__LOCAL__BASE_URL=...``.
"""

from __future__ import annotations

import os
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

ENV_PREFIX = "SPANLAB_"
PROVIDER_KINDS = ("openai", "anthropic")
UPSTREAM_CLIENTS = ("builtin", "httpx")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    section: str

    @property
    def type(self) -> type:
        return type(self.default)

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Interface to listen on. Loopback by default.", "server"),
    Setting("port", 8080, "TCP port to listen on.", "server"),
    Setting(
        "db",
        "spanlab.db",
        "SQLite database file. Created, with its migrations applied, on start.",
        "server",
    ),
    Setting("log_level", "info", "Log level: debug, info, warning, error.", "server"),
    Setting(
        "shutdown_grace_s",
        30.0,
        "On SIGTERM/SIGINT, seconds calls in progress get to finish before they are cut"
        " (their spans then say interrupted). Spans are all stored either way.",
        "server",
    ),
    Setting(
        "allowed_hosts",
        "",
        "Comma-separated host names accepted in the Host header besides localhost,"
        ' 127.0.0.1, ::1 and the bind address ("*": any host), and in the Origin header'
        " of a state-changing request (any Origin must be one of these or the gateway's"
        " own; Origin: null never is). Guards against DNS rebinding and cross-site"
        " requests from web pages. With a public bind address and nothing set, any Host"
        " is accepted, but the Origin check stays.",
        "server",
    ),
    Setting(
        "max_client_connections",
        2048,
        "Most client connections held open at once. Past it, the connections idle or"
        " stalled longest (keep-alive, or a request head still arriving) are closed to make"
        " room; with none of those, a new request gets 503. Lowered at start if the"
        " open-file limit (ulimit -n) cannot hold it.",
        "server",
    ),
    Setting(
        "client_header_timeout",
        10.0,
        "Seconds a client gets to send a request's line and headers, from its connection"
        " (or its first byte on a kept-alive one); past it 408 and the connection is"
        " closed.",
        "server",
    ),
    Setting(
        "client_body_timeout",
        60.0,
        "Seconds a client gets to send a request body once its headers are in; past it"
        " 408 and the connection is closed.",
        "server",
    ),
    Setting(
        "shutdown_drain_s",
        10.0,
        "On shutdown, seconds the span writer gets to store what is still queued (after"
        " calls in progress end). What is not stored by then is saved, redacted, to"
        " <db>.spill.jsonl and stored at the next start; a second SIGTERM/SIGINT saves it"
        " at once.",
        "server",
    ),
    Setting(
        "admin_key",
        "",
        "A key with every scope (use 32+ random characters; better set as"
        " SPANLAB_ADMIN_KEY than written here). Set, or with any key created"
        " (`spanlab keys create`), every route but /healthz and sign-in needs a key.",
        "server",
    ),
    Setting(
        "metrics_token",
        "",
        "A bearer token that may read /metrics and nothing else (for a Prometheus"
        " scraper's authorization); without it /metrics needs a key with the read scope"
        " when keys are on.",
        "server",
    ),
    Setting(
        "insecure_no_auth",
        False,
        "Let `spanlab serve` bind a non-loopback address with no key configured (anyone"
        " who reaches it can use the provider keys and read every trace). Logged, and"
        " shown as a banner in the web UI.",
        "server",
    ),
    Setting(
        "audit_retention_days",
        0.0,
        "Days the audit log (the events table: key, project, experiment and dataset"
        " changes, sign-ins, refused requests, feedback and scores) keeps an entry;"
        " older ones are deleted hourly by a running gateway and by `spanlab prune`."
        " 0 keeps them all.",
        "server",
    ),
    Setting(
        "workers",
        1,
        "Gateway processes sharing the listening socket (`spanlab serve --workers N`),"
        " each with its own span writer on the one database; a supervisor restarts one"
        " that dies. Live events, the matrix engine's cells and /metrics are shared"
        " between them (README: what N buys on each store).",
        "server",
    ),
    Setting(
        "default_provider",
        "openai",
        "Provider for a bare model name that neither a provider prefix nor [models] routes."
        ' Empty ("") makes such a request fail with 404 model_not_found. When the'
        ' providers table has no "openai", the default is the only provider, if there'
        " is just one, else empty.",
        "proxy",
    ),
    Setting(
        "max_body_bytes",
        32 * 1024 * 1024,
        "Largest request body accepted; larger ones get 413 before any upstream call.",
        "proxy",
    ),
    Setting("connect_timeout", 10.0, "Seconds to open a connection to an upstream.", "proxy"),
    Setting(
        "read_timeout",
        120.0,
        "Seconds of upstream silence allowed: before the response starts and between"
        " two chunks of a stream.",
        "proxy",
    ),
    Setting(
        "request_timeout",
        600.0,
        "Overall deadline in seconds for one upstream call, stream included.",
        "proxy",
    ),
    Setting(
        "max_connections",
        1000,
        "Most connections kept open to the upstreams, all providers together.",
        "proxy",
    ),
    Setting(
        "models_timeout",
        10.0,
        "Seconds each provider gets to answer the merged model list (GET /v1/models"
        " without x-spanlab-provider, and the UI's GET /models); a provider slower than"
        " that is left out of the list.",
        "proxy",
    ),
    Setting(
        "max_response_bytes",
        256 * 1024 * 1024,
        "Largest response (decoded) relayed to a client; 0: no limit. A larger one fails:"
        " 502 response_too_large if it is not a stream and nothing was sent yet, an"
        " error event ending a stream, and a cut connection (no complete body) if a"
        " large non-stream body was already being relayed. Responses pass through as"
        " they arrive; memory held per call is bounded by max_capture_bytes.",
        "proxy",
    ),
    Setting(
        "upstream_client",
        "builtin",
        "The HTTP client for upstream calls. builtin: the gateway's own HTTP/1.1 client"
        " (the fastest). httpx: httpx's transport, for what the builtin one does not do:"
        " HTTP/2 (with the h2 extra: pip install 'spanlab[h2]'), and httpx's handling of"
        " HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY and SSL_CERT_FILE / SSL_CERT_DIR.",
        "proxy",
    ),
    Setting(
        "proxy",
        "",
        "Outbound proxy for upstream calls (http://[user:pass@]host:port), for every"
        " provider without its own `proxy`. Empty: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY"
        ' from the environment; "direct": none. https upstreams go through a CONNECT'
        " tunnel, http ones as absolute-form requests. NO_PROXY (hosts, .suffixes,"
        " host:port, CIDR, *) bypasses this and the environment's proxies, not a"
        " provider's own. Credentials in the URL are sent to the proxy only, and kept out"
        " of spans and logs.",
        "proxy",
    ),
    Setting(
        "ca_bundle",
        "",
        "PEM file of CA certificates trusted for upstream TLS, besides certifi's bundle"
        " and SSL_CERT_FILE / SSL_CERT_DIR (a private CA, or a TLS-inspecting network's)."
        " A provider's own `ca_bundle` replaces this one for it; a provider's"
        " `verify = false` turns checking off for it alone (logged as a warning).",
        "proxy",
    ),
    Setting(
        "client_cert",
        "",
        "PEM client certificate (mutual TLS) presented to upstreams; a provider's own"
        " `client_cert` / `client_key` replace it.",
        "proxy",
    ),
    Setting(
        "client_key",
        "",
        "The client certificate's private key, if not in the client_cert file.",
        "proxy",
    ),
    Setting(
        "upstream_retry_stale_connection",
        True,
        "Send a call again, once, on a new connection when a kept-alive connection"
        " turns out closed by the upstream as the call went out (the keep-alive race)."
        " Only when provably safe: no byte of a response came back, within 0.5 s, and"
        " the kernel's TCP counters show the upstream never acknowledged all of the"
        " request, so it cannot have begun (or billed) it. Where that cannot be told"
        " (not Linux; through a CONNECT proxy) the call is not sent again. Off: that race"
        " fails the call with 502.",
        "proxy",
    ),
    Setting(
        "matrix_concurrency",
        4,
        "Cells of an experiment's matrix (variants x inputs x repetitions) run at once,"
        " when a run does not say (its concurrency field). Each cell is one upstream call.",
        "proxy",
    ),
    Setting(
        "judge_concurrency",
        4,
        "LLM judge calls (evaluators of type llm_judge) running at once, over all"
        " experiments. Each is one upstream call through the gateway.",
        "proxy",
    ),
    Setting(
        "judge_timeout_s",
        60.0,
        "Seconds an LLM judge call may take; past it the score is an evaluator error"
        " (judge_timeout), never a low score.",
        "proxy",
    ),
    Setting(
        "matrix_lease_s",
        10.0,
        "Seconds a gateway process holds a matrix cell it runs without renewing the"
        " claim (it renews every third of it). Several processes on one database share"
        " a run's cells; a cell whose process died is run by another once its lease"
        " passes (at once when the dead process was on the same machine).",
        "proxy",
    ),
    Setting(
        "capture",
        True,
        "Record every call as a span. Off, the gateway only forwards.",
        "capture",
    ),
    Setting(
        "write_batch_size",
        500,
        "Most spans the background writer stores in one transaction. The writer stores"
        " at once when idle; under load, spans that arrive meanwhile form the next batch.",
        "capture",
    ),
    Setting(
        "write_queue_max",
        100_000,
        "Spans held in memory while the disk catches up; beyond it calls wait"
        " (back-pressure) rather than lose a span.",
        "capture",
    ),
    Setting(
        "events_heartbeat_s",
        15.0,
        "Seconds between keep-alive comments on the /events stream.",
        "capture",
    ),
    Setting(
        "max_capture_bytes",
        8 * 1024 * 1024,
        "Most response bytes a span keeps (a body, or a stream's event data); 0: no"
        " limit. Past it the client still gets the whole response, the span keeps its"
        " first bytes (for a stream: its first events, and the final ones carrying usage)"
        ' and says so in attributes["truncated_capture"]. A non-stream response up to'
        " this size is read whole before it is sent; a larger one is relayed as it comes."
        " A single stream event is held whole while it arrives, up to the larger of"
        " 16 MiB and this (at most max_response_bytes); a larger one fails the stream.",
        "capture",
    ),
    Setting(
        "write_queue_max_bytes",
        256 * 1024 * 1024,
        "Bytes of spans (estimated from their bodies) held in memory while the disk"
        " catches up; beyond it calls wait, as for write_queue_max.",
        "capture",
    ),
    Setting(
        "flush_timeout_s",
        5.0,
        "Seconds a management request that needs the latest spans stored (experiment"
        " create, compare) waits for the span writer before answering 503. Spans waiting"
        " longer than this make /healthz report degraded.",
        "capture",
    ),
    Setting(
        "otlp_endpoint",
        "",
        "OTLP/HTTP receiver to export spans to (an OpenTelemetry collector, Phoenix,"
        " Langfuse, Jaeger...): its base URL (http://127.0.0.1:4318; /v1/traces is"
        " added) or its traces URL. Empty: the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        " or OTEL_EXPORTER_OTLP_ENDPOINT variable, and with neither set nothing is"
        " exported. Headers, timeout and TLS come from the OTEL_EXPORTER_OTLP_*"
        " variables. Needs the otlp extra (pip install 'spanlab[otlp]').",
        "export",
    ),
    Setting(
        "otlp_service_name",
        "",
        "The service.name resource attribute of exported spans. Empty: OTEL_SERVICE_NAME"
        ' (or service.name in OTEL_RESOURCE_ATTRIBUTES), else "spanlab".',
        "export",
    ),
    Setting(
        "otlp_capture_content",
        False,
        "Export message content (gen_ai.input.messages, gen_ai.output.messages,"
        " gen_ai.system_instructions), redacted as stored. Off: models, parameters,"
        " tokens, finish reasons and ids only, no text of a prompt or an answer.",
        "export",
    ),
    Setting(
        "otlp_queue_max",
        20_000,
        "Spans held for export while the receiver is slow or down; past it new spans"
        " are dropped from the export (counted in spanlab_otlp_spans_dropped, logged),"
        " never stored less or delayed.",
        "export",
    ),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
# Settings that make no sense at 0 or below (a limit of no connections, a deadline
# already past).
POSITIVE_SETTINGS = (
    "max_client_connections",
    "client_header_timeout",
    "client_body_timeout",
    "models_timeout",
    "matrix_concurrency",
    "workers",
    "otlp_queue_max",
    "judge_concurrency",
    "judge_timeout_s",
    "matrix_lease_s",
)
# Settings where 0 turns the limit off.
OPTIONAL_LIMIT_SETTINGS = ("max_response_bytes", "max_capture_bytes")


@dataclass(frozen=True)
class ProviderConfig:
    """One upstream. ``kind`` is the API dialect it speaks."""

    name: str
    kind: str
    base_url: str
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # How it is reached (see gateway.http.network); empty: the global settings.
    proxy: str = ""
    ca_bundle: str = ""
    verify: bool = True
    client_cert: str = ""
    client_key: str = ""

    def api_key(self) -> str | None:
        """The configured key, read from the environment at call time (never stored)."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None


DEFAULT_PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {
        "kind": "openai",
        "base_url": "https://api.openai.com/v1",
        "api_key_env": "OPENAI_API_KEY",
    },
    "anthropic": {
        "kind": "anthropic",
        "base_url": "https://api.anthropic.com/v1",
        "api_key_env": "ANTHROPIC_API_KEY",
    },
}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    db: str = "spanlab.db"
    log_level: str = "info"
    allowed_hosts: str = ""
    shutdown_grace_s: float = 30.0
    max_client_connections: int = 2048
    client_header_timeout: float = 10.0
    client_body_timeout: float = 60.0
    shutdown_drain_s: float = 10.0
    default_provider: str = "openai"
    max_body_bytes: int = 32 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    request_timeout: float = 600.0
    max_connections: int = 1000
    models_timeout: float = 10.0
    max_response_bytes: int = 256 * 1024 * 1024
    upstream_client: str = "builtin"
    proxy: str = ""
    ca_bundle: str = ""
    client_cert: str = ""
    client_key: str = ""
    upstream_retry_stale_connection: bool = True
    matrix_concurrency: int = 4
    judge_concurrency: int = 4
    judge_timeout_s: float = 60.0
    matrix_lease_s: float = 10.0
    capture: bool = True
    write_batch_size: int = 500
    write_queue_max: int = 100_000
    events_heartbeat_s: float = 15.0
    max_capture_bytes: int = 8 * 1024 * 1024
    write_queue_max_bytes: int = 256 * 1024 * 1024
    flush_timeout_s: float = 5.0
    otlp_endpoint: str = ""
    otlp_service_name: str = ""
    otlp_capture_content: bool = False
    otlp_queue_max: int = 20_000
    admin_key: str = ""
    metrics_token: str = ""
    insecure_no_auth: bool = False
    audit_retention_days: float = 0.0
    workers: int = 1
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    # bare model name -> "provider" or "provider/upstream-model"
    models: Mapping[str, str] = field(default_factory=dict)
    prices: Mapping[str, Price] = field(default_factory=dict)
    source: str | None = None

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Defaults < TOML file < ``SPANLAB_*`` environment < explicit overrides."""
        env = os.environ if env is None else env
        raw: dict[str, Any] = {}
        source = None
        if path is not None:
            file = Path(path)
            try:
                raw = tomllib.loads(file.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"config file not found: {file}") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{file}: invalid TOML: {exc}") from None
            source = str(file)
        _merge(raw, _from_env(env))
        for key, value in (overrides or {}).items():
            if value is not None:
                raw[key] = value
        return cls.from_mapping(raw, source=source)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str | None = None) -> Settings:
        where = source or "settings"
        values: dict[str, Any] = {}
        unknown = set(raw) - set(SETTINGS_BY_NAME) - {"providers", "models", "prices"}
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ConfigError(f"{where}: unknown setting(s): {names} (see config.example.toml)")
        for setting in SETTINGS:
            if setting.name in raw:
                values[setting.name] = _coerce(setting, raw[setting.name], where)
        providers_raw = raw.get("providers")
        if providers_raw is None:
            providers_raw = DEFAULT_PROVIDERS
        values["providers"] = _parse_providers(providers_raw, where)
        values["models"] = _parse_models(raw.get("models", {}), values["providers"], where)
        values["prices"] = _parse_prices(raw.get("prices", {}), where)
        if "default_provider" not in values and "openai" not in values["providers"]:
            # The built-in default names a provider this config does not have: with a
            # single provider that one is the obvious default, otherwise there is none.
            only = list(values["providers"])
            values["default_provider"] = only[0] if len(only) == 1 else ""
        settings = cls(**values, source=source)
        for name in POSITIVE_SETTINGS:
            if getattr(settings, name) <= 0:
                raise ConfigError(f"{where}: {name} must be above 0")
        for name in OPTIONAL_LIMIT_SETTINGS:
            if getattr(settings, name) < 0:
                raise ConfigError(f"{where}: {name} must be 0 (no limit) or more")
        if settings.upstream_client not in UPSTREAM_CLIENTS:
            raise ConfigError(
                f"{where}: upstream_client must be one of {', '.join(UPSTREAM_CLIENTS)},"
                f" got {settings.upstream_client!r}"
            )
        if settings.default_provider and settings.default_provider not in settings.providers:
            raise ConfigError(
                f"{where}: default_provider {settings.default_provider!r} is not a configured"
                f" provider (have: {', '.join(settings.providers) or 'none'})"
            )
        return settings

    def with_overrides(self, **changes: Any) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)


def _coerce(setting: Setting, value: Any, where: str) -> Any:
    target = setting.type
    try:
        if target is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if target is int and isinstance(value, bool):
            raise ValueError(value)
        return target(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: setting {setting.name!r} must be a {target.__name__}, got {value!r}"
        ) from None


# A provider's own network settings (see gateway.http.network), besides its kind,
# base_url, api_key_env and headers. verify is a bool, the others strings.
NETWORK_KEYS = ("proxy", "ca_bundle", "verify", "client_cert", "client_key")


def _parse_providers(raw: Any, where: str) -> dict[str, ProviderConfig]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [providers] must be a table of tables")
    providers: dict[str, ProviderConfig] = {}
    for name, table in raw.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [providers.{name}] must be a table")
        if "/" in name:
            raise ConfigError(f"{where}: provider name {name!r} may not contain '/'")
        kind = str(table.get("kind", "openai"))
        if kind not in PROVIDER_KINDS:
            raise ConfigError(
                f"{where}: [providers.{name}] kind must be one of {', '.join(PROVIDER_KINDS)},"
                f" got {kind!r}"
            )
        base_url = table.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where}: [providers.{name}] needs base_url = 'http(s)://...', got {base_url!r}"
            )
        api_key_env = table.get("api_key_env")
        if api_key_env is not None and not isinstance(api_key_env, str):
            raise ConfigError(f"{where}: [providers.{name}] api_key_env must be a string")
        headers = table.get("headers", {})
        if not isinstance(headers, Mapping):
            raise ConfigError(f"{where}: [providers.{name}] headers must be a table")
        unknown = set(table) - {"kind", "base_url", "api_key_env", "headers", *NETWORK_KEYS}
        if unknown:
            raise ConfigError(
                f"{where}: [providers.{name}] unknown key(s): {', '.join(sorted(unknown))}"
            )
        network: dict[str, Any] = {}
        for key in NETWORK_KEYS:
            if key in table:
                network[key] = _coerce(
                    Setting(key, True if key == "verify" else "", "", "providers"),
                    table[key],
                    f"{where}: [providers.{name}]",
                )
        providers[name] = ProviderConfig(
            name=name,
            kind=kind,
            base_url=base_url.rstrip("/"),
            api_key_env=api_key_env or None,
            headers={str(k).lower(): str(v) for k, v in headers.items()},
            **network,
        )
    return providers


def _parse_models(raw: Any, providers: Mapping[str, ProviderConfig], where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [models] must be a table of model = 'provider[/model]'")
    models: dict[str, str] = {}
    for model, target in raw.items():
        if not isinstance(target, str) or not target:
            raise ConfigError(f"{where}: [models] {model!r} must map to 'provider[/model]'")
        provider = target.split("/", 1)[0]
        if provider not in providers:
            raise ConfigError(
                f"{where}: [models] {model!r} routes to unknown provider {provider!r}"
            )
        models[str(model)] = target
    return models


def _parse_prices(raw: Any, where: str) -> dict[str, Price]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [prices] must be a table of tables")
    prices: dict[str, Price] = {}
    for model, table in raw.items():
        try:
            prices[str(model)] = Price(
                input=float(table["input"]),
                output=float(table["output"]),
                cached_input=(float(table["cached_input"]) if "cached_input" in table else None),
            )
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{where}: [prices.{model!r}] needs numeric input and output (USD per 1M tokens)"
            ) from None
    return prices


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``SPANLAB_PORT`` -> ``{"port": ...}``;
    ``SPANLAB_A__B__C`` -> ``{"a": {"b": {"c": ...}}}``."""
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = key[len(ENV_PREFIX) :].split("__")
        if len(path) == 1:
            name = path[0].lower()
            if name in SETTINGS_BY_NAME:
                out[name] = value
            continue
        # Environment variable names are upper case by convention; the keys they stand
        # for (sections, provider names, fields) are lower case.
        cursor = out
        for part in path[:-1]:
            cursor = cursor.setdefault(part.lower(), {})
        cursor[path[-1].lower()] = value
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


SECTION_TITLES = {
    "server": "Server",
    "proxy": "Proxy: routing, limits and timeouts",
    "capture": "Capture: how spans reach the database",
    "export": "Export: spans sent on over OTLP",
}


def example_toml() -> str:
    """The text of ``config.example.toml``, generated from `SETTINGS`."""
    lines = [
        "# Spanlab configuration: every setting, with its default.",
        "# Use with `spanlab serve --config FILE`. Every key can also be set through the",
        "# environment: SPANLAB_<NAME> (SPANLAB_PORT=9000), and nested tables with a double",
        "# underscore (SPANLAB_PROVIDERS__LOCAL__BASE_URL=http://127.0.0.1:11434/v1).",
        "# This file is generated by `spanlab config example`; a test keeps it in step.",
        "",
    ]
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            lines += [f"# --- {SECTION_TITLES[section]} ---", ""]
        lines += [f"# {line}" for line in textwrap.wrap(setting.help, 86)]
        lines += [f"{setting.name} = {_toml_value(setting.default)}", ""]
    lines += [
        "# --- Providers ---",
        '# One table per upstream. kind: "openai" (any OpenAI-compatible API) or',
        '# "anthropic". base_url: the API root (requests go to base_url + "/chat/completions",',
        "# ...). api_key_env: the environment variable holding the key; without it the",
        "# client's own Authorization header is forwarded. headers: extra headers sent",
        "# upstream. proxy, ca_bundle, client_cert, client_key: the provider's own, in",
        "# place of the global settings of those names; verify = false: no TLS checks for",
        "# it (a warning at start). With no [providers] table at all, the two below are",
        "# the defaults.",
        "",
    ]
    for name, table in DEFAULT_PROVIDERS.items():
        lines.append(f"[providers.{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    lines += [
        "# A local OpenAI-compatible server (Ollama, vLLM, llama.cpp...): requests for",
        '# "local/llama3" go there as model "llama3".',
        "# [providers.local]",
        '# kind = "openai"',
        '# base_url = "http://127.0.0.1:11434/v1"',
        '# api_key_env = "LOCAL_API_KEY"',
        "",
        "# --- Routing of bare model names ---",
        '# "provider/model" always routes to that provider. A bare name is looked up here',
        '# ("provider" or "provider/upstream-model"), then sent to default_provider; except',
        '# "claude-*" names, which go to the provider of kind "anthropic" (the one named',
        '# "anthropic", else the only one) when default_provider is not of that kind.',
        "[models]",
        '# "gpt-4o" = "openai"',
        '# "fast" = "openai/gpt-4o-mini"',
        "",
        "# --- Prices (USD per million tokens) ---",
        "# Override or extend the price table shipped with Spanlab. A model with no price",
        "# gets no cost rather than a wrong one.",
        "[prices]",
        '# "my-finetune" = { input = 3.0, output = 12.0, cached_input = 1.5 }',
        "",
    ]
    return "\n".join(lines)
