"""What a catch-up knows of its citizens before a page: their facts as of the
projections' position.

A citizen's facts are never stored with the views; they are folded from the log. A
catch-up needs them only for a citizen with a new record that acts on another (whose
contributions it changes). The projector keeps, of each citizen it folded, the facts of
their records since it first met them (or of all, when it read them from the log):
most records act on one folded since, and then cost one fold and the scoring of the
records linked to them, not a read of the citizen's whole history. What is kept is
bound to the policies and the position it was written at: any other position, or a
page that was not written (a failure, an outage, a lost lock), drops all of it, so it
can never stand for anything but what this process itself wrote last.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

from ledger.domain.facts import CitizenFacts

# Under 13 KB a citizen of ten records (the growth of a catch-up's memory as it kept the
# facts and views of 10,000 of them): some 260 MB at most.
KEPT_CITIZENS = 20_000


class Workers(Protocol):
    def close(self) -> None: ...


class KnownFacts:
    """The facts of recently written citizens under one group of policies.

    When a catch-up is shared by processes (projections.shares), each keeps its own
    share's. With `keep_shares` those processes are kept here from one catch-up to the
    next (as a follower keeps them), until `close` ends them; else each catch-up ends
    the processes it started."""

    def __init__(self, limit: int = KEPT_CITIZENS, keep_shares: bool = False) -> None:
        self.limit = limit
        self.keep_shares = keep_shares
        self._facts: OrderedDict[uuid.UUID, CitizenFacts] = OrderedDict()
        self._at: tuple[tuple[str, ...], int] | None = None
        self.shares: Workers | None = None

    def before(
        self, policies: Sequence[str], position: int, citizens: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, CitizenFacts]:
        """The facts kept of these citizens, if this process wrote them at `position`.
        Until `written` is called, nothing kept is trusted again."""
        at = (tuple(policies), position)
        if self._at != at:
            self._facts.clear()
        self._at = None
        kept: dict[uuid.UUID, CitizenFacts] = {}
        for citizen in citizens:
            facts = self._facts.pop(citizen, None)
            if facts is not None:
                kept[citizen] = facts
        return kept

    def written(
        self,
        policies: Sequence[str],
        position: int,
        folded: Iterable[tuple[uuid.UUID, CitizenFacts | None]],
    ) -> None:
        """The page up to `position` was written, with these citizens' facts as folded
        (None for a citizen whose facts were not folded)."""
        kept = self._facts
        for citizen, facts in folded:
            if facts is not None:
                kept[citizen] = facts
        while len(kept) > self.limit:
            kept.popitem(last=False)
        self._at = (tuple(policies), position)

    def clear(self) -> None:
        self._facts.clear()
        self._at = None

    def close(self) -> None:
        """End the processes sharing the catch-up, if any; what they kept goes with them."""
        shares, self.shares = self.shares, None
        if shares is not None:
            shares.close()
