import { SpanDetailView } from "../components/SpanDetail";
import { Link } from "../lib/router";

export function SpanPage({ spanId }: { spanId: string }) {
  return (
    <div className="page span-page">
      <nav className="crumbs">
        <Link to="/">Traces</Link> / <code>{spanId}</code>
      </nav>
      <SpanDetailView spanId={spanId} />
    </div>
  );
}
