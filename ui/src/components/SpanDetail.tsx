import useSWR from "swr";
import { ApiError, getJson } from "../lib/api";
import { useMemo } from "react";
import { captureNotes, DASH, fmtCost, fmtInt, fmtMs, fmtRelative, fmtTags, fmtTime } from "../lib/format";
import { elideVectors, embeddingsSummary, isObject, modelIds, requestMessages, responseOutput, type DisplayMessage } from "../lib/messages";
import { Link } from "../lib/router";
import { checkSpan } from "../lib/spanShape";
import type { Experiment, JsonValue, SpanDetail as Span } from "../lib/types";
import { ErrorNote, JsonBlock, KeyValues, Section, StatusBadge } from "./common";
import { ErrorBoundary } from "./ErrorBoundary";
import { SpanFeedback } from "./SpanFeedback";
import { Id, MessageList } from "./Messages";
import { TraceWaterfall } from "./Waterfall";
import "../styles/detail.css";

const MODEL_CALLS = new Set(["chat", "completions", "responses", "messages"]);
const NOT_PARAMETERS = new Set(["messages", "system", "input", "instructions", "prompt", "tools", "model"]);

export function isModelCall(span: { operation: string | null; request?: JsonValue }): boolean {
  return MODEL_CALLS.has(span.operation ?? "") && (span.request === undefined || isObject(span.request));
}

function parametersOf(request: JsonValue): [string, string][] {
  if (!isObject(request)) return [];
  return Object.entries(request)
    .filter(([k]) => !NOT_PARAMETERS.has(k))
    .map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]);
}

function SpanExperiments({ spanId }: { spanId: string }) {
  const { data, error } = useSWR<{ data: Experiment[] }>(
    `/experiments/by-span/${encodeURIComponent(spanId)}`,
    getJson,
    { shouldRetryOnError: false },
  );
  if (error instanceof ApiError && error.noRoute) return <p className="muted small">Experiments are not available on this gateway.</p>;
  if (error) return <ErrorNote error={error} />;
  if (!data) return <p className="muted small">Loading…</p>;
  if (!data.data.length) return <p className="muted small">No experiments from this call yet.</p>;
  return (
    <ul className="plain-list" data-testid="span-experiments">
      {data.data.map((exp) => (
        <li key={exp.id}>
          <Link to={`/experiment?id=${encodeURIComponent(exp.id)}`}>{exp.name}</Link>{" "}
          <StatusBadge status={exp.status} />{" "}
          <span className="muted small">{fmtRelative(exp.updated_at ?? exp.created_at)}</span>
        </li>
      ))}
    </ul>
  );
}

/** The model a cost was looked up under, when it is not the one the upstream named. */
function pricedAs(attributes: unknown): [string, string][] {
  if (attributes === null || typeof attributes !== "object" || Array.isArray(attributes)) return [];
  const model = (attributes as Record<string, unknown>)["spanlab.cost.priced_model"];
  return typeof model === "string" ? [["priced as", model]] : [];
}

/** The fields of the record the view had to leave out, named, so a malformed record
 * shows what it can and says what it could not. */
function RecordProblems({ problems }: { problems: string[] }) {
  if (!problems.length) return null;
  return (
    <div className="capture-note record-problems" role="note" data-testid="record-problems">
      Some fields of this record have unexpected types and are shown as missing (the raw record is below):
      <ul>
        {problems.map((p) => (
          <li key={p}>
            <code>{p}</code>
          </li>
        ))}
      </ul>
    </div>
  );
}

function EmbeddingsView({ span }: { span: Span }) {
  const e = embeddingsSummary(span.request, span.response);
  const raw = isObject(span.request) ? span.request.input : undefined;
  const texts = typeof raw === "string" ? [raw] : Array.isArray(raw) ? raw.filter((i): i is string => typeof i === "string") : [];
  const inputs: DisplayMessage[] = texts.map((text) => ({ role: "input", parts: [{ kind: "text", text }] }));
  return (
    <>
      <Section title="Embeddings">
        <div data-testid="embeddings-summary">
          <KeyValues
            rows={[
              ["inputs", e.inputs === null ? DASH : `${fmtInt(e.inputs)}${e.inputKind === "tokens" ? " (token ids)" : ""}`],
              ["vectors returned", fmtInt(e.vectors)],
              ["dimensions", fmtInt(e.dimensions)],
              ...(e.requestedDimensions !== null ? ([["dimensions requested", fmtInt(e.requestedDimensions)]] as [string, string][]) : []),
              ["encoding", e.encodingFormat ?? "float"],
            ]}
          />
        </div>
        <p className="muted small">The vectors themselves are not shown.</p>
      </Section>
      {inputs.length > 0 && (
        <Section title={`Inputs (${fmtInt(inputs.length)})`}>
          <MessageList messages={inputs} />
        </Section>
      )}
    </>
  );
}

