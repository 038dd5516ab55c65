"""The citizen's own file (FCRA §609, GDPR Art. 15): every record with the authority
that sent it, the score under every policy with its reasons, every inquiry and
decision made about them, and for each record that counts against them how to dispute
it and when it stops counting. Replayed from the log, so it is never behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger.application import Ledger
from ledger.domain.identity import parse_resident_id
from ledger.domain.records import RecordKey
from ledger.errors import UnknownCitizen
from ledger.log import LoggedRecord, LoggedUse
from projections import policy as policies
from projections.explanation import Explanation, explain
from projections.scoring import contributions, fold

HOW_TO_DISPUTE = (
    "send a dispute naming this record (POST /v1/me/disputes with its authority and "
    "reference and your statement); if it is not resolved within {days} days it stops "
    "counting until it is"
)


@dataclass(frozen=True, slots=True)
class Against:
    """A record that counts against the citizen on the day: under which policies, how
    many points, until when (None: no end date), and how to dispute it."""

    key: RecordKey
    points: dict[str, int]
    until: date | None
    disputed: bool
    how_to_dispute: str

    def to_json(self) -> dict[str, Any]:
        return {"authority": self.key.authority, "reference": self.key.reference,
                "points": self.points, "until": self.until.isoformat() if self.until else None,
                "disputed": self.disputed, "how_to_dispute": self.how_to_dispute}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    resident_id: str
    as_of: date
    read_up_to: int
    records: list[LoggedRecord]
    authorities: dict[str, str]
    scores: list[Explanation]
    uses: list[LoggedUse]
    parties: dict[str, str]
    against: list[Against]

    def to_json(self) -> dict[str, Any]:
        return {
            "citizen": self.resident_id,
            "as_of": self.as_of.isoformat(),
            "read_up_to": self.read_up_to,
            "records": [{**r.to_json(), "source": self.authorities.get(r.record.authority)}
                        for r in self.records],
            "scores": [{"policy": e.policy.name, "score": e.score.score, "band": e.score.band,
                        **e.to_json()} for e in self.scores],
            "inquiries_and_decisions": [
                {**u.to_json(), "party_name": self.parties.get(str(u.fields.get("party")))}
                for u in self.uses
            ],
            "against": [a.to_json() for a in self.against],
        }  # fmt: skip


def citizen_report(ledger: Ledger, citizen: str, as_of: date | None = None) -> Report:
    """The citizen's file as the log holds it now, scored on `as_of` (today)."""
    resident = parse_resident_id(citizen)
    file = ledger.reader.file(resident.citizen_id)
    if not file.records:
        raise UnknownCitizen(f"{resident.value} has no records in the ledger")
    day = as_of or ledger.today()
    facts = fold(resident.value, [logged.record for logged in file.records])
    chosen = [policies.load(name) for name in policies.available()]
    scores = [explain(facts, contributions(facts, p), day, p) for p in chosen]
    points: dict[RecordKey, dict[str, int]] = {}
    until: dict[RecordKey, list[date | None]] = {}
    for explanation in scores:
        for item in explanation.counting:
            c = item.contribution
            if c.points < 0:
                key = RecordKey(c.authority, c.reference)
                shown = points.setdefault(key, {})
                shown[explanation.policy.name] = shown.get(explanation.policy.name, 0) + c.points
                until.setdefault(key, []).append(c.counts_until)
    grace = min((p.dispute_grace_days for p in chosen), default=30)
    disputed = {k for e in scores for k in e.disputed}
    against = [
        Against(key, shown, _latest(until[key]), key in disputed,
                HOW_TO_DISPUTE.format(days=grace))
        for key, shown in points.items()
    ]  # fmt: skip
    last = max([file.records[-1].position, *(u.position for u in file.uses)])
    return Report(
        resident.value, day, last, file.records,
        {a.authority_id: a.name for a in ledger.authorities()}, scores, file.uses,
        {p.party_id: p.name for p in ledger.parties()}, against,
    )  # fmt: skip


def _latest(ends: list[date | None]) -> date | None:
    return None if None in ends else max(e for e in ends if e is not None)
