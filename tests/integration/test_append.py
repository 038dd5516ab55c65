"""Appending on both stores: valid records, every kind of bad input, idempotency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger.application import Ledger
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


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    """Authorities registered; Wang Fang and Li Wei enrolled; a few records each."""
    register_authorities(ledger)
    report = append(
        ledger,
        enrolled(WANG_FANG),
        enrolled(LI_WEI),
        fine("TP-1"),
        fine("TP-LI", citizen=LI_WEI),
        record("infraction.recorded", "CV-1", kind="criminal_conviction"),
        record("verification.recorded", "U-1", kind="degree", credential="BSc Physics"),
        record("payment.recorded", "B-1", kind="loan_repaid_on_time", amount="900.00"),
        record("infraction.recorded", "J-1", kind="judgment_default", amount="5000"),
        record("record.vacated", "V-1", target=target("peoples-court", "J-1"),
               reason="set aside on appeal", occurred_on="2025-02-01"),
        record("infraction.recorded", "TX-1", kind="tax_arrears", amount="300.00"),
        record("infraction.settled", "TX-2", target=target("tax-bureau", "TX-1"),
               amount="300.00", occurred_on="2025-03-01"),
        record("record.disputed", "D-1", target=target("traffic-police", "TP-1"),
               reason="not my car", occurred_on="2025-01-20"),
    )  # fmt: skip
    assert report.rejected == [], report.rejected
    assert report.appended == 12
    return ledger


def test_appended_records_show_in_history_in_order(seeded: Ledger) -> None:
    history = seeded.history(WANG_FANG)
    assert [e.record.reference for e in history] == [
        f"E-{WANG_FANG}", "TP-1", "CV-1", "U-1", "B-1", "J-1", "V-1", "TX-1", "TX-2", "D-1",
    ]  # fmt: skip
    positions = [e.position for e in history]
    assert positions == sorted(positions)
    assert history[1].record.to_wire() == fine("TP-1")


def test_lower_case_check_character_is_stored_upper_case(ledger: Ledger) -> None:
    register_authorities(ledger)
    citizen = "11010519900307101x"
    report = append(ledger, enrolled(citizen))
    assert report.appended == 1, report.rejected
    assert ledger.history(citizen.upper())[0].record.citizen.value == citizen.upper()


BAD_LINES: list[tuple[str, Any, str, str]] = [
    ("malformed JSON", '{"type": "citizen.enrolled",', "record", "not valid JSON"),
    ("not an object", "[1, 2]", "record", "must be a JSON object"),
    ("missing type", {"citizen": WANG_FANG}, "type", "is required"),
    ("unknown type", fine("X", amount="1") | {"type": "infraction.forgiven"}, "type",
     "must be one of"),
    ("type not a string", fine("X") | {"type": 5}, "type", "must be one of"),
    ("unknown field", fine("X") | {"note": "hi"}, "note",
     "is not a field of infraction.recorded records"),
    ("missing citizen", {k: v for k, v in fine("X").items() if k != "citizen"}, "citizen",
     "is required"),
    ("missing reference", {k: v for k, v in fine("X").items() if k != "reference"},
     "reference", "is required"),
    ("citizen not a string", fine("X") | {"citizen": 110105199003071247}, "citizen",
     "must be a string"),
    ("citizen too short", fine("X") | {"citizen": "11010519900307124"}, "citizen",
     "must be 18 characters, not 17"),
    ("citizen with letters", fine("X") | {"citizen": "1101051990030712A7"}, "citizen",
     "must be 17 digits followed by a digit or X"),
    ("bad check character", fine("X") | {"citizen": "110105199003071246"}, "citizen",
     "check character should be 7"),
    ("impossible birth date", fine("X") | {"citizen": "110105199002301236"}, "citizen",
     "birth date 19900230 is not a real date"),
    ("unknown province", fine("X") | {"citizen": "990105199003071240"}, "citizen",
     "region code 990105 does not start with a province code"),
    ("bad date format", fine("X", occurred_on="10/01/2025"), "occurred_on",
     "must be an ISO date"),
    ("impossible date", fine("X", occurred_on="2025-02-30"), "occurred_on",
     "2025-02-30 is not a real date"),
    ("date not a string", fine("X") | {"occurred_on": 20250110}, "occurred_on",
     "must be an ISO date"),
    ("future date", fine("X", occurred_on="2026-03-02"), "occurred_on",
     "is after today (2026-03-01)"),
    ("before birth", fine("X", occurred_on="1989-12-31"), "occurred_on",
     "is before the citizen's birth date 1990-03-07"),
    ("reference too long", fine("R" * 65), "reference", "must be 1 to 64 characters"),
    ("reference empty", fine(""), "reference", "must be 1 to 64 characters"),
    ("reference with space", fine("TP 9"), "reference", "must be 1 to 64 characters"),
    ("amount negative", fine("X", amount="-5.00"), "amount", "must not be negative"),
    ("amount over-precise", fine("X", amount="5.001"), "amount",
     "must have at most 2 decimal places"),
    ("amount a number", fine("X") | {"amount": 5}, "amount", "must be a decimal string"),
    ("amount not a number", fine("X", amount="five"), "amount", "is not a decimal number"),
    ("amount missing", {k: v for k, v in fine("X").items() if k != "amount"}, "amount",
     "is required for traffic_fine"),
    ("amount on a conviction", record("infraction.recorded", "X", kind="criminal_conviction",
                                      amount="1.00"), "amount",
     "must be absent for criminal_conviction"),
    ("unknown kind", fine("X") | {"kind": "jaywalking"}, "kind", "must be one of"),
    ("credential too long", record("verification.recorded", "X", kind="degree",
                                   credential="c" * 201), "credential",
     "must be 1 to 200 characters"),
    ("reason too long", record("record.disputed", "X", target=target("traffic-police", "TP-1"),
                               reason="r" * 501), "reason", "must be 1 to 500 characters"),
    ("target not an object", record("infraction.settled", "X", authority="traffic-police",
                                    target="TP-1", amount="1.00"), "target",
     "must be an object"),
    ("target missing reference", record("infraction.settled", "X", authority="traffic-police",
                                        target={"authority": "traffic-police"},
                                        amount="1.00"), "target.reference", "is required"),
    ("target unknown field", record("infraction.settled", "X", authority="traffic-police",
                                    target=target("traffic-police", "TP-1") | {"x": 1},
                                    amount="1.00"), "target.x", "is not a field"),
    ("unknown outcome", record("dispute.resolved", "X", target=target("dispute-office", "D-1"),
                               outcome="maybe"), "outcome", "must be one of upheld, removed"),
    ("unregistered authority", fine("X") | {"authority": "secret-police"}, "authority",
     "secret-police is not a registered authority"),
    ("unentitled type", record("payment.recorded", "X", authority="traffic-police",
                               kind="tax_paid_on_time", amount="1.00"), "authority",
     "traffic-police may not issue payment.recorded:tax_paid_on_time"),
    ("unentitled kind", record("infraction.recorded", "X", authority="traffic-police",
                               kind="tax_arrears", amount="1.00"), "authority",
     "may not issue infraction.recorded:tax_arrears"),
    ("not enrolled", fine("X", citizen="110105199003071263"), "citizen", "is not enrolled"),
    ("enrolled twice", enrolled(WANG_FANG, reference="E-again"), "citizen",
     "is already enrolled"),
    ("target does not exist", record("infraction.settled", "X", authority="traffic-police",
                                     target=target("traffic-police", "TP-404"),
                                     amount="1.00"), "target",
     "traffic-police/TP-404 is not a record of this citizen"),
    ("target of another citizen", record("infraction.settled", "X", authority="traffic-police",
                                         target=target("traffic-police", "TP-LI"),
                                         amount="1.00"), "target",
     "is a record of another citizen"),
    ("settle another authority's", record("infraction.settled", "X", authority="tax-bureau",
                                          target=target("traffic-police", "TP-1"),
                                          amount="1.00"), "target",
     "must be an infraction recorded by the same authority"),
    ("settle a conviction", record("infraction.settled", "X", authority="peoples-court",
                                   target=target("peoples-court", "CV-1"), amount="1.00"),
     "target", "a criminal_conviction cannot be settled"),
    ("settle a vacated", record("infraction.settled", "X", authority="peoples-court",
                                target=target("peoples-court", "J-1"), amount="1.00"),
     "target", "has been vacated"),
    ("settle twice", record("infraction.settled", "X", authority="tax-bureau",
                            target=target("tax-bureau", "TX-1"), amount="1.00",
                            occurred_on="2025-04-01"), "target", "was already settled"),
    ("settle before the infraction", record("infraction.settled", "X",
                                            authority="traffic-police",
                                            target=target("traffic-police", "TP-1"),
                                            amount="1.00", occurred_on="2025-01-09"),
     "occurred_on", "is before the target's date 2025-01-10"),
    ("settle a payment", record("infraction.settled", "X", authority="bank",
                                target=target("bank", "B-1"), amount="1.00"), "target",
     "is a payment.recorded, not an infraction"),
    ("revoke an infraction", record("verification.revoked", "X", authority="university",
                                    target=target("traffic-police", "TP-1"), reason="x"),
     "target", "not a verification"),
    ("dispute an enrolment", record("record.disputed", "X",
                                    target=target("civil-registry", f"E-{WANG_FANG}"),
                                    reason="x"), "target", "only infractions, payments"),
    ("dispute twice", record("record.disputed", "X", target=target("traffic-police", "TP-1"),
                             reason="again", occurred_on="2025-01-21"), "target",
     "already has an open dispute"),
    ("resolve a non-dispute", record("dispute.resolved", "X",
                                     target=target("dispute-office", "TP-1"), outcome="upheld"),
     "target", "is not a record of this citizen"),
    ("vacate twice", record("record.vacated", "X", target=target("peoples-court", "J-1"),
                            reason="again"), "target", "is already vacated"),
    ("vacate a payment", record("record.vacated", "X", target=target("bank", "B-1"),
                                reason="x"), "target", "not an infraction"),
    ("repair an unsettled", record("credit.repaired", "X",
                                   target=target("traffic-police", "TP-1")), "target",
     "has not been settled"),
    ("repair before settlement", record("credit.repaired", "X",
                                        target=target("tax-bureau", "TX-1"),
                                        occurred_on="2025-02-15"), "occurred_on",
     "is before the settlement of the target on 2025-03-01"),
    ("conflicting content", fine("TP-1", amount="250.00"), "reference",
     "already names a stored record with different content"),
    ("NUL in the authority", {**fine("X"), "authority": "traffic-police\u0000"}, "authority",
     "must not contain the control character U+0000"),
    ("NUL in a reason", record("record.disputed", "X", target=target("traffic-police", "TP-1"),
                               reason="not\u0000mine"), "reason", "U+0000"),
    ("escape in a credential", record("verification.recorded", "X", kind="degree",
                                      credential="BSc\u001b[31m"), "credential", "U+001B"),
    ("NUL in a target", record("infraction.settled", "X",
                               target=target("traffic-police\u0000", "TP-1"), amount="1.00",
                               authority="traffic-police"),
     "target.authority", "U+0000"),
    ("line break in an authority", {**fine("X"), "authority": "traffic\npolice"}, "authority",
     "U+000A"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "field", "message"), [c[1:] for c in BAD_LINES],
                         ids=[c[0] for c in BAD_LINES])  # fmt: skip
def test_bad_line_is_rejected_with_its_field_and_writes_nothing(
    seeded: Ledger, bad: Any, field: str, message: str
) -> None:
    before = seeded.max_position()
    history_before = seeded.history(WANG_FANG)
    report = append(seeded, fine("OK-1", amount="1.00"), bad, fine("OK-2", amount="2.00"))
    assert [(x.line, x.field) for x in report.rejected] == [(2, field)], report.rejected
    assert message in report.rejected[0].error
    assert report.appended == 2
    after = seeded.history(WANG_FANG)
    assert [e.record.reference for e in after] == [
        *(e.record.reference for e in history_before),
        "OK-1",
        "OK-2",
    ]
    assert seeded.max_position() == before + 2


def test_the_same_record_again_is_a_duplicate_naming_the_original_position(
    seeded: Ledger,
) -> None:
    original = next(e for e in seeded.history(WANG_FANG) if e.record.reference == "TP-1")
    before = seeded.max_position()
    report = append(seeded, fine("TP-1"), fine("TP-1", amount="200"))
    assert report.appended == 0
    assert [(d.line, d.position) for d in report.duplicates] == [
        (1, original.position), (2, original.position)
    ]  # fmt: skip
    assert seeded.max_position() == before


def test_a_repeat_within_one_file_is_a_duplicate_of_the_earlier_line(seeded: Ledger) -> None:
    report = append(seeded, fine("TP-9"), fine("TP-9"), fine("TP-9", amount="1.00"))
    assert report.appended == 1
    assert [d.line for d in report.duplicates] == [2]
    assert report.duplicates[0].position == report.positions[0][1]
    assert [(x.line, x.field) for x in report.rejected] == [(3, "reference")]
    assert "line 1" in report.rejected[0].error


def test_a_reference_of_another_citizen_with_other_content_is_a_conflict(
    seeded: Ledger,
) -> None:
    report = append(seeded, fine("TP-LI"))
    assert [(x.line, x.field) for x in report.rejected] == [(1, "reference")]


def test_a_later_line_may_act_on_an_earlier_one_in_the_same_file(seeded: Ledger) -> None:
    report = append(
        seeded,
        fine("TP-7"),
        record("infraction.settled", "TP-8", authority="traffic-police",
               target=target("traffic-police", "TP-7"), amount="200.00"),
        record("infraction.settled", "TP-9", authority="traffic-police",
               target=target("traffic-police", "TP-7"), amount="200.00"),
    )  # fmt: skip
    assert report.appended == 2
    assert [(x.line, x.field) for x in report.rejected] == [(3, "target")]


def test_a_new_ledger_on_the_same_store_sees_the_same_records(
    seeded: Ledger, open_ledger: Callable[[], Ledger]
) -> None:
    other = open_ledger()
    assert [e.position for e in other.history(WANG_FANG)] == [
        e.position for e in seeded.history(WANG_FANG)
    ]
    report = append(other, fine("TP-1"), fine("TP-NEW"))
    assert report.appended == 1
    assert len(report.duplicates) == 1


def test_an_authority_is_entitled_only_from_its_date(ledger: Ledger) -> None:
    register_authorities(ledger)
    ledger.register_authority("new-bank", "New Bank", ["payment.recorded"], _date("2025-01-01"))
    report = append(
        ledger,
        enrolled(),
        record("payment.recorded", "P-1", authority="new-bank", kind="tax_paid_on_time",
               amount="1.00", occurred_on="2024-12-31"),
        record("payment.recorded", "P-2", authority="new-bank", kind="tax_paid_on_time",
               amount="1.00", occurred_on="2025-01-01"),
    )  # fmt: skip
    assert report.appended == 2
    assert [(x.line, x.field) for x in report.rejected] == [(2, "authority")]
    assert "only from 2025-01-01" in report.rejected[0].error


def _date(text: str) -> Any:
    from datetime import date  # noqa: PLC0415

    return date.fromisoformat(text)
