import { act, cleanup, render } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { getJson } from "./api";
import { LiveBadge, LiveProvider, liveState } from "./live";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("liveState", () => {
  it("is Live only while /events is open and the gateway answers", () => {
    expect(liveState("open", true)).toBe("live");
    expect(liveState("open", null)).toBe("live");
    expect(liveState("never", null)).toBe("connecting");
    expect(liveState("dropped", true)).toBe("reconnecting");
    expect(liveState("dropped", null)).toBe("reconnecting");
    expect(liveState("dropped", false)).toBe("offline");
    expect(liveState("open", false)).toBe("offline");
    expect(liveState("closed", true)).toBe("offline");
  });
});

class FakeEventSource {
  static CLOSED = 2;
  static last: FakeEventSource | null = null;
  readyState = 0;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  addEventListener(): void {}
  close(): void {}
}

describe("LiveBadge", () => {
  it("goes from Live to Reconnecting when /events drops, and to Offline when a fetch cannot reach the gateway", async () => {
    vi.stubGlobal("EventSource", FakeEventSource);
    // the /healthz probe and the page's fetch both fail: the gateway is gone
    vi.stubGlobal("fetch", vi.fn(() => Promise.reject(new TypeError("Failed to fetch"))));
    const { getByTestId } = render(
      <LiveProvider>
        <LiveBadge />
      </LiveProvider>,
    );
    const badge = () => getByTestId("live-state").textContent?.trim();
    expect(badge()).toBe("Connecting\u2026");
    act(() => FakeEventSource.last?.onopen?.());
    expect(badge()).toBe("Live");
    vi.stubGlobal("fetch", vi.fn(() => new Promise(() => undefined))); // the probe hangs
    act(() => FakeEventSource.last?.onerror?.());
    expect(badge()).toBe("Reconnecting\u2026");
    vi.stubGlobal("fetch", vi.fn(() => Promise.reject(new TypeError("Failed to fetch"))));
    await act(async () => {
      await getJson("/spans").catch(() => undefined);
    });
    expect(badge()).toBe("Offline");
    // the stream comes back: Live again
    act(() => FakeEventSource.last?.onopen?.());
    expect(badge()).toBe("Live");
  });
});
