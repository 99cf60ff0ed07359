// The visual request editor: model, messages (edit, add, remove, reorder, roles, tool
// calls), parameters, tools and any other keys. Every change goes through the pure
// functions of lib/editor.ts and hands a new request to onChange.

import { useEffect, useId, useState } from "react";
import {
  ANTHROPIC_ROLES,
  CHAT_ROLES,
  addMessage,
  messagesOf,
  moveMessage,
  otherKeys,
  paramsFor,
  paramText,
  parseParam,
  parseTools,
  removeMessage,
  setKey,
  setRole,
  setSystem,
  systemText,
  updateContentPart,
  updateMessage,
  updateToolCall,
  type ParamSpec,
  type RequestFormat,
} from "../lib/editor";
import { isObject, jsonText } from "../lib/messages";
import type { JsonObject, JsonValue } from "../lib/types";
import "../styles/experiment.css";

function rowsFor(text: string, min = 2, max = 16): number {
  return Math.min(max, Math.max(min, text.split("\n").length + 1));
}

/** A textarea holding JSON: commits only valid JSON, shows the parse error otherwise. */
export function JsonField({
  value,
  onCommit,
  label,
  validate,
  placeholder,
}: {
  value: JsonValue | undefined;
  onCommit: (value: JsonValue | undefined) => void;
  label: string;
  validate?: (text: string) => { value: JsonValue | undefined } | { error: string };
  placeholder?: string;
}) {
  const external = value === undefined ? "" : jsonText(value);
  const [text, setText] = useState(external);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setText((current) => {
      // keep the user's formatting while it still means the same value
      try {
        if (current.trim() && JSON.stringify(JSON.parse(current)) === JSON.stringify(value)) return current;
      } catch {
        /* replaced below */
      }
      return external;
    });
    setError(null);
  }, [external, value]);
  const change = (next: string) => {
    setText(next);
    const result = validate
      ? validate(next)
      : (() => {
          if (!next.trim()) return { value: undefined };
          try {
            return { value: JSON.parse(next) as JsonValue };
          } catch (err) {
            return { error: `Invalid JSON: ${err instanceof Error ? err.message : String(err)}` };
          }
        })();
    if ("error" in result) setError(result.error);
    else {
      setError(null);
      onCommit(result.value);
    }
  };
  return (
    <div className="json-field">
      <textarea
        className={`mono ${error ? "invalid" : ""}`}
        value={text}
        rows={rowsFor(text, 2, 14)}
        onChange={(e) => change(e.target.value)}
        aria-label={label}
        aria-invalid={error ? true : undefined}
        placeholder={placeholder}
        spellCheck={false}
      />
      {error && <div className="field-error">{error}</div>}
    </div>
  );
}

function ParamInput({ spec, value, onChange }: { spec: ParamSpec; value: JsonValue | undefined; onChange: (v: JsonValue | undefined) => void }) {
  const external = paramText(value);
  const [text, setText] = useState(external);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setText((current) => {
      const parsed = parseParam(spec, current);
      return "value" in parsed && JSON.stringify(parsed.value) === JSON.stringify(value) ? current : external;
    });
  }, [external, value, spec]);
  const numeric = spec.kind === "number" || spec.kind === "integer";
  const set = typeof value === "number";
  const id = useId();
  return (
    <div className="param" data-param={spec.name}>
      <label className="param-name" htmlFor={id}>
        {spec.name}
      </label>
      <input
        id={id}
        type="text"
        inputMode={numeric ? "decimal" : undefined}
        value={text}
        placeholder={spec.hint}
        aria-label={spec.name}
        name={`param-${spec.name}`}
        className={error ? "invalid" : undefined}
        onChange={(e) => {
          setText(e.target.value);
          const parsed = parseParam(spec, e.target.value);
          if ("error" in parsed) setError(parsed.error);
          else {
            setError(null);
            onChange(parsed.value);
          }
        }}
      />
      {numeric && spec.min !== undefined && spec.max !== undefined && (
        // Unset, the slider has no thumb and says "unset" (a range input always holds
        // some number; showing it at its minimum would read as 0). Moving it sets a value.
        <input
          type="range"
          min={spec.min}
          max={spec.max}
          step={spec.step}
          value={set ? value : (spec.min + spec.max) / 2}
          className={set ? undefined : "unset"}
          data-unset={set ? undefined : "true"}
          aria-valuetext={set ? undefined : "unset"}
          aria-label={`${spec.name} slider`}
          onChange={(e) => {
            setError(null);
            onChange(Number(e.target.value));
          }}
        />
      )}
      {set ? (
        <button
          type="button"
          className="param-clear"
          aria-label={`Clear ${spec.name}`}
          title="Back to unset: the provider's default"
          onClick={() => {
            setError(null);
            setText("");
            onChange(undefined);
          }}
        >
          clear
        </button>
      ) : (
        <span className="param-unset muted small">unset (provider default)</span>
      )}
      {error && <span className="field-error">{error}</span>}
    </div>
  );
}

