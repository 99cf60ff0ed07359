// Where a JSON text first goes wrong. JSON.parse in current engines says what went
// wrong but not where, so the JSON editor uses this to mark the error inline and to
// name the line and column.

class JsonFailure {
  constructor(
    readonly offset: number,
    readonly message: string,
  ) {}
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;

export interface JsonErrorLocation {
  offset: number;
  line: number;
  column: number;
  message: string;
}

export function locateJsonError(text: string): JsonErrorLocation | null {
  let i = 0;
  const fail = (message: string): never => {
    throw new JsonFailure(i, message);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const string = () => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail("Unterminated string");
      const ch = text[i]!;
      if (ch === '"') {
        i++;
        return;
      }
      if (ch === "\\") {
        const next = text[i + 1];
        if (next !== undefined && '"\\/bfnrt'.includes(next)) i += 2;
        else if (next === "u" && HEX4.test(text.slice(i + 2, i + 6))) i += 6;
        else fail("Invalid escape in string");
      } else if (ch < " ") {
        fail("Line break or control character inside a string");
      } else {
        i++;
      }
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === undefined) return fail("Unexpected end of input");
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("Expected a property name in double quotes");
        string();
        ws();
        if (text[i] !== ":") fail("Expected ':' after the property name");
        i++;
        value();
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return;
        }
        fail("Expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return;
        }
        fail("Expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) {
      NUMBER.lastIndex = i;
      if (!NUMBER.exec(text)) fail("Invalid number");
      i = NUMBER.lastIndex;
      return;
    }
    for (const literal of ["true", "false", "null"]) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    fail(`Unexpected character '${c}'`);
  };
  try {
    value();
    ws();
    if (i < text.length) fail("Unexpected text after the JSON value");
    return null;
  } catch (err) {
    if (!(err instanceof JsonFailure)) throw err;
    const before = text.slice(0, err.offset).split("\n");
    return {
      offset: err.offset,
      line: before.length,
      column: before[before.length - 1]!.length + 1,
      message: err.message,
    };
  }
}