function ModelsView({ span }: { span: Span }) {
  const ids = modelIds(span.response);
  return (
    <Section title={ids ? `Models (${fmtInt(ids.length)})` : "Models"}>
      {ids === null ? (
        <p className="muted">No model list in the response.</p>
      ) : ids.length === 0 ? (
        <p className="muted">The provider listed no models.</p>
      ) : (
        <ul className="model-ids" data-testid="model-ids">
          {ids.map((id, i) => (
            <li key={`${id}-${i}`}>
              <Id value={id} />
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function ConversationView({ span }: { span: Span }) {
  const output = responseOutput(span.response, span.output_text);
  return (
    <>
      <Section title={span.operation === "responses" ? "Input items" : "Messages"}>
        <MessageList messages={requestMessages(span.request)} />
      </Section>
      <Section title={span.operation === "responses" ? "Output items" : "Output"}>
        <div data-testid="span-output">
          <MessageList messages={output.messages} />
        </div>
        {span.finish_reason && <p className="muted small">finish reason: {span.finish_reason}</p>}
      </Section>
    </>
  );
}

/** `POST /v1/messages/count_tokens`: the messages counted and the count. */
function CountTokensView({ span }: { span: Span }) {
  const count = isObject(span.response) && typeof span.response.input_tokens === "number" ? span.response.input_tokens : null;
  return (
    <>
      <Section title="Messages counted">
        <MessageList messages={requestMessages(span.request)} />
      </Section>
      <Section title="Token count">
        <KeyValues rows={[["input tokens", <span key="n" data-testid="counted-tokens">{fmtInt(count)}</span>]]} />
      </Section>
    </>
  );
}

function SpanBody({ span, problems, inDrawer }: { span: Span; problems: string[]; inDrawer: boolean }) {
  const usage = span.usage;
  const tools = isObject(span.request) && Array.isArray(span.request.tools) ? span.request.tools : null;
  const params = parametersOf(span.request);
  const idOr = (v: string | null) => (v ? <Id value={v} /> : DASH);
  return (
    <>
      <RecordProblems problems={problems} />

      {span.error !== null && span.error !== undefined && (
        <Section title="Error">
          <JsonBlock value={span.error} label="error" />
        </Section>
      )}

      {captureNotes(span.attributes).map((note) => (
        <p key={note} className="capture-note" role="note" data-testid="capture-note">
          {note}
        </p>
      ))}

      {span.operation === "embeddings" ? (
        <EmbeddingsView span={span} />
      ) : span.operation === "models" ? (
        <ModelsView span={span} />
      ) : span.operation === "count_tokens" ? (
        <CountTokensView span={span} />
      ) : (
        <ConversationView span={span} />
      )}

      <Section title="Feedback and scores">
        <SpanFeedback spanId={span.span_id} />
      </Section>

      <div className="grid-2">
        <Section title="Usage and cost">
          <KeyValues
            rows={[
              ["prompt tokens", fmtInt(usage?.prompt_tokens)],
              ["completion tokens", fmtInt(usage?.completion_tokens)],
              ["total tokens", fmtInt(usage?.total_tokens)],
              ["cached tokens", fmtInt(usage?.cached_tokens)],
              ["cost", fmtCost(span.cost_usd)],
              ...pricedAs(span.attributes),
            ]}
          />
        </Section>
        <Section title="Timings">
          <KeyValues
            rows={[
              ["started", fmtTime(span.start_time)],
              ["ended", fmtTime(span.end_time)],
              ["latency", fmtMs(span.duration_ms)],
              ["time to first token", fmtMs(span.ttft_ms)],
              ["streamed", span.stream === null ? DASH : span.stream ? "yes" : "no"],
            ]}
          />
        </Section>
      </div>

      {params.length > 0 && (
        <Section title="Parameters">
          <KeyValues rows={params.map(([k, v]) => [k, <code key={k}>{v}</code>])} />
        </Section>
      )}

      {tools && (
        <Section title={`Tools (${tools.length})`}>
          <JsonBlock value={tools} label="tools" />
        </Section>
      )}

      {span.trace_id && (
        <Section title="Trace">
          <TraceWaterfall traceId={span.trace_id} currentSpanId={span.span_id} inDrawer={inDrawer} />
        </Section>
      )}

      {isModelCall(span) && (
        <Section title="Experiments from this call">
          <SpanExperiments spanId={span.span_id} />
        </Section>
      )}

      <Section title="Identifiers">
        <KeyValues
          rows={[
            ["span", <Id key="s" value={span.span_id} />],
            ["trace", idOr(span.trace_id)],
            ["parent", idOr(span.parent_span_id)],
            [
              "thread",
              span.thread_id ? (
                <Link key="th" to={`/threads?thread=${encodeURIComponent(span.thread_id)}`}>
                  <Id value={span.thread_id} />
                </Link>
              ) : (
                DASH
              ),
            ],
            ["run", idOr(span.run_id)],
            ["project", idOr(span.project_id)],
            ["label", span.label ?? DASH],
            ["tags", <span key="tags" data-testid="span-tags">{fmtTags(span.tags)}</span>],
            ["endpoint", `${span.method ?? ""} ${span.path ?? ""}`],
            ["HTTP status", span.http_status ?? DASH],
          ]}
        />
      </Section>

      <Section title="Raw">
        <details>
          <summary>Request JSON</summary>
          <JsonBlock value={span.request} label="raw request" />
        </details>
        <details>
          <summary>Response JSON{span.operation === "embeddings" ? " (vectors left out)" : ""}</summary>
          <JsonBlock value={span.operation === "embeddings" ? elideVectors(span.response) : span.response} label="raw response" />
        </details>
        <details>
          <summary>Headers</summary>
          <JsonBlock value={{ request: span.request_headers, response: span.response_headers } as JsonValue} label="headers" />
        </details>
        {span.otel_attributes && (
          <details>
            <summary>OpenTelemetry attributes</summary>
            <JsonBlock value={span.otel_attributes as JsonValue} label="otel attributes" />
          </details>
        )}
      </Section>
    </>
  );
}

export function SpanDetailView({ spanId, onClose }: { spanId: string; onClose?: () => void }) {
  const { data: raw, error, isLoading } = useSWR<unknown>(`/spans/${encodeURIComponent(spanId)}`);
  const checked = useMemo(() => (raw === undefined ? null : checkSpan(raw, spanId)), [raw, spanId]);
  if (error) {
    return (
      <div className="span-detail">
        <ErrorNote error={error} />
      </div>
    );
  }
  if (isLoading || !checked) return <div className="span-detail muted">Loading span…</div>;
  const { span, problems } = checked;
  const model = span.response_model ?? span.request_model ?? "(no model)";

  // The head (the span's id and the close button) stays outside the boundary: if the
  // body cannot be shown, the error card sits under the id of the record that failed.
  return (
    <div className="span-detail" data-testid="span-detail" data-span-id={span.span_id}>
      <header className="detail-head">
        <div>
          <h2 className="detail-title">
            {model} <StatusBadge status={span.status} title={span.http_status ? `HTTP ${span.http_status}` : undefined} />
          </h2>
          <div className="muted small">
            {span.operation ?? "call"} · {span.provider ?? "no provider"} · {fmtTime(span.start_time)} · {fmtMs(span.duration_ms)}
          </div>
          <div className="muted small" data-testid="detail-span-id">
            span <Id value={span.span_id} />
          </div>
        </div>
        <div className="detail-actions">
          {isModelCall(span) && (
            <Link
              to={`/experiment?span_id=${encodeURIComponent(span.span_id)}`}
              className="btn btn-primary"
              data-testid="experiment-button"
            >
              {"\u2726"} Experiment
            </Link>
          )}
          {isModelCall(span) && (
            <Link to={`/playground?span_id=${encodeURIComponent(span.span_id)}`} className="btn" data-testid="playground-button">
              Open in playground
            </Link>
          )}
          {onClose && (
            <>
              <Link to={`/spans/${encodeURIComponent(span.span_id)}`} className="btn">
                Open as page
              </Link>
              <button type="button" className="btn" onClick={onClose} aria-label="Close detail">
                {"\u2715"}
              </button>
            </>
          )}
        </div>
      </header>
      <ErrorBoundary key={span.span_id} what="span" recordId={span.span_id}>
        <SpanBody span={span} problems={problems} inDrawer={Boolean(onClose)} />
      </ErrorBoundary>
    </div>
  );
}
