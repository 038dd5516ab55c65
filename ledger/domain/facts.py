"""What a citizen's records say about each other: the one fold the rules and scoring share.

Each record is kept under its (authority, reference) with what later records did to
it and on which date (settled, repaired, vacated, revoked, disputes opened and
resolved). The Citizen aggregate folds its events into these facts and checks its
rules against the latest state; scoring folds the same records into the same facts
and reads their dates. A replay "as known at" a moment folds the records known by
then, so facts need no recorded time of their own.

Removal: a record vacated by a court, or whose dispute was resolved `removed`, never
counted, and what acts on it counts nothing either (a settlement, a repair, a
revocation). An infraction removed either way can no longer be settled or vacated;
a revocation that is removed restores its verification as if never revoked, so it
may be revoked again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from ledger.domain import records as r
from ledger.domain.records import Record, RecordKey

REMOVED = "removed"


# What a citizen's facts take of a record besides its type, as `CitizenFacts.add` takes
# them: its key, kind, date, target and outcome.
FactParts = tuple[RecordKey, str | None, date, RecordKey | None, str | None]


@dataclass(slots=True)
class DisputeFacts:
    """One dispute of a record: when it was opened, and when and how it was resolved."""

    key: RecordKey
    opened_on: date
    resolved_on: date | None = None
    outcome: str | None = None

    def open_on(self, day: date) -> bool:
        """Opened by `day` and not yet resolved on it."""
        return self.opened_on <= day and (self.resolved_on is None or day < self.resolved_on)


@dataclass(slots=True)
class RecordFacts:
    """One record and what later records did to it."""

    key: RecordKey
    type: str
    kind: str | None
    occurred_on: date
    target: RecordKey | None = None
    settled_on: date | None = None
    repaired_on: date | None = None
    vacated: bool = False
    revoked_by: RecordKey | None = None
    disputes: list[DisputeFacts] = field(default_factory=list)

    @property
    def removal(self) -> DisputeFacts | None:
        """The dispute resolved as removed, if one was."""
        return next((d for d in self.disputes if d.outcome == REMOVED), None)

    @property
    def removed(self) -> bool:
        """Vacated by a court, or removed on dispute: it never counted."""
        if self.vacated:
            return True
        return bool(self.disputes) and any(d.outcome == REMOVED for d in self.disputes)

    @property
    def open_dispute(self) -> DisputeFacts | None:
        """The dispute not yet resolved, if there is one."""
        return next((d for d in self.disputes if d.resolved_on is None), None)


class Folded(Protocol):
    """What the fold reads of a record: a Record, or the log's lighter LoggedFact."""

    @property
    def type(self) -> str: ...
    @property
    def key(self) -> RecordKey: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def occurred_on(self) -> date: ...
    @property
    def target(self) -> RecordKey | None: ...
    @property
    def outcome(self) -> str | None: ...


@dataclass
class CitizenFacts:
    """Everything a citizen's records say, in the order received."""

    resident_id: str
    records: dict[RecordKey, RecordFacts] = field(default_factory=dict)
    # The records acting on each record, so that `linked` follows targets back without
    # a walk over every record.
    acted_on_by: dict[RecordKey, list[RecordKey]] = field(default_factory=dict)

    def apply(self, record: Record | Folded) -> None:
        """Fold one more record in."""
        self.add(record.type, record.key, record.kind, record.occurred_on, record.target,
                 record.outcome)  # fmt: skip

    def add(
        self,
        record_type: str,
        key: RecordKey,
        kind: str | None,
        occurred_on: date,
        target_key: RecordKey | None = None,
        outcome: str | None = None,
    ) -> None:
        """Fold one more record in, given its parts (the aggregate's events have no Record)."""
        self.records[key] = RecordFacts(key, record_type, kind, occurred_on, target_key)
        if target_key is None:
            return
        acting = self.acted_on_by.get(target_key)
        if acting is None:
            self.acted_on_by[target_key] = [key]
        else:
            acting.append(key)
        target = self.records.get(target_key)
        if target is None:
            return
        if record_type == r.SETTLED:
            target.settled_on = occurred_on
        elif record_type == r.REPAIRED:
            target.repaired_on = occurred_on
        elif record_type == r.VACATED:
            target.vacated = True
        elif record_type == r.REVOKED:
            target.revoked_by = key
        elif record_type == r.DISPUTED:
            target.disputes.append(DisputeFacts(key, occurred_on))
        elif record_type == r.RESOLVED:
            dispute = self.dispute(target)
            if dispute is not None:
                dispute.resolved_on = occurred_on
                dispute.outcome = outcome

    def dispute(self, record: RecordFacts) -> DisputeFacts | None:
        """The dispute a `record.disputed` record opened, with its resolution."""
        disputed = self.records.get(record.target) if record.target else None
        found = disputed.disputes if disputed is not None else ()
        return next((d for d in found if d.key == record.key), None)

    def revocation(self, verification: RecordFacts) -> RecordFacts | None:
        """The revocation that stands against a verification: one not removed."""
        if verification.revoked_by is None:
            return None
        revocation = self.records.get(verification.revoked_by)
        return None if revocation is None or revocation.removed else revocation

    def linked(self, keys: Iterable[RecordKey]) -> set[RecordKey]:
        """These records and every record joined to them by targets, either way: all
        whose facts a record acting on one of them can change, and all that what each
        contributes depends on."""
        keys = set(keys)
        records = self.records
        targeted_by = self.acted_on_by
        if all(k not in targeted_by and (k not in records or records[k].target is None)
               for k in keys):  # fmt: skip
            # Records that act on none, and that none acts on (as any just received).
            return keys
        found: set[RecordKey] = set()
        todo = list(keys)
        while todo:
            key = todo.pop()
            if key in found:
                continue
            found.add(key)
            record = self.records.get(key)
            if record is not None and record.target is not None:
                todo.append(record.target)
            todo.extend(targeted_by.get(key, ()))
        return found


def fold(resident_id: str, records: Iterable[Record]) -> CitizenFacts:
    """The facts of a citizen's records, in the order received."""
    facts = CitizenFacts(resident_id)
    for record in records:
        facts.apply(record)
    return facts
