import { describe, expect, it } from "vitest";
import { expectedPreview, formatOf, importBody, inputPreview, toggled, toggledAll } from "./datasets";

describe("importBody", () => {
  it("sends a file's text with the format its name says", () => {
    expect(importBody({ name: "rows.JSONL", text: '{"key":"a"}\n' })).toEqual({
      body: { content: '{"key":"a"}\n', format: "jsonl" },
      error: null,
    });
    expect(importBody({ name: "rows.csv", text: "q,a\n1,2\n" }, { expectedColumn: " a " }).body).toEqual({
      content: "q,a\n1,2\n",
      format: "csv",
      expected_column: "a",
    });
  });

  it("takes the chosen format over the name, the type when the name says nothing", () => {
    expect(importBody({ name: "data.txt", text: "x" }, { format: "csv" }).body?.format).toBe("csv");
    expect(formatOf("data", "text/csv")).toBe("csv");
    expect(formatOf("data.ndjson")).toBe("jsonl");
  });

  it("refuses a file of unknown format or empty, and drops a byte-order mark", () => {
    expect(importBody({ name: "data.txt", text: "x" }).error).toMatch(/format/);
    expect(importBody({ name: "a.jsonl", text: "  \n" }).error).toMatch(/empty/);
    expect(importBody({ name: "a.jsonl", text: "\ufeff{}" }).body?.content).toBe("{}");
    // an expected column only means something for a CSV
    expect(importBody({ name: "a.jsonl", text: "{}" }, { expectedColumn: "a" }).body).not.toHaveProperty("expected_column");
  });
});

describe("previews", () => {
  it("shows variables, else the request's last user message", () => {
    expect(inputPreview({ variables: { city: "Paris", n: 2 }, request: null })).toBe("city: Paris \u00b7 n: 2");
    expect(
      inputPreview({
        variables: null,
        request: { messages: [{ role: "system", content: "s" }, { role: "user", content: "hello there" }] },
      }),
    ).toBe("hello there");
  });

  it("shows text, or tool calls by name", () => {
    expect(expectedPreview("ok")).toBe("ok");
    expect(expectedPreview(null)).toBe("");
    expect(
      expectedPreview({ content: null, tool_calls: [{ id: "c", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] }),
    ).toBe('get_weather({"city":"Paris"})');
  });
});

describe("selection", () => {
  it("toggles one, and all shown", () => {
    const one = toggled(new Set(), "a");
    expect([...one]).toEqual(["a"]);
    expect([...toggled(one, "a")]).toEqual([]);
    expect([...toggledAll(one, ["a", "b"])].sort()).toEqual(["a", "b"]);
    expect([...toggledAll(new Set(["a", "b", "c"]), ["a", "b"])]).toEqual(["c"]);
  });
});
