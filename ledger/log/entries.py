"""What the log's readers are given: records, facts, pages, uses, files and leaves,
as plain immutable values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from ledger.domain.records import Record, RecordKey
from ledger.errors import LedgerError


class UnreadableLog(LedgerError):
    """A stored event cannot be read as a citizen's record."""

    field = "log"


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """One citizen's record as the log holds it."""

    position: int
    recorded_at: datetime
    citizen_id: uuid.UUID
    version: int
    record: Record

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "recorded_at": self.recorded_at.isoformat(),
            **self.record.to_wire(),
        }


class LoggedFact(NamedTuple):
    """A citizen's record as their facts take it (ledger.domain.facts), at its
    position: the lighter read of a page that scoring needs (no recorded time, no
    amount, no Record)."""

    position: int
    # The citizen's version with it: how many events they had by then, uses included.
    version: int
    type: str
    key: RecordKey
    kind: str | None
    occurred_on: date
    target: RecordKey | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class FactPage:
    """A stretch of the log as the facts see it: each citizen's records on it in log
    order, the identity numbers of those enrolled on it, the first and last version of
    each citizen's events on it (their records and the uses of their file), and the
    last position read (as `Page.end`)."""

    citizens: dict[uuid.UUID, list[LoggedFact]]
    enrolled: dict[uuid.UUID, str]
    versions: dict[uuid.UUID, tuple[int, int]]
    end: int


@dataclass(frozen=True, slots=True)
class Page:
    """The citizens' records of a stretch of the log, and the last position read
    (registry events included; the position asked after when there was nothing)."""

    records: tuple[LoggedRecord, ...]
    end: int


@dataclass(frozen=True, slots=True)
class LoggedUse:
    """A relying party's use of a citizen's file (an inquiry or a decision) as the log
    holds it; `fields` are the event's own (party, purpose, as_of, the position it
    read up to, and what it found), dates as ISO text."""

    position: int
    recorded_at: datetime
    citizen_id: uuid.UUID
    version: int
    use: str
    fields: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "recorded_at": self.recorded_at.isoformat(),
                "use": self.use, **self.fields}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CitizenFile:
    """Everything the log holds of one citizen, read at once: their records, the uses
    of their file, and the version of their last event (0 when there is none)."""

    records: list[LoggedRecord]
    uses: list[LoggedUse]
    version: int


@dataclass(frozen=True, slots=True)
class LeafHashes:
    """The leaf hashes of a run of positions; b"" where the stored event can no longer
    be encoded as a leaf (not JSON, or not a JSON object)."""

    positions: list[int]
    hashes: list[bytes]


@dataclass(frozen=True, slots=True)
class Leaf:
    """The leaf document of a position; None when the stored event is no longer JSON."""

    position: int
    document: bytes | None
