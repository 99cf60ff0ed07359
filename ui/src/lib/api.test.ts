import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, getJson, NetworkError, onReachability } from "./api";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("request errors", () => {
  it("turns a failed fetch into a NetworkError and reports the gateway unreachable", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.reject(new TypeError("Failed to fetch"))));
    const seen: boolean[] = [];
    const off = onReachability((r) => seen.push(r));
    const error = await getJson("/spans").catch((e: unknown) => e);
    off();
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).path).toBe("/spans");
    expect((error as Error).message).not.toContain("Failed to fetch");
    expect(seen).toEqual([false]);
  });

  it("reads the gateway's error shape into an ApiError", async () => {
    const body = { error: { message: "limit must be at most 1000", type: "invalid_request_error", code: "bad_limit", param: "limit" } };
    vi.stubGlobal("fetch", vi.fn(() => Promise.resolve(new Response(JSON.stringify(body), { status: 400, statusText: "Bad Request" }))));
    const seen: boolean[] = [];
    const off = onReachability((r) => seen.push(r));
    const error = (await getJson("/spans?limit=5000").catch((e: unknown) => e)) as ApiError;
    off();
    expect(error).toBeInstanceOf(ApiError);
    expect(error).not.toBeInstanceOf(NetworkError);
    expect([error.message, error.status, error.type, error.code, error.param]).toEqual([
      "limit must be at most 1000",
      400,
      "invalid_request_error",
      "bad_limit",
      "limit",
    ]);
    expect(seen).toEqual([true]);
  });

  it("keeps the status line when the body is not the error shape", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.resolve(new Response("<html>oops</html>", { status: 502, statusText: "Bad Gateway" }))));
    const error = (await getJson("/threads").catch((e: unknown) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error.message).toBe("502 Bad Gateway");
    expect(error.type).toBeNull();
  });

  it("passes an abort through unchanged and does not call the gateway unreachable", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.reject(new DOMException("aborted", "AbortError"))));
    const seen: boolean[] = [];
    const off = onReachability((r) => seen.push(r));
    const error = await getJson("/spans").catch((e: unknown) => e);
    off();
    expect(error).toBeInstanceOf(DOMException);
    expect(seen).toEqual([]);
  });
});
