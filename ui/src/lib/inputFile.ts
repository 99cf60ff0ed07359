// A file of inputs for a matrix experiment, read in the browser: JSON Lines (one input
// object, or a string, per line), CSV (a header row; `key`, `content` (or `input`) and
// `expected` columns, the others variables), or plain text (one input per line). Every
// line is checked first: the first bad one is reported with its number, and then none
// is added (the same rule as a dataset import).

import type { JsonObject, JsonValue } from "./types";

export type InputFormat = "jsonl" | "csv" | "text";

/** An input as `POST /experiments/{id}/inputs` takes it. */
export interface InputDraft {
  key?: string;
  content?: string;
  variables?: JsonObject;
  expected?: JsonValue;
  [field: string]: JsonValue | undefined;
}

/** The inputs, with the line (JSONL, text) or row (CSV) each came from. */
export type ParsedInputs = { ok: true; inputs: InputDraft[]; lines: number[]; unit: "Line" | "Row" } | { ok: false; error: string };

export const MAX_FILE_INPUTS = 10_000;

/** The format a file name says (`.jsonl`/`.ndjson`, `.csv`); anything else is text. */
export function formatOf(name: string): InputFormat {
  const lower = name.toLowerCase();
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  if (lower.endsWith(".csv")) return "csv";
  return "text";
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function finish(inputs: InputDraft[], lines: number[], unit: "Line" | "Row"): ParsedInputs {
  if (!inputs.length) return { ok: false, error: "The file has no inputs." };
  if (inputs.length > MAX_FILE_INPUTS) {
    return { ok: false, error: `The file has ${inputs.length} inputs; at most ${MAX_FILE_INPUTS} at once.` };
  }
  const seen = new Map<string, number>();
  for (const [index, input] of inputs.entries()) {
    if (input.key === undefined) continue;
    const first = seen.get(input.key);
    if (first !== undefined) return { ok: false, error: `${unit} ${lines[index]}: key "${input.key}" is also on ${unit.toLowerCase()} ${lines[first]}.` };
    seen.set(input.key, index);
  }
  return { ok: true, inputs, lines, unit };
}

function parseJsonl(text: string): ParsedInputs {
  const inputs: InputDraft[] = [];
  const numbers: number[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (!line) continue;
    const where = `Line ${index + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      return { ok: false, error: `${where}: not JSON (${err instanceof Error ? err.message : String(err)}).` };
    }
    if (typeof value === "string") {
      if (!value.trim()) return { ok: false, error: `${where}: an empty input.` };
      inputs.push({ content: value });
      numbers.push(index + 1);
      continue;
    }
    if (!isObject(value)) return { ok: false, error: `${where}: an input is an object or a string.` };
    if (value.key !== undefined && (typeof value.key !== "string" || !value.key)) {
      return { ok: false, error: `${where}: key must be a non-empty string.` };
    }
    const hasBody = ["content", "variables", "request"].some((field) => value[field] !== undefined && value[field] !== null);
    if (!hasBody) return { ok: false, error: `${where}: needs content, variables or a request.` };
    inputs.push(value as InputDraft);
    numbers.push(index + 1);
  }
  return finish(inputs, numbers, "Line");
}

/** RFC 4180 rows with the line each starts on; an unterminated quote is an error. */
export function csvRows(text: string): { rows: { line: number; cells: string[] }[] } | { error: string } {
  const rows: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let cell = "";
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  let quoteLine = 1;
  const body = text.startsWith("\ufeff") ? text.slice(1) : text; // a spreadsheet's byte order mark
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (quoted) {
      if (ch === '"') {
        if (body[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === "\n") line++;
        cell += ch;
      }
      continue;
    }
    if (ch === '"' && cell === "") {
      quoted = true;
      quoteLine = line;
    } else if (ch === ",") {
      cells.push(cell);
      cell = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && body[i + 1] === "\n") i++;
      cells.push(cell);
      rows.push({ line: rowLine, cells });
      cells = [];
      cell = "";
      line++;
      rowLine = line;
    } else cell += ch;
  }
  if (quoted) return { error: `Row ${quoteLine}: a quote is never closed.` };
  if (cell !== "" || cells.length) {
    cells.push(cell);
    rows.push({ line: rowLine, cells });
  }
  return { rows: rows.filter((row) => !(row.cells.length === 1 && (row.cells[0] ?? "").trim() === "")) };
}

const CONTENT_COLUMNS = ["content", "input"];

function parseCsv(text: string): ParsedInputs {
  const parsed = csvRows(text);
  if ("error" in parsed) return { ok: false, error: parsed.error };
  const [head, ...rows] = parsed.rows;
  if (!head) return { ok: false, error: "The file has no inputs." };
  const names = head.cells.map((name) => name.trim());
  const seen = new Set<string>();
  for (const [index, name] of names.entries()) {
    if (!name) return { ok: false, error: `Row ${head.line}: column ${index + 1} has no name.` };
    if (seen.has(name)) return { ok: false, error: `Row ${head.line}: column "${name}" twice.` };
    seen.add(name);
  }
  let contentColumn = names.findIndex((name) => CONTENT_COLUMNS.includes(name.toLowerCase()));
  const special = new Set(["key", "expected"]);
  const others = names.filter((name) => !special.has(name.toLowerCase()));
  // One column besides key and expected: it is the input's text.
  const [only] = others;
  if (contentColumn < 0 && others.length === 1 && only !== undefined) contentColumn = names.indexOf(only);
  const inputs: InputDraft[] = [];
  const numbers: number[] = [];
  for (const row of rows) {
    if (row.cells.length !== names.length) {
      return { ok: false, error: `Row ${row.line}: ${row.cells.length} cells, the header has ${names.length}.` };
    }
    const input: InputDraft = {};
    const variables: JsonObject = {};
    for (const [index, name] of names.entries()) {
      const value = row.cells[index] ?? "";
      const lower = name.toLowerCase();
      if (lower === "key") {
        if (value.trim()) input.key = value.trim();
      } else if (lower === "expected") {
        if (value !== "") input.expected = value;
      } else if (index === contentColumn) {
        if (value.trim()) input.content = value;
        if (!CONTENT_COLUMNS.includes(lower)) variables[name] = value;
      } else variables[name] = value;
    }
    if (Object.keys(variables).length) input.variables = variables;
    if (input.content === undefined && !Object.values(variables).some((v) => v !== "")) {
      return { ok: false, error: `Row ${row.line}: no input (every cell is empty).` };
    }
    inputs.push(input);
    numbers.push(row.line);
  }
  return finish(inputs, numbers, "Row");
}

function parseText(text: string): ParsedInputs {
  const inputs: InputDraft[] = [];
  const numbers: number[] = [];
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const content = raw.trim();
    if (!content) continue;
    inputs.push({ content });
    numbers.push(index + 1);
  }
  return finish(inputs, numbers, "Line");
}

/** A gateway error about one of the inputs sent (`param` `inputs[i]`), told with the
 * line or row of the file it came from. */
export function locateError(message: string, param: string | null | undefined, parsed: ParsedInputs): string {
  const match = /^inputs\[(\d+)\]/.exec(param ?? "");
  if (!parsed.ok || !match) return message;
  const line = parsed.lines[Number(match[1])];
  return line === undefined ? message : `${parsed.unit} ${line}: ${message}`;
}

/** The inputs a file holds, or the first error (with its line or row number). */
export function parseInputFile(text: string, format: InputFormat): ParsedInputs {
  if (format === "jsonl") return parseJsonl(text);
  if (format === "csv") return parseCsv(text);
  return parseText(text);
}
