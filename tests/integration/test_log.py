"""The log's port (ledger.log) on both stores: what it reads equals what was appended."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

import orjson
import pytest

from ledger.application import Ledger
from ledger.domain.facts import CitizenFacts, fold
from ledger.domain.identity import citizen_id, make_resident_id
from ledger.domain.records import Record
from ledger.domain.wire import parse_record
from ledger.log import LoggedFact, LoggedRecord, UnreadableLog, partition_of
from ledger.transparency.tree import leaf_data
from tests.behind import behind_the_back
from tests.builders import (
    LI_WEI,
    WANG_FANG,
    append,
    enrolled,
    fine,
    record,
    register_authorities,
    target,
)

OTHERS = [make_resident_id("440305", date(1970 + n, 1 + n % 12, 1 + n), 10 + n) for n in range(16)]
REGISTRY_EVENTS = 9  # the registry's opening and eight authorities


def _wires() -> list[list[dict[str, Any]]]:
    """Batches of every kind of record, for two citizens and sixteen more."""
    return [
        [enrolled(WANG_FANG), enrolled(LI_WEI), *(enrolled(c) for c in OTHERS)],
        [
            fine("TP-1", occurred_on="2025-06-01"),
            record(
                "infraction.recorded",
                "J-1",
                kind="judgment_default",
                amount="900.00",
                occurred_on="2024-05-01",
            ),
            record("infraction.recorded", "C-1", kind="criminal_conviction", citizen=LI_WEI),
            record("verification.recorded", "U-1", kind="degree", credential="BSc 42"),
            record("payment.recorded", "TAX-P", kind="tax_paid_on_time", amount="12.5"),
            *(fine(f"TP-{c}", citizen=c) for c in OTHERS[::3]),
        ],
        [
            record(
                "infraction.settled",
                "TP-2",
                target=target("traffic-police", "TP-1"),
                amount="200.00",
                occurred_on="2025-07-01",
            ),
            record(
                "record.disputed",
                "D-1",
                target=target("peoples-court", "J-1"),
                reason="paid in full",
                occurred_on="2025-08-01",
            ),
            record(
                "verification.revoked",
                "U-2",
                target=target("university", "U-1"),
                reason="forged",
                occurred_on="2025-08-02",
            ),
        ],
        [
            record(
                "dispute.resolved",
                "D-2",
                target=target("dispute-office", "D-1"),
                outcome="upheld",
                occurred_on="2025-09-01",
            ),
            record(
                "credit.repaired",
                "R-1",
                target=target("traffic-police", "TP-1"),
                occurred_on="2025-09-02",
            ),
        ],
    ]


@pytest.fixture
def logged(ledger: Ledger) -> dict[int, Record]:
    """The ledger, filled; what each position holds, as appended."""
    register_authorities(ledger)
    held: dict[int, Record] = {}
    for batch in _wires():
        report = append(ledger, *batch)
        assert report.rejected == [], report.rejected
        held.update(
            (position, parse_record(batch[line - 1])) for line, position in report.positions
        )
    return held


def _expected(ledger: Ledger, held: dict[int, Record]) -> list[LoggedRecord]:
    """The citizens' records as the library's own mapper reads the log."""
    found = []
    for note in ledger.recorder.select_notifications(start=1, limit=10_000):
        if note.id in held:
            event = ledger.mapper.to_domain_event(note)
            found.append(LoggedRecord(note.id, event.timestamp, event.originator_id,
                                      event.originator_version, held[note.id]))  # fmt: skip
    return found


def test_a_page_holds_every_record_after_a_position_decoded_as_appended(
    ledger: Ledger, logged: dict[int, Record]
) -> None:
    log = ledger.reader
    head = log.head()
    assert head == REGISTRY_EVENTS + len(logged)
    whole = log.page(0, 10_000)
    assert list(whole.records) == _expected(ledger, logged)
    assert whole.end == head
    # Pages of three after every position: positions after it, never past the limit.
    for after in range(head + 1):
        page = log.page(after, 3)
        assert page.end == min(after + 3, head)
        assert [r.position for r in page.records] == [
            p for p in range(after + 1, page.end + 1) if p in logged
        ]
    upto = REGISTRY_EVENTS + 5
    assert log.page(0, 10_000, upto=upto).end == upto


def test_a_reader_new_to_a_citizen_finds_their_identity_number_in_their_enrolment(
    open_ledger: Callable[[], Ledger], logged: dict[int, Record]
) -> None:
    writer = open_ledger()
    expected = [r for r in _expected(writer, logged) if r.record.type != "citizen.enrolled"]
    after = expected[0].position - 1
    # A reader that never saw the enrolments, one page and then page by page.
    assert list(open_ledger().reader.page(after, 10_000).records) == expected
    fresh, pages = open_ledger().reader, []
    while (page := fresh.page(after, 2)).end > after:
        pages += page.records
        after = page.end
    assert pages == expected


def test_a_citizen_whose_enrolment_is_gone_is_an_unreadable_log(
    open_ledger: Callable[[], Ledger], logged: dict[int, Record], store_url: str
) -> None:
    first_fine = min(p for p, r in logged.items() if r.type == "infraction.recorded")
    with behind_the_back(store_url) as run:
        (cid,) = run("SELECT originator_id FROM EVENTS WHERE POS = %s", [first_fine])[0]
        run("DELETE FROM EVENTS WHERE originator_id = %s AND originator_version = 1", [cid])
    with pytest.raises(UnreadableLog, match="has no enrolment in the log"):
        open_ledger().reader.page(first_fine - 1, 1)


def test_registry_events_are_no_records_but_move_a_page_on(
    ledger: Ledger, logged: dict[int, Record]
) -> None:
    page = ledger.reader.page(0, REGISTRY_EVENTS)
    assert page.records == ()
    assert page.end == REGISTRY_EVENTS
    assert ledger.reader.page(page.end, 1).records[0].record.type == "citizen.enrolled"


def test_records_grouped_by_citizen_up_to_a_position(
    ledger: Ledger, logged: dict[int, Record]
) -> None:
    log = ledger.reader
    expected = _expected(ledger, logged)
    for upto in (REGISTRY_EVENTS + 1, REGISTRY_EVENTS + 20, REGISTRY_EVENTS + 25, log.head()):
        grouped = list(log.by_citizen(upto))
        citizens = [cid for cid, _ in grouped]
        assert len(citizens) == len(set(citizens))
        want: dict[uuid.UUID, list[LoggedRecord]] = {}
        for item in expected:
            if item.position <= upto:
                want.setdefault(item.citizen_id, []).append(item)
        assert dict(grouped) == want


def _folded(records: list[LoggedRecord]) -> CitizenFacts:
    return fold(records[0].record.citizen.value, [logged.record for logged in records])


def test_facts_by_citizen_are_the_fold_of_their_records(
    ledger: Ledger, logged: dict[int, Record]
) -> None:
    log = ledger.reader
    for upto in (REGISTRY_EVENTS + 1, REGISTRY_EVENTS + 25, log.head()):
        grouped = dict(log.by_citizen(upto))
        facts = list(log.facts_by_citizen(upto))
        assert [cid for cid, _ in facts] == list(grouped)
        assert dict(facts) == {cid: _folded(records) for cid, records in grouped.items()}
        assert any(f.records for _, f in facts)
    head = log.head()
    for part in range(3):
        share = dict(log.facts_by_citizen(head, (part, 3)))
        assert share == {cid: _folded(records) for cid, records in log.by_citizen(head, (part, 3))}
    chosen = [citizen_id(WANG_FANG), citizen_id(LI_WEI), uuid.uuid4()]
    upto = REGISTRY_EVENTS + 25
    assert log.facts_of(chosen, upto) == {
        cid: _folded(records) for cid, records in log.citizens(chosen, upto).items()
    }
    assert log.facts_of([]) == {}


def _as_facts(records: Iterable[LoggedRecord]) -> dict[uuid.UUID, list[LoggedFact]]:
    grouped: dict[uuid.UUID, list[LoggedFact]] = {}
    for logged in records:
        r = logged.record
        grouped.setdefault(logged.citizen_id, []).append(
            LoggedFact(
                logged.position,
                logged.version,
                r.type,
                r.key,
                r.kind,
                r.occurred_on,
                r.target,
                r.outcome,
            )
        )
    return grouped


def test_a_fact_page_holds_what_the_facts_take_of_a_page(
    ledger: Ledger, logged: dict[int, Record]
) -> None:
    log = ledger.reader
    for after, limit, share in [(0, 10_000, None), (REGISTRY_EVENTS, 7, None),
                                (REGISTRY_EVENTS + 12, 9, None), (0, 10_000, (1, 3))]:  # fmt: skip
        page = log.page(after, limit, partition=share)
        facts = log.fact_page(after, limit, partition=share)
        assert facts.citizens == _as_facts(page.records)
        assert facts.end == page.end
        # No uses of a file in this log: each citizen's versions are their records'.
        assert facts.versions == {
            cid: (found[0].version, found[-1].version) for cid, found in facts.citizens.items()
        }
        assert facts.enrolled == {
            r.citizen_id: r.record.citizen.value
            for r in page.records
            if r.record.type == "citizen.enrolled"
        }
    assert log.fact_page(0, 10_000).enrolled  # the first pages hold the enrolments
    assert log.fact_page(log.head(), 10).citizens == {}


def test_a_record_the_facts_cannot_be_read_from_names_its_position(
    open_ledger: Callable[[], Ledger], logged: dict[int, Record], store_url: str
) -> None:
    settled = min(p for p, r in logged.items() if r.type == "infraction.settled")
    with behind_the_back(store_url) as run:
        (state,) = run("SELECT state FROM EVENTS WHERE POS = %s", [settled])[0]
        fields = orjson.loads(bytes(state))
        fields["target"]["_data_"] = ["traffic-police"]
        run("UPDATE EVENTS SET state = %s WHERE POS = %s", [orjson.dumps(fields), settled])
    reader = open_ledger().reader
    unreadable = rf"position {settled}: the stored infraction\.settled"
    with pytest.raises(UnreadableLog, match=unreadable):
        list(reader.facts_by_citizen(reader.head()))
    with pytest.raises(UnreadableLog, match=unreadable):
        reader.fact_page(settled - 1, 1)


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_partitions_cover_every_citizen_exactly_once(
    ledger: Ledger, logged: dict[int, Record], parts: int
) -> None:
    log = ledger.reader
    head = log.head()
    whole = dict(log.by_citizen(head))
    seen: list[uuid.UUID] = []
    for part in range(parts):
        share = dict(log.by_citizen(head, (part, parts)))
        assert all(partition_of(cid, parts) == part for cid in share)
        assert all(records == whole[cid] for cid, records in share.items())
        seen += share
    assert sorted(seen) == sorted(whole)
    if parts > 1:  # eighteen citizens do not all fall in one share
        assert all(len(dict(log.by_citizen(head, (p, parts)))) < len(whole) for p in range(parts))


def test_one_citizens_records_are_their_history(ledger: Ledger, logged: dict[int, Record]) -> None:
    expected = _expected(ledger, logged)
    for resident in (WANG_FANG, LI_WEI, OTHERS[0]):
        cid = citizen_id(resident)
        mine = ledger.reader.citizen(cid)
        assert mine == [e for e in expected if e.citizen_id == cid]
        assert [(e.position, e.recorded_at, e.version, e.record) for e in mine] == [
            (h.position, h.recorded_at, h.version, h.record) for h in ledger.history(resident)
        ]
    assert ledger.reader.citizen(uuid.uuid4()) == []


def test_the_leaf_document_of_a_position_is_what_the_tree_hashed(
    ledger: Ledger, logged: dict[int, Record]
) -> None:
    notes = ledger.recorder.select_notifications(start=1, limit=10_000)
    for note in notes[:: max(1, len(notes) // 7)]:
        assert ledger.reader.leaf(note.id) == leaf_data(
            note.id, note.originator_id, note.originator_version, note.topic, note.state
        )
    assert [leaf.position for leaf in ledger.reader.leaves(5)] == [n.id for n in notes[5:]]
    with pytest.raises(UnreadableLog, match=f"no event at position {len(notes) + 1}"):
        ledger.reader.leaf(len(notes) + 1)
    document = orjson.loads(ledger.reader.leaf(REGISTRY_EVENTS + 1))
    assert document["payload"]["resident_id"] == WANG_FANG


def test_a_wait_wakes_on_a_new_record(
    ledger: Ledger, logged: dict[int, Record], open_ledger: Callable[[], Ledger]
) -> None:
    other = open_ledger()
    head = ledger.reader.head()
    # A poll far longer than the test: on PostgreSQL only the NOTIFY can wake it early.
    with ledger.reader.watch(poll=60) as watch:
        started = time.monotonic()
        assert watch.wait(head, timeout=0.3) == head  # nothing new: it waits it out
        assert time.monotonic() - started >= 0.3
        writer = threading.Timer(0.5, lambda: append(other, fine("TP-LATE", citizen=LI_WEI)))
        writer.start()
        started = time.monotonic()
        try:
            assert watch.wait(head, timeout=30) == head + 1
        finally:
            writer.join()
        assert time.monotonic() - started < 10
        # Already past: it returns at once.
        assert watch.wait(head, timeout=30) == head + 1


def test_a_reader_slower_than_the_idle_transaction_limit_still_reads_every_record(
    ledger: Ledger, logged: dict[int, Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild worker waits on its pipe between batches for as long as its parent
    takes to write; the stream's transaction must outlive the limit on idle
    transactions (one second here, five by default)."""
    monkeypatch.setenv("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "1")
    monkeypatch.setattr("ledger.storage.postgres.reads.STREAM_ROWS", 5)
    slow = Ledger(ledger.url)
    try:
        head = slow.reader.head()
        grouped = slow.reader.by_citizen(head)
        first = next(grouped)
        time.sleep(2)
        assert [first, *grouped] == list(ledger.reader.by_citizen(head))
    finally:
        slow.close()
