"""The one fold of the read side: a citizen's records into their facts, and their
facts into their contributions under each policy, for a rebuild (every record of a
citizen at once) and a catch-up (the new records of a citizen whose views are known)
alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence

from ledger.domain import records as r
from ledger.log import LoggedRecord, LogReader, Page, UnreadableLog
from projections.known import KnownViews
from projections.policy import Policy
from projections.scoring import CitizenFacts, Contribution, contributions
from projections.store import CitizenViews, same_contributions


def views_of(
    citizens: Iterable[tuple[uuid.UUID, Sequence[LoggedRecord]]],
    known: Mapping[uuid.UUID, CitizenViews],
    policies: Sequence[Policy],
) -> Iterator[CitizenViews]:
    """The one fold: each citizen's facts as known, with their new records folded in,
    and their contributions under every policy, in order. A citizen new to the views is
    scored whole; for one already known only the records the new ones are linked to
    are scored again (no other record's contributions can have changed)."""
    for cid, records in citizens:
        views = known.get(cid)
        facts = None if views is None else views.facts
        for logged in records:
            record = logged.record
            if facts is None:
                if record.type != r.ENROLLED:
                    raise UnreadableLog(
                        f"position {logged.position}: citizen {cid} has records before "
                        "the enrolment"
                    )
                facts = CitizenFacts(record.citizen.value)
            facts.apply(record)
        if facts is None:
            continue
        if views is None:
            yield CitizenViews(cid, facts, [contributions(facts, p) for p in policies])
            continue
        keys = facts.linked(logged.record.key for logged in records)
        linked = {(key.authority, key.reference) for key in keys}
        yield CitizenViews(cid, facts, [
            unless_same(
                [c for c in before if (c.authority, c.reference) not in linked]
                + contributions(facts, p, keys),
                before,
            )
            for p, before in zip(policies, views.contributions, strict=True)
        ])  # fmt: skip


def unless_same(new: list[Contribution], old: list[Contribution]) -> list[Contribution]:
    """The old view itself when the new one holds the same contributions: so marked, it
    is not written again (most records count under some policies only)."""
    return old if same_contributions(new, old) else new


def page_views(
    log: LogReader, known: KnownViews, policies: Sequence[Policy], start: int, page: Page
) -> tuple[list[CitizenViews], dict[uuid.UUID, CitizenViews]]:
    """The views of the citizens of a page read after `start`, and those kept of them
    from before it: a citizen `known` does not keep is read from the log and scored
    whole."""
    touched = page.by_citizen()
    kept, earlier = known.before(log, [p.name for p in policies], start, touched)
    citizens = [
        (cid, records if cid in kept else earlier.get(cid, []) + records)
        for cid, records in touched.items()
    ]
    return list(views_of(citizens, kept, policies)), kept
