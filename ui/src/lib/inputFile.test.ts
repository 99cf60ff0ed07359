import { describe, expect, it } from "vitest";
import { csvRows, formatOf, locateError, parseInputFile } from "./inputFile";

describe("input files", () => {
  it("tells the format by the file name", () => {
    expect(formatOf("a.JSONL")).toBe("jsonl");
    expect(formatOf("a.ndjson")).toBe("jsonl");
    expect(formatOf("q.csv")).toBe("csv");
    expect(formatOf("lines.txt")).toBe("text");
    expect(formatOf("noext")).toBe("text");
  });

  it("reads text as one input per non-blank line, with their line numbers", () => {
    const parsed = parseInputFile("first\r\n\n  second  \n", "text");
    expect(parsed).toEqual({ ok: true, inputs: [{ content: "first" }, { content: "second" }], lines: [1, 3], unit: "Line" });
    expect(parseInputFile("\n \n", "text")).toEqual({ ok: false, error: "The file has no inputs." });
  });

  it("reads JSON Lines: objects or strings, a bad line named and nothing taken", () => {
    const good = '{"key": "a", "content": "one", "expected": "1"}\n\n"two"\n{"variables": {"city": "Oslo"}}\n';
    const parsed = parseInputFile(good, "jsonl");
    expect(parsed).toEqual({
      ok: true,
      inputs: [{ key: "a", content: "one", expected: "1" }, { content: "two" }, { variables: { city: "Oslo" } }],
      lines: [1, 3, 4],
      unit: "Line",
    });
    const bad = parseInputFile('"one"\n{"content": "two"}\n{"content": \n', "jsonl");
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^Line 3: not JSON/);
    expect(parseInputFile('"one"\n[1, 2]\n', "jsonl")).toEqual({ ok: false, error: "Line 2: an input is an object or a string." });
    expect(parseInputFile('{"metadata": {}}\n', "jsonl")).toEqual({ ok: false, error: "Line 1: needs content, variables or a request." });
    expect(parseInputFile('{"key": "k", "content": "a"}\n{"key": "k", "content": "b"}\n', "jsonl")).toEqual({
      ok: false,
      error: 'Line 2: key "k" is also on line 1.',
    });
  });

  it("reads CSV: key, content and expected columns, the others variables", () => {
    const csv = '\ufeffkey,content,city,expected\nq1,"Weather, today?",Oslo,sunny\nq2,"Say ""hi""\nplease",Rome,\n';
    const parsed = parseInputFile(csv, "csv");
    expect(parsed).toEqual({
      ok: true,
      inputs: [
        { key: "q1", content: "Weather, today?", variables: { city: "Oslo" }, expected: "sunny" },
        { key: "q2", content: 'Say "hi"\nplease', variables: { city: "Rome" } },
      ],
      lines: [2, 3],
      unit: "Row",
    });
  });

  it("takes a CSV's one column as the inputs' text (and as a variable)", () => {
    const parsed = parseInputFile("question\nWhat is 2+2?\nName a river\n", "csv");
    expect(parsed.ok && parsed.inputs).toEqual([
      { content: "What is 2+2?", variables: { question: "What is 2+2?" } },
      { content: "Name a river", variables: { question: "Name a river" } },
    ]);
  });

  it("names the row of a bad CSV", () => {
    expect(parseInputFile("q,a\n1,2\n3\n", "csv")).toEqual({ ok: false, error: "Row 3: 1 cells, the header has 2." });
    expect(parseInputFile("q,q\n1,2\n", "csv")).toEqual({ ok: false, error: 'Row 1: column "q" twice.' });
    expect(parseInputFile("q,\n1,2\n", "csv")).toEqual({ ok: false, error: "Row 1: column 2 has no name." });
    expect(parseInputFile('q,a\n1,2\n"open,3\n', "csv")).toEqual({ ok: false, error: "Row 3: a quote is never closed." });
    expect(parseInputFile("q,a\n1,2\n,\n", "csv")).toEqual({ ok: false, error: "Row 3: no input (every cell is empty)." });
    // A quoted line break stays in its cell; the next row's number counts it.
    expect(csvRows('a,"b\nc"\nd,e')).toEqual({
      rows: [
        { line: 1, cells: ["a", "b\nc"] },
        { line: 3, cells: ["d", "e"] },
      ],
    });
  });

  it("tells a gateway error about one input with the line it came from", () => {
    const parsed = parseInputFile("a\n\nb\n", "text");
    expect(locateError("inputs[1] is bad.", "inputs[1]", parsed)).toBe("Line 3: inputs[1] is bad.");
    expect(locateError("Something else.", "key", parsed)).toBe("Something else.");
    expect(locateError("Something else.", null, parsed)).toBe("Something else.");
  });
});
