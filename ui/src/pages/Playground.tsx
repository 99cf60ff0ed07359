import { useEffect, useRef, useState } from "react";
import useSWR from "swr";
import { ErrorNote } from "../components/common";
import { getJson, request, sendJson } from "../lib/api";
import { fmtCost, fmtInt, fmtMs, fmtRelative } from "../lib/format";
import {
  applyAnswer,
  applyEvent,
  newTurn,
  paramsBody,
  sessionTurns,
  spanPrefill,
  type ChatMessage,
  type Params,
  type PlaygroundAnswer,
  type PlaygroundSessionMessage,
  type PlaygroundTurn,
} from "../lib/playground";
import { Link, navigate, setSearch, useLocation } from "../lib/router";
import { readSse } from "../lib/sse";
import type { Experiment, Page, SpanDetail } from "../lib/types";
import "../styles/lab.css";

interface SessionSummary {
  id: string;
  title: string | null;
  system_prompt: string | null;
  config: { models?: { model: string; provider?: string | null }[]; temperature?: number; top_p?: number; max_tokens?: number } | null;
  updated_at: string;
  message_count: number;
}

interface SessionDetail extends SessionSummary {
  messages: PlaygroundSessionMessage[];
}

const NO_PARAMS: Params = { temperature: "", top_p: "", max_tokens: "" };

function useModels(): string[] {
  const { data } = useSWR<{ data: { id: string }[] }>("/models", { shouldRetryOnError: false });
  return (data?.data ?? []).map((m) => m.id);
}

function Figures({ answer }: { answer: PlaygroundAnswer }) {
  // a session read back has its answers' spans, not their figures: those come from the span
  const stored = useSWR<SpanDetail>(
    !answer.figures && answer.done && answer.spanId ? `/spans/${encodeURIComponent(answer.spanId)}` : null,
    { shouldRetryOnError: false },
  ).data;
  const f = answer.figures ?? (stored ? { latency_ms: stored.duration_ms, ttft_ms: stored.ttft_ms, usage: stored.usage, cost_usd: stored.cost_usd } : null);
  if (!f) return null;
  return (
    <div className="pg-figures small muted" data-testid="answer-figures">
      <span title="latency">{fmtMs(f.latency_ms)}</span>
      {f.ttft_ms !== null && f.ttft_ms !== undefined && <span title="time to first token">TTFT {fmtMs(f.ttft_ms)}</span>}
      <span title={f.usage ? `${fmtInt(f.usage.prompt_tokens)} in / ${fmtInt(f.usage.completion_tokens)} out` : undefined}>
        {fmtInt(f.usage?.total_tokens)} tokens
      </span>
      <span title="cost">{fmtCost(f.cost_usd)}</span>
    </div>
  );
}

function Answer({ answer, sessionId, onSaved }: { answer: PlaygroundAnswer; sessionId: string | null; onSaved: (e: unknown) => void }) {
  const [saving, setSaving] = useState(false);
  const save = async () => {
    if (!sessionId || !answer.spanId) return;
    setSaving(true);
    try {
      const exp = await sendJson<Experiment>("POST", `/playground/sessions/${encodeURIComponent(sessionId)}/experiment`, {
        span_id: answer.spanId,
      });
      navigate(`/experiment?id=${encodeURIComponent(exp.id)}`);
    } catch (err) {
      onSaved(err);
      setSaving(false);
    }
  };
  return (
    <div className={`pg-answer ${answer.done ? "done" : "streaming"}`} data-testid="pg-answer" data-model={answer.model} aria-busy={!answer.done}>
      {answer.error ? (
        <div className="error-note" role="alert">
          {answer.error}
        </div>
      ) : (
        <div className="output-text" data-testid="pg-answer-text">
          {answer.content || (answer.done ? <span className="muted">(empty)</span> : <span className="muted">…</span>)}
        </div>
      )}
      <Figures answer={answer} />
      {answer.spanId && (
        <div className="pg-answer-actions">
          <Link to={`/spans/${encodeURIComponent(answer.spanId)}`} className="btn btn-small" data-testid="answer-span-link">
            Span
          </Link>
          {sessionId && (
            <button type="button" className="btn btn-small" onClick={() => void save()} disabled={saving} data-testid="save-experiment">
              {saving ? "Saving…" : "Save as experiment"}
            </button>
          )}
        </div>
      )}
    </div>
  );
}

