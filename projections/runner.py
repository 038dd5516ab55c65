"""Feeds the score projections from the ledger's log, a page at a time.

Each policy is its own projection with its own tracking position, so a new policy
is built from position zero while the others stay current. A page of events is
decoded once and folded into every policy that stands at the page's start; the
views and the new position of each policy are written in one transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventsourcing.persistence import Notification

from ledger.application import Ledger
from ledger.domain import Citizen, record_of
from ledger.records import Record
from projections.policy import Policy
from projections.scoring import CitizenFacts, contributions
from projections.store import CitizenView, ViewStore

PAGE = 1000


def tracking_name(policy: Policy) -> str:
    return f"scores:{policy.name}"


@dataclass(frozen=True, slots=True)
class CitizenEvents:
    """A citizen's events in one page, as records, in log order."""

    resident_id: str | None
    records: list[Record]


class ScoreProjection:
    """The fold for one policy: citizens' facts in, contributions out."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def fold(
        self, known: dict[uuid.UUID, CitizenFacts], page: dict[uuid.UUID, list[Citizen.Event]]
    ) -> dict[uuid.UUID, CitizenView]:
        views: dict[uuid.UUID, CitizenView] = {}
        for cid, events in page.items():
            facts = known.get(cid)
            for event in events:
                if facts is None:
                    if not isinstance(event, Citizen.Enrolled):
                        raise ValueError(f"{cid}: the log has events before the enrolment")
                    facts = CitizenFacts(event.resident_id)
                facts.apply(record_of(facts.resident_id, event))
            assert facts is not None
            views[cid] = CitizenView(facts, contributions(facts, self.policy))
        return views


def catch_up(
    ledger: Ledger,
    store: ViewStore,
    policies: Sequence[Policy],
    page_size: int = PAGE,
    progress: Callable[[int], None] | None = None,
    stop_at: int | None = None,
) -> dict[str, int]:
    """Bring every policy's projection up to the end of the log (or `stop_at`)."""
    projections = [ScoreProjection(p) for p in policies]
    while True:
        positions = store.positions()
        at = {p.policy.name: positions.get(tracking_name(p.policy), 0) for p in projections}
        lowest = min(at.values())
        limit = page_size if stop_at is None else min(page_size, stop_at - lowest)
        if limit <= 0:
            break
        notes = ledger.recorder.select_notifications(start=lowest + 1, limit=limit)
        if not notes:
            break
        page = _decode(ledger, notes)
        last = notes[-1].id
        for projection in projections:
            if at[projection.policy.name] != lowest:
                continue
            known = store.load(projection.policy.name, page.keys())
            views = projection.fold(known, page)
            store.save(tracking_name(projection.policy), projection.policy.name, last, views)
        if progress is not None:
            progress(last - lowest)
    return {p.policy.name: store.position(tracking_name(p.policy)) for p in projections}


def _decode(ledger: Ledger, notes: Sequence[Notification]) -> dict[uuid.UUID, list[Citizen.Event]]:
    page: dict[uuid.UUID, list[Citizen.Event]] = {}
    for note in notes:
        if "Citizen" not in note.topic:
            continue
        event = ledger.mapper.to_domain_event(note)
        if isinstance(event, Citizen.Event):
            page.setdefault(event.originator_id, []).append(event)
    return page


def follow(
    ledger: Ledger,
    store: ViewStore,
    policies: Sequence[Policy],
    interval: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
    on_page: Callable[[int], None] | None = None,
) -> None:
    """Keep catching up until told to stop; polls every `interval` seconds."""
    while not should_stop():
        before = ledger.max_position()
        catch_up(ledger, store, policies, progress=on_page)
        if ledger.max_position() == before:
            time.sleep(interval)
