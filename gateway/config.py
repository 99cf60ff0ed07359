"""Settings: one table of every setting, loaded from defaults, a TOML file, the
environment and command-line flags, in that order of precedence (later wins).

`SETTINGS` (in `gateway.config_table`) is the single source of truth:
`config.example.toml` is generated from it (`spanlab config example`) and a test fails
when the two drift apart.

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

from gateway.config_table import (
    ENV_PREFIX as ENV_PREFIX,
)
from gateway.config_table import (
    OPTIONAL_LIMIT_SETTINGS as OPTIONAL_LIMIT_SETTINGS,
)
from gateway.config_table import (
    POSITIVE_SETTINGS as POSITIVE_SETTINGS,
)
from gateway.config_table import (
    PROVIDER_KINDS as PROVIDER_KINDS,
)
from gateway.config_table import (
    SETTINGS as SETTINGS,
)
from gateway.config_table import (
    SETTINGS_BY_NAME as SETTINGS_BY_NAME,
)
from gateway.config_table import (
    UPSTREAM_CLIENTS as UPSTREAM_CLIENTS,
)
from gateway.config_table import (
    Setting as Setting,
)
from gateway.errors import ConfigError


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
    background_process: bool = True
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
    database_url: str = ""
    database_pool_size: int = 10
    spill_file: str = ""
    quota_default_rpm: int = 0
    quota_default_tokens_per_day: int = 0
    quota_default_usd_per_day: float = 0.0
    quota_default_usd_per_month: float = 0.0
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
        if settings.database_url and not settings.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ConfigError(
                f"{where}: database_url must be a postgresql:// URL (a SQLite file goes in db)"
            )
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

    @property
    def database(self) -> str:
        """The database in use: ``database_url`` if set, else ``db`` (a SQLite file, or
        a postgresql:// URL)."""
        return self.database_url or self.db

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
