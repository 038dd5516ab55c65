"""Feeds the score projections from the ledger's log, a page at a time.

Each policy is its own projection with its own tracking position, so a new policy
is built from position zero while the others stay current. A page of events is
decoded once and folded into every policy that stands at the page's start; the
views and the new position of each policy are written in one transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from ledger.application import Ledger
from ledger.domain import Citizen, record_of
from ledger.identity import ResidentId
from ledger.storage import connect_postgres, ledger_recorder
from projections.policy import Policy
from projections.scoring import CitizenFacts, Contribution, contributions
from projections.store import CitizenView, ViewStore

PAGE = 1000


def tracking_name(policy: Policy) -> str:
    return f"scores:{policy.name}"


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
    """Bring every policy's projection up to the end of the log (or `stop_at`).

    Each round gives every group of policies at the same position one page, so a
    policy rebuilding from zero never holds the current ones back.
    """
    projections = [ScoreProjection(p) for p in policies]
    positions = store.positions()
    fresh = [p for p in projections if positions.get(tracking_name(p.policy), 0) == 0]
    head = ledger.max_position() if stop_at is None else min(stop_at, ledger.max_position())
    if fresh and head > 0:
        rebuild(ledger, store, fresh, head)
        if progress is not None:
            progress(head)
    while True:
        positions = store.positions()
        groups: dict[int, list[ScoreProjection]] = {}
        for projection in projections:
            at = positions.get(tracking_name(projection.policy), 0)
            groups.setdefault(at, []).append(projection)
        moved = 0
        for start, group in sorted(groups.items()):
            limit = page_size if stop_at is None else min(page_size, stop_at - start)
            if limit <= 0:
                continue
            notes = ledger.recorder.select_notifications(start=start + 1, limit=limit)
            if not notes:
                continue
            page = _decode(ledger, notes)
            for projection in group:
                name = projection.policy.name
                views = projection.fold(store.load(name, page.keys()), page)
                store.save(tracking_name(projection.policy), name, notes[-1].id, views)
            moved = max(moved, notes[-1].id - start)
        if not moved:
            break
        if progress is not None:
            progress(moved)
    positions = store.positions()
    return {p.policy.name: positions.get(tracking_name(p.policy), 0) for p in projections}


CITIZEN_TOPIC = get_topic(Citizen) + "."


def rebuild(
    ledger: Ledger, store: ViewStore, projections: Sequence[ScoreProjection], head: int
) -> None:
    """Build projections from position zero up to `head` in one pass over the log, one
    citizen at a time; their views and positions are written in one transaction."""
    store.replace_all(
        [(tracking_name(p.policy), p.policy.name) for p in projections],
        head,
        _views_by_citizen(ledger, [p.policy for p in projections], head),
    )


def _views_by_citizen(
    ledger: Ledger, policies: Sequence[Policy], head: int
) -> Iterator[tuple[uuid.UUID, CitizenFacts, list[list[Contribution]]]]:
    store = ledger_recorder(ledger.recorder)
    facts: CitizenFacts | None = None
    resident: ResidentId | None = None
    current: uuid.UUID | str | None = None
    for stored in store.stream_by_originator(CITIZEN_TOPIC, head):
        if stored.originator_id != current:
            if facts is not None:
                yield _views(current, facts, policies)
            current, facts = stored.originator_id, None
        event = ledger.mapper.to_domain_event(stored)
        if facts is None:
            if not isinstance(event, Citizen.Enrolled):
                raise ValueError(f"{current}: the log has events before the enrolment")
            resident = ResidentId(event.resident_id)
            facts = CitizenFacts(event.resident_id)
        assert resident is not None
        facts.apply(record_of(resident, event))
    if facts is not None:
        yield _views(current, facts, policies)


def _views(
    citizen: uuid.UUID | str | None, facts: CitizenFacts, policies: Sequence[Policy]
) -> tuple[uuid.UUID, CitizenFacts, list[list[Contribution]]]:
    return uuid.UUID(str(citizen)), facts, [contributions(facts, p) for p in policies]


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
) -> None:
    """Keep catching up until told to stop.

    On PostgreSQL it wakes on the ledger's NOTIFY, and polls every `interval`
    seconds anyway, so a lost notification delays it by one interval at most.
    """
    wait = _listener(ledger, interval)
    try:
        while not should_stop():
            catch_up(ledger, store, policies)
            wait()
    finally:
        close = getattr(wait, "close", None)
        if close is not None:
            close()


def _listener(ledger: Ledger, interval: float) -> Callable[[], None]:
    recorder = ledger.recorder
    if not isinstance(recorder, PostgresApplicationRecorder):
        return lambda: time.sleep(interval)
    conn = connect_postgres(ledger.url)
    conn.execute(SQL("LISTEN {}").format(Identifier(recorder.channel_name)))
    return _Waiter(conn, interval)


class _Waiter:
    def __init__(self, conn: psycopg.Connection[Any], interval: float) -> None:
        self.conn = conn
        self.interval = interval

    def __call__(self) -> None:
        for _ in self.conn.notifies(timeout=self.interval, stop_after=1):
            pass

    def close(self) -> None:
        self.conn.close()
