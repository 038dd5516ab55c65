"""The lean write path against single-record appends and against the aggregates' own
events saved by eventsourcing: with a fixed clock, the same feed gives byte for byte
the same log, the same record index and the same Merkle tree."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from ledger.application import FixedClock, Ledger
from ledger.domain import REGISTRY_ID, Citizen
from ledger.domain import records as r
from ledger.domain.identity import citizen_id
from ledger.domain.wire import parse_record
from ledger.log import UnreadableLog
from ledger.transparency.audit import Log, verify_log
from scripts.demo import DEMO_AUTHORITIES, DEMO_UNTIL, Population
from tests.behind import behind_the_back

AT = datetime(2026, 7, 1, 2, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def three_urls(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[list[str]]:
    """Three empty ledgers on the same store."""
    if request.param == "sqlite":
        yield [f"sqlite:///{tmp_path}/{name}.db" for name in "abc"]
        return
    base: str = request.getfixturevalue("postgres_url")
    schemas = ["t_" + uuid.uuid4().hex[:12] for _ in range(3)]
    with psycopg.connect(base, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield [f"{base}?schema={schema}" for schema in schemas]
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def opened(url: str) -> Ledger:
    app = Ledger(url, clock=FixedClock(AT))
    for spec in DEMO_AUTHORITIES:
        app.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
    return app


def feed() -> list[bytes]:
    """A generated feed with every record type, a repeated line, a changed repeat, a
    line of no JSON and a record refused by the rules."""
    records = Population(60, 5, DEMO_UNTIL).records()
    citizen = records[0]["citizen"]
    court = {"citizen": citizen, "authority": "peoples-court", "occurred_on": "2026-05-01"}
    records += [
        {**court, "type": r.INFRACTION, "reference": "PC-9", "kind": "criminal_conviction"},
        {**court, "type": r.VACATED, "reference": "PC-10", "reason": "quashed 撤销",
         "target": {"authority": "peoples-court", "reference": "PC-9"}},
    ]  # fmt: skip
    assert {x["type"] for x in records} == set(r.RECORD_TYPES)
    lines = [json.dumps(x).encode() for x in records]
    changed = {**records[40], "occurred_on": "2020-01-01"}
    late = {**records[41], "reference": "LATE-1", "occurred_on": "2027-01-01"}
    return [*lines[:50], lines[10], json.dumps(changed).encode(), b"{no json",
            json.dumps(late).encode(), *lines[50:]]  # fmt: skip


def log_of(app: Ledger) -> list[tuple[int, str, int, str, bytes]]:
    return [
        (n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
        for n in app.recorder.select_notifications(start=1, limit=100_000)
    ]


def saved_as_events(app: Ledger, records: list[dict[str, Any]]) -> None:
    """Each record through the aggregate's own command and event, saved by eventsourcing."""
    for data in records:
        record = parse_record(data)
        if record.type == r.ENROLLED:
            citizen = Citizen.enroll(record, AT)
        else:
            citizen = app.repository.get(citizen_id(record.citizen.value))
            citizen.append(record, AT)
        app.save(citizen)


def test_lean_batches_single_appends_and_events_give_the_same_log(three_urls: list[str]) -> None:
    lines = feed()
    lean, single, events = (opened(url) for url in three_urls)
    try:
        batched = lean.append_lines(list(enumerate(lines, start=1)), batch_size=97)
        one_by_one = [single.append_lines([(n, line)]) for n, line in enumerate(lines, start=1)]
        assert [x.line for x in batched.rejected] == [52, 53, 54]
        assert [d.line for d in batched.duplicates] == [51]
        assert batched.appended == sum(x.appended for x in one_by_one) == len(lines) - 4
        assert batched.positions == [p for x in one_by_one for p in x.positions]
        kept = {line for line, _ in batched.positions}
        saved_as_events(events, [json.loads(lines[n - 1]) for n in sorted(kept)])

        log = log_of(lean)
        assert len(log) == len(kept) + 1 + len(DEMO_AUTHORITIES)
        assert log == log_of(single) == log_of(events)
        assert lean.store.tree_levels() == single.store.tree_levels()
        assert lean.store.tree_levels() == events.store.tree_levels()
        roots = [Log(app).root(size) for app in (lean, single, events) for size in (7, len(log))]
        assert roots[0:2] == roots[2:4] == roots[4:6]
        keys = [parse_record(lines[n - 1]).key for n in sorted(kept)]
        assert lean.store.lookup(keys) == single.store.lookup(keys)
        assert len(lean.store.lookup(keys)) == len(keys)
        assert verify_log(lean) is None
    finally:
        for app in (lean, single, events):
            app.close()


