import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import useSWR from "swr";
import { ErrorNote } from "./common";
import { getSession, needsSignIn, signIn, signOut, type AccessState } from "../lib/access";
import "../styles/access.css";

interface AccessContextValue {
  state: AccessState | undefined;
  refresh: () => void;
}

const AccessContext = createContext<AccessContextValue>({ state: undefined, refresh: () => {} });

/** Who the browser is signed in as (undefined until the gateway has said). */
export function useAccess(): AccessContextValue {
  return useContext(AccessContext);
}

/** Fired by lib/api.ts on any 401: the session may have ended (signed out elsewhere,
 * expired, its key revoked). */
export const UNAUTHORIZED_EVENT = "spanlab:unauthorized";

/** With keys on and nobody signed in, the sign-in page instead of the app; on a gateway
 * bound to a public address with no key, a banner above it. */
export function AccessGate({ children }: { children: ReactNode }) {
  const { data, error, mutate } = useSWR<AccessState>("/session", getSession, { shouldRetryOnError: false });
  useEffect(() => {
    const recheck = () => void mutate();
    window.addEventListener(UNAUTHORIZED_EVENT, recheck);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, recheck);
  }, [mutate]);
  const value = { state: data, refresh: () => void mutate() };
  // Until the gateway has said whether keys are on, nothing that would ask it for data.
  // (Unreachable: the app itself says so.)
  if (data === undefined && error === undefined) return <div className="page muted">Loading…</div>;
  if (needsSignIn(data)) return <SignIn onSignedIn={(state) => void mutate(state, { revalidate: false })} />;
  return (
    <AccessContext.Provider value={value}>
      {data?.insecure && (
        <div className="access-banner" role="alert" data-testid="insecure-banner">
          This gateway is open to anyone who can reach it: it listens on a public address with no key
          (--insecure-no-auth). Every trace is readable and the provider keys can be used.
        </div>
      )}
      {children}
    </AccessContext.Provider>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (state: AccessState) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <main className="access-signin" data-testid="sign-in">
      <form
        className="access-signin-card"
        aria-label="Sign in"
        onSubmit={(e) => {
          e.preventDefault();
          if (!key.trim()) return;
          setBusy(true);
          setError(null);
          signIn(key.trim())
            .then((state) => {
              setKey(""); // the page keeps no key: the session cookie stands for it
              onSignedIn(state);
            })
            .catch(setError)
            .finally(() => setBusy(false));
        }}
      >
        <h1>
          <span className="brand-mark" aria-hidden="true">
            {"\u25c8"}
          </span>{" "}
          Spanlab
        </h1>
        <p className="muted">This gateway needs a key. Paste one to sign in (ask its admin for a key with the read scope).</p>
        <label className="access-field">
          <span>Key</span>
          <input
            ref={input}
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={key}
            onChange={(e) => setKey(e.target.value)}
            placeholder="slk_…"
            data-testid="sign-in-key"
          />
        </label>
        <button type="submit" className="btn btn-primary" disabled={busy || !key.trim()} data-testid="sign-in-submit">
          Sign in
        </button>
        {error !== null && <ErrorNote error={error} />}
      </form>
    </main>
  );
}

/** In the sidebar: who is signed in, and the sign-out button. Nothing with keys off. */
export function SessionBadge() {
  const { state, refresh } = useAccess();
  const [busy, setBusy] = useState(false);
  if (!state?.auth || !state.principal) return null;
  return (
    <div className="access-badge" data-testid="session-badge">
      <span className="access-who" title={`Scopes: ${state.principal.scopes.join(", ")}`}>
        {state.principal.name}
      </span>
      <button
        type="button"
        className="btn btn-small"
        disabled={busy}
        data-testid="sign-out"
        onClick={() => {
          setBusy(true);
          signOut()
            .catch(() => undefined)
            .finally(() => {
              setBusy(false);
              refresh();
            });
        }}
      >
        Sign out
      </button>
    </div>
  );
}
