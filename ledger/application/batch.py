"""One batch of records applied in memory (the "act" of load, act, save): each record
validated from its line, then applied to its citizen or set aside as a duplicate, a
conflict or a rejection naming the rule it breaks. Nothing here reads or writes the
database."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from ledger.application.reports import Rejection
from ledger.domain import Citizen
from ledger.domain import records as r
from ledger.domain.identity import citizen_id
from ledger.domain.records import Record, RecordKey
from ledger.domain.registrants import Authority
from ledger.domain.wire import parse_record
from ledger.errors import (
    InvalidRecord,
    LedgerError,
    NotEnrolled,
    NotEntitled,
    ReferenceConflict,
    RuleViolation,
    TargetError,
)
from ledger.storage import IndexEntry, IndexRow
from ledger.storage.recorder import Claim

# One NDJSON line: its text, or the object it decodes to.
Line = str | bytes | Mapping[str, Any]


@dataclass(slots=True)
class Pending:
    """A record of the batch to store: its citizen, digest and line, and its place
    among the batch's new records."""

    citizen_id: uuid.UUID
    digest: bytes
    line: int
    index: int


@dataclass
class Batch:
    """One batch applied in memory, before it is saved, and what it was applied against."""

    known: dict[RecordKey, IndexEntry]
    authorities: Mapping[str, Authority]
    citizens: dict[uuid.UUID, Citizen]
    read_versions: dict[uuid.UUID, int]
    today: date
    now: datetime
    pending: dict[RecordKey, Pending] = field(default_factory=dict)
    # The records to store, in the order of their lines, as (citizen, version, record),
    # and their lines.
    new: list[tuple[uuid.UUID, int, Record]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    index_rows: list[IndexRow] = field(default_factory=list)
    stored_duplicates: list[tuple[int, IndexEntry]] = field(default_factory=list)
    batch_duplicates: list[tuple[int, Pending]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # When its references were claimed (time.monotonic()), on a partitioned ledger.
    claimed_since: float = 0.0

    def take(self, parsed: list[tuple[int, Record]], refused: set[RecordKey]) -> None:
        """Apply each record in turn to its citizen, or set it aside: a duplicate, a
        conflict (`refused`: references another partition holds), or a rejection naming
        the rule it breaks."""
        for line, rec in parsed:
            digest = rec.digest
            earlier = self.pending.get(rec.key)
            stored = self.known.get(rec.key)
            if earlier is not None or stored is not None:
                _repeat(self, line, digest, earlier, stored)
                continue
            if rec.key in refused:
                self.rejected.append(_conflict(line, "a record in another partition"))
                continue
            try:
                citizen = _act(self, rec)
            except LedgerError as e:
                self.rejected.append(Rejection(line, e.field, e.message))
                continue
            self.pending[rec.key] = Pending(citizen.id, digest, line, len(self.new))
            self.new.append((citizen.id, citizen.version, rec))
            self.lines.append(line)
            self.index_rows.append(
                (rec.authority, rec.reference, citizen.id, citizen.version, digest)
            )


class ReferenceClaims(Protocol):
    """An (authority, reference) names one record across more logs than this ledger's:
    a partitioned ledger's partitions (see ledger.partitioned.claims)."""

    def claim(self, wanted: Sequence[Claim]) -> set[RecordKey]:
        """Claim each key for its (citizen, digest); the keys refused, because another
        citizen's record, or another record, holds them in another log."""

    def confirm(self, wanted: Sequence[Claim], since: float) -> None:
        """Called in the save, as this ledger's other writers wait, of claims made from
        `since` (time.monotonic()) on: IntegrityError (the batch is applied again) if
        any key is no longer claimed as wanted."""


def holds(citizens: Mapping[uuid.UUID, Citizen], resident_id: str, key: RecordKey) -> bool:
    citizen = citizens.get(citizen_id(resident_id))
    return citizen is not None and key in citizen.records


def _check_authority(authorities: Mapping[str, Authority], record: Record) -> None:
    authority = authorities.get(record.authority)
    if authority is None:
        raise NotEntitled(f"{record.authority} is not a registered authority")
    authority.check_entitled(record)


def _conflict(line: int, where: str) -> Rejection:
    error = ReferenceConflict(
        f"already names {where} with different content; a record is never changed"
    )
    return Rejection(line, error.field, error.message)


def _repeat(
    batch: Batch, line: int, digest: bytes, earlier: Pending | None, stored: IndexEntry | None
) -> None:
    """A reference seen before: a duplicate if the content is the same, else a conflict."""
    if earlier is not None:
        if earlier.digest == digest:
            batch.batch_duplicates.append((line, earlier))
        else:
            batch.rejected.append(_conflict(line, f"line {earlier.line}"))
    elif stored is not None:
        if stored.digest == digest:
            batch.stored_duplicates.append((line, stored))
        else:
            batch.rejected.append(_conflict(line, "a stored record"))


def _act(batch: Batch, rec: Record) -> Citizen:
    """Apply one new record to its citizen, or raise the rule it breaks."""
    _check_authority(batch.authorities, rec)
    if rec.occurred_on > batch.today:
        raise RuleViolation(f"is after today ({batch.today})", "occurred_on")
    cid = citizen_id(rec.citizen.value)
    citizen = batch.citizens.get(cid)
    if rec.type == r.ENROLLED:
        if citizen is not None:
            raise RuleViolation("is already enrolled", "citizen")
        citizen = batch.citizens[cid] = Citizen.enrolled(rec, batch.now)
        return citizen
    if citizen is None:
        raise NotEnrolled("is not enrolled")
    if rec.target is not None:
        owner = batch.pending.get(rec.target) or batch.known.get(rec.target)
        if owner is not None and owner.citizen_id != cid:
            raise TargetError(f"{rec.target} is a record of another citizen")
    citizen.add(rec, batch.now)
    return citizen


Parsed = tuple[list[tuple[int, Record]], list[Rejection]]


def parse_numbered(batch: list[tuple[int, Any]]) -> Parsed:
    """Validate numbered wire records: the valid ones, and a rejection for each other."""
    parsed: list[tuple[int, Record]] = []
    rejected: list[Rejection] = []
    for number, data in batch:
        try:
            parsed.append((number, parse_record(data)))
        except InvalidRecord as e:
            rejected.append(Rejection(number, e.field, e.message))
    return parsed, rejected


def batched(lines: Iterable[tuple[int, Line]], size: int) -> Iterator[list[tuple[int, Line]]]:
    batch: list[tuple[int, Line]] = []
    for item in lines:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
