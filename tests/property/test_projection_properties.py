"""Property tests of the score projections, on both stores.

For random valid record sequences (every record type, dates on or after their
targets) the projection answers as a replay of the log does; a build that catches
up after every chunk equals one built from zero; and a run stopped (or crashed) at
a random position and resumed equals one uninterrupted run. Every example works on
ledgers of its own: a fresh SQLite file or a fresh PostgreSQL schema.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import FixedClock, Ledger
from ledger.domain import records as r
from ledger.domain.identity import make_resident_id, parse_resident_id
from projections import fold as folding
from projections.known import KnownFacts
from projections.policy import Policy, load
from projections.queries import Scores
from projections.runner import catch_up, tracking_name
from projections.scoring import Contribution, contributions, fold
from projections.store import PositionConflict, ViewStore
from tests.builders import AUTHORITIES, WANG_FANG, append, enrolled, fine, record, target
from tests.builders import register_authorities as register_all

POLICIES: list[Policy] = [load("national-v1"), load("finance-v1")]

TODAY = date(2026, 3, 1)  # the ledger's clock day in conftest
FIRST_DAY = date(2012, 1, 1)  # records (other than enrolments) happen from here on
REGIONS = ("110105", "310104", "440305", "510107", "650102")

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Each example of a rebuild shared by two worker processes starts two processes.
PARALLEL_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=5)


# Fresh ledgers per example, on the store under test


class FreshStores:
    """Hands out empty databases on the store `store_url` is on."""

    def __init__(self, store_url: str, start: datetime) -> None:
        self.start = start
        self.postgres = not store_url.startswith("sqlite:")
        if self.postgres:
            self.server = store_url.split("?", 1)[0]
        else:
            self.folder = Path(store_url.removeprefix("sqlite:///")).parent

    @contextmanager
    def url(self) -> Iterator[str]:
        name = "p_" + uuid.uuid4().hex[:12]
        if not self.postgres:
            yield f"sqlite:///{self.folder}/{name}.db"
            return
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        try:
            yield f"{self.server}?schema={name}"
        finally:
            with psycopg.connect(self.server, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {name} CASCADE")

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        """An empty ledger with the test authorities registered; the clock at `start`."""
        with self.url() as url:
            ledger = Ledger(url, clock=FixedClock(self.start, timedelta(seconds=1)))
            try:
                register_all(ledger)
                yield ledger
            finally:
                ledger.close()

    @contextmanager
    def views(self, url: str, store_class: type[ViewStore] = ViewStore, **kw: Any) -> Iterator[Any]:
        store = store_class(url, **kw)
        try:
            yield store
        finally:
            store.close()


# Random valid record sequences


def issuers(record_type: str, kind: str | None = None) -> list[str]:
    """The test authorities entitled to issue this type (and kind)."""
    return sorted(
        a
        for a, (_, may_issue) in AUTHORITIES.items()
        if record_type in may_issue or (kind and f"{record_type}:{kind}" in may_issue)
    )


@dataclass
class Known:
    """What the generator knows about a record it has written, mirroring the rules."""

    key: tuple[str, str]
    citizen: str
    type: str
    kind: str | None
    day: date
    target: tuple[str, str] | None = None
    settled_on: date | None = None
    vacated: bool = False
    revoked: bool = False
    repaired: bool = False
    open_dispute: tuple[str, str] | None = None
    resolved: bool = False


@dataclass
class History:
    citizens: list[str]
    records: list[dict[str, Any]]

    def lines(self) -> list[tuple[int, str]]:
        return [(n, json.dumps(rec)) for n, rec in enumerate(self.records, start=1)]


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@st.composite
def histories(draw: st.DrawFn, max_citizens: int = 3, max_records: int = 30) -> History:
    """Enrolments, then random records of every type for a few citizens, all valid."""
    counters: dict[str, int] = {}
    known: dict[tuple[str, str], Known] = {}
    records: list[dict[str, Any]] = []

    def reference(authority: str) -> str:
        # Per authority, so different authorities may well use the same reference.
        counters[authority] = counters.get(authority, 0) + 1
        return f"R{counters[authority]}"

    def day_from(earliest: date) -> date:
        span = (TODAY - earliest).days
        offset = draw(st.one_of(st.integers(0, min(span, 45)), st.integers(0, span)))
        return earliest + timedelta(days=offset)

    def emit(citizen: str, record_type: str, authority: str, day: date, tgt: Known | None,
             kind: str | None = None, **fields: Any) -> Known:  # fmt: skip
        ref = reference(authority)
        wire: dict[str, Any] = {
            "type": record_type, "citizen": citizen, "authority": authority,
            "reference": ref, "occurred_on": day.isoformat(),
        }  # fmt: skip
        if kind is not None:
            wire["kind"] = kind
        if tgt is not None:
            wire["target"] = {"authority": tgt.key[0], "reference": tgt.key[1]}
        wire.update(fields)
        records.append(wire)
        item = Known((authority, ref), citizen, record_type, kind, day,
                     tgt.key if tgt else None)  # fmt: skip
        known[item.key] = item
        return item

    citizens = []
    for i in range(draw(st.integers(1, max_citizens))):
        birth = draw(st.dates(date(1950, 1, 1), date(2005, 12, 31)))
        citizen = make_resident_id(draw(st.sampled_from(REGIONS)), birth, 100 + i)
        citizens.append(citizen)
        emit(citizen, r.ENROLLED, "civil-registry", draw(st.dates(birth, TODAY)), None)

    for _ in range(draw(st.integers(0, max_records))):
        citizen = draw(st.sampled_from(citizens))
        mine = [k for k in known.values() if k.citizen == citizen]
        settleable = [k for k in mine if k.type == r.INFRACTION and k.settled_on is None
                      and not k.vacated and k.kind not in r.UNSETTLEABLE_KINDS]  # fmt: skip
        revocable = [k for k in mine if k.type == r.VERIFICATION and not k.revoked]
        disputable = [k for k in mine if k.open_dispute is None and k.type in
                      (r.INFRACTION, r.PAYMENT, r.VERIFICATION, r.REVOKED)]  # fmt: skip
        resolvable = [k for k in mine if k.type == r.DISPUTED and not k.resolved]
        vacatable = [k for k in mine if k.type == r.INFRACTION and not k.vacated]
        repairable = [k for k in mine if k.type == r.INFRACTION and k.settled_on is not None
                      and not k.repaired]  # fmt: skip
        actions = ["infraction", "payment", "verification"]
        actions += [name for name, targets in (
            ("settle", settleable), ("revoke", revocable), ("dispute", disputable),
            ("resolve", resolvable), ("vacate", vacatable), ("repair", repairable),
        ) if targets]  # fmt: skip
        action = draw(st.sampled_from(actions))
        if action == "infraction":
            kind = draw(st.sampled_from(r.INFRACTION_KINDS))
            authority = draw(st.sampled_from(issuers(r.INFRACTION, kind)))
            extra = {} if kind in r.UNSETTLEABLE_KINDS else {"amount": _amount(
                draw(st.integers(0, 10_000_000)))}  # fmt: skip
            emit(citizen, r.INFRACTION, authority, day_from(FIRST_DAY), None, kind, **extra)
        elif action == "payment":
            kind = draw(st.sampled_from(r.PAYMENT_KINDS))
            authority = draw(st.sampled_from(issuers(r.PAYMENT, kind)))
            emit(citizen, r.PAYMENT, authority, day_from(FIRST_DAY), None, kind,
                 amount=_amount(draw(st.integers(0, 1_000_000))))  # fmt: skip
        elif action == "verification":
            kind = draw(st.sampled_from(r.VERIFICATION_KINDS))
            authority = draw(st.sampled_from(issuers(r.VERIFICATION, kind)))
            emit(citizen, r.VERIFICATION, authority, day_from(FIRST_DAY), None, kind,
                 credential=f"{kind} no. {len(records)}")  # fmt: skip
        elif action == "settle":
            tgt = draw(st.sampled_from(settleable))
            assert tgt.key[0] in issuers(r.SETTLED)
            day = day_from(tgt.day)
            emit(citizen, r.SETTLED, tgt.key[0], day, tgt, amount=_amount(
                draw(st.integers(0, 10_000_000))))  # fmt: skip
            tgt.settled_on = day
        elif action == "revoke":
            tgt = draw(st.sampled_from(revocable))
            emit(citizen, r.REVOKED, tgt.key[0], day_from(tgt.day), tgt, reason="withdrawn")
            tgt.revoked = True
        elif action == "dispute":
            tgt = draw(st.sampled_from(disputable))
            authority = draw(st.sampled_from(issuers(r.DISPUTED)))
            dispute = emit(citizen, r.DISPUTED, authority, day_from(tgt.day), tgt,
                           reason="contested")  # fmt: skip
            tgt.open_dispute = dispute.key
        elif action == "resolve":
            tgt = draw(st.sampled_from(resolvable))
            outcome = draw(st.sampled_from(r.OUTCOMES))
            emit(citizen, r.RESOLVED, tgt.key[0], day_from(tgt.day), tgt, outcome=outcome)
            tgt.resolved = True
            assert tgt.target is not None
            disputed = known[tgt.target]
            disputed.open_dispute = None
            if outcome == "removed" and disputed.type == r.INFRACTION:
                disputed.vacated = True
        elif action == "vacate":
            tgt = draw(st.sampled_from(vacatable))
            authority = draw(st.sampled_from(issuers(r.VACATED)))
            emit(citizen, r.VACATED, authority, day_from(tgt.day), tgt, reason="set aside")
            tgt.vacated = True
        else:  # repair
            tgt = draw(st.sampled_from(repairable))
            assert tgt.settled_on is not None
            authority = draw(st.sampled_from(issuers(r.REPAIRED)))
            emit(citizen, r.REPAIRED, authority, day_from(tgt.settled_on), tgt)
            tgt.repaired = True
    return History(citizens, records)


AS_OF = st.dates(date(2015, 1, 1), date(2040, 12, 31))
PAGE_SIZES = st.sampled_from([1, 2, 3, 7, 1000])


def append_all(ledger: Ledger, lines: list) -> None:
    report = ledger.append_lines(lines)
    assert report.rejected == [], [str(x) for x in report.rejected]
    assert report.duplicates == []
    assert report.appended == len(lines)


def chunked(history: History, data: st.DataObject) -> list[list[tuple[int, str]]]:
    """The history's numbered lines, cut at up to five random places."""
    lines = history.lines()
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(lines) - 1, 1)), max_size=5),
                            label="cuts"))  # fmt: skip
    chunks = [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    return [chunk for chunk in chunks if chunk]


def build_by_chunks(
    ledger: Ledger,
    store: ViewStore,
    chunks: list[list[tuple[int, str]]],
    page_size: int,
    workers: int = 1,
) -> None:
    """Append chunk after chunk, catching up after each; every catch-up reaches the end."""
    for chunk in chunks:
        append_all(ledger, chunk)
        head = ledger.max_position()
        assert catch_up(ledger, store, POLICIES, page_size=page_size, workers=workers) == {
            p.name: head for p in POLICIES
        }


def last_position_up_to(ledger: Ledger, stop: int) -> int:
    notes = ledger.recorder.select_notifications(start=1, limit=max(stop, 1), stop=stop)
    return notes[-1].id if notes else 0


# What a view store holds, positions aside


def _key(c: Contribution) -> tuple[Any, ...]:
    return (c.authority, c.reference, c.rule, c.counts_from, c.counts_until or date.max,
            c.points, c.kind, c.cap_group or "")  # fmt: skip


def snapshot(store: ViewStore) -> dict[str, dict[str, Any]]:
    """Per policy and citizen: the stored identity number and contributions."""
    out: dict[str, dict[str, Any]] = {}
    for policy in POLICIES:
        views: dict[str, Any] = {}
        for resident in sorted(store.residents(policy.name)):
            stored, _ = store.view(
                tracking_name(policy), policy.name, parse_resident_id(resident).citizen_id
            )
            assert stored is not None
            views[resident] = (resident, sorted(stored, key=_key))
        out[policy.name] = views
    return out


def positions(store: ViewStore) -> dict[str, int]:
    return {p.name: store.position(tracking_name(p)) for p in POLICIES}


# Property 1: the projection answers as the replay does


@PROPERTY_SETTINGS
@given(history=histories(), page_size=PAGE_SIZES, early=st.booleans(), data=st.data())
def test_projection_answers_as_the_replay_does(
    fresh: FreshStores, history: History, page_size: int, early: bool, data: st.DataObject
) -> None:
    answers_as_the_replay_does(fresh, history, page_size, early, data, workers=1)


@PARALLEL_SETTINGS
@given(history=histories(), page_size=PAGE_SIZES, data=st.data())
def test_projection_rebuilt_by_two_workers_answers_as_the_replay_does(
    fresh: FreshStores, history: History, page_size: int, data: st.DataObject
) -> None:
    answers_as_the_replay_does(fresh, history, page_size, False, data, workers=2)


def answers_as_the_replay_does(
    fresh: FreshStores,
    history: History,
    page_size: int,
    early: bool,
    data: st.DataObject,
    workers: int,
) -> None:
    with fresh.ledger() as ledger, fresh.views(ledger.url) as store:
        if early:  # from the start, so every record arrives by the incremental path
            catch_up(ledger, store, POLICIES, page_size=page_size)
        build_by_chunks(ledger, store, chunked(history, data), page_size, workers)
        head = ledger.max_position()
        after = ledger.clock.now()  # later than every record's recording time
        scores = Scores(ledger, store)
        for citizen in history.citizens:
            replayed_facts = fold(citizen, (e.record for e in ledger.history(citizen)))
            for policy in POLICIES:
                replayed = contributions(replayed_facts, policy)
                stored, _ = store.view(
                    tracking_name(policy), policy.name, parse_resident_id(citizen).citizen_id
                )
                assert stored is not None
                assert sorted(stored, key=_key) == sorted(replayed, key=_key)
                # Random days, and days at and just before the edges of contributions.
                edges = sorted({d + timedelta(days=shift) for c in replayed
                                for d in (c.counts_from, c.counts_until) if d is not None
                                for shift in (-1, 0)})  # fmt: skip
                days = data.draw(st.lists(AS_OF, min_size=1, max_size=3), label="as_of")
                if edges:
                    days += data.draw(st.lists(st.sampled_from(edges), max_size=3), label="edge")
                for day in days:
                    projected = scores.score(citizen, policy.name, day)
                    replay = scores.score(citizen, policy.name, day, known_at=after)
                    assert projected.lag == 0
                    assert projected.position == head
                    assert (projected.score, projected.band) == (replay.score, replay.band), (
                        citizen, policy.name, day)  # fmt: skip
                    p_answer, p_explained = scores.explain(citizen, policy.name, day)
                    r_answer, r_explained = scores.explain(citizen, policy.name, day, after)
                    assert (p_answer.score, p_answer.band) == (r_answer.score, r_answer.band)
                    assert (p_answer.score, p_answer.band) == (projected.score, projected.band)
                    assert p_explained.to_json() == r_explained.to_json(), (
                        citizen, policy.name, day)  # fmt: skip


# Property 2: an incremental build equals a rebuild from zero


@PROPERTY_SETTINGS
@given(history=histories(), page_size=PAGE_SIZES, data=st.data())
def test_incremental_build_equals_rebuild_from_zero(
    fresh: FreshStores, history: History, page_size: int, data: st.DataObject
) -> None:
    incremental_build_equals_rebuild(fresh, history, page_size, data, workers=1)


@PARALLEL_SETTINGS
@given(history=histories(), page_size=PAGE_SIZES, data=st.data())
def test_incremental_build_equals_rebuild_by_two_workers(
    fresh: FreshStores, history: History, page_size: int, data: st.DataObject
) -> None:
    incremental_build_equals_rebuild(fresh, history, page_size, data, workers=2)


@PROPERTY_SETTINGS
@given(history=histories(), page_size=PAGE_SIZES, every=st.integers(2, 5), data=st.data())
def test_incremental_build_with_changes_folded_often_equals_rebuild_from_zero(
    fresh: FreshStores, history: History, page_size: int, every: int, data: st.DataObject
) -> None:
    """Views have their changes folded in every few events of their citizen (every 32
    in use, which these histories seldom reach): what is read stays what a rebuild
    gives."""
    with patch.object(folding, "FOLD_EVERY", every):
        incremental_build_equals_rebuild(fresh, history, page_size, data, workers=1)


def incremental_build_equals_rebuild(
    fresh: FreshStores, history: History, page_size: int, data: st.DataObject, workers: int
) -> None:
    with ExitStack() as stack:
        ledger = stack.enter_context(fresh.ledger())
        incremental = stack.enter_context(fresh.views(ledger.url))
        # Caught up before the first record, so every record comes in incrementally.
        head = ledger.max_position()
        assert catch_up(ledger, incremental, POLICIES) == {p.name: head for p in POLICIES}
        build_by_chunks(ledger, incremental, chunked(history, data), page_size)
        head = ledger.max_position()
        # The views live beside the log, so the rebuild keeps its own in a database
        # of their own, built from position zero over the same log in one go.
        rebuilt = stack.enter_context(fresh.views(stack.enter_context(fresh.url())))
        assert positions(rebuilt) == {p.name: 0 for p in POLICIES}
        assert catch_up(ledger, rebuilt, POLICIES, workers=workers) == {
            p.name: head for p in POLICIES
        }
        built = snapshot(incremental)
        assert all(set(views) == set(history.citizens) for views in built.values())
        assert built == snapshot(rebuilt)


# Property 3: stopped (or crashed) and resumed equals uninterrupted


class SimulatedCrash(Exception):
    """The process died in the middle of a write, before its transaction committed."""


class CrashingViewStore(ViewStore):
    """A view store that dies just before committing the `crash_on`-th transaction
    opened while writing views (by `save_row_chunks` or `replace_all_encoded`, which
    every other write goes through)."""

    def __init__(self, url: str, crash_on: int | None) -> None:
        self.crash_on = crash_on
        self.transactions = 0
        self.written: dict[str, int] = {}
        self._writing = False
        super().__init__(url)

    @contextmanager
    def _write(self) -> Iterator[None]:
        self._writing = True
        try:
            yield
        finally:
            self._writing = False

    def save_row_chunks(self, projections: Any, position: int, chunks: Any) -> None:
        with self._write():
            super().save_row_chunks(projections, position, chunks)
        for tracking, _ in projections:
            self.written[tracking] = position

    def replace_all_encoded(self, projections: Any, position: int, chunks: Any) -> None:
        with self._write():
            super().replace_all_encoded(projections, position, chunks)
        for tracking, _ in projections:
            self.written[tracking] = position

    @contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with super().transaction(*args, **kwargs) as tx:
            yield tx
            if self._writing:
                self.transactions += 1
                if self.transactions == self.crash_on:
                    raise SimulatedCrash(f"transaction {self.transactions}")


RESUMED = {
    "history": histories(),
    "first_policies": st.sampled_from([POLICIES, POLICIES[:1], POLICIES[1:]]),
    "first_pages": PAGE_SIZES,
    "later_pages": PAGE_SIZES,
    "crash_on": st.none() | st.integers(1, 8),
    "data": st.data(),
}


@PROPERTY_SETTINGS
@given(**RESUMED)
def test_stopped_and_resumed_run_equals_uninterrupted_run(
    fresh: FreshStores, history: History, first_policies: list[Policy], first_pages: int,
    later_pages: int, crash_on: int | None, data: st.DataObject,
) -> None:  # fmt: skip
    resumed_equals_uninterrupted(fresh, history, first_policies, first_pages, later_pages,
                                 crash_on, data, workers=1)  # fmt: skip


@PARALLEL_SETTINGS
@given(**RESUMED)
def test_stopped_and_resumed_run_with_two_workers_equals_uninterrupted_run(
    fresh: FreshStores, history: History, first_policies: list[Policy], first_pages: int,
    later_pages: int, crash_on: int | None, data: st.DataObject,
) -> None:  # fmt: skip
    resumed_equals_uninterrupted(fresh, history, first_policies, first_pages, later_pages,
                                 crash_on, data, workers=2)  # fmt: skip


def resumed_equals_uninterrupted(
    fresh: FreshStores, history: History, first_policies: list[Policy], first_pages: int,
    later_pages: int, crash_on: int | None, data: st.DataObject, workers: int,
) -> None:  # fmt: skip
    with ExitStack() as stack:
        ledger = stack.enter_context(fresh.ledger())
        for chunk in chunked(history, data):  # several batches, as a feed arrives
            append_all(ledger, chunk)
        head = ledger.max_position()
        whole = stack.enter_context(fresh.views(ledger.url))
        assert catch_up(ledger, whole, POLICIES, workers=workers) == {
            p.name: head for p in POLICIES
        }

        # The interrupted run keeps its views in a database of their own. It runs
        # with some of the policies, stopping at one position after another, unless
        # it crashes in the middle of a write first.
        views_url = stack.enter_context(fresh.url())
        stops = sorted(data.draw(st.lists(st.integers(0, head), min_size=1, max_size=3),
                                 label="stops"))  # fmt: skip
        # What the first run kept of its citizens goes on to the resumed one, or not: a
        # projector that retries after a failure keeps it, a new process starts bare.
        known = stack.enter_context(closing(KnownFacts(keep_shares=workers > 1)))
        with fresh.views(views_url, CrashingViewStore, crash_on=crash_on) as first:
            try:
                for stop in stops:
                    reached = catch_up(ledger, first, first_policies, page_size=first_pages,
                                       stop_at=stop, workers=workers, known=known)  # fmt: skip
                    expected = last_position_up_to(ledger, stop)
                    assert reached == {p.name: expected for p in first_policies}
            except SimulatedCrash:
                pass
            written = {p.name: first.written.get(tracking_name(p), 0) for p in POLICIES}
        with fresh.views(views_url) as after_stop:
            # Only committed writes count: a crashed one left no position behind.
            assert positions(after_stop) == written
            assert all(at <= stops[-1] for at in written.values())
        # Resumed with a new store, with every policy.
        if not data.draw(st.booleans(), label="keeps what it knew"):
            known = stack.enter_context(closing(KnownFacts(keep_shares=workers > 1)))
        with fresh.views(views_url) as resumed:
            reached = catch_up(ledger, resumed, POLICIES, page_size=later_pages,
                               workers=workers, known=known)  # fmt: skip
            assert reached == {p.name: head for p in POLICIES}
            assert positions(resumed) == positions(whole)
            assert snapshot(resumed) == snapshot(whole)


# The tracking position never moves backwards


def test_tracking_position_never_moves_backwards(ledger: Ledger) -> None:
    register_all(ledger)
    report = append(
        ledger,
        enrolled(WANG_FANG),
        fine("TP-1"),
        record("infraction.recorded", "J-1", kind="judgment_default", amount="5000.00"),
        record(
            "infraction.settled",
            "TP-2",
            target=target("traffic-police", "TP-1"),
            amount="200.00",
            occurred_on="2025-02-01",
        ),
    )
    assert report.rejected == []
    store = ViewStore(ledger.url)
    try:
        head = ledger.max_position()
        assert catch_up(ledger, store, POLICIES)["national-v1"] == head
        tracking = tracking_name(POLICIES[0])
        cid = parse_resident_id(WANG_FANG).citizen_id
        before = snapshot(store)
        assert before["national-v1"][WANG_FANG][1]  # there is something to lose
        emptied = {cid: (WANG_FANG, [])}
        for older in (head - 1, 0, head):  # back, far back, and the same page again
            with pytest.raises(PositionConflict):
                store.save(tracking, "national-v1", older, emptied)
            assert store.position(tracking) == head
            assert snapshot(store) == before  # the refused save wrote nothing
        # Forwards is allowed (so the refusals above are about going backwards).
        store.save(tracking, "national-v1", head + 1, emptied)
        assert store.position(tracking) == head + 1
        assert snapshot(store)["national-v1"][WANG_FANG][1] == []
    finally:
        store.close()