function ContentEditor({
  message,
  index,
  request,
  onChange,
}: {
  message: JsonObject;
  index: number;
  request: JsonObject;
  onChange: (r: JsonObject) => void;
}) {
  const content = message.content;
  if (Array.isArray(content)) {
    return (
      <div className="parts">
        {content.map((part, p) => {
          if (isObject(part) && ["text", "input_text", "output_text"].includes(String(part.type)) && typeof part.text === "string") {
            return (
              <div key={p} className="part-edit">
                <span className="part-tag">text</span>
                <textarea
                  value={part.text}
                  rows={rowsFor(part.text)}
                  aria-label={`Message ${index + 1} part ${p + 1}`}
                  onChange={(e) => onChange(updateContentPart(request, index, p, { ...part, text: e.target.value }))}
                />
              </div>
            );
          }
          return (
            <div key={p} className="part-edit">
              <span className="part-tag">{isObject(part) ? String(part.type ?? "part") : "part"}</span>
              <JsonField
                value={part}
                label={`Message ${index + 1} part ${p + 1} (JSON)`}
                onCommit={(v) => onChange(updateContentPart(request, index, p, v))}
              />
            </div>
          );
        })}
        <button
          type="button"
          className="btn btn-small"
          onClick={() => onChange(updateMessage(request, index, { content: [...content, { type: "text", text: "" }] }))}
        >
          + text part
        </button>
      </div>
    );
  }
  const text = typeof content === "string" ? content : "";
  return (
    <textarea
      value={text}
      rows={rowsFor(text)}
      placeholder={content === null ? "(no text: tool calls only)" : "Message text"}
      aria-label={`Message ${index + 1} content`}
      data-testid="message-content"
      onChange={(e) =>
        onChange(updateMessage(request, index, { content: e.target.value === "" && content === null ? null : e.target.value }))
      }
    />
  );
}

