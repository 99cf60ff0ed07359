import { cleanup, render, waitFor } from "@testing-library/react";
import { SWRConfig } from "swr";
import { afterEach, describe, expect, it } from "vitest";
import { ThreadConversation, threadCallsKey, threadsKey } from "./Thread";

afterEach(cleanup);

const summary = (id: string, start: number, text: string) => ({
  span_id: id,
  trace_id: `t-${id}`,
  parent_span_id: null,
  thread_id: "T",
  status: "ok",
  operation: "chat",
  request_model: "m",
  response_model: "m",
  start_us: start,
  duration_ms: 12,
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: null },
  cost_usd: null,
  input_preview: text,
  output_text: `re: ${text}`,
});

function show(thread: Record<string, unknown> | null) {
  const answers: Record<string, unknown> = {
    [threadsKey(50)]: { data: thread ? [thread] : [] },
    [threadsKey(1000)]: { data: [] },
    // newest first, as GET /spans answers
    [threadCallsKey("T")]: { data: [summary("c", 3, "third"), summary("b", 2, "second"), summary("a", 1, "first")], next_cursor: null },
  };
  for (const [id, text] of [["a", "first"], ["b", "second"], ["c", "third"]] as const) {
    answers[`/spans/${id}`] = {
      ...summary(id, 0, text),
      request: { messages: [{ role: "user", content: text }] },
      response: { choices: [{ message: { role: "assistant", content: `re: ${text}` } }] },
    };
  }
  const fetcher = (key: string) => (key in answers ? Promise.resolve(answers[key]) : Promise.reject(new Error(key)));
  return render(
    <SWRConfig value={{ fetcher, provider: () => new Map() }}>
      <ThreadConversation threadId="T" />
    </SWRConfig>,
  );
}

const BASE = { thread_id: "T", calls: 3, errors: 0, total_tokens: 6, cost_usd: null, models: ["m"], first_activity: null, last_activity: null, project_id: null };

describe("ThreadConversation", () => {
  it("shows the turns oldest first and the totals GET /threads gives, replays included", async () => {
    const view = show({ ...BASE, replays: 2 });
    await waitFor(() => expect(view.getAllByTestId("turn-output")).toHaveLength(3));
    expect(view.getAllByTestId("turn").map((t) => t.getAttribute("data-span-id"))).toEqual(["a", "b", "c"]);
    expect(view.getAllByTestId("turn-output").map((t) => t.textContent)).toEqual(["assistantre: first", "assistantre: second", "assistantre: third"]);
    await waitFor(() => expect(view.getByTestId("total-calls").textContent).toBe("3"));
    expect(view.getByTestId("total-replays").textContent).toBe("2");
    expect(view.getByTestId("replays-note").textContent).toContain("2 replays");
    expect(view.getByTestId("total-cost").textContent).toBe("\u2013");
  });

  it("shows a dash for a figure the API does not give", async () => {
    const view = show(BASE);
    await waitFor(() => expect(view.getByTestId("total-calls").textContent).toBe("3"));
    expect(view.getByTestId("total-replays").textContent).toBe("\u2013");
    expect(view.queryByTestId("replays-note")).toBeNull();
    cleanup();
    const missing = show(null);
    await waitFor(() => expect(missing.getAllByTestId("turn")).toHaveLength(3));
    expect(missing.getByTestId("total-calls").textContent).toBe("\u2013");
  });
});
