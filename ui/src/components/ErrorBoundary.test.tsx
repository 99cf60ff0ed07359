import { cleanup, fireEvent, render } from "@testing-library/react";
import { useState } from "react";
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

describe("ErrorBoundary for one record", () => {
  it("names the record that failed and what kind it is", () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const { getByTestId, getByRole } = render(
      <ErrorBoundary what="span" recordId="span-7f3a-MixedCase">
        <Broken />
      </ErrorBoundary>,
    );
    const card = getByTestId("error-card");
    expect(getByRole("heading").textContent).toBe("This span could not be shown");
    expect(getByTestId("error-record-id").textContent).toBe("span-7f3a-MixedCase");
    expect(card.textContent).toContain("TypeError: tags.join is not a function");
    expect(getByRole("button", { name: "Try again" })).toBeTruthy();
    quiet.mockRestore();
  });

  it("renders its children again on Try again, after onReset", () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => undefined);
    let failing = true;
    const reset = vi.fn(() => {
      failing = false;
    });
    function Flaky() {
      if (failing) throw new Error("bad record");
      return <p>record shown</p>;
    }
    const { getByRole, getByText, queryByTestId } = render(
      <ErrorBoundary recordId="abc" onReset={reset}>
        <Flaky />
      </ErrorBoundary>,
    );
    expect(queryByTestId("error-card")).not.toBeNull();
    fireEvent.click(getByRole("button", { name: "Try again" }));
    expect(reset).toHaveBeenCalledOnce();
    expect(getByText("record shown")).toBeTruthy();
    expect(queryByTestId("error-card")).toBeNull();
    quiet.mockRestore();
  });

  it("keeps the old API: no props but children still works and shows no id", () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => undefined);
    function Toggle() {
      const [boom, setBoom] = useState(false);
      return (
        <>
          <button onClick={() => setBoom(true)}>break</button>
          <ErrorBoundary>{boom ? <Broken /> : <p>fine</p>}</ErrorBoundary>
        </>
      );
    }
    const { getByText, getByTestId, queryByTestId } = render(<Toggle />);
    fireEvent.click(getByText("break"));
    expect(getByTestId("error-card").textContent).toContain("This view could not be shown");
    expect(queryByTestId("error-record-id")).toBeNull();
    expect(getByText("break")).toBeTruthy();
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
