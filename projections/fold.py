"""The one fold of the read side: a citizen's records into their facts, and their
facts into their contributions under each policy, for a rebuild (every record of a
citizen at once, folded into facts as the log is read) and a catch-up (the new
records of a citizen whose views are stored) alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence

from ledger.domain import records as r
from ledger.domain.records import RecordKey
from ledger.log import FactPage, LoggedFact, LogReader, UnreadableLog
from projections.known import KnownFacts
from projections.policy import Policy
from projections.scoring import CitizenFacts, contributions_under
from projections.store import CitizenChange, CitizenViews, Made, same_contributions
from projections.store.changes import FOLD_EVERY


def views_of(
    page: FactPage,
    known: Mapping[uuid.UUID, CitizenFacts],
    policies: Sequence[Policy],
    earlier: Mapping[uuid.UUID, CitizenFacts] | None = None,
) -> Iterator[Made]:
    """The one fold of a page: for a citizen enrolled on it, their views whole; for any
    other, the change their records on it make to their views under every policy, and
    whether their views are due to have their changes folded in (their events, uses of
    their file included, reached a multiple of FOLD_EVERY on the page).

    A record that acts on none contributes what it alone says (what later records do
    to it changes that, not what came before it), so it needs none of the citizen's
    facts: the change adds its contributions. A record that acts on another changes
    the contributions of the records linked to it, which are scored again and replaced,
    under the policies where they differ. Those are found in the facts `known` keeps of
    the citizen's records since some position (all of them, or those this process
    folded), or `earlier`, all of them up to the page, read from the log where the
    kept ones do not reach (`needs_facts`)."""
    for cid, (first, last) in page.versions.items():
        # Due to be folded: the citizen's events reached a multiple of FOLD_EVERY.
        fold = last // FOLD_EVERY > (first - 1) // FOLD_EVERY
        records = page.citizens.get(cid)
        if records is None:
            # Only uses of their file, which change no view: a fold, if due.
            if fold:
                yield CitizenChange(cid, None, [None] * len(policies), True, None)
            continue
        facts = earlier.get(cid) if earlier else None
        if facts is None:
            facts = known.get(cid)
        if cid in page.enrolled and facts is None:
            yield whole(cid, enrolled(page, cid, records), policies)
            continue
        if facts is None:
            # Their records from this page on: what later pages' records act on.
            facts = CitizenFacts("")
        acting = [record.target for record in records if record.target is not None]
        if not acting:
            for record in records:
                facts.apply(record)
            found = contributions_under(facts, policies, [record.key for record in records])
            yield CitizenChange(cid, None, [f or None for f in found], fold, facts)
            continue
        before = contributions_under(
            facts, policies, facts.linked(t for t in acting if t in facts.records)
        )
        for record in records:
            facts.apply(record)
        keys = frozenset(facts.linked(record.key for record in records))
        found = contributions_under(facts, policies, keys)
        yield CitizenChange(cid, keys, [
            None if same_contributions(now, then) else now
            for now, then in zip(found, before, strict=True)
        ], fold, facts)  # fmt: skip


def needs_facts(page: FactPage, known: Mapping[uuid.UUID, CitizenFacts]) -> list[uuid.UUID]:
    """The citizens of a page whose facts up to it must be read from the log: those
    with a record acting on one that neither the page nor the facts `known` keeps of
    them holds, or that acts in turn on one they do not hold. Records are acted on only
    by later ones, so the facts of a citizen's records since some position hold all
    that acts on any of them: only what they act on can lie before."""
    needed = []
    for cid, records in page.citizens.items():
        if cid in page.enrolled:
            continue
        facts = known.get(cid)
        held = facts.records if facts is not None else {}
        on_page: set[RecordKey] = set()
        for record in records:
            target = record.target
            while target is not None and target not in on_page:
                found = held.get(target)
                if found is None:
                    break
                target = found.target
            if target is not None and target not in on_page:
                needed.append(cid)
                break
            on_page.add(record.key)
    return needed


def enrolled(page: FactPage, cid: uuid.UUID, records: Sequence[LoggedFact]) -> CitizenFacts:
    """The facts of a citizen enrolled on the page, from their records on it."""
    if records[0].type != r.ENROLLED:
        raise UnreadableLog(
            f"position {records[0].position}: citizen {cid} has records before the enrolment"
        )
    facts = CitizenFacts(page.enrolled[cid])
    for record in records:
        facts.apply(record)
    return facts


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


def page_views(
    log: LogReader, known: KnownFacts, policies: Sequence[Policy], start: int, page: FactPage
) -> Iterator[Made]:
    """What the fold makes of the citizens of a page read after `start`, folded as they
    are taken, from the facts `known` keeps and those the fold needs read from the log."""
    kept = known.before([p.name for p in policies], start, page.citizens)
    return views_of(page, kept, policies, log.facts_of(needs_facts(page, kept), start))


def folded(made: Iterable[Made]) -> Iterator[tuple[uuid.UUID, CitizenFacts | None]]:
    """Each citizen of what the fold made, with their facts when it folded them whole."""
    for item in made:
        yield item[0], item.facts
