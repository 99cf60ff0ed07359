import { describe, expect, it } from "vitest";
import { can, keyState, needsSignIn, type AccessState, type KeyRecord } from "./access";

const signedIn = (scopes: AccessState["principal"] extends infer P ? (P extends { scopes: infer S } ? S : never) : never): AccessState => ({
  auth: true,
  insecure: false,
  principal: { key_id: "k", name: "k", project_id: null, scopes },
});

describe("access", () => {
  it("allows everything with keys off", () => {
    const open: AccessState = { auth: false, insecure: false, principal: null };
    expect(can(open, "admin")).toBe(true);
    expect(needsSignIn(open)).toBe(false);
  });

  it("follows the implied scopes", () => {
    expect(can(signedIn(["read"]), "write")).toBe(false);
    expect(can(signedIn(["read"]), "read")).toBe(true);
    expect(can(signedIn(["write"]), "read")).toBe(true);
    expect(can(signedIn(["admin"]), "proxy")).toBe(true);
    expect(can(signedIn(["proxy"]), "read")).toBe(false);
  });

  it("asks for a sign-in only when keys are on and nobody is signed in", () => {
    expect(needsSignIn({ auth: true, insecure: false, principal: null })).toBe(true);
    expect(needsSignIn(signedIn(["read"]))).toBe(false);
    expect(needsSignIn(undefined)).toBe(false);
  });

  it("names a key's state", () => {
    const base = { active: true, revoked_at: null } as KeyRecord;
    expect(keyState(base)).toBe("active");
    expect(keyState({ ...base, active: false })).toBe("expired");
    expect(keyState({ ...base, active: false, revoked_at: "2026-01-01T00:00:00Z" })).toBe("revoked");
  });
});
