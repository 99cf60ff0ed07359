// A part of the span detail that throws (whatever the cause) shows an error card under
// the head that names the span, with the close button still there: never a blank app.
import { cleanup, fireEvent, render } from "@testing-library/react";
import { SWRConfig } from "swr";
import { afterEach, expect, it, vi } from "vitest";
import { SpanDetailView } from "./SpanDetail";

vi.mock("./Waterfall", () => ({
  TraceWaterfall: () => {
    throw new TypeError("spans.map is not a function");
  },
}));

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

it("keeps the span's id and the close button above the error card", async () => {
  const quiet = vi.spyOn(console, "error").mockImplementation(() => undefined);
  vi.stubGlobal("fetch", () => Promise.resolve(new Response("{}", { status: 404 })));
  const record = { span_id: "Span_Mixed_Case_1", trace_id: "t", status: "ok", operation: "chat", start_us: 1 };
  const onClose = vi.fn();
  const view = render(
    <SWRConfig value={{ fetcher: () => Promise.resolve(record), provider: () => new Map() }}>
      <SpanDetailView spanId="Span_Mixed_Case_1" onClose={onClose} />
    </SWRConfig>,
  );
  const card = await view.findByTestId("error-card");
  expect(card.textContent).toContain("spans.map is not a function");
  expect(card.textContent).toContain("Span_Mixed_Case_1");
  expect(view.getByTestId("detail-span-id").textContent).toBe("span Span_Mixed_Case_1");
  fireEvent.click(view.getByRole("button", { name: "Close detail" }));
  expect(onClose).toHaveBeenCalled();
  quiet.mockRestore();
});
