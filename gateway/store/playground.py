"""The playground store's interface: sessions and their messages
(`PlaygroundStore`, `SessionRecord`, `MessageRecord`).

A session is an ad-hoc, multi-turn chat with one or several models; its messages are
in order (``seq``), the user's turns with no model, each answer naming the model that
gave it and the span its call was captured as. The SQLite implementation is
`gateway.store.sqlite_playground.SqlPlaygroundStore` (migration
``0007_playground_events.sql``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.store.pagination import Page

SESSION_COLUMNS = (
    "id",
    "project_id",
    "title",
    "system_prompt",
    "config",
    "created_at",
    "updated_at",
)
MESSAGE_COLUMNS = ("id", "session_id", "seq", "role", "content", "model", "span_id", "created_at")


@dataclass(slots=True)
class SessionRecord:
    id: str
    title: str
    created_at: str
    updated_at: str
    project_id: str | None = None
    system_prompt: str | None = None
    # What the session was started with: {"models": [...], "temperature": ..., ...}.
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class MessageRecord:
    id: str
    session_id: str
    role: str
    content: str
    created_at: str
    model: str | None = None
    span_id: str | None = None
    seq: int = 0  # set by the store: the message's place in its session

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PlaygroundStore(ABC):
    """What the gateway needs of stored playground sessions."""

    @abstractmethod
    async def save_turn(
        self, session: SessionRecord, messages: Sequence[MessageRecord], *, new: bool
    ) -> None:
        """In one transaction: insert ``session`` (``new``) or touch its ``updated_at``,
        and append ``messages`` after the session's last one (their ``seq`` is set)."""

    @abstractmethod
    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    async def list_messages(self, session_id: str) -> list[MessageRecord]:
        """The session's messages in order."""

    @abstractmethod
    async def list_sessions(
        self, *, project: str | None, limit: int, cursor: str | None = None
    ) -> Page:
        """Sessions newest first (`SessionRecord.as_dict` shapes, with
        ``message_count``)."""

    @abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Delete a session and its messages (not the spans)."""
