"""The one fold of a citizen's records into facts, shared by the aggregate and scoring.

Given records, when folded, then what each record's facts say; and the Citizen
aggregate, given the same records, holds exactly the facts scoring folds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from ledger.domain import Citizen
from ledger.domain import records as r
from ledger.domain.facts import CitizenFacts, DisputeFacts, RecordFacts, fold
from ledger.domain.records import Record, RecordKey
from ledger.domain.wire import parse_record
from projections import scoring
from projections.policy import load
from tests.builders import WANG_FANG, enrolled, fine, record, target

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
NATIONAL = load("national-v1")

TP1 = RecordKey("traffic-police", "TP-1")
U1 = RecordKey("university", "U-1")
U2 = RecordKey("university", "U-2")
D1 = RecordKey("dispute-office", "D-1")


def degree() -> dict[str, Any]:
    return record(r.VERIFICATION, "U-1", kind="degree", credential="BSc", occurred_on="2015-07-01")


def revoke(reference: str = "U-2", occurred_on: str = "2025-01-10") -> dict[str, Any]:
    return record(r.REVOKED, reference, target=target("university", "U-1"), reason="forged",
                  occurred_on=occurred_on)  # fmt: skip


def dispute(
    of: RecordKey, reference: str = "D-1", occurred_on: str = "2025-02-01"
) -> dict[str, Any]:
    return record(r.DISPUTED, reference, target=target(of.authority, of.reference),
                  reason="not mine", occurred_on=occurred_on)  # fmt: skip


def resolve(outcome: str, reference: str = "D-2", of: str = "D-1",
            occurred_on: str = "2025-04-15") -> dict[str, Any]:  # fmt: skip
    return record(r.RESOLVED, reference, target=target("dispute-office", of), outcome=outcome,
                  occurred_on=occurred_on)  # fmt: skip


def records(*wires: dict[str, Any]) -> list[Record]:
    return [parse_record(w) for w in (enrolled(), *wires)]


def given(*wires: dict[str, Any]) -> CitizenFacts:
    return fold(WANG_FANG, records(*wires))


# The fold


def test_dispute_resolved_removed_then_its_target_is_removed_with_the_dispute_named() -> None:
    facts = given(fine("TP-1"), dispute(TP1), resolve("removed"))
    fine_facts = facts.records[TP1]
    assert fine_facts.removed
    assert not fine_facts.vacated
    assert fine_facts.removal == DisputeFacts(D1, date(2025, 2, 1), date(2025, 4, 15), "removed")
    assert fine_facts.open_dispute is None


def test_dispute_resolved_upheld_then_its_target_is_not_removed() -> None:
    facts = given(fine("TP-1"), dispute(TP1), resolve("upheld"))
    assert not facts.records[TP1].removed
    assert facts.records[TP1].removal is None


def test_dispute_when_open_then_open_from_its_date_until_resolved() -> None:
    facts = given(fine("TP-1"), dispute(TP1), resolve("upheld"))
    found = facts.dispute(facts.records[D1])
    assert found is not None
    assert [found.open_on(date(2025, m, d)) for m, d in ((1, 31), (2, 1), (4, 14), (4, 15))] == [
        False, True, True, False,
    ]  # fmt: skip


def test_revocation_when_standing_then_it_is_the_verifications_revocation() -> None:
    facts = given(degree(), revoke())
    revocation = facts.revocation(facts.records[U1])
    assert revocation is not None
    assert revocation.key == U2


@pytest.mark.parametrize(
    ("wires", "why"),
    [
        ([degree()], "never revoked"),
        ([degree(), revoke(), dispute(U2), resolve("removed")], "the revocation was removed"),
    ],
)
def test_revocation_when_removed_or_its_verification_removed_then_none(
    wires: list[dict[str, Any]], why: str
) -> None:
    facts = given(*wires)
    assert facts.revocation(facts.records[U1]) is None, why


def test_vacate_then_removed_and_settlement_date_kept() -> None:
    settle = record(r.SETTLED, "TP-2", authority="traffic-police", target=target(
        "traffic-police", "TP-1"), amount="200.00", occurred_on="2025-02-01")  # fmt: skip
    vacate = record(r.VACATED, "V-1", target=target("traffic-police", "TP-1"), reason="x",
                    occurred_on="2025-03-01")  # fmt: skip
    facts = given(fine("TP-1"), settle, vacate)
    assert facts.records[TP1].removed
    assert facts.records[TP1].vacated
    assert facts.records[TP1].settled_on == date(2025, 2, 1)


# One fold for the aggregate and for scoring

HISTORIES = {
    "removed infraction": [fine("TP-1"), dispute(TP1), resolve("removed")],
    "removed revocation, revoked again": [
        degree(), revoke(), dispute(U2), resolve("removed"), revoke("U-3", "2025-06-01"),
    ],
    "upheld then disputed again": [
        fine("TP-1"), dispute(TP1), resolve("upheld"),
        dispute(TP1, "D-3", "2025-05-01"), resolve("removed", "D-4", "D-3", "2025-06-01"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("wires", HISTORIES.values(), ids=HISTORIES.keys())
def test_aggregate_when_records_appended_then_its_facts_are_the_fold_scoring_uses(
    wires: list[dict[str, Any]],
) -> None:
    first, *rest = records(*wires)
    citizen = Citizen.enroll(first, AT)
    for rec in rest:
        citizen.append(rec, AT)
    assert citizen.facts == scoring.fold(WANG_FANG, [first, *rest])
    assert scoring.RecordFacts is RecordFacts
    assert scoring.CitizenFacts is CitizenFacts


def test_removed_when_aggregate_accepts_a_second_revocation_then_only_it_costs_points() -> None:
    wires = HISTORIES["removed revocation, revoked again"]
    first, *rest = records(*wires)
    citizen = Citizen.enroll(first, AT)
    for rec in rest:
        citizen.append(rec, AT)
    items = scoring.contributions(citizen.facts, NATIONAL)
    assert sorted(
        (c.reference, c.rule, c.points, c.counts_from, c.counts_until) for c in items
    ) == [
        ("U-1", "degree", 10, date(2015, 7, 1), date(2025, 6, 1)),
        ("U-3", "degree.revoked", -40, date(2025, 6, 1), date(2032, 6, 1)),
    ]


# What a new record can change: the records joined to it by targets


def test_a_record_acting_on_none_is_linked_to_itself_alone() -> None:
    facts = given(fine("TP-1"), degree(), revoke())
    assert facts.linked([TP1]) == {TP1}


def test_a_resolution_is_linked_to_its_dispute_and_the_record_disputed() -> None:
    facts = given(fine("TP-1"), fine("TP-2"), dispute(TP1), resolve("removed"))
    d2 = RecordKey("dispute-office", "D-2")
    assert facts.linked([d2]) == {d2, D1, TP1}


def test_a_second_revocation_is_linked_to_the_first_through_the_verification() -> None:
    facts = given(degree(), revoke(), dispute(U2), resolve("removed"), revoke("U-3"))
    u3 = RecordKey("university", "U-3")
    d2 = RecordKey("dispute-office", "D-2")
    assert facts.linked([u3]) == {u3, U1, U2, D1, d2}


def test_only_the_linked_records_contributions_change() -> None:
    """Folding one more record changes no contribution outside what it is linked to."""
    wires = [fine("TP-1"), fine("TP-2"), degree(), dispute(TP1), resolve("removed"), revoke()]
    for n in range(1, len(wires) + 1):
        before = given(*wires[: n - 1])
        after = given(*wires[:n])
        new = records(*wires)[n].key
        outside = set(after.records) - after.linked([new])
        assert scoring.contributions(before, NATIONAL, outside) == scoring.contributions(
            after, NATIONAL, outside
        ), wires[n - 1]["reference"]
