"""The one fold of the read side: a citizen's records into their facts, and their
facts into their contributions under each policy, for a rebuild (every record of a
citizen at once, folded into facts as the log is read) and a catch-up (the new
records of a citizen whose views are known) alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet

from ledger.domain import records as r
from ledger.domain.records import RecordKey
from ledger.log import FactPage, LogReader, UnreadableLog
from projections.known import KnownViews
from projections.policy import Policy
from projections.scoring import CitizenFacts, Contribution, contributions_under
from projections.store import CitizenViews, same_contributions


def views_of(
    page: FactPage,
    known: Mapping[uuid.UUID, CitizenViews],
    policies: Sequence[Policy],
    earlier: Mapping[uuid.UUID, CitizenFacts] | None = None,
) -> Iterator[CitizenViews]:
    """The one fold: each citizen's facts as known (their views' facts, else their
    `earlier` facts), with their records on the page folded in, and their
    contributions under every policy, in order. A citizen without views is scored
    whole; for one whose views are known only the records the new ones are linked to
    are scored again (no other record's contributions can have changed)."""
    for cid, records in page.citizens.items():
        views = known.get(cid)
        facts = views.facts if views is not None else earlier.get(cid) if earlier else None
        for record in records:
            if facts is None:
                if record.type != r.ENROLLED:
                    raise UnreadableLog(
                        f"position {record.position}: citizen {cid} has records before "
                        "the enrolment"
                    )
                facts = CitizenFacts(page.enrolled[cid])
            facts.apply(record)
        if facts is None:
            continue
        if views is None:
            yield whole(cid, facts, policies)
            continue
        if all(record.target is None for record in records):
            # New records acting on none: no record the views hold is linked to them
            # (a reference is never logged twice), so the views only gain theirs.
            keys = {record.key for record in records}
            yield CitizenViews(cid, facts, [
                before + found if found else before
                for found, before in zip(contributions_under(facts, policies, keys),
                                         views.contributions, strict=True)
            ])  # fmt: skip
            continue
        keys = facts.linked(record.key for record in records)
        yield CitizenViews(cid, facts, [
            replaced(before, keys, found)
            for found, before in zip(contributions_under(facts, policies, keys),
                                     views.contributions, strict=True)
        ])  # fmt: skip


def scored(
    citizens: Iterable[tuple[uuid.UUID, CitizenFacts]], policies: Sequence[Policy]
) -> Iterator[CitizenViews]:
    """A rebuild's views: each citizen's facts (as `LogReader.facts_by_citizen` folds
    them) scored whole under every policy."""
    for cid, facts in citizens:
        yield whole(cid, facts, policies)


def whole(cid: uuid.UUID, facts: CitizenFacts, policies: Sequence[Policy]) -> CitizenViews:
    """A citizen's views from all their facts: every record scored."""
    return CitizenViews(cid, facts, contributions_under(facts, policies))


def replaced(
    before: list[Contribution], keys: AbstractSet[RecordKey], found: list[Contribution]
) -> list[Contribution]:
    """A view with the contributions of the records `keys` (scored again) replaced by
    `found`; the view itself when they are the same, so marked it is not written again
    (most records count under some policies only). A contribution's first two fields
    are its record's key, which is a tuple of the same two."""
    kept = [c for c in before if c[:2] not in keys]
    if len(kept) + len(found) == len(before) and same_contributions(
        found, [c for c in before if c[:2] in keys]
    ):
        return before
    return kept + found


def page_views(
    log: LogReader, known: KnownViews, policies: Sequence[Policy], start: int, page: FactPage
) -> tuple[Iterator[CitizenViews], dict[uuid.UUID, CitizenViews]]:
    """The views of the citizens of a page read after `start`, folded as they are
    taken, and those kept of them from before it: a citizen `known` does not keep has
    their facts read from the log and is scored whole."""
    kept, earlier = known.before(log, [p.name for p in policies], start, page.citizens)
    return views_of(page, kept, policies, earlier), kept
