"""The events store's interface: an append-only log of what happened in the gateway
(`EventStore`, `EventRecord`): ``playground.completion`` today; the audit log builds on
it. The SQLite implementation is `gateway.store.sqlite_events.SqlEventStore`
(migration ``0007_playground_events.sql``)."""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

EVENT_COLUMNS = ("id", "type", "at", "project_id", "subject_id", "related_ids", "payload")


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


@dataclass(slots=True)
class EventRecord:
    type: str
    at: str
    id: str = field(default_factory=new_event_id)
    project_id: str | None = None
    subject_id: str | None = None  # what the event is about first (e.g. a session)
    related_ids: list[str] = field(default_factory=list)  # other ids (e.g. spans)
    payload: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventStore(ABC):
    """What the gateway needs of the events log."""

    @abstractmethod
    async def append(self, event: EventRecord) -> None: ...

    @abstractmethod
    async def list_events(
        self, *, type: str | None = None, subject_id: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """Events newest first, of one type and/or about one subject."""
