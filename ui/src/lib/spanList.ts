// The traces list: first page, then cursor pages on demand, with live spans merged in.
// Each cursor is requested at most once per filter set, so scrolling never sends the
// same request twice; a change of filters drops in-flight requests.

import { useCallback, useEffect, useReducer, useRef } from "react";
import { getJson, query } from "./api";
import type { Page, SpanSummary } from "./types";

export interface SpanFilters {
  model?: string;
  provider?: string;
  status?: string;
  thread?: string;
  label?: string;
  q?: string;
  range?: string;
  since?: string;
  until?: string;
  /** Experiment replays (origin `experiment`): shown (unset), `hide` or `only`. */
  replays?: string;
}

export const FILTER_KEYS = ["model", "provider", "status", "thread", "label", "q", "range", "since", "until", "replays"] as const;

/** The origin of an experiment's replay (gateway/capture/origin.py). */
export const REPLAY_ORIGIN = "experiment";

/** Whether a span is a call the gateway made itself (a replay), not an app's. */
export function isReplay(span: Pick<SpanSummary, "origin">): boolean {
  return typeof span.origin === "string" && span.origin !== "app";
}

export const RANGES: Record<string, number> = {
  "15m": 15 * 60,
  "1h": 3600,
  "24h": 86400,
  "7d": 7 * 86400,
};

export function filtersFrom(search: URLSearchParams): SpanFilters {
  const out: SpanFilters = {};
  for (const key of FILTER_KEYS) {
    const value = search.get(key);
    if (value) out[key] = value;
  }
  return out;
}

/** since/until in microseconds, from a preset range or explicit times. */
export function timeBounds(f: SpanFilters, nowMs = Date.now()): { sinceUs: number | null; untilUs: number | null } {
  const preset = f.range ? RANGES[f.range] : undefined;
  const parse = (v?: string) => {
    if (!v) return null;
    const t = new Date(v).getTime();
    return Number.isNaN(t) ? null : t * 1000;
  };
  return {
    sinceUs: preset !== undefined ? (nowMs - preset * 1000) * 1000 : parse(f.since),
    untilUs: preset !== undefined ? null : parse(f.until),
  };
}

/** The server's filter parameters for ``f`` (shared by /spans and /stats). */
export function filterParams(
  f: SpanFilters,
  bounds: { sinceUs: number | null; untilUs: number | null } = timeBounds(f),
): Record<string, string | undefined | null> {
  const { sinceUs, untilUs } = bounds;
  return {
    model: f.model,
    provider: f.provider,
    status: f.status,
    thread: f.thread,
    label: f.label,
    q: f.q,
    since: sinceUs === null ? null : (sinceUs / 1e6).toFixed(3),
    until: untilUs === null ? null : (untilUs / 1e6).toFixed(3),
    origin: f.replays === "only" ? REPLAY_ORIGIN : null,
    exclude_origin: f.replays === "hide" ? REPLAY_ORIGIN : null,
  };
}

export function spansQuery(f: SpanFilters, limit: number, cursor?: string | null): string {
  return query({ ...filterParams(f), limit, cursor });
}

/** Whether a live span belongs in the current view (the server's filters, re-applied). */
export function matchesFilters(span: SpanSummary, f: SpanFilters, nowMs = Date.now()): boolean {
  if (f.model && span.request_model !== f.model && span.response_model !== f.model) return false;
  if (f.provider && span.provider !== f.provider) return false;
  if (f.status && span.status !== f.status) return false;
  if (f.thread && span.thread_id !== f.thread) return false;
  if (f.label && span.label !== f.label) return false;
  if (f.replays === "hide" && span.origin === REPLAY_ORIGIN) return false;
  if (f.replays === "only" && span.origin !== REPLAY_ORIGIN) return false;
  const { sinceUs, untilUs } = timeBounds(f, nowMs);
  if (sinceUs !== null && span.start_us < sinceUs) return false;
  if (untilUs !== null && span.start_us > untilUs) return false;
  if (f.q) {
    const needle = f.q.toLowerCase();
    const hay = `${span.input_preview ?? ""}\n${span.output_text ?? ""}`.toLowerCase();
    if (!hay.includes(needle)) return false;
  }
  return true;
}

interface State {
  items: SpanSummary[];
  cursor: string | null;
  done: boolean;
  loading: boolean;
  error: unknown;
  fresh: Set<string>;
}

