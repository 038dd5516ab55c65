"""New records written without event objects: the citizen's state as its events would
leave it, the mapper's own bytes, and the leaf the stored bytes give."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.domain import RECORD_TYPE_OF_EVENT, Citizen
from ledger.domain import records as r
from ledger.domain.records import Record
from ledger.domain.wire import parse_record
from ledger.storage.encoding import record_events
from ledger.transparency.tree import leaf_data, leaf_document
from tests.builders import WANG_FANG, enrolled, record, target

AT = datetime(2026, 3, 1, 4, 0, 0, 123456, tzinfo=UTC)

HISTORY: list[dict[str, Any]] = [
    enrolled(WANG_FANG, "CR-1", "2008-03-07"),
    record(r.INFRACTION, "TP-1", kind="traffic_fine", amount="0200.50"),
    record(r.INFRACTION, "CV-1", kind="criminal_conviction"),
    record(r.SETTLED, "TP-2", target=target("traffic-police", "TP-1"), amount="200.5"),
    record(r.PAYMENT, "TX-1", kind="tax_paid_on_time", amount="10"),
    record(r.VERIFICATION, "U-1", kind="degree", credential='学士 "BSc"\tcum laude'),
    record(r.REVOKED, "U-2", target=target("university", "U-1"), reason="línea\nnueva"),
    record(r.DISPUTED, "D-1", target=target("traffic-police", "TP-1"), reason="¿?"),
    record(r.RESOLVED, "D-2", target=target("dispute-office", "D-1"), outcome="upheld"),
    record(r.INFRACTION, "PC-1", kind="court_judgment", amount="1.00"),
    record(r.VACATED, "PC-2", target=target("peoples-court", "PC-1"), reason="quashed"),
    record(r.INFRACTION, "TA-1", kind="tax_arrears", amount="9"),
    record(r.SETTLED, "TA-2", target=target("tax-bureau", "TA-1"), amount="9"),
    record(r.REPAIRED, "R-1", target=target("tax-bureau", "TA-1"), occurred_on="2025-02-01"),
]


def both_ways(records: list[Record]) -> tuple[Citizen, Citizen, list[Any]]:
    """The citizen built by the commands that trigger events, and by the ones that do
    not; the events the first triggered."""
    by_events = Citizen.enroll(records[0], AT)
    lean = Citizen.enrolled(records[0], AT)
    for n, each in enumerate(records[1:], start=1):
        by_events.append(each, AT + timedelta(seconds=n))
        lean.add(each, AT + timedelta(seconds=n))
    return by_events, lean, by_events.collect_events()


def test_the_lean_commands_leave_the_state_the_events_leave() -> None:
    records = [parse_record(x) for x in HISTORY]
    by_events, lean, events = both_ways(records)
    assert len(events) == len(records)
    assert lean.id == by_events.id
    assert lean.version == by_events.version == len(records)
    assert lean.created_on == by_events.created_on
    assert lean.modified_on == by_events.modified_on
    assert lean.facts == by_events.facts
    assert lean.pending_events == []
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert isinstance(replayed, Citizen)
    assert replayed.facts == lean.facts


def test_record_events_are_the_mappers_bytes_and_their_leaves_the_stored_ones() -> None:
    records = [parse_record(x) for x in HISTORY]
    by_events, _, events = both_ways(records)
    app = Ledger("sqlite:///:memory:")
    try:
        for n, (each, event) in enumerate(zip(records, events, strict=True), start=1):
            stored, leaves = record_events([(by_events.id, n, each)], event.timestamp)
            assert stored == [app.mapper.to_stored_event(event)]
            for position in (1, 9, 2**40):
                assert leaf_document(position, *leaves[0]) == leaf_data(
                    position, by_events.id, n, stored[0].topic, stored[0].state
                )
    finally:
        app.close()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(range(1, len(HISTORY))),
    st.text(min_size=1, max_size=30).filter(
        lambda t: not any(ord(c) < 32 or ord(c) == 127 for c in t)
    ),
    st.sampled_from(["0", "7", "0001.10", "123456789012345.99", "5.5"]),
    st.integers(min_value=1, max_value=10**6),
)
def test_any_record_is_written_as_the_mapper_writes_its_event(
    index: int, text: str, amount: str, version: int
) -> None:
    data = dict(HISTORY[index])
    for name in ("reason", "credential"):
        if name in data:
            data[name] = text
    if "amount" in data:
        data["amount"] = amount
    each = parse_record(data)
    citizen = uuid.uuid4()
    (event_class,) = [c for c, t in RECORD_TYPE_OF_EVENT.items() if t == each.type]
    fields = {n: getattr(each, n) for n in event_class.__dataclass_fields__ if hasattr(each, n)}
    event = event_class(
        **{**fields, "originator_id": citizen, "originator_version": version, "timestamp": AT}
    )
    app = Ledger("sqlite:///:memory:")
    try:
        stored, leaves = record_events([(citizen, version, each)], AT)
        assert stored == [app.mapper.to_stored_event(event)]
        assert leaf_document(3, *leaves[0]) == leaf_data(
            3, citizen, version, stored[0].topic, stored[0].state
        )
    finally:
        app.close()
