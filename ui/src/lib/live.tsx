// One EventSource on GET /events for the whole app. Pages subscribe to stored spans;
// after a reconnect or a "lagged" notice they are told to resync (refetch), since
// events sent meanwhile are lost.

import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import type { SpanSummary } from "./types";

export interface LiveListener {
  onSpan: (span: SpanSummary) => void;
  onResync: () => void;
}

interface LiveContext {
  state: "connecting" | "live" | "offline";
  subscribe: (listener: LiveListener) => () => void;
}

const Context = createContext<LiveContext>({ state: "offline", subscribe: () => () => {} });

export function LiveProvider({ children }: { children: ReactNode }) {
  const listeners = useRef(new Set<LiveListener>());
  const [state, setState] = useState<LiveContext["state"]>("connecting");
  const [value] = useState<Omit<LiveContext, "state">>(() => ({
    subscribe: (listener: LiveListener) => {
      listeners.current.add(listener);
      return () => listeners.current.delete(listener);
    },
  }));

  useEffect(() => {
    if (typeof EventSource === "undefined") {
      setState("offline");
      return;
    }
    const source = new EventSource("/events");
    let dropped = false;
    source.onopen = () => {
      setState("live");
      if (dropped) for (const l of listeners.current) l.onResync();
      dropped = false;
    };
    source.onerror = () => {
      dropped = true;
      setState(source.readyState === EventSource.CLOSED ? "offline" : "connecting");
    };
    source.addEventListener("span", (event) => {
      let span: SpanSummary;
      try {
        span = JSON.parse((event as MessageEvent<string>).data) as SpanSummary;
      } catch {
        return;
      }
      for (const l of listeners.current) l.onSpan(span);
    });
    source.addEventListener("lagged", () => {
      for (const l of listeners.current) l.onResync();
    });
    return () => source.close();
  }, []);

  return <Context.Provider value={{ state, ...value }}>{children}</Context.Provider>;
}

export function useLive(): LiveContext {
  return useContext(Context);
}

/** Call the latest handlers for every live span (the subscription itself is stable). */
export function useLiveSpans(listener: LiveListener): void {
  const { subscribe } = useLive();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(
    () =>
      subscribe({
        onSpan: (span) => latest.current.onSpan(span),
        onResync: () => latest.current.onResync(),
      }),
    [subscribe],
  );
}

export function LiveBadge() {
  const { state } = useLive();
  const label = state === "live" ? "Live" : state === "connecting" ? "Connecting…" : "Offline";
  return (
    <span className={`live-badge live-${state}`} title="Live updates from GET /events" data-testid="live-state">
      <span className="dot" aria-hidden="true" /> {label}
    </span>
  );
}
