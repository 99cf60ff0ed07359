"""The policy: whether keys are required, who a key is, sessions of the web UI, and
the bookkeeping kept off the request path.

Keys are required ("on") once an admin key is set (``admin_key``) or the database
holds an active key; else the gateway is open as it always was (`spanlab serve`
refuses a public bind address in that state, unless ``--insecure-no-auth``).

The check of a key on a call is a SHA-256 and a dict lookup on the keys held in
memory (no database read), then a constant-time comparison of the hashes. The cache
is reloaded at once after a change made through the API (a revoked key is refused by
the very next request), and every `ACCESS_REFRESH_S` seconds to see changes made
with the CLI on the database. Last-used times and refused authentications are
gathered in memory and written in one transaction per period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from gateway.access.audit import AuditLog, retention_cutoff, sql_database
from gateway.access.keys import (
    ADMIN_KEY_ID,
    SCOPES,
    Principal,
    granted,
    hash_key,
    key_id_of,
    same_hash,
)
from gateway.access.store import AccessStore, iso_to_epoch, now_iso
from gateway.config import Settings
from gateway.store.database import Database
from gateway.store.events import EventRecord

logger = logging.getLogger(__name__)

ACCESS_REFRESH_S = 2.0
SESSION_TTL_S = 12 * 3600.0
# Failed authentications from one address: this many per window pass unslowed; each
# one after waits twice as long as the last (from FIRST_DELAY_S, at most MAX_DELAY_S).
FREE_FAILURES = 5
FAILURE_WINDOW_S = 60.0
FIRST_DELAY_S = 0.25
MAX_DELAY_S = 5.0
# Refusals written as events per address and window; past it they are only counted
# (the next window's first event carries the count), so a flood cannot fill the disk.
EVENTS_PER_WINDOW = 20
DENIED_EVENT = "access.denied"
RETENTION_EVERY_S = 3600.0

ADMIN = Principal(
    key_id=ADMIN_KEY_ID,
    name="admin key (settings)",
    project_id=None,
    scopes=("admin",),
    granted=granted(("admin",)),
)


@dataclass(slots=True)
class Session:
    key_id: str
    expires_at: float


@dataclass(slots=True)
class Failures:
    count: int
    window_start: float
    unrecorded: int = 0


class AccessPolicy:
    """Held by the app (``app.state.access``); see the module's docstring."""

    def __init__(self, settings: Settings) -> None:
        self._admin_hash = hash_key(settings.admin_key) if settings.admin_key else None
        self._metrics_hash = hash_key(settings.metrics_token) if settings.metrics_token else None
        self.insecure = settings.insecure_no_auth
        self.audit_retention_days = settings.audit_retention_days
        # When the audit log's retention was last applied (None: not yet; a monotonic
        # clock starts near 0 at boot, so 0.0 would mean "an hour ago" only after one).
        self._retained_at: float | None = None
        self.enabled = self._admin_hash is not None
        self._keys: dict[str, tuple[str, Principal]] = {}  # key id -> (hash, who)
        self._sessions: dict[str, Session] = {}
        self._last_used: dict[str, float] = {}
        self._events: list[EventRecord] = []
        self._failures: dict[str, Failures] = {}
        self.store: AccessStore | None = None
        self._task: asyncio.Task[None] | None = None

    # --- life ---------------------------------------------------------------------

    async def open(self, database: Database) -> None:
        sql = sql_database(database)
        if sql is None:
            logger.warning("keys need a SQL database; only the admin key is accepted")
            return
        self.store = AccessStore(sql)
        await self.reload()
        self._task = asyncio.get_running_loop().create_task(self._keep())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def reload(self) -> None:
        """Hold the active keys in memory (after any change, and periodically)."""
        if self.store is None:
            return
        keys: dict[str, tuple[str, Principal]] = {}
        for stored in await self.store.stored_keys():
            record = stored.record
            keys[record.id] = (
                stored.hash,
                Principal(
                    key_id=record.id,
                    name=record.name,
                    project_id=record.project_id,
                    scopes=record.scopes,
                    granted=granted(record.scopes),
                    expires_at=iso_to_epoch(record.expires_at),
                ),
            )
        self._keys = keys
        self.enabled = self._admin_hash is not None or bool(keys)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(ACCESS_REFRESH_S)
            try:
                await self.flush()
                await self.reload()
                await self.apply_retention()
            except Exception:
                logger.exception("access bookkeeping failed; retrying")
            self._prune(time.time())

    async def flush(self) -> None:
        """Write the last-used times and refusals gathered since the last flush."""
        if self.store is None:
            return
        used, self._last_used = self._last_used, {}
        events, self._events = self._events, []
        await self.store.touch_keys(used)
        await self.store.append_events(events)

    async def apply_retention(self) -> int:
        """Delete audit entries past ``audit_retention_days``, at most hourly."""
        cutoff = retention_cutoff(self.audit_retention_days)
        now = time.monotonic()
        if self.store is None or cutoff is None:
            return 0
        if self._retained_at is not None and now - self._retained_at < RETENTION_EVERY_S:
            return 0
        self._retained_at = now
        deleted = await AuditLog(self.store.db).delete_before(cutoff)
        if deleted:
            logger.info("audit log: deleted %d entries older than %s", deleted, cutoff)
        return deleted

    def _prune(self, now: float) -> None:
        for sid in [s for s, session in self._sessions.items() if session.expires_at <= now]:
            del self._sessions[sid]
        stale = [a for a, f in self._failures.items() if now - f.window_start > FAILURE_WINDOW_S]
        for address in stale:
            failures = self._failures.pop(address)
            if failures.unrecorded:
                self._record(address, "unrecorded_failures", {"count": failures.unrecorded})

    # --- who a request is ---------------------------------------------------------

    def authenticate(self, key: str) -> Principal | None:
        """The principal of a key, or None (unknown, revoked or expired)."""
        digest = hash_key(key)
        if self._admin_hash is not None and same_hash(digest, self._admin_hash):
            return ADMIN
        key_id = key_id_of(key)
        entry = self._keys.get(key_id) if key_id is not None else None
        if entry is None or not same_hash(digest, entry[0]):
            return None
        principal = entry[1]
        now = time.time()
        if principal.expires_at is not None and principal.expires_at <= now:
            return None
        self._last_used[principal.key_id] = now
        return principal

    def is_gateway_key(self, token: str) -> bool:
        """Whether an ``Authorization`` bearer is meant for the gateway (a Spanlab key
        or the admin key) rather than a provider key to forward."""
        if key_id_of(token) is not None:
            return True
        return self._admin_hash is not None and same_hash(hash_key(token), self._admin_hash)

    def metrics_token_ok(self, token: str) -> bool:
        return self._metrics_hash is not None and same_hash(hash_key(token), self._metrics_hash)

    def principal_by_id(self, key_id: str) -> Principal | None:
        if key_id == ADMIN_KEY_ID:
            return ADMIN if self._admin_hash is not None else None
        entry = self._keys.get(key_id)
        if entry is None:
            return None
        principal = entry[1]
        if principal.expires_at is not None and principal.expires_at <= time.time():
            return None
        return principal

    # --- sessions of the web UI ---------------------------------------------------

    def start_session(self, principal: Principal) -> str:
        """A new session id for the cookie (random; the key is never in the cookie)."""
        sid = secrets.token_urlsafe(32)
        self._sessions[hash_key(sid)] = Session(principal.key_id, time.time() + SESSION_TTL_S)
        return sid

    def session_principal(self, sid: str) -> Principal | None:
        session = self._sessions.get(hash_key(sid))
        if session is None or session.expires_at <= time.time():
            return None
        principal = self.principal_by_id(session.key_id)
        if principal is not None:
            self._last_used[principal.key_id] = time.time()
        return principal

    def end_session(self, sid: str) -> None:
        self._sessions.pop(hash_key(sid), None)

    # --- refusals -----------------------------------------------------------------

    def failed(self, address: str, reason: str, method: str, path: str) -> float:
        """Note a failed authentication; the seconds to wait before answering."""
        now = time.time()
        failures = self._failures.get(address)
        if failures is None or now - failures.window_start > FAILURE_WINDOW_S:
            unrecorded = failures.unrecorded if failures is not None else 0
            failures = self._failures[address] = Failures(0, now)
            if unrecorded:
                self._record(address, "unrecorded_failures", {"count": unrecorded})
        failures.count += 1
        if failures.count <= EVENTS_PER_WINDOW:
            self._record(address, reason, {"method": method, "path": path})
        else:
            failures.unrecorded += 1
        extra = failures.count - FREE_FAILURES
        return 0.0 if extra <= 0 else min(FIRST_DELAY_S * 2 ** (extra - 1), MAX_DELAY_S)

    def denied(
        self, principal: Principal, address: str, needed: str, method: str, path: str
    ) -> None:
        """Note a request refused for want of a scope (not slowed: the key is valid)."""
        self._record(
            address,
            "insufficient_scope",
            {"method": method, "path": path, "needed": needed, "key_id": principal.key_id},
            subject=principal.key_id,
        )

    def _record(
        self, address: str, reason: str, payload: dict[str, object], subject: str | None = None
    ) -> None:
        if len(self._events) >= 10_000:  # the store is not keeping up: count, do not grow
            return
        self._events.append(
            EventRecord(
                type=DENIED_EVENT,
                at=now_iso(),
                subject_id=subject,
                payload={"reason": reason, "address": address, **payload},
            )
        )

    def failures_from(self, address: str) -> int:
        failures = self._failures.get(address)
        return failures.count if failures is not None else 0

    def pending_events(self) -> list[EventRecord]:
        return list(self._events)


def access_policy(conn: HTTPConnection) -> AccessPolicy:
    policy: AccessPolicy = conn.app.state.access
    return policy


__all__ = ["ACCESS_REFRESH_S", "ADMIN", "SCOPES", "AccessPolicy", "access_policy"]