def state_of(citizen: Citizen) -> tuple[Any, ...]:
    return (citizen.id, citizen.version, citizen.created_on, citizen.modified_on,
            citizen.resident_id, citizen.facts)  # fmt: skip


def test_citizens_are_loaded_as_their_events_replayed_would_make_them(
    three_urls: list[str],
) -> None:
    """A writer loads citizens from their stored events without event objects, whole or
    after the version it has: the state must be the one eventsourcing's replay gives,
    every record type, disputes and their resolutions included."""
    app = Ledger(three_urls[0])  # the system's clock: each batch recorded at its time
    for spec in DEMO_AUTHORITIES:
        app.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
    try:
        app.append_lines(list(enumerate(feed(), start=1)), batch_size=7)
        ids = {citizen_id(json.loads(line)["citizen"]) for line in feed()[:50]}
        replayed = {cid: app.repository.get(cid) for cid in ids}
        assert max(c.version for c in replayed.values()) > 5
        assert any(c.modified_on != c.created_on for c in replayed.values())
        fresh = Ledger(three_urls[0])
        try:
            loaded, registry = fresh._load(ids)
            assert {cid: state_of(c) for cid, c in loaded.items()} == {
                cid: state_of(c) for cid, c in replayed.items()
            }
            # The registry comes in the same query, as stored.
            assert registry is not None
            assert registry.authorities == app.repository.get(REGISTRY_ID).authorities
            assert sorted(registry.authorities) == sorted(s.authority_id for s in DEMO_AUTHORITIES)
            # Brought up to date from a version it had: the same state again.
            behind = {cid: app.repository.get(cid, version=2) for cid in ids}
            fresh._citizens.update(behind)
            caught_up, _ = fresh._load(ids)
            assert {cid: state_of(c) for cid, c in caught_up.items()} == {
                cid: state_of(c) for cid, c in replayed.items()
            }
        finally:
            fresh.close()
    finally:
        app.close()


def test_a_stored_event_a_writer_cannot_read_names_its_citizen_and_version(
    three_urls: list[str],
) -> None:
    """A citizen's later event whose facts cannot be read, or whose topic is no record
    type, stops the load with an UnreadableLog naming the citizen and the version; a
    history that does not open with the enrolment too."""
    url = three_urls[0]
    app = opened(url)
    try:
        app.append_lines(list(enumerate(feed(), start=1)))
        ids = {citizen_id(json.loads(line)["citizen"]) for line in feed()[:50]}
        cid = max(ids, key=lambda i: app.repository.get(i).version)
        assert app.repository.get(cid).version >= 3
    finally:
        app.close()
    # Each damage is met before the ones already made: later versions first.
    damages = [
        ("UPDATE EVENTS SET topic = %s WHERE originator_id = %s AND originator_version = 3",
         ["ledger.domain:Citizen.Unheard"], "version 3: ledger.domain:Citizen.Unheard is not a "
         "type of record this ledger knows"),
        ("UPDATE EVENTS SET state = %s WHERE originator_id = %s AND originator_version = 2",
         [b'{"timestamp": {"_type_": "datetime_iso", "_data_": "2026-07-01T02:30:00+00:00"}}'],
         "version 2: the stored .* cannot be read \\(KeyError"),
        ("DELETE FROM EVENTS WHERE originator_id = %s AND originator_version = 1", [],
         "version 2: a .* before the enrolment"),
    ]  # fmt: skip
    for sql, params, expected in damages:
        key = cid.hex if url.startswith("sqlite") else cid
        with behind_the_back(url) as run:
            run(sql, [*params, key])
        fresh = Ledger(url)
        try:
            with pytest.raises(UnreadableLog, match=f"citizen {cid} {expected}"):
                fresh._load({cid})
        finally:
            fresh.close()
