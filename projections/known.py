"""What a catch-up knows of its citizens before a page: their facts and views as of
the projections' position.

A citizen's facts are never stored with the views; they are folded from the log. The
projector keeps the facts and views of the citizens it wrote last, so a citizen with a
new record costs one fold of that record and the scoring of the records linked to it,
not a read of their whole history. What is kept is bound to the policies and the
position it was written at: any other position, or a page that was not written (a
failure, an outage, a lost lock), drops all of it, so it can never stand for anything
but what this process itself wrote last.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol

from ledger.domain.facts import CitizenFacts
from ledger.log import LogReader
from projections.store import CitizenViews

# About 13 KB a citizen of ten records under two policies (the growth of a catch-up's
# memory as it kept 10,000 of them): some 260 MB at most.
KEPT_CITIZENS = 20_000


class Workers(Protocol):
    def close(self) -> None: ...


class KnownViews:
    """The facts and views of recently written citizens under one group of policies.

    When a catch-up is shared by processes (projections.shares), each keeps its own
    share's. With `keep_shares` those processes are kept here from one catch-up to the
    next (as a follower keeps them), until `close` ends them; else each catch-up ends
    the processes it started."""

    def __init__(self, limit: int = KEPT_CITIZENS, keep_shares: bool = False) -> None:
        self.limit = limit
        self.keep_shares = keep_shares
        self._views: OrderedDict[uuid.UUID, CitizenViews] = OrderedDict()
        self._at: tuple[tuple[str, ...], int] | None = None
        self.shares: Workers | None = None

    def before(
        self,
        log: LogReader,
        policies: Sequence[str],
        position: int,
        citizens: Iterable[uuid.UUID],
    ) -> tuple[dict[uuid.UUID, CitizenViews], dict[uuid.UUID, CitizenFacts]]:
        """For these citizens: the views kept of those this process wrote at
        `position`, and every other one's facts up to `position` from the log.
        Until `written` is called, nothing kept is trusted again."""
        at = (tuple(policies), position)
        if self._at != at:
            self._views.clear()
        self._at = None
        kept: dict[uuid.UUID, CitizenViews] = {}
        missing: list[uuid.UUID] = []
        for citizen in citizens:
            views = self._views.pop(citizen, None)
            if views is None:
                missing.append(citizen)
            else:
                kept[citizen] = views
        return kept, log.facts_of(missing, position)

    def written(
        self, policies: Sequence[str], position: int, views: Iterable[CitizenViews]
    ) -> None:
        """The page up to `position` was written with these citizens' views."""
        kept = self._views
        for written in views:
            kept[written.citizen] = written
        while len(kept) > self.limit:
            kept.popitem(last=False)
        self._at = (tuple(policies), position)

    def clear(self) -> None:
        self._views.clear()
        self._at = None

    def close(self) -> None:
        """End the processes sharing the catch-up, if any; what they kept goes with them."""
        shares, self.shares = self.shares, None
        if shares is not None:
            shares.close()
