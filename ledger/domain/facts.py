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
from typing import Any

from ledger.domain import records as r
from ledger.domain.records import Record, RecordKey

REMOVED = "removed"


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
        return self.vacated or self.removal is not None

    @property
    def open_dispute(self) -> DisputeFacts | None:
        """The dispute not yet resolved, if there is one."""
        return next((d for d in self.disputes if d.resolved_on is None), None)


@dataclass
class CitizenFacts:
    """Everything a citizen's records say, in the order received."""

    resident_id: str
    records: dict[RecordKey, RecordFacts] = field(default_factory=dict)

    def apply(self, record: Record) -> None:
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
        target = self.records.get(target_key) if target_key else None
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

    def to_json(self) -> dict[str, Any]:
        """The facts as JSON, for a stored view."""
        return {"resident_id": self.resident_id, "records": [_record_json(f) for f in
                                                              self.records.values()]}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CitizenFacts:
        """The facts `to_json` gave."""
        facts = cls(data["resident_id"])
        for item in data["records"]:
            record = _record_from_json(item)
            facts.records[record.key] = record
        return facts


def fold(resident_id: str, records: Iterable[Record]) -> CitizenFacts:
    """The facts of a citizen's records, in the order received."""
    facts = CitizenFacts(resident_id)
    for record in records:
        facts.apply(record)
    return facts


def _record_json(f: RecordFacts) -> dict[str, Any]:
    return {
        "a": f.key.authority, "r": f.key.reference, "t": f.type, "k": f.kind,
        "d": f.occurred_on.isoformat(),
        "tg": [f.target.authority, f.target.reference] if f.target else None,
        "s": _iso(f.settled_on), "rp": _iso(f.repaired_on), "v": f.vacated,
        "rv": [f.revoked_by.authority, f.revoked_by.reference] if f.revoked_by else None,
        "ds": [[d.key.authority, d.key.reference, d.opened_on.isoformat(),
                _iso(d.resolved_on), d.outcome] for d in f.disputes],
    }  # fmt: skip


def _record_from_json(item: dict[str, Any]) -> RecordFacts:
    return RecordFacts(
        key=RecordKey(item["a"], item["r"]), type=item["t"], kind=item["k"],
        occurred_on=date.fromisoformat(item["d"]),
        target=RecordKey(*item["tg"]) if item["tg"] else None,
        settled_on=_date(item["s"]), repaired_on=_date(item["rp"]), vacated=item["v"],
        revoked_by=RecordKey(*item["rv"]) if item["rv"] else None,
        disputes=[DisputeFacts(RecordKey(a, ref), date.fromisoformat(o), _date(z), outcome)
                  for a, ref, o, z, outcome in item["ds"]],
    )  # fmt: skip


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None
