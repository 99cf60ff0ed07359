// The variants of a matrix experiment: list, add, edit, remove. A variant is a template
// (its own messages with {{content}} and the input's variables) or an override of each
// input's captured request; model, parameters and system prompt either way.

import { useState } from "react";
import useSWR from "swr";
import { sendJson } from "../lib/api";
import { fmtInt, truncate } from "../lib/format";
import type { JsonObject, Variant } from "../lib/types";
import { ErrorNote } from "./common";

interface Form {
  name: string;
  kind: "template" | "override";
  model: string;
  temperature: string;
  maxTokens: string;
  systemPrompt: string;
  systemMode: "replace" | "prepend";
  /** Other config keys as JSON (messages, tools, provider, top_p...). */
  extra: string;
}

const KNOWN = new Set(["model", "temperature", "max_tokens", "system_mode"]);

function formOf(v: Variant | null): Form {
  const config = v?.config ?? {};
  const extra = Object.fromEntries(Object.entries(config).filter(([k]) => !KNOWN.has(k)));
  const num = (x: unknown) => (typeof x === "number" ? String(x) : "");
  return {
    name: v?.name ?? "",
    kind: v?.kind ?? "template",
    model: typeof config.model === "string" ? config.model : "",
    temperature: num(config.temperature),
    maxTokens: num(config.max_tokens),
    systemPrompt: v?.system_prompt ?? "",
    systemMode: config.system_mode === "prepend" ? "prepend" : "replace",
    extra: Object.keys(extra).length ? JSON.stringify(extra, null, 2) : "",
  };
}

/** The body of POST/PUT .../variants, or a message saying what is wrong. */
export function variantBody(form: Form): { body: JsonObject } | { problem: string } {
  if (!form.name.trim()) return { problem: "A variant needs a name." };
  let extra: JsonObject = {};
  if (form.extra.trim()) {
    try {
      const parsed: unknown = JSON.parse(form.extra);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return { problem: "Other parameters must be a JSON object." };
      extra = parsed as JsonObject;
    } catch (err) {
      return { problem: `Other parameters are not valid JSON: ${(err as Error).message}` };
    }
  }
  const config: JsonObject = { ...extra };
  if (form.model.trim()) config.model = form.model.trim();
  for (const [key, text] of [["temperature", form.temperature], ["max_tokens", form.maxTokens]] as const) {
    if (!text.trim()) continue;
    const n = Number(text);
    if (!Number.isFinite(n)) return { problem: `${key} must be a number.` };
    config[key] = n;
  }
  if (form.kind === "override" && form.systemMode === "prepend") config.system_mode = "prepend";
  return {
    body: { name: form.name.trim(), kind: form.kind, systemPrompt: form.systemPrompt || null, config },
  };
}

function summary(v: Variant): string {
  const c = v.config ?? {};
  const params = Object.entries(c)
    .filter(([k]) => k !== "model" && k !== "messages")
    .map(([k, val]) => `${k}=${typeof val === "string" ? val : JSON.stringify(val)}`);
  return params.join(", ");
}