type Action =
  | { type: "reset" }
  | { type: "loading" }
  | { type: "page"; page: Page<SpanSummary>; first: boolean }
  | { type: "error"; error: unknown }
  | { type: "live"; span: SpanSummary }
  | { type: "merge"; page: Page<SpanSummary> };

const initial: State = { items: [], cursor: null, done: false, loading: true, error: null, fresh: new Set() };

function byNewest(a: SpanSummary, b: SpanSummary): number {
  return b.start_us - a.start_us || (b.span_id < a.span_id ? -1 : b.span_id > a.span_id ? 1 : 0);
}

function reducer(state: State, action: Action): State {
  switch (action.type) {
    case "reset":
      return { ...initial, fresh: new Set() };
    case "loading":
      return { ...state, loading: true, error: null };
    case "error":
      return { ...state, loading: false, error: action.error };
    case "page": {
      const seen = new Set(action.first ? [] : state.items.map((s) => s.span_id));
      const base = action.first ? [] : state.items;
      const added = action.page.data.filter((s) => !seen.has(s.span_id));
      return {
        ...state,
        items: [...base, ...added],
        cursor: action.page.next_cursor,
        done: action.page.next_cursor === null,
        loading: false,
        error: null,
      };
    }
    case "live": {
      if (state.items.some((s) => s.span_id === action.span.span_id)) return state;
      const fresh = new Set(state.fresh);
      fresh.add(action.span.span_id);
      return { ...state, items: [action.span, ...state.items].sort(byNewest), fresh };
    }
    case "merge": {
      const seen = new Set(state.items.map((s) => s.span_id));
      const added = action.page.data.filter((s) => !seen.has(s.span_id));
      if (!added.length) return state;
      return { ...state, items: [...added, ...state.items].sort(byNewest) };
    }
  }
}

export function useSpanList(filters: SpanFilters, pageSize = 50) {
  const [state, dispatch] = useReducer(reducer, initial);
  const key = JSON.stringify(filters);
  const generation = useRef(0);
  const requested = useRef(new Set<string>());
  const inFlight = useRef(false);
  const abort = useRef<AbortController | null>(null);
  const filtersRef = useRef(filters);
  filtersRef.current = filters;

  const fetchPage = useCallback(
    async (cursor: string | null, kind: "first" | "more" | "merge") => {
      const gen = generation.current;
      const controller = new AbortController();
      if (kind !== "merge") abort.current = controller;
      inFlight.current = kind !== "merge" || inFlight.current;
      if (kind !== "merge") dispatch({ type: "loading" });
      try {
        const page = await getJson<Page<SpanSummary>>(`/spans${spansQuery(filtersRef.current, pageSize, cursor)}`, {
          signal: controller.signal,
        });
        if (gen !== generation.current) return;
        dispatch(kind === "merge" ? { type: "merge", page } : { type: "page", page, first: kind === "first" });
      } catch (error) {
        if (gen !== generation.current || (error instanceof DOMException && error.name === "AbortError")) return;
        if (kind !== "merge") dispatch({ type: "error", error });
        if (cursor && kind === "more") requested.current.delete(cursor); // allow a retry
      } finally {
        if (gen === generation.current && kind !== "merge") inFlight.current = false;
      }
    },
    [pageSize],
  );

  useEffect(() => {
    generation.current += 1;
    abort.current?.abort();
    requested.current = new Set();
    inFlight.current = false;
    dispatch({ type: "reset" });
    void fetchPage(null, "first");
    return () => abort.current?.abort();
  }, [key, fetchPage]);

  const loadMore = useCallback(() => {
    const cursor = state.cursor;
    if (state.done || state.error || inFlight.current || !cursor || requested.current.has(cursor)) return;
    requested.current.add(cursor);
    void fetchPage(cursor, "more");
  }, [state.cursor, state.done, state.error, fetchPage]);

  const addLive = useCallback((span: SpanSummary) => {
    if (matchesFilters(span, filtersRef.current)) dispatch({ type: "live", span });
  }, []);

  const resync = useCallback(() => void fetchPage(null, "merge"), [fetchPage]);
  const retry = useCallback(() => {
    if (state.items.length === 0) void fetchPage(null, "first");
    else if (state.cursor) {
      requested.current.delete(state.cursor);
      dispatch({ type: "loading" });
      requested.current.add(state.cursor);
      void fetchPage(state.cursor, "more");
    }
  }, [state.items.length, state.cursor, fetchPage]);

  return { ...state, loadMore, addLive, resync, retry };
}
