import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { SWRConfig } from "swr";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AccessGate, SessionBadge } from "./AccessGate";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

function renderGate() {
  return render(
    <SWRConfig value={{ provider: () => new Map(), dedupingInterval: 0 }}>
      <AccessGate>
        <p>the app</p>
        <SessionBadge />
      </AccessGate>
    </SWRConfig>,
  );
}

describe("AccessGate", () => {
  it("shows the app at once with keys off", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json({ auth: false, insecure: false, principal: null })));
    renderGate();
    expect(await screen.findByText("the app")).toBeTruthy();
    expect(screen.queryByTestId("session-badge")).toBeNull();
  });

  it("asks for a key, signs in, and signs out", async () => {
    const reader = { key_id: "abc", name: "reader", project_id: null, scopes: ["read"] };
    let signedIn = false;
    const fetchMock = vi.fn(async (path: string, init?: RequestInit) => {
      const method = init?.method ?? "GET";
      if (path === "/session" && method === "POST") {
        const body = JSON.parse(String(init?.body)) as { key: string };
        if (body.key !== "slk_good") return json({ error: { message: "The key is unknown", type: "authentication_error", code: "bad_key" } }, 401);
        signedIn = true;
      }
      if (path === "/session" && method === "DELETE") signedIn = false;
      return json({ auth: true, insecure: false, principal: signedIn ? reader : null });
    });
    vi.stubGlobal("fetch", fetchMock);
    renderGate();
    const input = (await screen.findByTestId("sign-in-key")) as HTMLInputElement;
    expect(screen.queryByText("the app")).toBeNull();
    fireEvent.change(input, { target: { value: "slk_bad" } });
    fireEvent.click(screen.getByTestId("sign-in-submit"));
    expect(await screen.findByRole("alert")).toBeTruthy();
    fireEvent.change(input, { target: { value: "slk_good" } });
    fireEvent.click(screen.getByTestId("sign-in-submit"));
    expect(await screen.findByText("the app")).toBeTruthy();
    expect(screen.getByTestId("session-badge").textContent).toContain("reader");
    fireEvent.click(screen.getByTestId("sign-out"));
    await waitFor(() => expect(screen.queryByTestId("sign-in")).toBeTruthy());
    expect(fetchMock.mock.calls.some(([p, i]) => p === "/session" && i?.method === "DELETE")).toBe(true);
  });

  it("shows a banner on an open public gateway", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json({ auth: false, insecure: true, principal: null })));
    renderGate();
    expect(await screen.findByTestId("insecure-banner")).toBeTruthy();
  });
});
