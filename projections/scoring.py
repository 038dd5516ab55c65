"""The scoring engine: a pure fold from a citizen's records to contributions and scores.

`CitizenFacts` is what a citizen's records say, policy aside (what was settled,
vacated, disputed, revoked, repaired, and when). `contributions` turns facts into
dated contributions under one policy; `score` sums those counting on a date. Nothing
here reads a database or a clock: the same records give the same answer every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ledger import records as r
from ledger.records import Record, RecordKey
from projections.policy import Policy


def add_years(day: date, years: int) -> date:
    """The same calendar date `years` later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass
class DisputeFacts:
    key: RecordKey
    opened_on: date
    resolved_on: date | None = None
    outcome: str | None = None


@dataclass
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
    def removed(self) -> bool:
        """Vacated by a court, or removed on dispute: it never counted."""
        return self.vacated or any(d.outcome == "removed" for d in self.disputes)

    @property
    def open_dispute(self) -> DisputeFacts | None:
        return next((d for d in self.disputes if d.resolved_on is None), None)


@dataclass
class CitizenFacts:
    """Everything a citizen's records say, in the order received."""

    resident_id: str
    records: dict[RecordKey, RecordFacts] = field(default_factory=dict)

    def apply(self, record: Record) -> None:
        """Fold one more record in."""
        facts = RecordFacts(record.key, record.type, record.kind, record.occurred_on,
                            record.target)  # fmt: skip
        self.records[record.key] = facts
        target = self.records.get(record.target) if record.target else None
        if target is None:
            return
        if record.type == r.SETTLED:
            target.settled_on = record.occurred_on
        elif record.type == r.REPAIRED:
            target.repaired_on = record.occurred_on
        elif record.type == r.VACATED:
            target.vacated = True
        elif record.type == r.REVOKED:
            target.revoked_by = record.key
        elif record.type == r.DISPUTED:
            target.disputes.append(DisputeFacts(record.key, record.occurred_on))
        elif record.type == r.RESOLVED:
            disputed = self.records.get(target.target) if target.target else None
            for dispute in disputed.disputes if disputed else ():
                if dispute.key == record.target:
                    dispute.resolved_on = record.occurred_on
                    dispute.outcome = record.outcome

    def to_json(self) -> dict[str, Any]:
        return {"resident_id": self.resident_id, "records": [_record_json(f) for f in
                                                              self.records.values()]}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CitizenFacts:
        facts = cls(data["resident_id"])
        for item in data["records"]:
            record = _record_from_json(item)
            facts.records[record.key] = record
        return facts


def fold(resident_id: str, records: Iterable[Record]) -> CitizenFacts:
    facts = CitizenFacts(resident_id)
    for record in records:
        facts.apply(record)
    return facts


@dataclass(frozen=True, slots=True)
class Contribution:
    """Points one record adds or removes, on the dates from `counts_from` until
    `counts_until` (exclusive; None for no end), under the named rule."""

    authority: str
    reference: str
    kind: str
    rule: str
    points: int
    counts_from: date
    counts_until: date | None
    cap_group: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "reference": self.reference,
            "kind": self.kind,
            "rule": self.rule,
            "points": self.points,
            "counts_from": self.counts_from.isoformat(),
            "counts_until": self.counts_until.isoformat() if self.counts_until else None,
        }

    def counts_on(self, day: date) -> bool:
        return self.counts_from <= day and (self.counts_until is None or day < self.counts_until)


Interval = tuple[date, date | None]


def contributions(facts: CitizenFacts, policy: Policy) -> list[Contribution]:
    """Every contribution the citizen's records make under `policy`, split around
    the periods a dispute suspended them."""
    out: list[Contribution] = []
    records = facts.records
    for record in records.values():
        if record.removed:
            continue
        for rule, kind, points, start, end, group in _raw(record, records, policy):
            if points == 0 or (end is not None and end <= start):
                continue
            for a, b in _minus(start, end, _suspensions(record, policy)):
                out.append(Contribution(record.key.authority, record.key.reference, kind,
                                        rule, points, a, b, group))  # fmt: skip
    return out


