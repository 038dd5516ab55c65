"""The dispute office's worklist: every dispute still open, by its deadline (FCRA §611:
30 days), read from the log citizen by citizen. A dispute past its deadline has
already suspended its record in every policy; resolving it (`dispute.resolved`) ends
the suspension either way."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ledger.application import Ledger
from ledger.domain.records import RecordKey
from projections import policy as policies
from projections.scoring import CitizenFacts, fold


@dataclass(frozen=True, slots=True)
class Pending:
    citizen: str
    dispute: RecordKey
    target: RecordKey
    opened_on: date
    due: date

    def to_json(self) -> dict[str, Any]:
        return {"citizen": self.citizen, "dispute": str(self.dispute),
                "target": str(self.target), "opened_on": self.opened_on.isoformat(),
                "due": self.due.isoformat()}  # fmt: skip


def pending_disputes(ledger: Ledger, due_within: int | None = None) -> list[Pending]:
    """Open disputes by deadline (the earliest first); with `due_within`, only those due
    within that many days of today (the overdue included)."""
    latest = None if due_within is None else ledger.today() + timedelta(days=due_within)
    found = [
        pending
        for _, records in ledger.reader.by_citizen(ledger.reader.head())
        for pending in open_disputes(
            fold(records[0].record.citizen.value, (logged.record for logged in records))
        )
        if latest is None or pending.due <= latest
    ]
    return by_deadline(found)


def by_deadline(found: Iterable[Pending]) -> list[Pending]:
    """Open disputes, the earliest due first (of one ledger, or of several partitions)."""
    return sorted(found, key=lambda p: (p.due, p.citizen, str(p.dispute)))


def open_disputes(facts: CitizenFacts) -> Iterator[Pending]:
    """A citizen's disputes still open, each due the shortest grace of any policy after
    it was opened."""
    grace = timedelta(days=min(policies.load(n).dispute_grace_days for n in policies.available()))
    for record in facts.records.values():
        for dispute in record.disputes:
            if dispute.resolved_on is None:
                yield Pending(facts.resident_id, dispute.key, record.key, dispute.opened_on,
                              dispute.opened_on + grace)  # fmt: skip
