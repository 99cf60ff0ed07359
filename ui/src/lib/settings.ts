// The gateway's effective settings (GET /settings, admins only; the gateway masks every
// secret and audits each call as settings.shown, so the page asks once, not on focus).

import { getJson } from "./api";

export type SettingValue = string | number | boolean | null;

export interface ProviderSettings {
  kind: string;
  base_url: string;
  api_key_env: string | null;
  api_key_set: boolean;
  headers?: Record<string, string>;
  proxy?: string;
  verify?: boolean;
  [key: string]: unknown;
}

export interface GatewaySettings {
  providers: Record<string, ProviderSettings>;
  models: Record<string, string>;
  prices: Record<string, Record<string, number>>;
  [name: string]: unknown;
}

export const getSettings = (): Promise<GatewaySettings> => getJson<GatewaySettings>("/settings");

const GROUPED = new Set(["providers", "models", "prices"]);

/** The plain settings as [name, text] rows, sorted by name; a masked secret reads as
 * the gateway sent it ("(set)", or empty: "not set"). */
export function settingRows(settings: GatewaySettings): [string, string][] {
  return Object.keys(settings)
    .filter((name) => !GROUPED.has(name))
    .sort()
    .map((name) => [name, settingText(settings[name])]);
}

export function settingText(value: unknown): string {
  if (value === null || value === undefined || value === "") return "not set";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** Rows whose name or value contains ``text`` (case-insensitive); all for none. */
export function filterRows(rows: [string, string][], text: string): [string, string][] {
  const needle = text.trim().toLowerCase();
  if (!needle) return rows;
  return rows.filter(([name, value]) => name.toLowerCase().includes(needle) || value.toLowerCase().includes(needle));
}
