import { cleanup, render } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { fmtTags } from "../lib/format";
import { ErrorBoundary } from "./ErrorBoundary";

afterEach(cleanup);

function Broken(): never {
  throw new TypeError("tags.join is not a function");
}

describe("ErrorBoundary", () => {
  it("shows a failing view as an error card and keeps its siblings", () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const { getByTestId, getByText } = render(
      <div>
        <p>still here</p>
        <ErrorBoundary>
          <Broken />
        </ErrorBoundary>
      </div>,
    );
    expect(getByTestId("error-card").textContent).toContain("tags.join is not a function");
    expect(getByText("still here")).toBeTruthy();
    quiet.mockRestore();
  });
});

describe("fmtTags", () => {
  it("shows the API's tag object as k=v pairs", () => {
    expect(fmtTags({ env: "prod", team: "core" })).toBe("env=prod, team=core");
  });
  it("tolerates empty, missing and odd values", () => {
    expect(fmtTags(null)).toBe("\u2013");
    expect(fmtTags({})).toBe("\u2013");
    expect(fmtTags(["a", "b"])).toBe("a, b");
    expect(fmtTags({ n: 1 })).toBe("n=1");
  });
});
