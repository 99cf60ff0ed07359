"""The table of every setting (`SETTINGS`): name, default, help and section. The
single source of truth: `gateway.config` loads settings by it, and
`config.example.toml` is generated from it (`spanlab config example`); a test fails
when the two drift apart. It imports nothing of the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        "SQLite database file. Created, with its migrations applied, on start. A"
        " postgresql:// URL here selects PostgreSQL instead, as database_url does.",
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
        "database_url",
        "",
        "A PostgreSQL database to store everything in instead of the SQLite file db:"
        " postgresql://user:password@host:5432/name (libpq's URL; the password is never"
        " logged). Its migrations are applied on start, once however many gateway"
        " processes start together. Needs the postgres extra (asyncpg).",
        "server",
    ),
    Setting(
        "database_pool_size",
        10,
        "PostgreSQL only: the most connections this process opens to the database.",
        "server",
    ),
    Setting(
        "spill_file",
        "",
        "Where spans a shutdown could not store are saved until the next start. Empty:"
        " beside the SQLite database file (<db>.spill.jsonl); with PostgreSQL,"
        " spanlab.spill.jsonl in the working directory.",
        "server",
    ),
    Setting(
        "quota_default_rpm",
        0,
        "Requests per minute for a gateway key that has no limits of its own (set with"
        " `spanlab keys create --rpm` or PATCH /keys/{id}). 0: no default limit.",
        "server",
    ),
    Setting(
        "quota_default_tokens_per_day",
        0,
        "Tokens per UTC day for a gateway key without limits of its own. 0: none.",
        "server",
    ),
    Setting(
        "quota_default_usd_per_day",
        0.0,
        "Cost in USD per UTC day (from the price table) for a gateway key without limits"
        " of its own. 0: none.",
        "server",
    ),
    Setting(
        "quota_default_usd_per_month",
        0.0,
        "Cost in USD per UTC month for a gateway key without limits of its own. 0: none.",
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
        "background_process",
        True,
        "spanlab serve runs matrix cells (and the evaluators scoring them) in a background"
        " process at idle CPU priority, so an experiment never slows the proxied calls;"
        " false: in the gateway's own process. Runs started with credentials sent in the"
        " request stay in the process that received them. Not with an in-memory database.",
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
    "database_pool_size",
    "matrix_lease_s",
)
# Settings where 0 turns the limit off.
OPTIONAL_LIMIT_SETTINGS = ("max_response_bytes", "max_capture_bytes")
