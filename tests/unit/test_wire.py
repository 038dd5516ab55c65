"""The wire format: each record type's valid form, field errors in wire order, digests."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain import records as r
from ledger.domain.identity import ResidentId
from ledger.domain.records import Record, RecordKey
from ledger.domain.wire import parse_record
from ledger.errors import InvalidRecord
from tests.builders import LI_WEI, WANG_FANG, enrolled, fine, record, target

WANG = ResidentId(WANG_FANG)


def rejection(line: Any) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        parse_record(line)
    return caught.value


def without(wire: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in wire.items() if k not in names}


# Each record type's valid form

VALID: list[tuple[str, dict[str, Any], Record]] = [
    (
        "enrolled",
        enrolled(WANG_FANG, reference="CR-1", occurred_on="2008-03-07"),
        Record(r.ENROLLED, WANG, "civil-registry", "CR-1", date(2008, 3, 7)),
    ),
    (
        "infraction",
        fine("TP-1", amount="200.00"),
        Record(r.INFRACTION, WANG, "traffic-police", "TP-1", date(2025, 1, 10),
               kind="traffic_fine", amount=Decimal("200.00")),
    ),
    (
        "criminal conviction without amount",
        record(r.INFRACTION, "CV-1", kind="criminal_conviction"),
        Record(r.INFRACTION, WANG, "peoples-court", "CV-1", date(2025, 1, 10),
               kind="criminal_conviction"),
    ),
    (
        "settled",
        record(r.SETTLED, "TP-2", target=target("traffic-police", "TP-1"), amount="200",
               occurred_on="2025-02-01"),
        Record(r.SETTLED, WANG, "traffic-police", "TP-2", date(2025, 2, 1),
               amount=Decimal("200"), target=RecordKey("traffic-police", "TP-1")),
    ),
    (
        "payment",
        record(r.PAYMENT, "B-1", kind="loan_repaid_on_time", amount="900.5"),
        Record(r.PAYMENT, WANG, "bank", "B-1", date(2025, 1, 10),
               kind="loan_repaid_on_time", amount=Decimal("900.5")),
    ),
    (
        "verification",
        record(r.VERIFICATION, "U-1", kind="degree", credential="理学学士 BSc Physics"),
        Record(r.VERIFICATION, WANG, "university", "U-1", date(2025, 1, 10),
               kind="degree", credential="理学学士 BSc Physics"),
    ),
    (
        "revoked",
        record(r.REVOKED, "U-2", target=target("university", "U-1"), reason="fraud"),
        Record(r.REVOKED, WANG, "university", "U-2", date(2025, 1, 10),
               reason="fraud", target=RecordKey("university", "U-1")),
    ),
    (
        "disputed",
        record(r.DISPUTED, "D-1", target=target("traffic-police", "TP-1"), reason="not my car"),
        Record(r.DISPUTED, WANG, "dispute-office", "D-1", date(2025, 1, 10),
               reason="not my car", target=RecordKey("traffic-police", "TP-1")),
    ),
    (
        "resolved",
        record(r.RESOLVED, "D-2", target=target("dispute-office", "D-1"), outcome="removed"),
        Record(r.RESOLVED, WANG, "dispute-office", "D-2", date(2025, 1, 10),
               outcome="removed", target=RecordKey("dispute-office", "D-1")),
    ),
    (
        "vacated",
        record(r.VACATED, "V-1", target=target("peoples-court", "J-1"), reason="on appeal"),
        Record(r.VACATED, WANG, "peoples-court", "V-1", date(2025, 1, 10),
               reason="on appeal", target=RecordKey("peoples-court", "J-1")),
    ),
    (
        "repaired",
        record(r.REPAIRED, "R-1", target=target("tax-bureau", "TX-1")),
        Record(r.REPAIRED, WANG, "repair-office", "R-1", date(2025, 1, 10),
               target=RecordKey("tax-bureau", "TX-1")),
    ),
]  # fmt: skip


def test_every_record_type_has_a_valid_form_here() -> None:
    assert {expected.type for _, _, expected in VALID} == set(r.RECORD_TYPES)


@pytest.mark.parametrize(("wire", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_record_is_parsed_to_its_normalised_record(
    wire: dict[str, Any], expected: Record
) -> None:
    parsed = parse_record(wire)
    assert parsed == expected
    assert parsed.key == RecordKey(wire["authority"], wire["reference"])


@pytest.mark.parametrize(("wire", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_record_parses_the_same_from_text_and_bytes(
    wire: dict[str, Any], expected: Record
) -> None:
    text = json.dumps(wire, ensure_ascii=False)
    assert parse_record(text) == expected
    assert parse_record(text.encode()) == expected
    assert parse_record(text.encode() + b"\n") == expected


@pytest.mark.parametrize(("wire", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_to_wire_gives_back_the_record_sent(wire: dict[str, Any], expected: Record) -> None:
    assert expected.to_wire() == wire
    assert parse_record(expected.to_wire()) == expected


def test_lower_case_x_in_the_citizen_is_normalised() -> None:
    parsed = parse_record(enrolled("11010519491231002x"))
    assert parsed.citizen.value == "11010519491231002X"
    assert parsed.to_wire()["citizen"] == "11010519491231002X"


def test_amount_is_parsed_to_an_exact_decimal() -> None:
    parsed = parse_record(fine("TP-1", amount="0.10"))
    assert parsed.amount == Decimal("0.10")
    assert isinstance(parsed.amount, Decimal)


# Errors: one field, one message


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (b'{"type": "citizen.enrolled",', "record", "not valid JSON"),
        (b"\xff\xfe{}", "record", "not valid JSON"),
        ("[1, 2]", "record", "must be a JSON object"),
        ('"citizen.enrolled"', "record", "must be a JSON object"),
        ({"citizen": WANG_FANG}, "type", "is required"),
        (fine("X") | {"type": "infraction.forgiven"}, "type", "must be one of citizen.enrolled"),
        (fine("X") | {"type": ["infraction.recorded"]}, "type", "must be one of"),
        (without(fine("X"), "citizen"), "citizen", "is required"),
        (fine("X") | {"citizen": None}, "citizen", "must not be null"),
        (fine("X") | {"citizen": "110105199003071246"}, "citizen", "check character should be 7"),
        (fine("X") | {"authority": ""}, "authority", "must be 1 to 64 characters"),
        (fine("X") | {"authority": 7}, "authority", "must be a string"),
        (fine("X") | {"amount": "1e3"}, "amount", '"1e3" is not a decimal number'),
        (fine("X") | {"amount": "1" * 21}, "amount", "must have at most 20 characters"),
        (enrolled() | {"amount": "1.00"}, "amount",
         "is not a field of citizen.enrolled records"),
        (record(r.INFRACTION, "X", kind="criminal_conviction") | {"amount": None}, "amount",
         "must not be null"),
        (record(r.RESOLVED, "X", target=target("dispute-office", "D-1")), "outcome",
         "is required"),
    ],
)  # fmt: skip
def test_bad_record_names_its_field(line: Any, field: str, message: str) -> None:
    error = rejection(line)
    assert error.field == field
    assert error.message.startswith(message)


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        # every field wrong: the first in wire order is named
        ({"type": "infraction.recorded", "citizen": "1", "authority": "", "reference": "a b",
          "occurred_on": "x", "kind": "x", "amount": "x"}, "citizen"),
        (fine("a b", amount="-1") | {"authority": "", "occurred_on": "x", "kind": "x"},
         "authority"),
        (fine("a b", amount="-1") | {"occurred_on": "x", "kind": "x"}, "reference"),
        (fine("X", amount="-1", occurred_on="2025-02-30") | {"kind": "x"}, "occurred_on"),
        (fine("X", amount="-1") | {"kind": "x"}, "kind"),
        (record(r.SETTLED, "X", authority="traffic-police", target={}, amount="x"), "amount"),
        (record(r.VERIFICATION, "X", kind="degree", credential="") | {"note": 1}, "credential"),
        (record(r.RESOLVED, "X", target="D-1", outcome="maybe"), "target"),
        (record(r.DISPUTED, "X", target=target("a", "b"), reason="") | {"zz": 1, "aa": 2},
         "reason"),
        (fine("X") | {"zz": 1, "aa": 2}, "aa"),
    ],
)  # fmt: skip
def test_several_wrong_fields_name_the_first_in_wire_order(
    wire: dict[str, Any], field: str
) -> None:
    assert rejection(wire).field == field


def test_wire_order_does_not_depend_on_the_order_of_the_keys_sent() -> None:
    wire = fine("a b", amount="-1") | {"citizen": "1"}
    reversed_wire = dict(reversed(list(wire.items())))
    assert next(iter(reversed_wire)) == "amount"
    assert rejection(reversed_wire).field == "citizen"
    assert rejection(json.dumps(reversed_wire)).field == "citizen"


@pytest.mark.parametrize(
    ("target_value", "field", "message"),
    [
        ({"authority": "traffic-police"}, "target.reference", "is required"),
        ({"reference": "TP-1"}, "target.authority", "is required"),
        ({"authority": "traffic-police", "reference": "TP 1"}, "target.reference",
         "must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -"),
        ({"authority": "traffic-police", "reference": "R" * 65}, "target.reference",
         "must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -"),
        ({"authority": "", "reference": "TP 1"}, "target.authority",
         "must be 1 to 64 characters"),
        ({}, "target.authority", "is required"),
        ({"authority": "traffic-police", "reference": "TP-1", "x": 1}, "target.x",
         "is not a field of a target"),
        ("traffic-police/TP-1", "target", "must be an object with authority and reference"),
        ([], "target", "must be an object with authority and reference"),
        (None, "target", "must not be null"),
    ],
)  # fmt: skip
def test_target_errors_name_the_nested_field(target_value: Any, field: str, message: str) -> None:
    wire = record(r.SETTLED, "TP-2", authority="traffic-police", target=target_value,
                  amount="1.00")  # fmt: skip
    error = rejection(wire)
    assert (error.field, error.message) == (field, message)
    assert str(error) == f"{field}: {message}"


def test_missing_target_is_named_target() -> None:
    error = rejection(record(r.REPAIRED, "R-1"))
    assert (error.field, error.message) == ("target", "is required")


def test_bytes_line_is_decoded_as_utf_8() -> None:
    wire = record(r.VERIFICATION, "U-1", kind="degree", credential="工学硕士")
    parsed = parse_record(json.dumps(wire, ensure_ascii=False).encode("utf-8"))
    assert parsed.credential == "工学硕士"
    assert parse_record(json.dumps(wire).encode("ascii")) == parsed


# Digests


def test_digest_compares_amounts_by_value() -> None:
    base = parse_record(fine("TP-1", amount="200.00")).digest
    assert parse_record(fine("TP-1", amount="200")).digest == base
    assert parse_record(fine("TP-1", amount="200.0")).digest == base
    assert parse_record(fine("TP-1", amount="0200.00")).digest == base


def test_digest_is_the_same_for_text_bytes_and_object() -> None:
    wire = fine("TP-1")
    digests = {
        parse_record(wire).digest,
        parse_record(json.dumps(wire)).digest,
        parse_record(json.dumps(wire).encode()).digest,
        parse_record(dict(reversed(list(wire.items())))).digest,
    }
    assert len(digests) == 1


def test_digest_ignores_the_case_of_x() -> None:
    lower = parse_record(enrolled("11010519491231002x", reference="CR-1")).digest
    upper = parse_record(enrolled("11010519491231002X", reference="CR-1")).digest
    assert lower == upper


@pytest.mark.parametrize(
    "changed",
    [
        fine("TP-1", amount="200.01"),
        fine("TP-1", amount="20.00"),
        fine("TP-2"),
        fine("TP-1", occurred_on="2025-01-11"),
        fine("TP-1", citizen=LI_WEI),
        fine("TP-1") | {"authority": "tax-bureau"},
        fine("TP-1") | {"kind": "tax_arrears"},
        fine("TP-1") | {"type": r.PAYMENT, "kind": "tax_paid_on_time"},
    ],
)
def test_digest_differs_for_other_content(changed: dict[str, Any]) -> None:
    assert parse_record(changed).digest != parse_record(fine("TP-1")).digest


def test_digest_differs_for_another_target_reason_or_outcome() -> None:
    def dispute(**fields: Any) -> bytes:
        wire = record(r.DISPUTED, "D-1", target=target("traffic-police", "TP-1"),
                      reason="not my car") | fields  # fmt: skip
        return parse_record(wire).digest

    assert dispute() == dispute()
    assert dispute(reason="not my car.") != dispute()
    assert dispute(target=target("traffic-police", "TP-9")) != dispute()
    assert dispute(target=target("tax-bureau", "TP-1")) != dispute()

    def resolution(outcome: str) -> bytes:
        wire = record(r.RESOLVED, "D-2", target=target("dispute-office", "D-1"), outcome=outcome)
        return parse_record(wire).digest

    assert resolution("upheld") != resolution("removed")
