"""Feeds the score projections from the ledger's log, a page at a time.

Each policy is its own projection with its own tracking position, so a new policy
is built from position zero while the others stay current. A page of events is
decoded once and folded into every policy that stands at the page's start; the
views and the new position of each policy are written in one transaction. One
projector writes at a time (projections.lock); a follower rides out database
outages by reconnecting and going on from its tracking positions.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from typing import Any

import eventsourcing.persistence as es
import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from ledger.application import Ledger
from ledger.domain import Citizen, record_of
from ledger.errors import DatabaseUnavailable
from ledger.identity import ResidentId
from ledger.storage import connect_postgres, ledger_recorder, redact_text
from projections.lock import LockLost, projector_lock
from projections.policy import Policy
from projections.scoring import CitizenFacts, Contribution, contributions
from projections.store import CitizenView, PositionConflict, ViewStore

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
    before_write: Callable[[], None] = lambda: None,
) -> dict[str, int]:
    """Bring every policy's projection up to the end of the log (or `stop_at`).

    Each round gives every group of policies at the same position one page, so a
    policy rebuilding from zero never holds the current ones back. `before_write` is
    called before each write (a projector confirms its lock there).
    """
    projections = [ScoreProjection(p) for p in policies]
    positions = store.positions()
    fresh = [p for p in projections if positions.get(tracking_name(p.policy), 0) == 0]
    head = ledger.max_position() if stop_at is None else min(stop_at, ledger.max_position())
    if fresh and head > 0:
        before_write()
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
                before_write()
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
    """Keep catching up until told to stop, with no lock and no recovery (for tests and
    embedding; `Projector` is the one for production).

    On PostgreSQL it wakes on the ledger's NOTIFY, and polls every `interval`
    seconds anyway, so a lost notification delays it by one interval at most.
    """
    wait = _listener(ledger, interval)
    try:
        while not should_stop():
            catch_up(ledger, store, policies)
            wait()
    finally:
        wait.close()


# What a lost connection or a database restart raises: worth waiting out, not dying of.
TRANSIENT: tuple[type[BaseException], ...] = (
    DatabaseUnavailable, es.OperationalError, es.InterfaceError, psycopg.OperationalError,
    psycopg.InterfaceError, sqlite3.OperationalError,
)  # fmt: skip
# What writing a position another writer already passed raises.
OVERTAKEN: tuple[type[BaseException], ...] = (
    PositionConflict, psycopg.IntegrityError, sqlite3.IntegrityError, es.IntegrityError,
)

FIRST_BACKOFF = 0.2
LAST_BACKOFF = 2.0


class Projector:
    """Keeps every policy's projection of the ledger at `url` at the end of its log, as
    the one writer, through database outages and lost locks, until told to stop."""

    def __init__(
        self,
        url: str,
        policies: Sequence[Policy],
        interval: float = 1.0,
        log: Callable[[str], None] = lambda _: None,
        open_ledger: Callable[[str], Ledger] = Ledger,
    ) -> None:
        self.url = url
        self.policies = policies
        self.lock = projector_lock(url)
        self.interval = interval
        self.log = log
        self.open_ledger = open_ledger
        self.positions: dict[str, int] = {}
        self._ledger: Ledger | None = None
        self._store: ViewStore | None = None
        self._wait: Waiter | None = None
        self._standby = False
        self._down_since: float | None = None

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
        """Follow the log; returns the positions last written."""
        backoff = FIRST_BACKOFF
        try:
            while not should_stop():
                try:
                    self._round()
                    backoff = FIRST_BACKOFF
                except LockLost as e:
                    self.log(f"{e}; taking it again before writing")
                except OVERTAKEN as e:
                    self.log(f"another writer moved the projections ({self._describe(e)}); "
                             "reading the positions again")  # fmt: skip
                    time.sleep(self.interval)
                except TRANSIENT as e:
                    if self._down_since is None:
                        self._down_since = time.monotonic()
                        self.log(f"the database does not answer ({self._describe(e)}); "
                                 "retrying until it does")  # fmt: skip
                    self._disconnect()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, LAST_BACKOFF)
        finally:
            self._disconnect()
            self.lock.close()
            if self._ledger is not None:
                with suppress(*TRANSIENT):
                    self._ledger.close()
        return self.positions

    def _round(self) -> None:
        """One catch-up and wait as the holder, or one wait as the standby."""
        if not self.lock.try_acquire():
            if not self._standby:
                self._standby = True
                self.log("another projector is running; waiting as its standby")
            self._recovered()
            time.sleep(self.interval)
            return
        if self._standby:
            self._standby = False
            self.log("the other projector stopped; taking over")
        if self._ledger is None:
            # Kept through outages: its pool checks connections and replaces dead ones.
            self._ledger = self.open_ledger(self.url)
        if self._store is None:
            self._store = ViewStore(self.url)
        if self._wait is None:
            self._wait = _listener(self._ledger, self.interval)
        self.positions = catch_up(
            self._ledger, self._store, self.policies, before_write=self.lock.check
        )
        self._recovered()
        self._wait()

    def _recovered(self) -> None:
        if self._down_since is not None:
            gone = time.monotonic() - self._down_since
            self._down_since = None
            at = f" from position {min(self.positions.values())}" if self.positions else ""
            self.log(f"the database answers again after {gone:.1f}s; going on{at}")

    def _disconnect(self) -> None:
        store, self._store = self._store, None
        wait, self._wait = self._wait, None
        for closing in (store, wait):
            if closing is not None:
                with suppress(*TRANSIENT):
                    closing.close()

    def _describe(self, error: BaseException) -> str:
        lines = str(error).strip().splitlines()
        return redact_text(f"{type(error).__name__}: {lines[0] if lines else ''}", self.url)


class Waiter:
    """Sleeps until the next poll, or until the ledger's NOTIFY on PostgreSQL."""

    def __init__(self, conn: psycopg.Connection[Any] | None, interval: float) -> None:
        self.conn = conn
        self.interval = interval

    def __call__(self) -> None:
        if self.conn is None:
            time.sleep(self.interval)
            return
        for _ in self.conn.notifies(timeout=self.interval, stop_after=1):
            pass

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _listener(ledger: Ledger, interval: float) -> Waiter:
    recorder = ledger.recorder
    if not isinstance(recorder, PostgresApplicationRecorder):
        return Waiter(None, interval)
    conn = connect_postgres(ledger.url)
    try:
        conn.execute(SQL("LISTEN {}").format(Identifier(recorder.channel_name)))
    except BaseException:
        conn.close()
        raise
    return Waiter(conn, interval)
