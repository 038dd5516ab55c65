"""Explanations: why a score is what it is on a date, and what would change it.

Built from a citizen's facts and contributions only, so the projection and a replay
explain a score in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ledger.domain import records as r
from ledger.domain.records import RecordKey
from projections.policy import Policy
from projections.scoring import CitizenFacts, Contribution, RecordFacts, Score, score

REASONS = 4


@dataclass(frozen=True, slots=True)
class Item:
    """One contribution as of a date, with what ends it."""

    contribution: Contribution
    occurred_on: date
    status: str
    remedy: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.contribution.to_json(), "status": self.status, "remedy": self.remedy}


@dataclass(frozen=True, slots=True)
class Explanation:
    policy: Policy
    as_of: date
    score: Score
    reasons: list[Item]
    counting: list[Item]
    expired: int
    disputed: list[RecordKey]

    def to_json(self) -> dict[str, Any]:
        return {
            "policy_version": self.policy.version,
            "reasons": [i.to_json() for i in self.reasons],
            "contributions": [i.to_json() for i in self.counting],
            "expired": self.expired,
            "disputed": [{"authority": k.authority, "reference": k.reference}
                         for k in self.disputed],
        }  # fmt: skip


def explain(
    facts: CitizenFacts, items: list[Contribution], day: date, policy: Policy
) -> Explanation:
    """The score on `day`, its ranked reasons and every contribution counting then."""
    groups: dict[tuple[str, str, str], list[Contribution]] = {}
    for c in items:
        groups.setdefault((c.authority, c.reference, c.rule), []).append(c)
    explained = [_item(facts, c, groups, day, policy) for c in items]
    counting = [i for i in explained if i.contribution.counts_on(day)]
    negative = sorted(
        (i for i in counting if i.contribution.points < 0),
        key=lambda i: (i.contribution.points, -i.occurred_on.toordinal(),
                       i.contribution.reference, i.contribution.authority, i.contribution.rule),
    )  # fmt: skip
    expired = sum(
        1 for (authority, reference, _), pieces in groups.items()
        if all(p.counts_until is not None and p.counts_until <= day for p in pieces)
        and not _suspended(facts.records[RecordKey(authority, reference)], day, policy)
    )  # fmt: skip
    disputed = [f.key for f in facts.records.values() if _dispute_open(f, day)]
    # A total order: the views store contributions in an order of their own, and the
    # same facts must explain the same way however their contributions were listed.
    counting.sort(key=lambda i: (i.contribution.counts_from, i.contribution.reference,
                                 i.contribution.authority, i.contribution.rule))  # fmt: skip
    return Explanation(policy, day, score(items, day, policy), negative[:REASONS], counting,
                       expired, disputed)  # fmt: skip


def _dispute_open(record: RecordFacts, day: date) -> bool:
    return any(d.open_on(day) for d in record.disputes)


def _suspended(record: RecordFacts, day: date, policy: Policy) -> bool:
    grace = timedelta(days=policy.dispute_grace_days)
    return any(
        d.opened_on + grace <= day and (d.resolved_on is None or day < d.resolved_on)
        for d in record.disputes
    )


def _item(
    facts: CitizenFacts,
    c: Contribution,
    groups: dict[tuple[str, str, str], list[Contribution]],
    day: date,
    policy: Policy,
) -> Item:
    record = facts.records[RecordKey(c.authority, c.reference)]
    disputed = _dispute_open(record, day)
    if c.counts_on(day):
        status = "disputed" if disputed else "counting"
    elif c.counts_from > day:
        status = "pending"
    elif _suspended(record, day, policy):
        status = "suspended"
    else:
        status = "ended"
    pieces = groups[(c.authority, c.reference, c.rule)]
    ends = [p.counts_until for p in pieces]
    last = None if None in ends else max(e for e in ends if e is not None)
    return Item(c, record.occurred_on, status, _remedy(record.type, c, not disputed, last))


def _remedy(record_type: str, c: Contribution, disputable: bool, last: date | None) -> str | None:
    if c.points >= 0:
        return None
    ways = []
    if (
        record_type == r.INFRACTION
        and c.rule.endswith(".open")
        and (c.kind not in r.UNSETTLEABLE_KINDS)
    ):
        ways.append("settle")
    if disputable:
        ways.append("dispute")
    if last is not None:
        ways.append(f"expires on {last.isoformat()}")
    return "; ".join(ways) or None
