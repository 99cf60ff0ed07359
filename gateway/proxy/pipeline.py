"""The proxy pipeline: one call from client to upstream and back, captured as a span.

`ProxyPipeline.handle` is the whole path. It knows nothing of ASGI: it reads a
`ProxyRequest` and writes to a `ResponseSink`, so the HTTP endpoints (`ProxyEndpoint`
in gateway/proxy/endpoint.py) and in-process callers (experiments) share every step:
routing, providers, forwarding, capture and metrics.

What the path does, and what it deliberately does not:

* the body goes upstream as the client sent it: it is parsed once (to route on
  ``model``), and re-encoded only when the proxy must change it (a ``provider/``
  prefix removed, ``stream_options.include_usage`` added);
* a stream is forwarded event by event as it arrives, each event's bytes untouched;
  a parsed copy of each event feeds the span. The usage-only chunk the proxy asked
  for is not forwarded; a truncated or malformed stream ends with an error event,
  never a ``[DONE]``;
* a client that goes away cancels the upstream call (`ProxyEndpoint` watches for the
  disconnect), and the span says ``client_aborted`` with the output so far;
* nothing on this path waits for the disk: the finished span goes to the writer's
  queue, and parsing the response for usage and cost happens there;
* what one call holds in memory is bounded: a non-stream body is read whole (and
  sent with its length) only up to ``max_capture_bytes``, a larger one is relayed as
  it arrives; the span keeps at most ``max_capture_bytes`` of a response and says
  when it kept less (``attributes["truncated_capture"]``); a response past
  ``max_response_bytes`` fails (502 ``response_too_large``, or an error event);
* a call the server cuts at shutdown (``shutdown_grace_s`` ran out) ends like one
  whose upstream broke: an error event ends its stream (a 503 if nothing was sent),
  and its span says ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio
import orjson

from gateway.capture.redaction import credential_values, query_secret_values, redact_headers
from gateway.capture.span import (
    STATUS_CLIENT_ABORTED,
    STATUS_ERROR,
    STATUS_INTERRUPTED,
    Span,
    SpanContext,
    now_us,
)
from gateway.config import Settings
from gateway.errors import (
    InvalidJSON,
    InvalidRequest,
    MissingModel,
    ServiceUnavailable,
    SpanlabError,
    UpstreamProtocol,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from gateway.http.network import network_secret_values
from gateway.http.sse import SSESplitter
from gateway.http.upstream import (
    Timeouts,
    UpstreamClient,
    UpstreamDecodingError,
    UpstreamPoolTimeout,
    UpstreamRequest,
    UpstreamRequestError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransportError,
    UpstreamURL,
    fitted,
)
from gateway.metrics import Metrics
from gateway.proxy.operations import (
    DROP_REQUEST_HEADERS,
    DROP_RESPONSE_HEADERS,
    MODEL_PATH,
    MODEL_REQUIRED,
    STREAM_FORMATS,
    ProxyRequest,
    QuotaGate,
    connection_tokens,
    parse_body,
)
from gateway.proxy.providers import PROVIDER_HEADER, Route, Router
from gateway.proxy.providers.anthropic import ChatOverMessages, anthropic_credentials
from gateway.proxy.providers.anthropic_response import ChatStreamTranslator
from gateway.proxy.providers.base import (
    ANTHROPIC_VERSION,
    CREDENTIAL_HEADERS,
    auth_headers,
    model_url,
    provider_secret_values,
    upstream_url,
)
from gateway.proxy.providers.model_list import ModelLists
from gateway.proxy.relay import (
    StreamCapture,
    StreamFailure,
    error_event,
    inspect_event,
    mark_truncated,
    read_failure,
    too_large,
    translated_stream,
    undecodable,
)
from gateway.proxy.sink import ListSink, ResponseSink, send_error
from gateway.writer.span_writer import SpanWriter

logger = logging.getLogger(__name__)

DRAIN_AFTER_DONE_S = 1.0
# A limit of 0 ("no limit") compares as this: more than any response.
NO_LIMIT = 1 << 62
# The smallest bound on one stream event held while it arrives (see `_event_limit`).
MIN_EVENT_LIMIT = 16 * 1024 * 1024
# At shutdown, how long telling a cut call's client may take (a stalled client must
# not hold the shutdown).
INTERRUPT_NOTICE_S = 1.0


class ProxyPipeline:
    def __init__(
        self,
        settings: Settings,
        upstream: UpstreamClient,
        router: Router,
        metrics: Metrics,
        writer: SpanWriter | None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.router = router
        self.metrics = metrics
        self.writer = writer if settings.capture else None
        self._default_headers = list(upstream.default_headers)
        self._timeouts = Timeouts(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            pool=settings.connect_timeout,
        )
        self._urls: dict[str, UpstreamURL] = {}
        # Proxy credentials (Proxy-Authorization): secrets of every span, like keys.
        self._network_secrets = network_secret_values(settings)
        self._capture_limit = settings.max_capture_bytes or NO_LIMIT
        self._response_limit = settings.max_response_bytes or NO_LIMIT
        # What one call may hold in memory at once: a non-stream body read whole
        # before it is sent.
        self._buffer_limit = min(self._capture_limit, self._response_limit)
        # The largest stream event held while it arrives. Not the capture limit alone:
        # a Responses stream's final event repeats the whole output, and it must pass
        # (and be read for its usage) whether it arrives in one chunk or in many.
        self._event_limit = min(max(self._capture_limit, MIN_EVENT_LIMIT), self._response_limit)
        self.in_flight = 0
        self.model_lists = ModelLists(router, settings.models_timeout)
        self.interrupted = 0  # calls the server cut at shutdown
        self.quotas: QuotaGate | None = None  # set by the app (gateway.quotas)

    async def wait_idle(self) -> None:
        """Wait until no call is in progress.

        At shutdown the server cancels calls that outlived the grace period; each
        still has to record its span, which takes a moment after the cancellation.
        Polling (shutdown only) keeps the request path free of any signalling."""
        while self.in_flight:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        if self.interrupted:
            # One line for all of them (each used to log a traceback).
            logger.warning(
                "shutdown cut %d call(s) still running after shutdown_grace_s (%gs): their"
                " clients got an error, their spans say interrupted",
                self.interrupted,
                self.settings.shutdown_grace_s,
            )
            self.interrupted = 0

    @staticmethod
    def _start_span(request: ProxyRequest) -> Span:
        span = Span(
            context=request.context or SpanContext.from_headers(dict(request.headers)),
            operation=request.operation,
            method=request.method,
            path=request.path,
            start_us=now_us(),
            query=request.query,
        )
        span.request_headers = redact_headers(request.headers)
        # Known secret values are scrubbed wherever they turn up (an upstream's error
        # message may echo a key back); `to_record` adds the body's key fields.
        span.secrets = credential_values(request.headers) + query_secret_values(request.query)
        return span

    async def handle(self, request: ProxyRequest, sink: ResponseSink) -> Span:
        span = self._start_span(request)
        self.metrics.in_flight.inc()
        self.in_flight += 1
        writer = self.writer if request.capture else None
        try:
            if request.charge is not None:
                # A call counted for a key (keys on): admitted or refused (429) here.
                if self.quotas is not None:
                    self.quotas.admit(request.charge, span.context.project_id, request.operation)
                span.charge = request.charge
            if writer is not None:
                await writer.wait_for_room()
            await self._handle(request, span, sink)
        except SpanlabError as exc:
            self._fail(span, exc, responded=sink.started)
            if not sink.started:
                await send_error(sink, exc, span)
            elif span.end_us is None and span.stream_format is not None:
                # The stream had started (e.g. the overall deadline hit mid-stream):
                # end it with an error event so the client never takes it as complete.
                await sink.send(error_event(span.stream_format, exc))
                await sink.end()
            # A non-stream body cut while being relayed (past max_capture_bytes) is
            # left unfinished: the client sees the connection close before the body's
            # end, never a shorter body that looks complete.
        except BaseException as exc:
            if span.end_us is not None:
                raise  # the response was complete; what follows is no abort
            if isinstance(exc, (anyio.get_cancelled_exc_class(), OSError)):
                span.status = STATUS_CLIENT_ABORTED if sink.client_gone else STATUS_INTERRUPTED
                if span.error is None:
                    span.error = {
                        "type": span.status,
                        "message": "the client went away before the response ended"
                        if sink.client_gone
                        else "the gateway stopped before the response ended",
                    }
                if not sink.client_gone and not isinstance(exc, OSError):
                    await self._end_interrupted(span, sink)
            else:
                logger.exception("unexpected error proxying %s", request.path)
                self._fail(
                    span,
                    SpanlabError(f"internal error: {type(exc).__name__}"),
                    responded=sink.started,
                )
            if isinstance(exc, OSError) and sink.client_gone:
                return span
            raise
        finally:
            if span.end_us is None:
                span.end_us = now_us()
            self.metrics.in_flight.dec()
            self.in_flight -= 1
            self._observe(span)
            if writer is not None:
                writer.submit(span, len(request.body))  # its size counts in the queue
        return span

    async def _end_interrupted(self, span: Span, sink: ResponseSink) -> None:
        """The server cut this call (at shutdown, past ``shutdown_grace_s``): end its
        response as a broken upstream's ends, so the client never takes it for whole."""
        self.interrupted += 1
        error = ServiceUnavailable(
            "The gateway is shutting down and stopped this call before its response"
            " ended; retry it.",
            code="gateway_shutting_down",
        )
        try:
            async with asyncio.timeout(INTERRUPT_NOTICE_S):
                if not sink.started:
                    span.http_status = error.status_code
                    await send_error(sink, error, span)
                elif span.stream_format is not None:
                    await sink.send(error_event(span.stream_format, error))
                    await sink.end()
        except (OSError, TimeoutError):
            pass  # the client is gone or stalled: nothing more to tell it

    # --- the steps -------------------------------------------------------------------

    async def _handle(self, request: ProxyRequest, span: Span, sink: ResponseSink) -> None:
        # A copy: the caller's own dict must come back as it was (the top-level fields are
        # what changes on the way upstream), and the span keeps what was sent.
        payload = dict(request.payload) if request.payload is not None else None
        if payload is None and request.body:
            payload = parse_body(request.body)
        elif payload is None and request.method == "POST":
            raise InvalidJSON("Request body is empty; send a JSON object.")
        span.request = payload
        model = payload.get("model") if payload is not None else None
        hint = next((v for k, v in request.headers if k == PROVIDER_HEADER), None)
        retrieve = False
        if request.operation == "models":
            if request.path.startswith(MODEL_PATH):  # GET /v1/models/{id}
                model, retrieve = request.path[len(MODEL_PATH) :], True
                if not model:
                    raise MissingModel("Name a model: GET /v1/models/{model}.", param="model")
            elif hint is None:
                await self._list_models(request, span, sink)
                return
        if request.operation in MODEL_REQUIRED:
            if model is None or model == "":
                raise MissingModel(
                    "Request has no 'model'. Name one, e.g. \"gpt-4o-mini\" or"
                    ' "openai/gpt-4o-mini".',
                    param="model",
                )
            if not isinstance(model, str):
                raise InvalidRequest("'model' must be a string.", param="model")
        span.request_model = model if isinstance(model, str) else None
        span.stream = bool(payload.get("stream")) if payload is not None else False

        route = self.router.resolve(span.request_model, hint)
        provider = route.provider
        span.provider = provider.name
        self.check_dialect(request.operation, route)
        key = provider.api_key()
        if key:
            span.secrets.append(key)
        # e.g. Azure's api-key header, the Basic auth of https://user:pass@host
        span.secrets += provider_secret_values(provider)
        if self._network_secrets:
            span.secrets += self._network_secrets

        body = request.body
        modified = request.payload is not None
        inject_usage = False
        translation: ChatOverMessages | None = None
        operation = request.operation
        if provider.kind == "anthropic" and operation == "chat" and payload is not None:
            # An OpenAI chat call served by Anthropic. The span keeps the client's
            # request as `request` (not the Anthropic body): it is what an experiment
            # replays and edits through this same route, what the UI renders as OpenAI
            # messages, and what compares with the GPT call it may come from. The body
            # sent upstream, and what was dropped or approximated, go to
            # attributes["translation"]; the response kept is the OpenAI one the
            # client received (output text, tool calls and finish reason in OpenAI
            # terms), its usage carrying Anthropic's counts (so cost is right).
            translation = ChatOverMessages.translate(payload, route.upstream_model or str(model))
            span.context.attributes["translation"] = translation.record
            try:
                body = fitted(translation.upstream_body())
            except orjson.JSONEncodeError:
                raise _too_deep_to_rewrite() from None
            operation = "messages"
        elif payload is not None:
            if route.upstream_model is not None and route.upstream_model != model:
                payload["model"] = route.upstream_model
                modified = True
            if span.stream and request.operation in ("chat", "completions"):
                options = payload.get("stream_options")
                if not (isinstance(options, dict) and options.get("include_usage")):
                    extra = options if isinstance(options, dict) else {}
                    payload["stream_options"] = {**extra, "include_usage": True}
                    inject_usage = True
                    modified = True
            if modified:
                try:
                    body = fitted(orjson.dumps(payload))
                except orjson.JSONEncodeError:
                    raise _too_deep_to_rewrite() from None

        headers = self._upstream_headers(request, route, span.context)
        if translation is not None:
            headers = anthropic_credentials(headers)
        if retrieve:
            url = model_url(provider, route.upstream_model or "", request.query)
        else:
            url = upstream_url(provider, operation, request.query)
        upstream = self._build_request(
            provider.name,
            request.method,
            url,
            headers,
            body if request.method != "GET" else None,
        )
        deadline = asyncio.timeout(self.settings.request_timeout)
        try:
            async with deadline:
                await self._exchange(upstream, span, sink, inject_usage, translation)
        except TimeoutError:
            if not deadline.expired():
                raise  # not this deadline's
            # Past the end of the response (draining the upstream after [DONE]) the
            # deadline only stops the drain: the call is complete.
            if span.end_us is None:
                raise UpstreamTimeout(
                    f"Provider {provider.name!r} did not finish within request_timeout"
                    f" ({self.settings.request_timeout:g}s)."
                ) from None

    async def _list_models(self, request: ProxyRequest, span: Span, sink: ResponseSink) -> None:
        """The merged model list (gateway/proxy/providers/model_list.py): one span for the
        client's call, naming what each provider answered; each provider is asked
        through `handle` (routing, credentials, errors) without a span of its own."""

        async def fetch(
            provider: str, headers: list[tuple[str, str]], query: str, out: ListSink
        ) -> None:
            call = ProxyRequest(
                "models",
                "GET",
                "/v1/models",
                [*headers, (PROVIDER_HEADER, provider)],
                query=query,
                context=span.context,  # upstream traceparents name the recorded span
                capture=False,
            )
            await self.handle(call, out)

        await self.model_lists.respond(request.headers, request.query, fetch, span, sink)

    def _build_request(
        self,
        provider: str,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        content: bytes | None,
    ) -> UpstreamRequest:
        """The client's default headers under the call's own (names compared
        case-insensitively)."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= 1024:  # query strings vary: stay bounded
                self._urls.clear()
            try:
                parsed = self._urls[url] = UpstreamURL.parse(url)
            except UpstreamRequestError as exc:
                raise UpstreamUnreachable(
                    f"Provider {provider!r} has an unusable URL: {exc}"
                ) from None
        present = {name.lower() for name, _ in headers}
        merged = [(k, v) for k, v in self._default_headers if k not in present]
        if parsed.basic_auth is None:
            merged += headers
        else:
            # Credentials in a base_url (https://user:pass@host/v1) replace the caller's.
            merged += [(k, v) for k, v in headers if k.lower() != "authorization"]
            merged.append(("authorization", parsed.basic_auth))
        return UpstreamRequest(method, parsed, merged, content, self._timeouts)

    def check_dialect(self, operation: str, route: Route) -> None:
        kind = route.provider.kind
        if kind == "anthropic" and operation not in ("messages", "count_tokens", "models", "chat"):
            raise InvalidRequest(
                f"Provider {route.provider.name!r} speaks the Anthropic Messages API; send"
                " this call to /v1/chat/completions (translated) or /v1/messages"
                " (OpenAI-format translation is not available for this endpoint).",
                param="model",
            )
        if kind == "openai" and operation in ("messages", "count_tokens"):
            raise InvalidRequest(
                f"Provider {route.provider.name!r} speaks the OpenAI API; the Messages API"
                " (/v1/messages, /v1/messages/count_tokens) needs a provider of kind"
                " 'anthropic'.",
                param="model",
            )

    def _upstream_headers(
        self, request: ProxyRequest, route: Route, ctx: SpanContext
    ) -> list[tuple[str, str]]:
        provider = route.provider
        named_by_connection = connection_tokens(request.headers)
        auth = auth_headers(provider)
        headers = [
            (name, value)
            for name, value in request.headers
            if name not in DROP_REQUEST_HEADERS
            and name not in named_by_connection
            and not name.startswith("x-spanlab-")
            and not (auth and name in CREDENTIAL_HEADERS)
        ]
        headers.extend(auth.items())
        present = {name for name, _ in headers}
        headers.extend((k, v) for k, v in provider.headers.items() if k not in present)
        if provider.kind == "anthropic" and "anthropic-version" not in present:
            headers.append(("anthropic-version", ANTHROPIC_VERSION))
        headers.append(("traceparent", ctx.traceparent()))
        return headers

    async def _exchange(
        self,
        upstream: UpstreamRequest,
        span: Span,
        sink: ResponseSink,
        inject_usage: bool,
        translation: ChatOverMessages | None = None,
    ) -> None:
        provider = span.provider or "?"
        try:
            response = await self.upstream.send(upstream)
        except UpstreamPoolTimeout:
            # The gateway's own limit, not the provider: no connection came free.
            raise ServiceUnavailable(
                f"All {self.settings.max_connections} upstream connections (max_connections)"
                f" stayed busy for {self.settings.connect_timeout:g}s (connect_timeout);"
                " retry later, or raise max_connections.",
                code="upstream_connections_busy",
            ) from None
        except UpstreamTimeoutError as exc:
            self.metrics.upstream_errors.labels(provider, "timeout").inc()
            raise UpstreamTimeout(
                f"Provider {provider!r} timed out ({type(exc).__name__})."
            ) from None
        except UpstreamTransportError as exc:
            self.metrics.upstream_errors.labels(provider, "unreachable").inc()
            raise UpstreamUnreachable(
                f"Could not reach provider {provider!r} at {upstream.url.origin}:"
                f" {exc or type(exc).__name__}"
            ) from None
        try:
            status = response.status
            span.http_status = status
            headers = _forwarded_headers(response.headers)
            span.response_headers = redact_headers(headers)
            if status >= 400:
                span.status = STATUS_ERROR
                self.metrics.upstream_errors.labels(provider, str(status)).inc()
            content_type = response.content_type
            if span.stream and status == 200 and content_type.startswith("text/event-stream"):
                if translation is not None:
                    translator = translation.stream_translator()
                    inject_usage = translation.hide_usage
                else:
                    translator = None
                await self._relay_stream(response, headers, span, sink, inject_usage, translator)
                return
            limit = self._buffer_limit
            try:
                body = await response.read(limit)
            except UpstreamTransportError as exc:
                raise read_failure(provider, exc) from None
            if len(body) > limit:
                # More than may be held: relayed as it comes, without a length.
                if len(body) > self._response_limit or translation is not None:
                    # Nothing was sent yet: a plain error. (A translated body is whole.)
                    limit = self._response_limit if translation is None else 0
                    raise too_large(provider, limit)
                span.response_body = body[: self._capture_limit]
                mark_truncated(span, self._capture_limit)
                await sink.start(status, _encode_headers(headers, span))
                await sink.send(body)
                sent = len(body)
                del body  # not held while the rest is relayed
                await self._relay_body(response, sent, span, sink)
                return
            if translation is not None:
                body = translation.response_body(status, body)
                headers = [(k, v) for k, v in headers if k != "content-type"]
                headers.append(("content-type", "application/json"))
            span.response_body = body
            await sink.start(
                status,
                _encode_headers(headers, span, ("content-length", str(len(body)))),
            )
            await sink.send(body)
            await sink.end()
            span.end_us = now_us()
        finally:
            await response.aclose()

    async def _relay_body(
        self,
        response: UpstreamResponse,
        received: int,
        span: Span,
        sink: ResponseSink,
    ) -> None:
        """The rest of a non-stream body larger than ``max_capture_bytes``, sent as it
        arrives; its start (``received`` bytes) has gone out already."""
        provider = span.provider
        limit = self._response_limit
        try:
            async for chunk in response.chunks():
                received += len(chunk)
                if received > limit:
                    raise too_large(provider, limit)
                await sink.send(chunk)
        except UpstreamTransportError as exc:
            raise read_failure(provider, exc) from None
        finally:
            span.context.attributes["truncated_capture"]["response_bytes"] = received
        await sink.end()
        span.end_us = now_us()

    async def _relay_stream(
        self,
        response: UpstreamResponse,
        headers: list[tuple[str, str]],
        span: Span,
        sink: ResponseSink,
        inject_usage: bool,
        translator: ChatStreamTranslator | None = None,
    ) -> None:
        fmt = "chat" if translator else STREAM_FORMATS.get(span.operation, "chat")
        span.stream_format = fmt
        capture = StreamCapture(span, self._capture_limit)
        events = span.stream_events = capture.events
        splitter = SSESplitter()
        done = False
        failure: SpanlabError | None = None
        received = 0
        response_limit = self._response_limit
        event_limit = self._event_limit
        await sink.start(200, _encode_headers(headers, span))
        chunks = response.chunks()
        if translator is not None:
            # An Anthropic stream for an OpenAI client: from here on it is a chat stream.
            chunks = translated_stream(chunks, translator)
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > response_limit:
                    raise StreamFailure(too_large(span.provider, response_limit))
                out: list[bytes] = []
                try:
                    for raw in splitter.feed(chunk):
                        if done:
                            continue
                        forward, done = inspect_event(raw, fmt, capture, span, inject_usage)
                        if forward:
                            out.append(raw)
                    if len(splitter.tail) > event_limit:
                        raise StreamFailure(
                            UpstreamProtocol(
                                f"Provider {span.provider!r} sent a stream event larger than"
                                f" {event_limit} bytes (the larger of 16 MiB and"
                                " max_capture_bytes, at most max_response_bytes).",
                                code="response_too_large",
                            )
                        )
                except StreamFailure:
                    # The good events read with the bad one still go out first: what
                    # the client gets must not depend on how the bytes were chunked.
                    if span.first_token_us is None and events:
                        span.first_token_us = now_us()
                    if out:
                        await sink.send(b"".join(out))
                    raise
                # The first event with data, not a keep-alive comment sent while waiting.
                if span.first_token_us is None and events:
                    span.first_token_us = now_us()
                if out:
                    await sink.send(b"".join(out) if len(out) > 1 else out[0])
                if done:
                    break
        except StreamFailure as exc:
            failure = exc.error
        except UpstreamTimeoutError:
            failure = UpstreamTimeout(
                f"Provider {span.provider!r} went silent mid-stream for more than"
                f" read_timeout ({self.settings.read_timeout:g}s)."
            )
        except UpstreamDecodingError as exc:
            failure = undecodable(span.provider, exc)
        except UpstreamTransportError as exc:
            failure = UpstreamProtocol(
                f"Provider {span.provider!r} broke off the stream: {exc or type(exc).__name__}",
                code="upstream_stream_truncated",
            )
        finally:
            if capture.mark is not None:
                capture.mark["response_bytes"] = received
        if failure is None and not done and span.status != STATUS_ERROR:
            failure = UpstreamProtocol(
                f"Provider {span.provider!r} ended the stream before it was complete"
                " (no final event).",
                code="upstream_stream_truncated",
            )
        if failure is not None:
            self._fail(span, failure, responded=True)
            self.metrics.upstream_errors.labels(span.provider or "?", failure.code).inc()
            await sink.send(error_event(fmt, failure))
        await sink.end()
        span.end_us = now_us()
        if done:
            # Read the (normally empty) rest so the connection goes back to the pool.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_AFTER_DONE_S):
                    async for _ in chunks:
                        pass

    async def reject(self, request: ProxyRequest, exc: SpanlabError, sink: ResponseSink) -> None:
        """Answer a request refused before it could be read (body too large), as a span."""
        span = self._start_span(request)
        self._fail(span, exc)
        await send_error(sink, exc, span)
        span.end_us = now_us()
        self._observe(span)
        if self.writer is not None:
            self.writer.submit(span)

    def abandoned(self, request: ProxyRequest) -> None:
        """Record a call whose client hung up while still sending its request."""
        span = self._start_span(request)
        span.status = STATUS_CLIENT_ABORTED
        span.error = {
            "type": STATUS_CLIENT_ABORTED,
            "message": "the client went away before its request was fully sent",
        }
        span.end_us = now_us()
        self._observe(span)
        if self.writer is not None:
            self.writer.submit(span)

    # --- bookkeeping -----------------------------------------------------------------

    @staticmethod
    def _fail(span: Span, exc: SpanlabError, *, responded: bool = False) -> None:
        """Mark the span failed. ``http_status`` stays what the client received: when
        the response had started (a stream), that is the upstream's status."""
        span.status = STATUS_ERROR
        if not responded:
            span.http_status = exc.status_code
        span.error = {"type": exc.error_type, "code": exc.code, "message": exc.message}

    def _observe(self, span: Span) -> None:
        duration = span.duration_ms
        ttft = span.ttft_ms
        self.metrics.observe_call(
            span.provider or "none",
            span.request_model,
            span.status,
            duration / 1000.0 if duration is not None else None,
            ttft / 1000.0 if ttft is not None else None,
        )


def _too_deep_to_rewrite() -> InvalidRequest:
    # orjson reads JSON nested 1,024 levels deep but writes 254: a body the gateway
    # must change (a model prefix, stream usage, a translation) cannot be sent past that.
    return InvalidRequest(
        "Request body is nested too deeply (more than 254 levels) for the gateway to forward it.",
        code="too_deeply_nested",
    )


def _forwarded_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The upstream's response headers that go on to the client. A function of its own
    so the whole decoded list is not held in the caller's frame for a stream's life."""
    # Decoded as latin-1 so `_encode_headers` gives back the bytes received.
    received = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
    named_by_connection = connection_tokens(received)
    return [
        (k, v)
        for k, v in received
        if k not in DROP_RESPONSE_HEADERS and k not in named_by_connection
    ]


def _encode_headers(
    headers: list[tuple[str, str]], span: Span, *extra: tuple[str, str]
) -> list[tuple[bytes, bytes]]:
    out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    out.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
    out.append((b"x-spanlab-trace-id", span.context.trace_id.encode()))
    out.append((b"x-spanlab-span-id", span.context.span_id.encode()))
    return out
