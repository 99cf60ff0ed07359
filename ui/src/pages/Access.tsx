import { useState } from "react";
import useSWR from "swr";
import { ErrorNote } from "../components/common";
import { useAccess } from "../components/AccessGate";
import { QuotaUsage } from "../components/QuotaUsage";
import {
  can,
  createKey,
  createProject,
  keyState,
  listKeys,
  listProjects,
  revokeKey,
  SCOPES,
  type CreatedKey,
  type KeyRecord,
  type Project,
  type Scope,
} from "../lib/access";
import { fmtRelative, fmtTime } from "../lib/format";
import "../styles/access.css";

function NewKey({ projects, onCreated }: { projects: Project[]; onCreated: () => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(["read"]);
  const [project, setProject] = useState("");
  const [days, setDays] = useState("");
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toggle = (scope: Scope) =>
    setScopes(scopes.includes(scope) ? scopes.filter((s) => s !== scope) : [...scopes, scope]);
  return (
    <>
      <form
        className="filters"
        aria-label="New key"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          setCreated(null);
          createKey({
            name: name.trim(),
            scopes,
            project_id: project || null,
            expires_in_days: days.trim() ? Number(days) : null,
          })
            .then((key) => {
              setCreated(key);
              setName("");
              onCreated();
            })
            .catch(setError)
            .finally(() => setBusy(false));
        }}
      >
        <label className="filter">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} data-testid="key-name" />
        </label>
        <fieldset className="access-scopes">
          <legend>Scopes</legend>
          {SCOPES.map((scope) => (
            <label key={scope}>
              <input type="checkbox" checked={scopes.includes(scope)} onChange={() => toggle(scope)} data-testid={`key-scope-${scope}`} />{" "}
              {scope}
            </label>
          ))}
        </fieldset>
        <label className="filter">
          <span>Project</span>
          <select value={project} onChange={(e) => setProject(e.target.value)} aria-label="Project">
            <option value="">any (not bound)</option>
            {projects.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <label className="filter">
          <span>Expires in days</span>
          <input value={days} onChange={(e) => setDays(e.target.value)} inputMode="decimal" placeholder="never" />
        </label>
        <button type="submit" className="btn btn-primary" disabled={busy || !name.trim() || scopes.length === 0} data-testid="key-create">
          Create key
        </button>
      </form>
      {error !== null && <ErrorNote error={error} />}
      {created && (
        <div className="access-new-key" role="status" data-testid="new-key">
          <strong>Copy this key now: it is stored hashed and will not be shown again.</strong>
          <input readOnly value={created.key} aria-label="The new key" onFocus={(e) => e.currentTarget.select()} data-testid="new-key-value" />
          <button type="button" className="btn btn-small" onClick={() => void navigator.clipboard?.writeText(created.key)}>
            Copy
          </button>{" "}
          <button type="button" className="btn btn-small" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      )}
    </>
  );
}

function KeyRow({ item, onChanged }: { item: KeyRecord; onChanged: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const state = keyState(item);
  return (
    <tr data-testid="key-row">
      <td>
        <code>{item.prefix}</code>
      </td>
      <td>{item.name}</td>
      <td>{item.scopes.join(", ")}</td>
      <td>{item.project_id ?? "any"}</td>
      <td title={fmtTime(item.created_at)}>{fmtRelative(item.created_at)}</td>
      <td title={fmtTime(item.last_used_at)}>{item.last_used_at ? fmtRelative(item.last_used_at) : "never"}</td>
      <td>{item.expires_at ? fmtTime(item.expires_at) : "never"}</td>
      <td className={`access-state-${state}`}>{state}</td>
      <td>
        <QuotaUsage usage={item.usage} name={item.name} />
      </td>
      <td>
        {state !== "revoked" &&
          (confirming ? (
            <>
              <button
                type="button"
                className="btn btn-small btn-danger"
                data-testid="key-revoke-confirm"
                onClick={() => revokeKey(item.id).then(onChanged, setError)}
              >
                Revoke now
              </button>{" "}
              <button type="button" className="btn btn-small" onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </>
          ) : (
            <button type="button" className="btn btn-small btn-danger" onClick={() => setConfirming(true)} data-testid="key-revoke">
              Revoke
            </button>
          ))}
        {error !== null && <ErrorNote error={error} />}
      </td>
    </tr>
  );
}

function NewProject({ onCreated }: { onCreated: () => void }) {
  const [id, setId] = useState("");
  const [error, setError] = useState<unknown>(null);
  return (
    <form
      className="filters"
      aria-label="New project"
      onSubmit={(e) => {
        e.preventDefault();
        setError(null);
        createProject(id.trim())
          .then(() => {
            setId("");
            onCreated();
          })
          .catch(setError);
      }}
    >
      <label className="filter">
        <span>Project id</span>
        <input value={id} onChange={(e) => setId(e.target.value)} data-testid="project-id" />
      </label>
      <button type="submit" className="btn" disabled={!id.trim()}>
        Create project
      </button>
      {error !== null && <ErrorNote error={error} />}
    </form>
  );
}

/** Keys and projects (admin). */
export default function AccessPage() {
  const { state } = useAccess();
  const admin = can(state, "admin");
  const keys = useSWR(admin ? "/keys" : null, listKeys, { shouldRetryOnError: false });
  const projects = useSWR(admin ? "/projects" : null, listProjects, { shouldRetryOnError: false });
  if (!admin) {
    return (
      <div className="page access-page">
        <h1>Keys</h1>
        <p className="muted">Managing keys and projects needs a key with the admin scope.</p>
      </div>
    );
  }
  const refresh = () => {
    void keys.mutate();
    void projects.mutate();
  };
  return (
    <div className="page access-page" data-testid="access-page">
      <header className="page-head">
        <h1>Keys and projects</h1>
      </header>
      {state && !state.auth && (
        <p className="muted">
          Keys are off: this gateway is open on loopback. Creating a key turns them on: every request then needs one (sign in with
          an admin key you create here).
        </p>
      )}
      <section aria-label="Keys">
        <h2>Keys</h2>
        <p className="muted">
          Limits (requests per minute, tokens per day, USD per day and month) are set with <code>spanlab keys update --rpm 60</code>{" "}
          or <code>PATCH /keys/&#123;id&#125;</code>; a key without its own has the gateway&apos;s defaults.
        </p>
        <NewKey projects={projects.data?.data ?? []} onCreated={refresh} />
        {keys.error && <ErrorNote error={keys.error} />}
        <table className="access-table">
          <thead>
            <tr>
              <th>Prefix</th>
              <th>Name</th>
              <th>Scopes</th>
              <th>Project</th>
              <th>Created</th>
              <th>Last used</th>
              <th>Expires</th>
              <th>State</th>
              <th>Usage and limits</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(keys.data?.data ?? []).map((item) => (
              <KeyRow key={item.id} item={item} onChanged={refresh} />
            ))}
          </tbody>
        </table>
      </section>
      <section aria-label="Projects">
        <h2>Projects</h2>
        <NewProject onCreated={refresh} />
        <table className="access-table">
          <thead>
            <tr>
              <th>Id</th>
              <th>Name</th>
              <th>Created</th>
              <th>Keys</th>
              <th>Usage and limits</th>
            </tr>
          </thead>
          <tbody>
            {(projects.data?.data ?? []).map((p) => (
              <tr key={p.id}>
                <td>
                  <code>{p.id}</code>
                </td>
                <td>{p.name}</td>
                <td>{fmtRelative(p.created_at)}</td>
                <td>{p.keys}</td>
                <td>
                  <QuotaUsage usage={p.usage} name={p.name} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
