// One EventSource on GET /events for the whole app. Pages subscribe to stored spans;
// after a reconnect or a "lagged" notice they are told to resync (refetch), since
// events sent meanwhile are lost.
//
// The badge's state joins two signals: whether /events is open, and whether the last
// request to the gateway got an answer (lib/api reports it). When /events drops the UI
// says "Reconnecting" and probes /healthz; when a request cannot reach the gateway at
// all it says "Offline" until something answers again.

import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { onReachability, request } from "./api";
import type { SpanSummary } from "./types";

export type LiveState = "connecting" | "live" | "reconnecting" | "offline";

/** The badge's state from its two signals (kept pure so it is tested on its own). */
export function liveState(events: "never" | "open" | "dropped" | "closed", reachable: boolean | null): LiveState {
  if (events === "closed" || reachable === false) return "offline";
  if (events === "open") return "live";
  return events === "dropped" ? "reconnecting" : "connecting";
}

export interface LiveListener {
  onSpan: (span: SpanSummary) => void;
  onResync: () => void;
}

interface LiveContext {
  state: LiveState;
  subscribe: (listener: LiveListener) => () => void;
}

const Context = createContext<LiveContext>({ state: "offline", subscribe: () => () => {} });

export function LiveProvider({ children }: { children: ReactNode }) {
  const listeners = useRef(new Set<LiveListener>());
  const [events, setEvents] = useState<"never" | "open" | "dropped" | "closed">("never");
  const [reachable, setReachable] = useState<boolean | null>(null);
  const state = liveState(events, reachable);
  const [value] = useState<Omit<LiveContext, "state">>(() => ({
    subscribe: (listener: LiveListener) => {
      listeners.current.add(listener);
      return () => listeners.current.delete(listener);
    },
  }));

  useEffect(() => onReachability(setReachable), []);

  useEffect(() => {
    if (typeof EventSource === "undefined") {
      setEvents("closed");
      return;
    }
    const source = new EventSource("/events");
    let dropped = false;
    source.onopen = () => {
      setEvents("open");
      setReachable(true);
      if (dropped) for (const l of listeners.current) l.onResync();
      dropped = false;
    };
    source.onerror = () => {
      dropped = true;
      setEvents(source.readyState === EventSource.CLOSED ? "closed" : "dropped");
      // is the gateway gone, or only the stream? request() reports the answer
      request("/healthz", { cache: "no-store" }).catch(() => undefined);
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

const LABELS: Record<LiveState, string> = {
  live: "Live",
  connecting: "Connecting\u2026",
  reconnecting: "Reconnecting\u2026",
  offline: "Offline",
};

const TITLES: Record<LiveState, string> = {
  live: "Live updates from GET /events",
  connecting: "Connecting to GET /events",
  reconnecting: "The live stream dropped; reconnecting to GET /events",
  offline: "The gateway cannot be reached",
};

export function LiveBadge() {
  const { state } = useLive();
  return (
    <span className={`live-badge live-${state}`} title={TITLES[state]} data-testid="live-state" role="status">
      <span className="dot" aria-hidden="true" /> {LABELS[state]}
    </span>
  );
}
