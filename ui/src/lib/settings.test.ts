import { describe, expect, it } from "vitest";
import { filterRows, settingRows, settingText, type GatewaySettings } from "./settings";

const settings: GatewaySettings = {
  port: 8080,
  admin_key: "(set)",
  metrics_token: "",
  capture: true,
  source: null,
  providers: { openai: { kind: "openai", base_url: "https://api.openai.com/v1", api_key_env: "OPENAI_API_KEY", api_key_set: true } },
  models: { "gpt-4o": "openai" },
  prices: {},
};

describe("settings rows", () => {
  it("lists the plain settings by name, without the grouped ones", () => {
    expect(settingRows(settings)).toEqual([
      ["admin_key", "(set)"],
      ["capture", "true"],
      ["metrics_token", "not set"],
      ["port", "8080"],
      ["source", "not set"],
    ]);
  });

  it("says an empty value is not set and shows objects as JSON", () => {
    expect(settingText("")).toBe("not set");
    expect(settingText({ a: 1 })).toBe('{"a":1}');
  });

  it("filters by name or value, case-insensitively", () => {
    const rows = settingRows(settings);
    expect(filterRows(rows, "TOKEN")).toEqual([["metrics_token", "not set"]]);
    expect(filterRows(rows, "8080")).toEqual([["port", "8080"]]);
    expect(filterRows(rows, "  ")).toHaveLength(5);
  });
});
