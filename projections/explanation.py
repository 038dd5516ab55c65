"""Explanations: why a score is what it is on a date, and what would change it.

Built from a citizen's facts and contributions only, so the projection and a replay
explain a score in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ledger import records as r
from ledger.records import RecordKey
from projections.policy import Policy
from projections.scoring import CitizenFacts, Contribution, Score, score

REASONS = 4


@dataclass(frozen=True, slots=True)
class Item:
    """One contribution as of a date, with what ends it."""

    contribution: Contribution
    occurred_on: date
    status: str
    remedy: str | None

    def to_json(self) -> dict[str, Any]:
        c = self.contribution
        return {
            "authority": c.authority,
            "reference": c.reference,
            "kind": c.kind,
            "points": c.points,
            "rule": c.rule,
            "status": self.status,
            "counts_from": c.counts_from.isoformat(),
            "counts_until": c.counts_until.isoformat() if c.counts_until else None,
            "remedy": self.remedy,
        }


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
    explained = [_item(facts, c, day, policy) for c in items]
    counting = [i for i in explained if i.contribution.counts_on(day)]
    negative = sorted(
        (i for i in counting if i.contribution.points < 0),
        key=lambda i: (i.contribution.points, -i.occurred_on.toordinal(),
                       i.contribution.reference),
    )  # fmt: skip
    expired = sum(
        1 for i in explained
        if i.contribution.counts_until is not None and i.contribution.counts_until <= day
        and i.status == "expired"
    )  # fmt: skip
    disputed = [
        f.key for f in facts.records.values()
        if (d := f.open_dispute) is not None and d.opened_on <= day
    ]  # fmt: skip
    counting.sort(key=lambda i: (i.contribution.counts_from, i.contribution.reference))
    return Explanation(policy, day, score(items, day, policy), negative[:REASONS], counting,
                       expired, disputed)  # fmt: skip


def _item(facts: CitizenFacts, c: Contribution, day: date, policy: Policy) -> Item:
    record = facts.records[RecordKey(c.authority, c.reference)]
    dispute = record.open_dispute
    if c.counts_on(day):
        status = "disputed" if dispute is not None and dispute.opened_on <= day else "counting"
    elif c.counts_from > day:
        status = "pending"
    elif dispute is not None and c.counts_until == dispute.opened_on + timedelta(
        days=policy.dispute_grace_days
    ):
        status = "suspended"
    else:
        status = "expired"
    return Item(c, record.occurred_on, status, _remedy(record.type, c, dispute is None))


def _remedy(record_type: str, c: Contribution, disputable: bool) -> str | None:
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
    if c.counts_until is not None:
        ways.append(f"expires on {c.counts_until.isoformat()}")
    return "; ".join(ways) or None
