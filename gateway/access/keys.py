"""Gateway keys: their form, their hash, and who a key makes the caller (`Principal`).

A key is ``slk_<id>_<secret>``: ``slk_`` marks it as a Spanlab key (so a gateway key
sent as the ``Authorization`` bearer is told apart from a provider key and never
forwarded upstream), ``<id>`` (12 hex digits) names its row, ``<secret>`` is 256
random bits. Only the SHA-256 of the whole key is stored, and its prefix
(``slk_<id>``) for recognition.

Why SHA-256 and not bcrypt or argon2: those are slow on purpose so that guessing a
low-entropy *password* from its hash is expensive. A 256-bit random key cannot be
guessed whatever the hash costs, and the check runs on every proxied call, where a
slow hash would add tens of milliseconds; one SHA-256 of ~60 bytes costs about a
microsecond.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_MARK = "slk_"
SCOPES = ("proxy", "read", "write", "admin")
# What a scope grants besides itself: admin is everything, write includes read.
IMPLIED: dict[str, frozenset[str]] = {
    "proxy": frozenset({"proxy"}),
    "read": frozenset({"read"}),
    "write": frozenset({"write", "read"}),
    "admin": frozenset(SCOPES),
}
ADMIN_KEY_ID = "admin"  # the principal of the admin key from the settings
DEFAULT_PROJECT = "default"  # a NULL project_id in any table means this project


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a key's id, name and project, and what it may do.
    ``project_id`` None: not bound to a project. ``granted``: the scopes with what
    they imply. ``expires_at``: Unix seconds, or None."""

    key_id: str
    name: str
    project_id: str | None
    scopes: tuple[str, ...]
    granted: frozenset[str]
    expires_at: float | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.granted


def granted(scopes: tuple[str, ...] | list[str]) -> frozenset[str]:
    out: set[str] = set()
    for scope in scopes:
        out |= IMPLIED[scope]
    return frozenset(out)


def new_key() -> tuple[str, str, str]:
    """A new key: (key id, the key itself, its prefix)."""
    key_id = secrets.token_hex(6)
    key = f"{KEY_MARK}{key_id}_{secrets.token_urlsafe(32)}"
    return key_id, key, key_prefix(key_id)


def key_prefix(key_id: str) -> str:
    return f"{KEY_MARK}{key_id}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id part of a key of the Spanlab form, else None."""
    if not key.startswith(KEY_MARK):
        return None
    key_id, sep, _ = key[len(KEY_MARK) :].partition("_")
    return key_id if sep and key_id else None


def same_hash(a: str, b: str) -> bool:
    """Hashes compared in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


def parse_scopes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Scopes from ``"read,write"`` or a list; ValueError names an unknown one."""
    items = text.replace(" ", ",").split(",") if isinstance(text, str) else list(text)
    scopes = [s.strip().lower() for s in items if s and s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; scopes are {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError(f"name at least one scope ({', '.join(SCOPES)})")
    return tuple(s for s in SCOPES if s in scopes)
