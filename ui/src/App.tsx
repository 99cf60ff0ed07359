import { lazy, Suspense } from "react";
import { SWRConfig } from "swr";
import { fetcher } from "./lib/api";
import { Link, useLocation } from "./lib/router";
import { TracesPage } from "./pages/Traces";
import { ThreadsPage } from "./pages/Threads";
import { SpanPage } from "./pages/SpanPage";
import { ExperimentsPage } from "./pages/Experiments";
import { LiveProvider, LiveBadge } from "./lib/live";
import { ErrorBoundary } from "./components/ErrorBoundary";

// The experiment page carries the code editor and the diff library: loaded on demand,
// so the traces page (the first page) stays small.
const ExperimentPage = lazy(() => import("./pages/Experiment"));

const NAV = [
  { to: "/", label: "Traces", icon: "\u2261", match: (p: string) => p === "/" || p.startsWith("/spans") },
  { to: "/threads", label: "Threads", icon: "\u2630", match: (p: string) => p.startsWith("/threads") },
  {
    to: "/experiments",
    label: "Experiments",
    icon: "\u2726",
    match: (p: string) => p.startsWith("/experiment"),
  },
];

function Route({ path }: { path: string }) {
  if (path === "/" || path === "") return <TracesPage />;
  if (path === "/threads") return <ThreadsPage />;
  if (path.startsWith("/spans/")) return <SpanPage spanId={decodeURIComponent(path.slice(7))} />;
  if (path === "/experiments") return <ExperimentsPage />;
  if (path === "/experiment") return <ExperimentPage />;
  return (
    <div className="page">
      <h1>Not found</h1>
      <p>
        No page at <code>{path}</code>. <Link to="/">Go to traces</Link>.
      </p>
    </div>
  );
}

export function App() {
  const { path } = useLocation();
  return (
    <SWRConfig value={{ fetcher, revalidateOnFocus: false, dedupingInterval: 2000 }}>
      <LiveProvider>
        <div className="shell">
          <nav className="sidebar" aria-label="Main">
            <Link to="/" className="brand">
              <span className="brand-mark" aria-hidden="true">
                {"\u25c8"}
              </span>{" "}
              Spanlab
            </Link>
            <ul>
              {NAV.map((item) => (
                <li key={item.to}>
                  <Link
                    to={item.to}
                    className={item.match(path) ? "nav-item active" : "nav-item"}
                    aria-current={item.match(path) ? "page" : undefined}
                  >
                    <span className="nav-icon" aria-hidden="true">
                      {item.icon}
                    </span>
                    {item.label}
                  </Link>
                </li>
              ))}
            </ul>
            <div className="sidebar-foot">
              <LiveBadge />
            </div>
          </nav>
          <main className="content">
            <Suspense fallback={<div className="page muted">Loading…</div>}>
              {/* keyed by path: moving to another page clears the error */}
              <ErrorBoundary key={path}>
                <Route path={path} />
              </ErrorBoundary>
            </Suspense>
          </main>
        </div>
      </LiveProvider>
    </SWRConfig>
  );
}
