import { useCallback, useEffect, useMemo, useRef, useState, type CSSProperties } from "react";
import useSWR from "swr";
import { SpanDetailView } from "../components/SpanDetail";
import { ErrorBoundary } from "../components/ErrorBoundary";
import { ErrorNote, StatusBadge } from "../components/common";
import { ResizeHandle, clampWidth } from "../components/ResizeHandle";
import { TraceSummary } from "../components/TraceSummary";
import { AddToDataset } from "../components/AddToDataset";
import { toggled, toggledAll } from "../lib/datasets";
import { fmtCost, fmtInt, fmtMs, fmtUs, truncate } from "../lib/format";
import { useLiveSpans } from "../lib/live";
import { Link, setSearch, useLocation } from "../lib/router";
import { filterParams, filtersFrom, isReplay, RANGES, timeBounds, useSpanList, type SpanFilters } from "../lib/spanList";
import type { SpanSummary } from "../lib/types";
import "../styles/traces.css";

/** GET /spans/facets: the values the filters can take (a small table, not a scan). */
interface Facets {
  models: string[];
  providers: string[];
  labels: string[];
}

function useFacets(): Facets {
  const { data } = useSWR<Facets>("/spans/facets", { shouldRetryOnError: false });
  return { models: data?.models ?? [], providers: data?.providers ?? [], labels: data?.labels ?? [] };
}

// The drawer's width (px): remembered across visits; at least MIN, and never so wide
// that the table loses the columns a user compares (what TABLE_MIN leaves them).
const DRAWER_KEY = "spanlab.drawerWidth";
const DRAWER_MIN = 340;
const DRAWER_DEFAULT = 480;
const TABLE_MIN = 520;
const SIDEBAR = 190;

function drawerMax(): number {
  return Math.max(DRAWER_MIN, window.innerWidth - SIDEBAR - TABLE_MIN);
}

function useDrawerWidth(): [number, (width: number) => void] {
  const [width, setWidth] = useState(() => {
    const saved = Number(window.localStorage?.getItem(DRAWER_KEY));
    return clampWidth(Number.isFinite(saved) && saved > 0 ? saved : DRAWER_DEFAULT, DRAWER_MIN, drawerMax());
  });
  const set = useCallback((next: number) => {
    setWidth(next);
    try {
      window.localStorage?.setItem(DRAWER_KEY, String(next));
    } catch {
      // storage refused (private mode): the width lasts for this visit
    }
  }, []);
  return [width, set];
}

/** Whether a key press is typing (in a field), not a command for the list. */
function typing(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

/** A text filter: typed locally, written to the URL after a pause or on Enter. */
function TextFilter({ name, label, value, list }: { name: keyof SpanFilters; label: string; value: string; list?: string }) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  useEffect(() => {
    if (text === value) return;
    const timer = window.setTimeout(() => setSearch({ [name]: text.trim() || null, span: null }), 350);
    return () => window.clearTimeout(timer);
  }, [text, value, name]);
  return (
    <label className="filter">
      <span>{label}</span>
      <input
        type={name === "q" ? "search" : "text"}
        value={text}
        list={list}
        placeholder={name === "q" ? "Search requests and outputs" : "any"}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") setSearch({ [name]: text.trim() || null, span: null });
        }}
        aria-label={label}
        name={name}
      />
    </label>
  );
}

