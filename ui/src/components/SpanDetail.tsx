import useSWR from "swr";
import { ApiError, getJson } from "../lib/api";
import { captureNotes, fmtCost, fmtInt, fmtMs, fmtRelative, fmtTags, fmtTime } from "../lib/format";
import { isObject, requestMessages, responseOutput } from "../lib/messages";
import { Link } from "../lib/router";
import type { Experiment, JsonValue, SpanDetail as Span } from "../lib/types";
import { ErrorNote, JsonBlock, KeyValues, Section, StatusBadge } from "./common";
import { MessageList } from "./Messages";

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

export function SpanDetailView({ spanId, onClose }: { spanId: string; onClose?: () => void }) {
  const { data: span, error, isLoading } = useSWR<Span>(`/spans/${encodeURIComponent(spanId)}`);
  if (error) {
    return (
      <div className="span-detail">
        <ErrorNote error={error} />
      </div>
    );
  }
  if (isLoading || !span) return <div className="span-detail muted">Loading span…</div>;

  const usage = span.usage;
  const output = responseOutput(span.response, span.output_text);
  const tools = isObject(span.request) && Array.isArray(span.request.tools) ? span.request.tools : null;
  const params = parametersOf(span.request);
  const model = span.response_model ?? span.request_model ?? "(no model)";

  return (
    <div className="span-detail" data-testid="span-detail">
      <header className="detail-head">
        <div>
          <h2 className="detail-title">
            {model} <StatusBadge status={span.status} title={span.http_status ? `HTTP ${span.http_status}` : undefined} />
          </h2>
          <div className="muted small">
            {span.operation} · {span.provider ?? "no provider"} · {fmtTime(span.start_time)} · {fmtMs(span.duration_ms)}
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

      <Section title="Messages">
        <MessageList messages={requestMessages(span.request)} />
      </Section>

      <Section title="Output">
        <div data-testid="span-output">
          <MessageList messages={output.messages} />
        </div>
        {span.finish_reason && <p className="muted small">finish reason: {span.finish_reason}</p>}
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
              ["streamed", span.stream ? "yes" : "no"],
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

      {isModelCall(span) && (
        <Section title="Experiments from this call">
          <SpanExperiments spanId={span.span_id} />
        </Section>
      )}

      <Section title="Identifiers">
        <KeyValues
          rows={[
            ["span", <code key="s">{span.span_id}</code>],
            ["trace", <code key="t">{span.trace_id}</code>],
            ["parent", span.parent_span_id ?? "\u2013"],
            [
              "thread",
              span.thread_id ? <Link key="th" to={`/?thread=${encodeURIComponent(span.thread_id)}`}>{span.thread_id}</Link> : "\u2013",
            ],
            ["run", span.run_id ?? "\u2013"],
            ["project", span.project_id ?? "\u2013"],
            ["label", span.label ?? "\u2013"],
            ["tags", <span key="tags" data-testid="span-tags">{fmtTags(span.tags)}</span>],
            ["endpoint", `${span.method ?? ""} ${span.path ?? ""}`],
            ["HTTP status", span.http_status ?? "\u2013"],
          ]}
        />
      </Section>

      <Section title="Raw">
        <details>
          <summary>Request JSON</summary>
          <JsonBlock value={span.request} label="raw request" />
        </details>
        <details>
          <summary>Response JSON</summary>
          <JsonBlock value={span.response} label="raw response" />
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
    </div>
  );
}
