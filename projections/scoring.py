"""The scoring engine: a pure fold from a citizen's records to contributions and scores.

`CitizenFacts` (from `ledger.domain.facts`, the fold the Citizen aggregate's rules use too)
is what a citizen's records say, policy aside (what was settled, vacated, disputed,
revoked, repaired, and when). `contributions` turns facts into dated contributions
under one policy; `score` sums those counting on a date. Nothing here reads a
database or a clock: the same records give the same answer every time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

from ledger.domain import records as r
from ledger.domain.facts import CitizenFacts, DisputeFacts, RecordFacts, fold
from ledger.domain.records import RecordKey
from projections.policy import Policy

__all__ = [
    "CitizenFacts",
    "Contribution",
    "DisputeFacts",
    "RecordFacts",
    "Score",
    "Scored",
    "add_years",
    "contributions",
    "contributions_under",
    "fold",
    "score",
]


# Pure, and asked for the same few thousand days over and over (each record's under
# every policy): a third of the time from the cache.
@functools.lru_cache(maxsize=1 << 16)
def add_years(day: date, years: int) -> date:
    """The same calendar date `years` later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


class Contribution(NamedTuple):
    """Points one record adds or removes, on the dates from `counts_from` until
    `counts_until` (exclusive; None for no end), under the named rule.

    A named tuple rather than a dataclass: a rebuild makes one for every record under
    every policy, and a tuple is several times cheaper to make."""

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

# A Contribution's fields as a plain tuple: what scoring makes for the views to store
# (a Contribution is one, with names).
Scored = tuple[str, str, str, str, int, date, date | None, str | None]


def contributions(
    facts: CitizenFacts, policy: Policy, keys: Iterable[RecordKey] | None = None
) -> list[Contribution]:
    """Every contribution the citizen's records make under `policy` (or only those of
    the records named by `keys`), split around the periods a dispute suspended them."""
    return [_new(Contribution, c) for c in contributions_under(facts, (policy,), keys)[0]]


def contributions_under(
    facts: CitizenFacts, policies: Sequence[Policy], keys: Iterable[RecordKey] | None = None
) -> list[list[Scored]]:
    """`contributions` under each of several policies, in order, in one pass over the
    records: a rebuild and a catch-up score every citizen under every policy, and what
    a record is (its type, whether it was removed) is looked at once, not once a policy.
    Each is a plain tuple of a Contribution's fields, for the views to store; equal to
    the Contribution of the same fields."""
    outs: list[list[Scored]] = [[] for _ in policies]
    appends = [(policy, out.append) for policy, out in zip(policies, outs, strict=True)]
    records = facts.records
    chosen = (
        records.values()
        if keys is None
        else [found for k in keys if (found := records.get(k)) is not None]
    )
    for record in chosen:
        raw = _RAW.get(record.type)
        if raw is None or record.vacated:
            continue
        disputes = record.disputes
        if disputes and record.removed:
            continue
        authority, reference = record.key
        for policy, append in appends:
            for rule, kind, points, start, end, group in raw(record, facts, policy):
                if points == 0 or (end is not None and end <= start):
                    continue
                if not disputes:
                    # Plain tuples, not Contribution's own __new__ (a Python call): one is
                    # made for every record under every policy, and orjson writes a
                    # plain tuple itself where a named one takes a call back.
                    append((authority, reference, kind, rule, points, start, end, group))
                    continue
                for a, b in _minus(start, end, _suspensions(record, policy)):
                    append((authority, reference, kind, rule, points, a, b, group))
    return outs


_new = tuple.__new__


_Raw = tuple[str, str, int, date, date | None, str | None]


def _payment(record: RecordFacts, facts: CitizenFacts, policy: Policy) -> list[_Raw]:
    kind = record.kind or ""
    payment = policy.payments.get(kind)
    if payment is None:
        return []
    day = record.occurred_on
    group = kind if payment.cap is not None else None
    return [(kind, kind, payment.points, day, add_years(day, payment.years), group)]


def _infraction(record: RecordFacts, facts: CitizenFacts, policy: Policy) -> list[_Raw]:
    kind = record.kind or ""
    rule = policy.infractions.get(kind)
    if rule is None:
        return []
    day = record.occurred_on
    expiry = add_years(day, rule.expires_after_years)
    settled = record.settled_on
    found: list[_Raw] = [(f"{kind}.open", kind, rule.open, day,
                          min(settled, expiry) if settled else expiry, None)]  # fmt: skip
    if settled is not None and rule.residual:
        end = min(add_years(settled, rule.residual_years), expiry)
        if record.repaired_on is not None:
            end = min(end, record.repaired_on)
        found.append((f"{kind}.residual", kind, rule.residual, settled, end, None))
    return found


def _verification(record: RecordFacts, facts: CitizenFacts, policy: Policy) -> list[_Raw]:
    kind = record.kind or ""
    if kind not in policy.verifications:
        return []
    revocation = facts.revocation(record)
    ends = revocation.occurred_on if revocation is not None else None
    return [(kind, kind, policy.verifications[kind].points, record.occurred_on, ends, None)]


def _revocation(record: RecordFacts, facts: CitizenFacts, policy: Policy) -> list[_Raw]:
    verification = facts.records.get(record.target) if record.target else None
    if verification is None or verification.removed:
        return []
    vkind = verification.kind or ""
    standing = facts.revocation(verification)
    if standing is None or standing.key != record.key or vkind not in policy.verifications:
        return []
    revoked = policy.verifications[vkind]
    day = record.occurred_on
    return [(f"{vkind}.revoked", vkind, revoked.revoked, day,
             add_years(day, revoked.revoked_years), None)]  # fmt: skip


# What a record of each type counts under a policy, before disputes; the other types
# (settlements, enrolments, disputes) count nothing themselves. Lists, not generators,
# as a rebuild asks this of every record under every policy.
_RAW = {
    r.PAYMENT: _payment,
    r.INFRACTION: _infraction,
    r.VERIFICATION: _verification,
    r.REVOKED: _revocation,
}


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
