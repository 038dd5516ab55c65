"""A score as a step function of the day: where it starts, and each day it changes,
with the records whose contributions start or end that day. What the console draws,
computed from contributions alone, so it agrees with every score the ledger gives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledger.domain.records import RecordKey
from projections.policy import Policy
from projections.scoring import Contribution, score


@dataclass(frozen=True, slots=True)
class Step:
    day: date
    score: int
    band: str
    keys: tuple[RecordKey, ...]


def score_steps(items: list[Contribution], policy: Policy, first: date) -> list[Step]:
    """The score on `first`, then a step on each later day it changes (a contribution
    starts or ends), naming the records whose contributions start or end then."""
    moving: dict[date, set[RecordKey]] = {}
    for c in items:
        for day in (c.counts_from, c.counts_until):
            if day is not None and day > first:
                moving.setdefault(day, set()).add(RecordKey(c.authority, c.reference))
    start = score(items, first, policy)
    steps = [Step(first, start.score, start.band, ())]
    for day in sorted(moving):
        now = score(items, day, policy)
        if now.score != steps[-1].score:
            keys = tuple(sorted(moving[day], key=lambda k: (k.authority, k.reference)))
            steps.append(Step(day, now.score, now.band, keys))
    return steps
