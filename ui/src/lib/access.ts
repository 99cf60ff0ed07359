// Access from the web UI: who the browser is signed in as (GET /session), signing in
// with a key (POST /session sets an HttpOnly session cookie; the key is never kept by
// the page) and out, and the admin's keys and projects. The gateway decides every
// scope; the page only hides what it would refuse anyway.

import { getJson, sendJson } from "./api";
import type { Limits, QuotaUsage } from "./quotas";

export type Scope = "proxy" | "read" | "write" | "admin";
export const SCOPES: Scope[] = ["proxy", "read", "write", "admin"];

export interface Principal {
  key_id: string;
  name: string;
  project_id: string | null;
  scopes: Scope[];
}

export interface AccessState {
  /** keys are required on this gateway */
  auth: boolean;
  /** bound to a public address with no key (--insecure-no-auth) */
  insecure: boolean;
  principal: Principal | null;
}

export interface KeyRecord {
  id: string;
  prefix: string;
  name: string;
  project_id: string | null;
  scopes: Scope[];
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  active: boolean;
  /** its own limits (null: none); absent from an older gateway */
  limits?: Limits;
  usage?: QuotaUsage;
}

export interface CreatedKey extends KeyRecord {
  /** the key itself: shown once */
  key: string;
}

export interface Project {
  id: string;
  name: string;
  created_at: string;
  keys: number;
  limits?: Limits;
  usage?: QuotaUsage;
}

const IMPLIED: Record<Scope, Scope[]> = {
  proxy: ["proxy"],
  read: ["read"],
  write: ["write", "read"],
  admin: ["proxy", "read", "write", "admin"],
};

/** Whether the session may do what ``scope`` allows. With keys off, everything. */
export function can(state: AccessState | undefined, scope: Scope): boolean {
  if (!state || !state.auth) return true;
  const principal = state.principal;
  if (!principal) return false;
  return principal.scopes.some((s) => IMPLIED[s]?.includes(scope));
}

/** The sign-in page is due: keys are on and nobody is signed in. */
export function needsSignIn(state: AccessState | undefined): boolean {
  return !!state && state.auth && state.principal === null;
}

export const getSession = (): Promise<AccessState> => getJson<AccessState>("/session");
export const signIn = (key: string): Promise<AccessState> => sendJson<AccessState>("POST", "/session", { key });
export const signOut = (): Promise<AccessState> => sendJson<AccessState>("DELETE", "/session");

export const listKeys = (): Promise<{ data: KeyRecord[] }> => getJson("/keys");
export function createKey(input: {
  name: string;
  scopes: Scope[];
  project_id?: string | null;
  expires_in_days?: number | null;
}): Promise<CreatedKey> {
  return sendJson<CreatedKey>("POST", "/keys", input);
}
export const revokeKey = (id: string): Promise<KeyRecord> =>
  sendJson<KeyRecord>("DELETE", `/keys/${encodeURIComponent(id)}`);
export const listProjects = (): Promise<{ data: Project[] }> => getJson("/projects");
export const createProject = (id: string, name?: string): Promise<Project> =>
  sendJson<Project>("POST", "/projects", name ? { id, name } : { id });

/** The key's state in words. */
export function keyState(key: KeyRecord): "revoked" | "expired" | "active" {
  if (key.revoked_at) return "revoked";
  return key.active ? "active" : "expired";
}
