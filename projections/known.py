"""What a catch-up knows of its citizens before a page: their facts as of the
projections' position.

A citizen's facts are never stored with the views; they are folded from the log. The
projector keeps those of the citizens it wrote last, so a citizen with a new record
costs one fold of that record, not a read of their whole history. What is kept is
bound to the policies and the position it was written at: any other position, or a
page that was not written (a failure, an outage, a lost lock), drops all of it, so it
can never stand for anything but what this process itself wrote last.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from ledger.domain.facts import CitizenFacts
from ledger.log import LoggedRecord, LogReader

# About 3 KB a citizen of ten records: some 150 MB at most.
KEPT_CITIZENS = 50_000


class KnownFacts:
    """The facts of recently written citizens under one group of policies."""

    def __init__(self, limit: int = KEPT_CITIZENS) -> None:
        self.limit = limit
        self._facts: OrderedDict[uuid.UUID, CitizenFacts] = OrderedDict()
        self._at: tuple[tuple[str, ...], int] | None = None

    def before(
        self,
        log: LogReader,
        policies: Sequence[str],
        position: int,
        citizens: Iterable[uuid.UUID],
    ) -> tuple[dict[uuid.UUID, CitizenFacts], dict[uuid.UUID, list[LoggedRecord]]]:
        """For these citizens: the facts kept of those this process wrote at
        `position`, and every other one's records up to `position` from the log.
        Until `written` is called, nothing kept is trusted again."""
        at = (tuple(policies), position)
        if self._at != at:
            self._facts.clear()
        self._at = None
        kept: dict[uuid.UUID, CitizenFacts] = {}
        missing: list[uuid.UUID] = []
        for citizen in citizens:
            facts = self._facts.pop(citizen, None)
            if facts is None:
                missing.append(citizen)
            else:
                kept[citizen] = facts
        return kept, log.citizens(missing, position)

    def written(
        self,
        policies: Sequence[str],
        position: int,
        facts: Iterable[tuple[uuid.UUID, CitizenFacts]],
    ) -> None:
        """The page up to `position` was written with these citizens' facts."""
        kept = self._facts
        for citizen, found in facts:
            kept[citizen] = found
        while len(kept) > self.limit:
            kept.popitem(last=False)
        self._at = (tuple(policies), position)

    def clear(self) -> None:
        self._facts.clear()
        self._at = None
