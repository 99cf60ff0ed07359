import { lazy, Suspense, useEffect, useRef, useState } from "react";
import { SWRConfig } from "swr";
import { fetcher } from "./lib/api";
import { Link, useLocation } from "./lib/router";
import { TracesPage } from "./pages/Traces";
import { ThreadsPage } from "./pages/Threads";
import { SpanPage } from "./pages/SpanPage";
import { ExperimentsPage } from "./pages/Experiments";
import { LiveProvider, LiveBadge } from "./lib/live";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { AccessGate, SessionBadge, useAccess } from "./components/AccessGate";
import { can } from "./lib/access";

// The experiment page carries the code editor and the diff library: loaded on demand,
// so the traces page (the first page) stays small.
const ExperimentPage = lazy(() => import("./pages/Experiment"));
// The lab's pages, loaded on demand for the same reason.
const PlaygroundPage = lazy(() => import("./pages/Playground"));
const DatasetsPage = lazy(() => import("./pages/Datasets"));
const MetricDefinitionsPage = lazy(() => import("./pages/MetricDefinitions"));
const AccessPage = lazy(() => import("./pages/Access"));
const SettingsPage = lazy(() => import("./pages/Settings"));

const NAV = [
  { to: "/", label: "Traces", icon: "\u2261", match: (p: string) => p === "/" || p.startsWith("/spans") },
  { to: "/threads", label: "Threads", icon: "\u2630", match: (p: string) => p.startsWith("/threads") },
  {
    to: "/experiments",
    label: "Experiments",
    icon: "\u2726",
    match: (p: string) => p.startsWith("/experiment"),
  },
  { to: "/playground", label: "Playground", icon: "\u25b7", match: (p: string) => p.startsWith("/playground") },
  { to: "/datasets", label: "Datasets", icon: "\u25a4", match: (p: string) => p.startsWith("/datasets") },
  { to: "/metrics", label: "Metrics", icon: "\u2605", match: (p: string) => p.startsWith("/metrics") },
  { to: "/keys", label: "Keys", icon: "\u26bf", match: (p: string) => p.startsWith("/keys") },
  { to: "/settings", label: "Settings", icon: "\u2699", match: (p: string) => p.startsWith("/settings") },
];
// Pages for admins only (and for the local user while keys are off).
const ADMIN_PAGES = new Set(["/keys", "/settings"]);

function Route({ path }: { path: string }) {
  if (path === "/" || path === "") return <TracesPage />;
  if (path === "/threads") return <ThreadsPage />;
  if (path.startsWith("/spans/")) return <SpanPage spanId={decodeURIComponent(path.slice(7))} />;
  if (path === "/experiments") return <ExperimentsPage />;
  if (path === "/experiment") return <ExperimentPage />;
  if (path === "/playground") return <PlaygroundPage />;
  if (path === "/datasets") return <DatasetsPage />;
  if (path === "/metrics") return <MetricDefinitionsPage />;
  if (path === "/keys") return <AccessPage />;
  if (path === "/settings") return <SettingsPage />;
  return (
    <div className="page">
      <h1>Not found</h1>
      <p>
        No page at <code>{path}</code>. <Link to="/">Go to traces</Link>.
      </p>
    </div>
  );
}

/** The main navigation: a sidebar on wide screens; under the breakpoint (styles/shell.css)
 * a top bar whose menu button opens the same links as a panel. */
function Nav({ path }: { path: string }) {
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  const nav = useRef<HTMLElement>(null);
  const { state: access } = useAccess();
  const items = NAV.filter((item) => !ADMIN_PAGES.has(item.to) || can(access, "admin"));

  // following a link closes the menu
  useEffect(() => setOpen(false), [path]);

  useEffect(() => {
    if (!open) return;
    nav.current?.querySelector<HTMLAnchorElement>("#main-nav a")?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== "Escape") return;
      // the menu takes this Escape, not a drawer under it
      e.stopImmediatePropagation();
      setOpen(false);
      button.current?.focus();
    };
    const onPointer = (e: PointerEvent) => {
      if (nav.current && !nav.current.contains(e.target as Node)) setOpen(false);
    };
    window.addEventListener("keydown", onKey, true);
    document.addEventListener("pointerdown", onPointer);
    return () => {
      window.removeEventListener("keydown", onKey, true);
      document.removeEventListener("pointerdown", onPointer);
    };
  }, [open]);

  return (
    <nav
      ref={nav}
      className={open ? "sidebar menu-open" : "sidebar"}
      aria-label="Main"
      onBlur={(e) => {
        // tabbing out of the open menu closes it, as a click elsewhere does
        if (open && e.relatedTarget instanceof Node && !nav.current?.contains(e.relatedTarget)) setOpen(false);
      }}
    >
      <div className="sidebar-top">
        <button
          ref={button}
          type="button"
          className="menu-button"
          aria-expanded={open}
          aria-controls="main-nav"
          aria-label="Menu"
          data-testid="menu-button"
          onClick={() => setOpen(!open)}
        >
          <span aria-hidden="true">{open ? "\u2715" : "\u2630"}</span>
        </button>
        <Link to="/" className="brand">
          <span className="brand-mark" aria-hidden="true">
            {"\u25c8"}
          </span>{" "}
          Spanlab
        </Link>
      </div>
      <ul id="main-nav">
        {items.map((item) => (
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
        <SessionBadge />
      </div>
    </nav>
  );
}

/** What the page-wide error card names: the span on a span's page, else the page. */
function boundaryFor(path: string): { what: string; recordId?: string } {
  if (!path.startsWith("/spans/")) return { what: "page" };
  try {
    return { what: "span", recordId: decodeURIComponent(path.slice(7)) };
  } catch {
    return { what: "span", recordId: path.slice(7) }; // a malformed escape: shown as typed
  }
}

export function App() {
  const { path } = useLocation();
  return (
    <SWRConfig value={{ fetcher, revalidateOnFocus: false, dedupingInterval: 2000 }}>
      <AccessGate>
        <LiveProvider>
          <div className="shell">
            <Nav path={path} />
            <main className="content">
              <Suspense fallback={<div className="page muted">Loading…</div>}>
                {/* keyed by path: moving to another page clears the error */}
                <ErrorBoundary key={path} {...boundaryFor(path)}>
                  <Route path={path} />
                </ErrorBoundary>
              </Suspense>
            </main>
          </div>
        </LiveProvider>
      </AccessGate>
    </SWRConfig>
  );
}