function toLocalInput(iso?: string): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function Filters({ filters }: { filters: SpanFilters }) {
  const { models, providers, labels } = useFacets();
  const range = filters.range ?? (filters.since || filters.until ? "custom" : "");
  const [custom, setCustom] = useState(range === "custom");
  const active = Object.keys(filters).length > 0;
  return (
    <div className="filters" role="search">
      <TextFilter name="q" label="Search" value={filters.q ?? ""} />
      <TextFilter name="model" label="Model" value={filters.model ?? ""} list="models-list" />
      <datalist id="models-list">
        {models.map((m) => (
          <option key={m} value={m} />
        ))}
      </datalist>
      <label className="filter">
        <span>Provider</span>
        <select
          value={filters.provider ?? ""}
          onChange={(e) => setSearch({ provider: e.target.value || null, span: null })}
          aria-label="Provider"
        >
          <option value="">any</option>
          {[...new Set([...providers, ...(filters.provider ? [filters.provider] : [])])].map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </label>
      <label className="filter">
        <span>Status</span>
        <select
          value={filters.status ?? ""}
          onChange={(e) => setSearch({ status: e.target.value || null, span: null })}
          aria-label="Status"
        >
          <option value="">any</option>
          <option value="ok">ok</option>
          <option value="error">error</option>
          <option value="client_aborted">client aborted</option>
          <option value="interrupted">interrupted</option>
        </select>
      </label>
      <TextFilter name="thread" label="Thread" value={filters.thread ?? ""} />
      <TextFilter name="label" label="Label" value={filters.label ?? ""} list="labels-list" />
      <datalist id="labels-list">
        {labels.map((l) => (
          <option key={l} value={l} />
        ))}
      </datalist>
      <label className="filter">
        <span>Replays</span>
        <select
          value={filters.replays ?? ""}
          onChange={(e) => setSearch({ replays: e.target.value || null, span: null })}
          aria-label="Replays"
          data-testid="replays-filter"
        >
          <option value="">shown</option>
          <option value="hide">hidden</option>
          <option value="only">only replays</option>
        </select>
      </label>
      <label className="filter">
        <span>Time</span>
        <select
          value={custom ? "custom" : range}
          onChange={(e) => {
            const v = e.target.value;
            setCustom(v === "custom");
            if (v === "custom") setSearch({ range: null });
            else setSearch({ range: v || null, since: null, until: null, span: null });
          }}
          aria-label="Time range"
        >
          <option value="">all time</option>
          {Object.keys(RANGES).map((r) => (
            <option key={r} value={r}>
              last {r}
            </option>
          ))}
          <option value="custom">custom…</option>
        </select>
      </label>
      {custom && (
        <>
          <label className="filter">
            <span>From</span>
            <input
              type="datetime-local"
              value={toLocalInput(filters.since)}
              onChange={(e) => setSearch({ since: e.target.value ? new Date(e.target.value).toISOString() : null })}
              aria-label="From"
            />
          </label>
          <label className="filter">
            <span>To</span>
            <input
              type="datetime-local"
              value={toLocalInput(filters.until)}
              onChange={(e) => setSearch({ until: e.target.value ? new Date(e.target.value).toISOString() : null })}
              aria-label="To"
            />
          </label>
        </>
      )}
      {active && (
        <button
          type="button"
          className="btn btn-small clear"
          onClick={() => {
            setCustom(false);
            setSearch(Object.fromEntries(Object.keys(filters).map((k) => [k, null])));
          }}
        >
          Clear filters
        </button>
      )}
    </div>
  );
}

function SpanRow({
  span,
  fresh,
  selected,
  checked,
  onCheck,
}: {
  span: SpanSummary;
  fresh: boolean;
  selected: boolean;
  checked: boolean;
  onCheck: (id: string) => void;
}) {
  const model = span.response_model ?? span.request_model ?? "\u2013";
  const open = () => setSearch({ span: span.span_id }, { replace: false });
  return (
    <tr
      className={`${fresh ? "fresh" : ""} ${selected ? "selected" : ""} ${isReplay(span) ? "replay" : ""}`}
      onClick={open}
      data-span-id={span.span_id}
      data-testid="span-row"
      onKeyDown={(e) => {
        // Space on a focused row (its link) toggles its checkbox; the box itself toggles natively
        if (e.key !== " " || (e.target instanceof HTMLInputElement && e.target.type === "checkbox")) return;
        e.preventDefault();
        onCheck(span.span_id);
      }}
    >
      <td className="col-check" onClick={(e) => e.stopPropagation()}>
        <input
          type="checkbox"
          checked={checked}
          onChange={() => onCheck(span.span_id)}
          aria-label={`Select call ${span.span_id}`}
          data-testid="row-check"
        />
      </td>
      <td className="nowrap">
        <a
          href={`/ui/?span=${encodeURIComponent(span.span_id)}`}
          onClick={(e) => {
            e.preventDefault();
            e.stopPropagation();
            open();
          }}
        >
          {fmtUs(span.start_us)}
        </a>
      </td>
      <td className="model-cell" title={span.request_model !== span.response_model ? `requested ${span.request_model}` : undefined}>
        {model}
      </td>
      <td className="col-provider">{span.provider ?? "\u2013"}</td>
      <td className="nowrap">
        <StatusBadge status={span.status} title={span.http_status ? `HTTP ${span.http_status}` : undefined} />
        {isReplay(span) && (
          <span
            className="badge badge-origin"
            data-testid="origin-badge"
            title={`Made by Spanlab (origin ${span.origin}), not by your app: left out of thread totals`}
          >
            {span.origin}
          </span>
        )}
      </td>
      <td className="num">{fmtMs(span.duration_ms)}</td>
      <td className="num">{fmtMs(span.ttft_ms)}</td>
      <td
        className="num"
        title={span.usage ? `${fmtInt(span.usage.prompt_tokens)} in / ${fmtInt(span.usage.completion_tokens)} out` : undefined}
      >
        {fmtInt(span.usage?.total_tokens)}
      </td>
      <td className="num">{fmtCost(span.cost_usd)}</td>
      <td className="preview col-preview">{span.input_preview ? truncate(span.input_preview, 140) : <span className="muted">{span.operation}</span>}</td>
    </tr>
  );
}

export function TracesPage() {
  const { search } = useLocation();
  const filters = filtersFrom(search);
  const filterKey = JSON.stringify(filters);
  const selected = search.get("span");
  const list = useSpanList(filters);
  useLiveSpans({ onSpan: list.addLive, onResync: list.resync });
  // A preset range ("last 1h") is fixed when the filter is chosen, so the summary's
  // queries keep one key (not a new one at every render).
  const bounds = useMemo(() => ({ ...timeBounds(filters), nowMs: Date.now() }), [filterKey]);
  const params = useMemo(() => filterParams(filters, bounds), [filterKey, bounds]);
  const [drawerWidth, setDrawerWidth] = useDrawerWidth();
  // the calls ticked for "Add to dataset" (kept across filter changes until cleared)
  const [checked, setChecked] = useState<Set<string>>(() => new Set());
  const onCheck = useCallback((id: string) => setChecked((c) => toggled(c, id)), []);

  const sentinel = useRef<HTMLDivElement>(null);
  const loadMore = list.loadMore;
  useEffect(() => {
    const node = sentinel.current;
    if (!node || typeof IntersectionObserver === "undefined") return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMore();
    }, { rootMargin: "400px" });
    observer.observe(node);
    return () => observer.disconnect();
  }, [loadMore]);

  // With the drawer open: Escape closes it; j/k or ArrowDown/ArrowUp open the next or
  // previous call (not while typing in a field, nor on the resize handle).
  const items = list.items;
  useEffect(() => {
    if (!selected) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        setSearch({ span: null });
        return;
      }
      if (e.altKey || e.ctrlKey || e.metaKey || typing(e.target)) return;
      const step = e.key === "j" || e.key === "ArrowDown" ? 1 : e.key === "k" || e.key === "ArrowUp" ? -1 : 0;
      if (!step || !items.length) return;
      const at = items.findIndex((s) => s.span_id === selected);
      const next = items[at < 0 ? 0 : Math.min(Math.max(at + step, 0), items.length - 1)];
      e.preventDefault();
      if (!next || next.span_id === selected) return;
      setSearch({ span: next.span_id });
      document.querySelector(`tr[data-span-id="${CSS.escape(next.span_id)}"]`)?.scrollIntoView({ block: "nearest" });
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [selected, items]);

  return (
    <div
      className={`page traces-page ${selected ? "with-drawer" : ""}`}
      style={selected ? ({ "--drawer-width": `${drawerWidth}px` } as CSSProperties) : undefined}
    >
      <header className="page-head">
        <h1>Traces</h1>
        <div className="segmented" role="tablist" aria-label="View">
          <Link to={`/${search.toString() ? `?${search.toString()}` : ""}`} className="seg active" aria-selected="true" role="tab">
            Calls
          </Link>
          <Link to="/threads" className="seg" role="tab" aria-selected="false">
            Threads
          </Link>
        </div>
      </header>
      <Filters filters={filters} />
      <AddToDataset selected={[...checked]} onClear={() => setChecked(new Set())} />
      <TraceSummary
        params={params}
        sinceUs={bounds.sinceUs}
        untilUs={bounds.untilUs}
        nowMs={bounds.nowMs}
        revision={list.fresh.size}
        ready={!list.loading || list.items.length > 0 || list.error !== null}
      />
      <div className="table-wrap">
        <table className="spans-table" data-testid="spans-table">
          <thead>
            <tr>
              <th className="col-check">
                <input
                  type="checkbox"
                  aria-label="Select all calls shown"
                  checked={list.items.length > 0 && list.items.every((s) => checked.has(s.span_id))}
                  onChange={() => setChecked((c) => toggledAll(c, list.items.map((s) => s.span_id)))}
                />
              </th>
              <th>Time</th>
              <th>Model</th>
              <th className="col-provider">Provider</th>
              <th>Status</th>
              <th className="num">Latency</th>
              <th className="num">TTFT</th>
              <th className="num">Tokens</th>
              <th className="num">Cost</th>
              <th className="col-preview" title="The request's last user message (or its prompt or input)">
                Last user message
              </th>
            </tr>
          </thead>
          <tbody>
            {list.items.map((span) => (
              <SpanRow
                key={span.span_id}
                span={span}
                fresh={list.fresh.has(span.span_id)}
                selected={span.span_id === selected}
                checked={checked.has(span.span_id)}
                onCheck={onCheck}
              />
            ))}
          </tbody>
        </table>
        {!list.loading && !list.error && list.items.length === 0 && (
          <div className="empty">
            {Object.keys(filters).length ? (
              <p>No calls match these filters.</p>
            ) : (
              <>
                <p>No calls yet. Point your app at this gateway and they appear here as they happen:</p>
                <pre className="json">{`OPENAI_BASE_URL=${window.location.origin}/v1`}</pre>
              </>
            )}
          </div>
        )}
        {list.error !== null && (
          <div className="list-foot">
            <ErrorNote error={list.error} />
            <button type="button" className="btn" onClick={list.retry}>
              Retry
            </button>
          </div>
        )}
        <div ref={sentinel} className="list-foot muted small" data-testid="list-foot">
          {list.loading ? "Loading…" : list.done ? (list.items.length ? `${list.items.length} calls` : "") : ""}
          {!list.loading && !list.done && !list.error && (
            <button type="button" className="btn btn-small" onClick={list.loadMore}>
              Load more
            </button>
          )}
        </div>
      </div>
      {selected && (
        <aside className="drawer" aria-label="Span detail" data-testid="drawer">
          <ResizeHandle width={drawerWidth} min={DRAWER_MIN} max={drawerMax()} onResize={setDrawerWidth} label="Resize the detail panel" />
          <div className="drawer-body">
            <ErrorBoundary key={selected}>
              <SpanDetailView spanId={selected} onClose={() => setSearch({ span: null })} />
            </ErrorBoundary>
          </div>
        </aside>
      )}
    </div>
  );
}