function Sessions({ current, onOpen, revision }: { current: string | null; onOpen: (id: string) => void; revision: number }) {
  const { data, error, mutate } = useSWR<Page<SessionSummary>>("/playground/sessions?limit=20", { shouldRetryOnError: false });
  useEffect(() => {
    if (revision) void mutate();
  }, [revision, mutate]);
  if (error) return <ErrorNote error={error} onRetry={() => void mutate()} />;
  if (!data) return <p className="muted small">Loading…</p>;
  if (!data.data.length) return <p className="muted small">No sessions yet.</p>;
  return (
    <ul className="pg-sessions" data-testid="pg-sessions">
      {data.data.map((s) => (
        <li key={s.id}>
          <button
            type="button"
            className={`pg-session ${s.id === current ? "active" : ""}`}
            aria-current={s.id === current ? "true" : undefined}
            onClick={() => onOpen(s.id)}
          >
            <span className="pg-session-title">{s.title || s.id}</span>
            <span className="muted small">
              {(s.config?.models ?? []).map((m) => m.model).join(", ")} · {fmtRelative(s.updated_at)}
            </span>
          </button>
        </li>
      ))}
    </ul>
  );
}

export default function PlaygroundPage() {
  const { search } = useLocation();
  const spanParam = search.get("span_id");
  const sessionParam = search.get("session");
  const available = useModels();
  const [models, setModels] = useState<string[]>([]);
  const [system, setSystem] = useState("");
  const [params, setParams] = useState<Params>(NO_PARAMS);
  const [prompt, setPrompt] = useState("");
  const [context, setContext] = useState<ChatMessage[]>([]);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [turns, setTurns] = useState<PlaygroundTurn[]>([]);
  const [busy, setBusy] = useState(false);
  const [stream, setStream] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const [revision, setRevision] = useState(0);
  // a key for the provider, for this page only: never stored (as the experiment page's)
  const [apiKey, setApiKey] = useState("");
  const abort = useRef<AbortController | null>(null);
  const loaded = useRef<string | null>(null);

  // the first model offered, once the list arrives (a span's model wins)
  useEffect(() => {
    if (!models.length && available.length && !spanParam && !sessionParam) setModels([available[0]!]);
  }, [available, models.length, spanParam, sessionParam]);

  // "Open in playground": a span's messages and model prefill a new session
  useEffect(() => {
    if (!spanParam || loaded.current === `span:${spanParam}`) return;
    loaded.current = `span:${spanParam}`;
    getJson<SpanDetail>(`/spans/${encodeURIComponent(spanParam)}`)
      .then((span) => {
        const pre = spanPrefill(span);
        reset();
        setModels([pre.model ?? available[0] ?? ""]);
        setSystem(pre.system);
        setContext(pre.context);
        setPrompt(pre.prompt);
        setParams({
          temperature: pre.temperature === null ? "" : String(pre.temperature),
          top_p: pre.top_p === null ? "" : String(pre.top_p),
          max_tokens: pre.max_tokens === null ? "" : String(pre.max_tokens),
        });
      })
      .catch(setError);
  }, [spanParam]); // eslint-disable-line react-hooks/exhaustive-deps

  // a stored session (?session=ID) reads back as its turns
  useEffect(() => {
    if (!sessionParam || loaded.current === `session:${sessionParam}` || sessionParam === sessionId) return;
    loaded.current = `session:${sessionParam}`;
    getJson<SessionDetail>(`/playground/sessions/${encodeURIComponent(sessionParam)}`)
      .then((s) => {
        const cfg = s.config ?? {};
        const read = sessionTurns(s.messages, (cfg.models ?? []).map((m) => m.model));
        reset();
        setSessionId(s.id);
        setModels(read.models);
        setTurns(read.turns);
        setSystem(s.system_prompt ?? "");
        setParams({
          temperature: cfg.temperature === undefined || cfg.temperature === null ? "" : String(cfg.temperature),
          top_p: cfg.top_p === undefined || cfg.top_p === null ? "" : String(cfg.top_p),
          max_tokens: cfg.max_tokens === undefined || cfg.max_tokens === null ? "" : String(cfg.max_tokens),
        });
      })
      .catch(setError);
  }, [sessionParam]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => () => abort.current?.abort(), []);

  function reset() {
    abort.current?.abort();
    setSessionId(null);
    setTurns([]);
    setContext([]);
    setError(null);
    setBusy(false);
  }

  const newSession = () => {
    reset();
    setPrompt("");
    loaded.current = null;
    setSearch({ session: null, span_id: null });
  };

  const chosen = models.map((m) => m.trim()).filter(Boolean);
  const { body: paramBody, error: paramError } = paramsBody(params);

  const send = async () => {
    const text = prompt.trim();
    if (!text || !chosen.length || paramError || busy) return;
    const first = sessionId === null;
    const turn = newTurn(text, chosen, first ? context : []);
    const at = turns.length;
    setTurns((ts) => [...ts, turn]);
    setPrompt("");
    setBusy(true);
    setError(null);
    const update = (change: (t: PlaygroundTurn) => PlaygroundTurn) =>
      setTurns((ts) => ts.map((t, i) => (i === at ? change(t) : t)));
    const body: Record<string, unknown> = {
      models: chosen,
      stream,
      ...paramBody,
      ...(system.trim() ? { system_prompt: system } : {}),
      ...(sessionId ? { session_id: sessionId } : {}),
    };
    if (first && context.length) body.messages = [...context, { role: "user", content: text }];
    else body.prompt = text;
    const controller = new AbortController();
    abort.current = controller;
    let started: string | null = null;
    const begin = (id: string) => {
      started = id;
      setSessionId(id);
      // the URL names the session from now on: the load effect must not read it back
      loaded.current = `session:${id}`;
    };
    try {
      const response = await request("/playground/complete", {
        method: "POST",
        body: JSON.stringify(body),
        signal: controller.signal,
        headers: apiKey.trim() ? { authorization: `Bearer ${apiKey.trim()}` } : undefined,
      });
      if (stream && response.body) {
        for await (const ev of readSse(response.body)) {
          let data: unknown;
          try {
            data = JSON.parse(ev.data);
          } catch {
            continue; // a keep-alive or a malformed event: nothing to show
          }
          if (ev.event === "start" && typeof (data as { session_id?: unknown }).session_id === "string") {
            begin((data as { session_id: string }).session_id);
          }
          update((t) => applyEvent(t, ev.event, data));
        }
      } else {
        const answer = (await response.json()) as { session_id?: string };
        if (answer.session_id) begin(answer.session_id);
        update((t) => applyAnswer(t, answer));
      }
      // done: the session's URL (shareable, survives a reload), and the list shows it
      if (started && first) setSearch({ session: started, span_id: null });
      setRevision((r) => r + 1);
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") return;
      // a refused request sent nothing: the turn goes, the prompt comes back
      setTurns((ts) => ts.filter((_, i) => i !== at));
      setPrompt(text);
      setError(err);
    } finally {
      if (abort.current === controller) abort.current = null;
      setBusy(false);
    }
  };

  const locked = sessionId !== null; // a session's models and system prompt are fixed once it starts
  const columns = Math.max(chosen.length, 1);

  return (
    <div className="page pg-page" data-testid="playground-page">
      <header className="page-head">
        <h1>Playground</h1>
        <span className="spacer" />
        <button type="button" className="btn" onClick={newSession} data-testid="new-session">
          New session
        </button>
      </header>
      <div className="pg-layout">
        <div className="pg-main">
          <section className="panel pg-setup" aria-label="Models and parameters">
            <datalist id="pg-models-list">
              {available.map((m) => (
                <option key={m} value={m} />
              ))}
            </datalist>
            <div className="pg-models">
              {models.map((m, i) => (
                <div className="pg-model" key={i}>
                  <label className="filter">
                    <span>Model {i + 1}</span>
                    <input
                      value={m}
                      list="pg-models-list"
                      aria-label={`Model ${i + 1}`}
                      data-testid="pg-model"
                      disabled={locked}
                      onChange={(e) => setModels(models.map((x, j) => (j === i ? e.target.value : x)))}
                    />
                  </label>
                  {models.length > 1 && !locked && (
                    <button
                      type="button"
                      className="icon-btn"
                      aria-label={`Remove model ${i + 1}`}
                      onClick={() => setModels(models.filter((_, j) => j !== i))}
                    >
                      {"\u2715"}
                    </button>
                  )}
                </div>
              ))}
              {!locked && models.length < 8 && (
                <button
                  type="button"
                  className="btn btn-small"
                  data-testid="add-model"
                  onClick={() => setModels([...models, available.find((a) => !models.includes(a)) ?? available[0] ?? ""])}
                >
                  + Add model
                </button>
              )}
            </div>
            <label className="filter pg-system">
              <span>System prompt</span>
              <textarea
                value={system}
                rows={2}
                onChange={(e) => setSystem(e.target.value)}
                disabled={locked}
                aria-label="System prompt"
                placeholder="optional"
              />
            </label>
            <div className="pg-params">
              {(
                [
                  ["temperature", "Temperature", "0–2"],
                  ["top_p", "Top P", "0–1"],
                  ["max_tokens", "Max tokens", "1–32768"],
                ] as const
              ).map(([name, label, range]) => (
                <label className="filter" key={name}>
                  <span>{label}</span>
                  <input
                    inputMode="decimal"
                    value={params[name]}
                    placeholder={`unset (${range})`}
                    aria-label={label}
                    onChange={(e) => setParams({ ...params, [name]: e.target.value })}
                  />
                </label>
              ))}
              <label className="filter">
                <span>API key (memory only)</span>
                <input
                  type="password"
                  autoComplete="off"
                  value={apiKey}
                  placeholder="not needed when the gateway has it"
                  aria-label="API key for the playground"
                  onChange={(e) => setApiKey(e.target.value)}
                />
              </label>
              <label className="filter checkbox pg-stream">
                <span>
                  <input type="checkbox" checked={stream} onChange={(e) => setStream(e.target.checked)} /> Stream
                </span>
              </label>
            </div>
            {paramError && <div className="field-error">{paramError}</div>}
          </section>

          <section className="pg-chat" aria-label="Conversation" aria-live="polite">
            {turns.length === 0 && context.length > 0 && <ContextMessages messages={context} />}
            {turns.map((turn, t) => (
              <div className="pg-turn" key={t} data-testid="pg-turn">
                {turn.context.length > 0 && <ContextMessages messages={turn.context} />}
                <div className="msg role-user pg-user">
                  <div className="msg-role">user</div>
                  <div className="part-text">{turn.prompt}</div>
                </div>
                {turn.error && <ErrorNote error={turn.error} />}
                <div className="pg-columns" style={{ ["--pg-columns" as string]: String(Math.max(turn.answers.length, columns)) }}>
                  {turn.answers.map((a, i) => (
                    <div className="pg-column" key={i} data-testid="pg-column" data-index={i}>
                      <div className="pg-column-head small">
                        <span className="model-cell">{a.model}</span>
                      </div>
                      <Answer answer={a} sessionId={sessionId} onSaved={setError} />
                    </div>
                  ))}
                </div>
              </div>
            ))}
          </section>

          <ErrorNote error={error} />
          <form
            className="pg-composer"
            onSubmit={(e) => {
              e.preventDefault();
              void send();
            }}
          >
            <textarea
              value={prompt}
              rows={3}
              aria-label="Message"
              placeholder={sessionId ? "Next message (Ctrl+Enter sends)" : "Message (Ctrl+Enter sends)"}
              data-testid="pg-prompt"
              onChange={(e) => setPrompt(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                  e.preventDefault();
                  void send();
                }
              }}
            />
            <button
              type="submit"
              className="btn btn-primary"
              disabled={busy || !prompt.trim() || !chosen.length || Boolean(paramError)}
              data-testid="pg-send"
            >
              {busy ? "Answering…" : chosen.length > 1 ? `Send to ${chosen.length} models` : "Send"}
            </button>
            {busy && (
              <button type="button" className="btn" onClick={() => abort.current?.abort()}>
                Stop
              </button>
            )}
          </form>
          {sessionId && (
            <p className="muted small">
              Session <code>{sessionId}</code> · its calls are in the thread{" "}
              <Link to={`/?thread=${encodeURIComponent(`playground:${sessionId}`)}`}>playground:{sessionId}</Link>
            </p>
          )}
        </div>
        <aside className="panel pg-side" aria-label="Recent sessions">
          <h3>Recent sessions</h3>
          <Sessions
            current={sessionId}
            revision={revision}
            onOpen={(id) => {
              loaded.current = null;
              setSearch({ session: id, span_id: null }, { replace: false });
            }}
          />
        </aside>
      </div>
    </div>
  );
}

function ContextMessages({ messages }: { messages: ChatMessage[] }) {
  return (
    <div className="pg-context" data-testid="pg-context">
      {messages.map((m, i) => (
        <div className={`msg role-${m.role}`} key={i}>
          <div className="msg-role">{m.role}</div>
          <div className="part-text">{m.content}</div>
        </div>
      ))}
    </div>
  );
}