function MessageEditor({
  request,
  index,
  count,
  roles,
  onChange,
}: {
  request: JsonObject;
  index: number;
  count: number;
  roles: readonly string[];
  onChange: (r: JsonObject) => void;
}) {
  const message = messagesOf(request)[index]!;
  const role = typeof message.role === "string" ? message.role : "user";
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  return (
    <div className={`msg-edit role-${role}`} data-testid="message-editor">
      <div className="msg-edit-head">
        <select value={role} onChange={(e) => onChange(setRole(request, index, e.target.value))} aria-label={`Message ${index + 1} role`}>
          {[...new Set([...roles, role])].map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <span className="spacer" />
        <button type="button" className="icon-btn" onClick={() => onChange(moveMessage(request, index, -1))} disabled={index === 0} aria-label={`Move message ${index + 1} up`}>
          {"\u2191"}
        </button>
        <button
          type="button"
          className="icon-btn"
          onClick={() => onChange(moveMessage(request, index, 1))}
          disabled={index === count - 1}
          aria-label={`Move message ${index + 1} down`}
        >
          {"\u2193"}
        </button>
        <button type="button" className="icon-btn danger" onClick={() => onChange(removeMessage(request, index))} aria-label={`Remove message ${index + 1}`}>
          {"\u2715"}
        </button>
      </div>
      {role === "tool" && (
        <label className="inline-field">
          <span>answers tool call</span>
          <input
            type="text"
            value={typeof message.tool_call_id === "string" ? message.tool_call_id : ""}
            onChange={(e) => onChange(updateMessage(request, index, { tool_call_id: e.target.value }))}
            aria-label={`Message ${index + 1} tool call id`}
          />
        </label>
      )}
      <ContentEditor message={message} index={index} request={request} onChange={onChange} />
      {calls.map((call, c) => {
        const fn = isObject(call) && isObject(call.function) ? call.function : {};
        return (
          <div key={c} className="tool-call-edit">
            <span className="part-tag">tool call</span>
            <input
              type="text"
              value={typeof fn.name === "string" ? fn.name : ""}
              onChange={(e) => onChange(updateToolCall(request, index, c, { name: e.target.value }))}
              aria-label={`Message ${index + 1} tool call ${c + 1} name`}
            />
            <textarea
              className="mono"
              value={typeof fn.arguments === "string" ? fn.arguments : jsonText(fn.arguments ?? "")}
              rows={rowsFor(String(fn.arguments ?? ""), 1, 8)}
              onChange={(e) => onChange(updateToolCall(request, index, c, { arguments: e.target.value }))}
              aria-label={`Message ${index + 1} tool call ${c + 1} arguments`}
            />
          </div>
        );
      })}
    </div>
  );
}

function OtherParams({ request, format, onChange }: { request: JsonObject; format: RequestFormat; onChange: (r: JsonObject) => void }) {
  const [name, setName] = useState("");
  const keys = otherKeys(request, format);
  return (
    <div className="other-params">
      {keys.map((key) => (
        <div key={key} className="other-param">
          <code>{key}</code>
          <JsonField value={request[key]} label={`Parameter ${key}`} onCommit={(v) => onChange(setKey(request, key, v === undefined ? null : v))} />
          <button type="button" className="icon-btn danger" onClick={() => onChange(setKey(request, key, undefined))} aria-label={`Remove parameter ${key}`}>
            {"\u2715"}
          </button>
        </div>
      ))}
      <div className="add-param">
        <input type="text" value={name} placeholder="other parameter name" onChange={(e) => setName(e.target.value)} aria-label="New parameter name" />
        <button
          type="button"
          className="btn btn-small"
          disabled={!name.trim() || name.trim() in request}
          onClick={() => {
            onChange(setKey(request, name.trim(), null));
            setName("");
          }}
        >
          Add
        </button>
      </div>
    </div>
  );
}

function TextOrJson({ request, field, label, onChange }: { request: JsonObject; field: string; label: string; onChange: (r: JsonObject) => void }) {
  const value = request[field];
  if (value === undefined) return null;
  return (
    <div className="field-block">
      <h4>{label}</h4>
      {typeof value === "string" ? (
        <textarea value={value} rows={rowsFor(value)} aria-label={label} onChange={(e) => onChange(setKey(request, field, e.target.value))} />
      ) : (
        <JsonField value={value} label={label} onCommit={(v) => onChange(setKey(request, field, v))} />
      )}
    </div>
  );
}

export function VisualEditor({
  request,
  format,
  models,
  onChange,
  modelError,
}: {
  request: JsonObject;
  format: RequestFormat;
  models: string[];
  onChange: (r: JsonObject) => void;
  /** Why the last run was refused for its model (unknown model or provider, a
   * dialect the provider does not serve): shown at the field. */
  modelError?: string | null;
}) {
  const messages = messagesOf(request);
  const roles = format === "anthropic" ? ANTHROPIC_ROLES : CHAT_ROLES;
  const system = format === "anthropic" ? systemText(request) : null;
  const hasMessages = Array.isArray(request.messages);
  return (
    <div className="visual-editor">
      <div className="field-block">
        <h4>Model</h4>
        <input
          type="text"
          list="experiment-models"
          value={typeof request.model === "string" ? request.model : ""}
          onChange={(e) => onChange(setKey(request, "model", e.target.value))}
          aria-label="Model"
          name="model"
          aria-invalid={modelError ? true : undefined}
          aria-describedby={modelError ? "model-error" : undefined}
        />
        {modelError && (
          <div className="field-error" id="model-error" role="alert" data-testid="model-error">
            {modelError}
          </div>
        )}
        <datalist id="experiment-models">
          {models.map((m) => (
            <option key={m} value={m} />
          ))}
        </datalist>
      </div>

      {format === "anthropic" && (
        <div className="field-block">
          <h4>System</h4>
          <textarea
            value={system ?? ""}
            rows={rowsFor(system ?? "")}
            aria-label="System prompt"
            placeholder="(no system prompt)"
            onChange={(e) => onChange(setSystem(request, e.target.value === "" && request.system === undefined ? null : e.target.value))}
          />
        </div>
      )}
      <TextOrJson request={request} field="instructions" label="Instructions" onChange={onChange} />
      <TextOrJson request={request} field="input" label="Input" onChange={onChange} />
      <TextOrJson request={request} field="prompt" label="Prompt" onChange={onChange} />

      {(hasMessages || format === "chat" || format === "anthropic") && (
        <div className="field-block">
          <h4>Messages ({messages.length})</h4>
          {messages.map((_, i) => (
            <MessageEditor key={i} request={request} index={i} count={messages.length} roles={roles} onChange={onChange} />
          ))}
          <div className="add-row">
            {(format === "anthropic" ? ["user", "assistant"] : ["system", "user", "assistant", "tool"]).map((role) => (
              <button key={role} type="button" className="btn btn-small" onClick={() => onChange(addMessage(request, role))}>
                + {role}
              </button>
            ))}
          </div>
        </div>
      )}

      <div className="field-block">
        <h4>Parameters</h4>
        <div className="params">
          {paramsFor(format).map((spec) => (
            <ParamInput key={spec.name} spec={spec} value={request[spec.name]} onChange={(v) => onChange(setKey(request, spec.name, v))} />
          ))}
        </div>
        <OtherParams request={request} format={format} onChange={onChange} />
      </div>

      <div className="field-block">
        <h4>Tools</h4>
        <JsonField
          value={request.tools}
          label="Tools (JSON array)"
          placeholder='[{"type": "function", "function": {"name": "…", "parameters": {…}}}]'
          validate={parseTools}
          onCommit={(v) => onChange(setKey(request, "tools", v))}
        />
      </div>
    </div>
  );
}
