import { cleanup, fireEvent, render } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, NetworkError } from "../lib/api";
import { ErrorNote } from "./common";

afterEach(cleanup);

describe("ErrorNote", () => {
  it("says the gateway is unreachable, never the browser's bare 'Failed to fetch', and offers a retry", () => {
    const retry = vi.fn();
    const { getByTestId, getByRole } = render(
      <ErrorNote error={new NetworkError("/spans", new TypeError("Failed to fetch"))} onRetry={retry} />,
    );
    const note = getByTestId("gateway-unreachable");
    expect(note.textContent).toContain("The gateway is unreachable.");
    expect(note.textContent).toContain("spanlab serve");
    expect(note.textContent).not.toContain("Failed to fetch");
    fireEvent.click(getByRole("button", { name: "Retry" }));
    expect(retry).toHaveBeenCalledOnce();
  });

  it("shows the gateway's own message for an HTTP error", () => {
    const { getByTestId, queryByRole } = render(
      <ErrorNote error={new ApiError("No span with id abc", 404, "not_found_error", "span_not_found")} />,
    );
    const note = getByTestId("error-note");
    expect(note.textContent).toContain("No span with id abc");
    expect(note.textContent).toContain("HTTP 404");
    expect(note.textContent).toContain("not_found_error");
    expect(queryByRole("button")).toBeNull();
  });

  it("shows plain strings and JSON error values as text", () => {
    const { getByTestId, rerender } = render(<ErrorNote error="Fix the JSON first" />);
    expect(getByTestId("error-note").textContent).toContain("Fix the JSON first");
    rerender(<ErrorNote error={{ message: "upstream said no" }} />);
    expect(getByTestId("error-note").textContent).toContain("upstream said no");
    rerender(<ErrorNote error={null} />);
  });
});