function VariantForm({
  experimentId,
  variant,
  onDone,
}: {
  experimentId: string;
  variant: Variant | null;
  onDone: (saved: boolean) => void;
}) {
  const [form, setForm] = useState<Form>(() => formOf(variant));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const { data: models } = useSWR<{ data: { id: string }[] }>("/models", { shouldRetryOnError: false });
  const set = <K extends keyof Form>(key: K, value: Form[K]) => setForm((f) => ({ ...f, [key]: value }));
  const prefix = variant ? `variant-edit` : "variant-new";
  const save = async () => {
    const result = variantBody(form);
    if ("problem" in result) {
      setError(result.problem);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const base = `/experiments/${encodeURIComponent(experimentId)}/variants`;
      if (variant) await sendJson("PUT", `${base}/${encodeURIComponent(variant.id)}`, result.body);
      else await sendJson("POST", base, result.body);
      onDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="matrix-form"
      data-testid="variant-form"
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <div className="matrix-fields">
        <label>
          <span>Name</span>
          <input type="text" value={form.name} onChange={(e) => set("name", e.target.value)} aria-label="Variant name" required />
        </label>
        <label>
          <span>Kind</span>
          <select value={form.kind} onChange={(e) => set("kind", e.target.value as Form["kind"])} aria-label="Variant kind">
            <option value="template">template (messages with {"{{content}}"})</option>
            <option value="override">override (each input's captured request)</option>
          </select>
        </label>
        <label>
          <span>Model</span>
          <input type="text" list={`${prefix}-models`} value={form.model} onChange={(e) => set("model", e.target.value)} aria-label="Variant model" placeholder={form.kind === "override" ? "keep the input's" : "gpt-4o-mini"} />
          <datalist id={`${prefix}-models`}>
            {(models?.data ?? []).map((m) => (
              <option key={m.id} value={m.id} />
            ))}
          </datalist>
        </label>
        <label>
          <span>Temperature</span>
          <input type="number" step="0.1" min="0" max="2" value={form.temperature} onChange={(e) => set("temperature", e.target.value)} aria-label="Variant temperature" />
        </label>
        <label>
          <span>Max tokens</span>
          <input type="number" min="1" step="1" value={form.maxTokens} onChange={(e) => set("maxTokens", e.target.value)} aria-label="Variant max tokens" />
        </label>
        {form.kind === "override" && (
          <label>
            <span>System prompt</span>
            <select value={form.systemMode} onChange={(e) => set("systemMode", e.target.value as Form["systemMode"])} aria-label="System prompt mode">
              <option value="replace">replaces the input's</option>
              <option value="prepend">goes before the input's</option>
            </select>
          </label>
        )}
      </div>
      <label className="matrix-wide">
        <span>System prompt</span>
        <textarea rows={3} value={form.systemPrompt} onChange={(e) => set("systemPrompt", e.target.value)} aria-label="Variant system prompt" />
      </label>
      <label className="matrix-wide">
        <span>Other parameters (JSON object: messages, tools, provider, top_p…)</span>
        <textarea rows={2} className="mono" value={form.extra} onChange={(e) => set("extra", e.target.value)} aria-label="Variant other parameters" placeholder='{"top_p": 0.9}' />
      </label>
      <ErrorNote error={error} />
      <div className="matrix-actions">
        <button type="submit" className="btn btn-primary btn-small" disabled={busy}>
          {variant ? "Save variant" : "Add variant"}
        </button>
        <button type="button" className="btn btn-small" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function VariantsPanel({
  experimentId,
  variants,
  onChanged,
}: {
  experimentId: string;
  variants: Variant[];
  onChanged: () => Promise<unknown>;
}) {
  // null: no form; "new": adding; else the id of the variant being edited
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const remove = async (v: Variant) => {
    setError(null);
    try {
      await sendJson("DELETE", `/experiments/${encodeURIComponent(experimentId)}/variants/${encodeURIComponent(v.id)}`);
      await onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const done = (saved: boolean) => {
    setEditing(null);
    if (saved) void onChanged();
  };
  return (
    <section className="section matrix-panel" data-testid="variants-panel" aria-labelledby="variants-title">
      <header className="section-head">
        <h3 id="variants-title">Variants ({fmtInt(variants.length)})</h3>
        {editing === null && (
          <button type="button" className="btn btn-small" onClick={() => setEditing("new")}>
            + Variant
          </button>
        )}
      </header>
      <ErrorNote error={error} />
      {variants.length === 0 && editing === null && <p className="muted small">No variants yet: add one per model or configuration to compare.</p>}
      <ul className="matrix-list">
        {variants.map((v) =>
          editing === v.id ? (
            <li key={v.id}>
              <VariantForm experimentId={experimentId} variant={v} onDone={done} />
            </li>
          ) : (
            <li key={v.id} data-testid="variant-item" data-variant-id={v.id}>
              <div className="matrix-item-main">
                <strong>{v.name}</strong> <span className="badge badge-neutral">{v.kind}</span>{" "}
                <code>{typeof v.config?.model === "string" ? v.config.model : "input's model"}</code>{" "}
                <span className="muted small">{summary(v)}</span>
                {v.system_prompt && <div className="muted small">system: {truncate(v.system_prompt, 120)}</div>}
              </div>
              <div className="matrix-actions">
                <button type="button" className="btn btn-small" onClick={() => setEditing(v.id)} aria-label={`Edit variant ${v.name}`}>
                  Edit
                </button>
                <button type="button" className="btn btn-small btn-danger" onClick={() => void remove(v)} aria-label={`Remove variant ${v.name}`}>
                  Remove
                </button>
              </div>
            </li>
          ),
        )}
      </ul>
      {editing === "new" && <VariantForm experimentId={experimentId} variant={null} onDone={done} />}
    </section>
  );
}