def _raw(
    record: RecordFacts, records: dict[RecordKey, RecordFacts], policy: Policy
) -> Iterable[tuple[str, str, int, date, date | None, str | None]]:
    day = record.occurred_on
    kind = record.kind or ""
    if record.type == r.INFRACTION and kind in policy.infractions:
        rule = policy.infractions[kind]
        expiry = add_years(day, rule.expires_after_years)
        settled = record.settled_on
        yield (f"{kind}.open", kind, rule.open, day,
               min(settled, expiry) if settled else expiry, None)  # fmt: skip
        if settled is not None and rule.residual:
            end = min(add_years(settled, rule.residual_years), expiry)
            if record.repaired_on is not None:
                end = min(end, record.repaired_on)
            yield f"{kind}.residual", kind, rule.residual, settled, end, None
    elif record.type == r.PAYMENT and kind in policy.payments:
        payment = policy.payments[kind]
        group = kind if payment.cap is not None else None
        yield kind, kind, payment.points, day, add_years(day, payment.years), group
    elif record.type == r.VERIFICATION and kind in policy.verifications:
        revocation = records.get(record.revoked_by) if record.revoked_by else None
        live = revocation is not None and not revocation.removed
        ends = revocation.occurred_on if revocation is not None and live else None
        yield kind, kind, policy.verifications[kind].points, day, ends, None
    elif record.type == r.REVOKED and record.target in records:
        verification = records[record.target]
        vkind = verification.kind or ""
        if vkind in policy.verifications:
            revoked = policy.verifications[vkind]
            yield (f"{vkind}.revoked", vkind, revoked.revoked, day,
                   add_years(day, revoked.revoked_years), None)  # fmt: skip


def _suspensions(record: RecordFacts, policy: Policy) -> list[Interval]:
    grace = timedelta(days=policy.dispute_grace_days)
    out: list[Interval] = []
    for dispute in record.disputes:
        start = dispute.opened_on + grace
        if dispute.resolved_on is None or dispute.resolved_on > start:
            out.append((start, dispute.resolved_on))
    return out


def _minus(start: date, end: date | None, gaps: Sequence[Interval]) -> list[Interval]:
    """[start, end) with every gap taken out."""
    pieces: list[Interval] = [(start, end)]
    for gap_start, gap_end in gaps:
        next_pieces: list[Interval] = []
        for a, b in pieces:
            if _before(a, gap_start):
                next_pieces.append((a, _earliest(b, gap_start)))
            if gap_end is not None and _before(gap_end, b):
                next_pieces.append((max(a, gap_end), b))
        pieces = [(a, b) for a, b in next_pieces if b is None or a < b]
    return pieces


def _before(day: date, end: date | None) -> bool:
    return end is None or day < end


def _earliest(a: date | None, b: date) -> date:
    return b if a is None else min(a, b)


@dataclass(frozen=True, slots=True)
class Score:
    score: int
    band: str
    positive: int
    negative: int


def score(items: Iterable[Contribution], day: date, policy: Policy) -> Score:
    """The score on `day` from the contributions counting then."""
    groups: dict[str, int] = {}
    positive = negative = 0
    for item in items:
        if not item.counts_on(day):
            continue
        if item.points < 0:
            negative += item.points
        elif item.cap_group is not None:
            groups[item.cap_group] = groups.get(item.cap_group, 0) + item.points
        else:
            positive += item.points
    for group, points in groups.items():
        cap = policy.payments[group].cap
        positive += points if cap is None else min(points, cap)
    positive = min(positive, policy.positive_cap)
    total = max(policy.base + positive + negative, policy.floor)
    if policy.ceiling is not None:
        total = min(total, policy.ceiling)
    return Score(total, policy.band_of(total), positive, negative)


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
