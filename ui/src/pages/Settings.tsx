import { useCallback, useEffect, useState } from "react";
import { ErrorNote } from "../components/common";
import { useAccess } from "../components/AccessGate";
import { can } from "../lib/access";
import { filterRows, getSettings, settingRows, settingText, type GatewaySettings } from "../lib/settings";
import "../styles/settings.css";

/** A wide table in a region the keyboard can focus, so it scrolls with the arrow keys. */
function TableRegion({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div className="settings-region" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}

/** The gateway's settings in effect, read-only, for admins (secrets masked by the
 * gateway). Asked once per visit (and on Reload): each answer is an audit entry. */
export default function SettingsPage() {
  const { state: access } = useAccess();
  const admin = can(access, "admin");
  const [settings, setSettings] = useState<GatewaySettings | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [filter, setFilter] = useState("");
  const load = useCallback(() => {
    setError(null);
    getSettings().then(setSettings).catch(setError);
  }, []);
  useEffect(() => {
    if (admin) load();
  }, [admin, load]);

  if (!admin) {
    return (
      <div className="page settings-page">
        <h1>Settings</h1>
        <p className="muted">Only an admin key can see the gateway&apos;s settings.</p>
      </div>
    );
  }
  const rows = settings ? filterRows(settingRows(settings), filter) : [];
  const providers = settings ? Object.entries(settings.providers) : [];
  const models = settings ? Object.entries(settings.models) : [];
  return (
    <div className="page settings-page" data-testid="settings-page">
      <header className="page-head">
        <h1>Settings</h1>
        <button type="button" className="btn btn-small" onClick={load} data-testid="settings-reload">
          Reload
        </button>
      </header>
      <p className="muted">
        Read-only: the settings in effect (defaults, the config file, <code>SPANLAB_*</code> environment). Secrets are
        masked: keys and tokens only say whether they are set. Change a setting in the config file or the environment,
        then restart the gateway.
      </p>
      <ErrorNote error={error} onRetry={load} />
      {settings && (
        <>
          <section aria-labelledby="settings-gateway">
            <h2 id="settings-gateway">Gateway</h2>
            <label className="filter settings-filter">
              <span>Find a setting</span>
              <input
                type="search"
                value={filter}
                onChange={(e) => setFilter(e.target.value)}
                placeholder="name or value"
                data-testid="settings-filter"
              />
            </label>
            <TableRegion label="Gateway settings">
              <table className="settings-table" data-testid="settings-table">
                <thead>
                  <tr>
                    <th scope="col">Setting</th>
                    <th scope="col">Value</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map(([name, value]) => (
                    <tr key={name}>
                      <th scope="row">
                        <code>{name}</code>
                      </th>
                      <td className={value === "not set" ? "muted" : undefined}>{value}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {rows.length === 0 && <p className="muted">No setting matches.</p>}
            </TableRegion>
          </section>
          <section aria-labelledby="settings-providers">
            <h2 id="settings-providers">Providers</h2>
            <TableRegion label="Providers">
              <table className="settings-table" data-testid="settings-providers">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Kind</th>
                    <th scope="col">Base URL</th>
                    <th scope="col">API key</th>
                    <th scope="col">Headers</th>
                  </tr>
                </thead>
                <tbody>
                  {providers.map(([name, p]) => (
                    <tr key={name}>
                      <th scope="row">
                        <code>{name}</code>
                      </th>
                      <td>{p.kind}</td>
                      <td>
                        <code>{p.base_url}</code>
                      </td>
                      <td>
                        {p.api_key_env ? <code>{p.api_key_env}</code> : "none"} {p.api_key_set ? "(set)" : "(not set)"}
                      </td>
                      <td>{p.headers ? Object.keys(p.headers).join(", ") : "none"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableRegion>
          </section>
          {models.length > 0 && (
            <section aria-labelledby="settings-models">
              <h2 id="settings-models">Models</h2>
              <TableRegion label="Model routes">
                <table className="settings-table">
                  <thead>
                    <tr>
                      <th scope="col">Model</th>
                      <th scope="col">Goes to</th>
                    </tr>
                  </thead>
                  <tbody>
                    {models.map(([model, route]) => (
                      <tr key={model}>
                        <th scope="row">
                          <code>{model}</code>
                        </th>
                        <td>{settingText(route)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableRegion>
            </section>
          )}
        </>
      )}
    </div>
  );
}
