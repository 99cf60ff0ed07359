// The spans of one trace as a tree (parent_span_id links) laid out as a waterfall:
// rows in depth-first order, each with its depth and its bar's offset and width as
// fractions of the trace's time span. The data comes from other programs (any agent
// may send any traceparent), so a parent that is not in the trace makes a root, a
// span that names itself or sits in a cycle is still shown once, and nothing loops.

export interface TraceSpanLike {
  span_id: string;
  parent_span_id: string | null;
  start_us: number;
  end_us: number | null;
  duration_ms: number | null;
}

export interface WaterfallRow<T extends TraceSpanLike> {
  span: T;
  depth: number;
  /** Where the bar starts and how long it is, as fractions (0..1) of the trace. */
  offset: number;
  width: number;
  /** The parent named by the span is not in the trace (the agent's own span). */
  orphan: boolean;
}

export interface Waterfall<T extends TraceSpanLike> {
  rows: WaterfallRow<T>[];
  startUs: number;
  totalMs: number;
}

const finite = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n);

function endOf(span: TraceSpanLike): number {
  if (finite(span.end_us) && span.end_us >= span.start_us) return span.end_us;
  if (finite(span.duration_ms) && span.duration_ms >= 0) return span.start_us + span.duration_ms * 1000;
  return span.start_us;
}

export function buildWaterfall<T extends TraceSpanLike>(spans: readonly T[]): Waterfall<T> {
  const usable = spans.filter((s) => typeof s.span_id === "string" && finite(s.start_us));
  // The first of duplicate ids wins: a tree needs one node per id.
  const byId = new Map<string, T>();
  for (const span of usable) if (!byId.has(span.span_id)) byId.set(span.span_id, span);
  const nodes = [...byId.values()].sort((a, b) => a.start_us - b.start_us || a.span_id.localeCompare(b.span_id));

  const children = new Map<string, T[]>();
  const roots: T[] = [];
  for (const span of nodes) {
    const parent = span.parent_span_id;
    if (parent && parent !== span.span_id && byId.has(parent)) {
      const list = children.get(parent) ?? [];
      list.push(span);
      children.set(parent, list);
    } else {
      roots.push(span);
    }
  }

  const startUs = nodes.length ? Math.min(...nodes.map((s) => s.start_us)) : 0;
  const endUs = nodes.length ? Math.max(...nodes.map(endOf)) : 0;
  const total = Math.max(endUs - startUs, 1);

  const rows: WaterfallRow<T>[] = [];
  const seen = new Set<string>();
  const visit = (span: T, depth: number) => {
    // Iterative, so a long chain cannot overflow the stack; `seen` stops cycles.
    const stack: [T, number][] = [[span, depth]];
    while (stack.length) {
      const [node, level] = stack.pop()!;
      if (seen.has(node.span_id)) continue;
      seen.add(node.span_id);
      const parent = node.parent_span_id;
      rows.push({
        span: node,
        depth: level,
        offset: (node.start_us - startUs) / total,
        width: Math.max(endOf(node) - node.start_us, 0) / total,
        orphan: Boolean(parent) && parent !== node.span_id && !byId.has(parent as string),
      });
      const kids = children.get(node.span_id) ?? [];
      for (const kid of [...kids].reverse()) stack.push([kid, level + 1]);
    }
  };
  for (const root of roots) visit(root, 0);
  // Spans only reachable through a cycle (a -> b -> a) have no root: show them from
  // the earliest, as roots.
  for (const span of nodes) if (!seen.has(span.span_id)) visit(span, 0);

  return { rows, startUs, totalMs: (endUs - startUs) / 1000 };
}
