"""The aggregates, given events, when a command, then new events or an error.

The Citizen aggregate (one event per record and the rules on targets) and the
AuthorityRegistry (registrations and entitlements).
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain import REGISTRY_ID, AuthorityRegistry, Citizen
from ledger.domain import records as r
from ledger.domain.identity import citizen_id
from ledger.domain.records import RecordKey
from ledger.domain.registrants import Authority
from ledger.domain.wire import parse_record
from ledger.errors import (
    AuthorityExists,
    InvalidRecord,
    LedgerError,
    NotEntitled,
    RuleViolation,
    TargetError,
)
from tests.builders import LI_WEI, WANG_FANG, enrolled, fine, record, target

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
LATER = AT + timedelta(hours=1)


# Given / when / then


def given(*wires: dict[str, Any]) -> Citizen:
    """A citizen built from wire records, the first an enrolment, with no pending events."""
    first, *rest = (parse_record(w) for w in wires)
    citizen = Citizen.enroll(first, AT)
    for rec in rest:
        citizen.append(rec, AT)
    citizen.collect_events()
    return citizen


def when(citizen: Citizen, wire: dict[str, Any]) -> list[Any]:
    """Append one record; the new pending events."""
    citizen.append(parse_record(wire), LATER)
    return list(citizen.pending_events)


def then_rejected(citizen: Citizen, wire: dict[str, Any]) -> LedgerError:
    """Append one record expecting a refusal that leaves the citizen untouched."""
    version = citizen.version
    records = copy.deepcopy(citizen.records)
    with pytest.raises(LedgerError) as caught:
        citizen.append(parse_record(wire), LATER)
    assert citizen.pending_events == []
    assert citizen.version == version
    assert citizen.records == records
    return caught.value


def only(events: list[Any], event_class: type[Any]) -> Any:
    assert [type(e) for e in events] == [event_class]
    return events[0]


def settlement(
    reference: str,
    infraction: str,
    authority: str = "traffic-police",
    occurred_on: str = "2025-02-01",
    amount: str = "200.00",
) -> dict[str, Any]:
    return record(r.SETTLED, reference, authority=authority,
                  target=target(authority, infraction), amount=amount,
                  occurred_on=occurred_on)  # fmt: skip


def dispute(reference: str, of: RecordKey, occurred_on: str = "2025-01-20") -> dict[str, Any]:
    return record(r.DISPUTED, reference, target=target(of.authority, of.reference),
                  reason="not my car", occurred_on=occurred_on)  # fmt: skip


def resolution(reference: str, dispute_reference: str, outcome: str,
               occurred_on: str = "2025-02-01") -> dict[str, Any]:  # fmt: skip
    return record(r.RESOLVED, reference, target=target("dispute-office", dispute_reference),
                  outcome=outcome, occurred_on=occurred_on)  # fmt: skip


def repair(
    reference: str, infraction: RecordKey, occurred_on: str = "2025-03-01"
) -> dict[str, Any]:
    return record(r.REPAIRED, reference, occurred_on=occurred_on,
                  target=target(infraction.authority, infraction.reference))  # fmt: skip


def degree(reference: str = "U-1") -> dict[str, Any]:
    return record(r.VERIFICATION, reference, kind="degree", credential="BSc Physics")


TP1 = RecordKey("traffic-police", "TP-1")


# Enrolment


def test_enroll_then_enrolled_event_with_the_record_attributes() -> None:
    citizen = Citizen.enroll(parse_record(enrolled(WANG_FANG, "CR-1", "2008-03-07")), AT)
    event = only(list(citizen.pending_events), Citizen.Enrolled)
    assert event.resident_id == WANG_FANG
    assert event.authority == "civil-registry"
    assert event.reference == "CR-1"
    assert event.occurred_on == date(2008, 3, 7)
    assert event.timestamp == AT
    assert event.originator_id == citizen_id(WANG_FANG)
    assert event.originator_version == 1
    assert citizen.resident_id == WANG_FANG
    assert citizen.birth_date == date(1990, 3, 7)
    assert citizen.records == {
        RecordKey("civil-registry", "CR-1"): citizen.records[RecordKey("civil-registry", "CR-1")]
    }
    assert citizen.records[RecordKey("civil-registry", "CR-1")].type == r.ENROLLED


def test_enroll_then_id_is_derived_from_the_identity_number_only() -> None:
    one = Citizen.enroll(parse_record(enrolled(WANG_FANG, "CR-1")), AT)
    again = Citizen.enroll(parse_record(enrolled(WANG_FANG, "CR-2", "2011-05-05")), LATER)
    other = Citizen.enroll(parse_record(enrolled(LI_WEI, "CR-1")), AT)
    assert one.id == again.id == citizen_id(WANG_FANG)
    assert other.id == citizen_id(LI_WEI)
    assert one.id != other.id


def test_enroll_with_lower_case_x_then_stored_upper_case_with_the_same_id() -> None:
    citizen = Citizen.enroll(parse_record(enrolled("11010519491231002x")), AT)
    assert citizen.resident_id == "11010519491231002X"
    assert citizen.id == citizen_id("11010519491231002X")


def test_enroll_when_before_birth_date_then_rejected() -> None:
    with pytest.raises(RuleViolation) as caught:
        Citizen.enroll(parse_record(enrolled(WANG_FANG, occurred_on="1990-03-06")), AT)
    assert caught.value.field == "occurred_on"
    assert caught.value.message == "is before the citizen's birth date 1990-03-07"


def test_enroll_when_on_birth_date_then_enrolled() -> None:
    citizen = Citizen.enroll(parse_record(enrolled(WANG_FANG, occurred_on="1990-03-07")), AT)
    assert only(list(citizen.pending_events), Citizen.Enrolled).occurred_on == date(1990, 3, 7)


def test_enroll_when_already_enrolled_then_rejected() -> None:
    citizen = given(enrolled())
    error = then_rejected(citizen, enrolled(reference="CR-again"))
    assert type(error) is RuleViolation
    assert (error.field, error.message) == ("citizen", "is already enrolled")


# Each record type's event

EVENTS: list[tuple[str, list[dict[str, Any]], dict[str, Any], type[Any], dict[str, Any]]] = [
    ("infraction", [], fine("TP-1", amount="200"), Citizen.InfractionRecorded,
     {"kind": "traffic_fine", "amount": Decimal("200")}),
    ("criminal conviction", [], record(r.INFRACTION, "CV-1", kind="criminal_conviction"),
     Citizen.InfractionRecorded, {"kind": "criminal_conviction", "amount": None}),
    ("settled", [fine("TP-1")], settlement("TP-2", "TP-1"), Citizen.InfractionSettled,
     {"target": TP1, "amount": Decimal("200.00")}),
    ("payment", [], record(r.PAYMENT, "B-1", kind="loan_repaid_on_time", amount="900.00"),
     Citizen.PaymentRecorded, {"kind": "loan_repaid_on_time", "amount": Decimal("900.00")}),
    ("verification", [], degree(), Citizen.VerificationRecorded,
     {"kind": "degree", "credential": "BSc Physics"}),
    ("revoked", [degree()], record(r.REVOKED, "U-2", target=target("university", "U-1"),
                                   reason="fraud"),
     Citizen.VerificationRevoked, {"target": RecordKey("university", "U-1"), "reason": "fraud"}),
    ("disputed", [fine("TP-1")], dispute("D-1", TP1), Citizen.RecordDisputed,
     {"target": TP1, "reason": "not my car"}),
    ("resolved", [fine("TP-1"), dispute("D-1", TP1)], resolution("D-2", "D-1", "upheld"),
     Citizen.DisputeResolved,
     {"target": RecordKey("dispute-office", "D-1"), "outcome": "upheld"}),
    ("vacated", [fine("TP-1")], record(r.VACATED, "V-1", target=target("traffic-police", "TP-1"),
                                       reason="wrong plate"),
     Citizen.RecordVacated, {"target": TP1, "reason": "wrong plate"}),
    ("repaired", [fine("TP-1"), settlement("TP-2", "TP-1")], repair("R-1", TP1),
     Citizen.CreditRepaired, {"target": TP1}),
]  # fmt: skip


def test_every_appendable_record_type_has_an_event_case_here() -> None:
    wanted = set(r.RECORD_TYPES) - {r.ENROLLED}
    assert {w["type"] for _, _, w, _, _ in EVENTS} == wanted


@pytest.mark.parametrize(("history", "wire", "event_class", "payload"),
                         [c[1:] for c in EVENTS], ids=[c[0] for c in EVENTS])  # fmt: skip
def test_append_when_valid_then_one_event_of_its_type(
    history: list[dict[str, Any]],
    wire: dict[str, Any],
    event_class: type[Any],
    payload: dict[str, Any],
) -> None:
    citizen = given(enrolled(), *history)
    version = citizen.version
    event = only(when(citizen, wire), event_class)
    assert event.authority == wire["authority"]
    assert event.reference == wire["reference"]
    assert event.occurred_on == date.fromisoformat(wire["occurred_on"])
    assert event.timestamp == LATER
    assert event.originator_id == citizen_id(WANG_FANG)
    assert event.originator_version == version + 1
    for name, value in payload.items():
        assert getattr(event, name) == value, name
    assert citizen.version == version + 1
    assert RecordKey(wire["authority"], wire["reference"]) in citizen.records


def test_append_when_before_birth_date_then_rejected() -> None:
    citizen = given(enrolled())
    error = then_rejected(citizen, fine("TP-1", occurred_on="1990-03-06"))
    assert type(error) is RuleViolation
    assert error.field == "occurred_on"
    assert error.message == "is before the citizen's birth date 1990-03-07"


def test_append_when_on_birth_date_then_accepted() -> None:
    citizen = given(enrolled())
    event = only(when(citizen, fine("TP-1", occurred_on="1990-03-07")), Citizen.InfractionRecorded)
    assert event.occurred_on == date(1990, 3, 7)


def test_append_when_target_is_not_a_record_of_this_citizen_then_rejected() -> None:
    citizen = given(enrolled())
    error = then_rejected(citizen, settlement("TP-2", "TP-404"))
    assert type(error) is TargetError
    assert (error.field, error.message) == (
        "target", "traffic-police/TP-404 is not a record of this citizen"
    )  # fmt: skip


def test_append_when_dated_before_its_target_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"))
    error = then_rejected(citizen, settlement("TP-2", "TP-1", occurred_on="2025-01-09"))
    assert type(error) is RuleViolation
    assert (error.field, error.message) == (
        "occurred_on", "is before the target's date 2025-01-10"
    )  # fmt: skip


def test_append_when_on_its_targets_date_then_accepted() -> None:
    citizen = given(enrolled(), fine("TP-1"))
    only(when(citizen, settlement("TP-2", "TP-1", occurred_on="2025-01-10")),
         Citizen.InfractionSettled)  # fmt: skip


# Settlement


def test_settle_when_already_settled_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"), settlement("TP-2", "TP-1"))
    error = then_rejected(citizen, settlement("TP-3", "TP-1", occurred_on="2025-03-01"))
    assert type(error) is TargetError
    assert error.field == "target"
    assert error.message == "traffic-police/TP-1 was already settled on 2025-02-01"


def test_settle_when_infraction_is_a_criminal_conviction_then_rejected() -> None:
    citizen = given(enrolled(), record(r.INFRACTION, "CV-1", kind="criminal_conviction"))
    error = then_rejected(citizen, settlement("CV-2", "CV-1", authority="peoples-court"))
    assert type(error) is TargetError
    assert error.message == "a criminal_conviction cannot be settled"


def test_settle_when_recorded_by_another_authority_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"))
    wire = record(r.SETTLED, "TX-1", authority="tax-bureau",
                  target=target("traffic-police", "TP-1"), amount="200.00",
                  occurred_on="2025-02-01")  # fmt: skip
    error = then_rejected(citizen, wire)
    assert type(error) is TargetError
    assert error.message == "must be an infraction recorded by the same authority"


def test_settle_when_target_is_a_payment_then_rejected() -> None:
    citizen = given(enrolled(), record(r.PAYMENT, "B-1", kind="loan_repaid_on_time",
                                       amount="9.00"))  # fmt: skip
    error = then_rejected(citizen, settlement("B-2", "B-1", authority="bank"))
    assert type(error) is TargetError
    assert error.message == "bank/B-1 is a payment.recorded, not an infraction"


def test_settle_when_vacated_then_rejected() -> None:
    citizen = given(
        enrolled(),
        fine("TP-1"),
        record(r.VACATED, "V-1", target=target("traffic-police", "TP-1"), reason="wrong plate",
               occurred_on="2025-01-15"),
    )  # fmt: skip
    error = then_rejected(citizen, settlement("TP-2", "TP-1"))
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-1 has been vacated"


# Verification and revocation


def test_revoke_when_already_revoked_then_rejected() -> None:
    revoke = record(r.REVOKED, "U-2", target=target("university", "U-1"), reason="fraud")
    citizen = given(enrolled(), degree(), revoke)
    error = then_rejected(citizen, revoke | {"reference": "U-3"})
    assert type(error) is TargetError
    assert error.message == "university/U-1 is already revoked by university/U-2"


def test_revoke_when_issued_by_another_authority_then_rejected() -> None:
    citizen = given(enrolled(), degree())
    wire = record(r.REVOKED, "X-1", authority="other-university",
                  target=target("university", "U-1"), reason="fraud")  # fmt: skip
    error = then_rejected(citizen, wire)
    assert type(error) is TargetError
    assert error.message == "must be a verification recorded by the same authority"


def test_revoke_when_target_is_an_infraction_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"))
    wire = record(r.REVOKED, "U-2", target=target("traffic-police", "TP-1"), reason="x")
    error = then_rejected(citizen, wire)
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-1 is a infraction.recorded, not a verification"


# Disputes


def test_dispute_when_target_is_the_enrolment_then_rejected() -> None:
    citizen = given(enrolled(reference="CR-1"))
    error = then_rejected(citizen, dispute("D-1", RecordKey("civil-registry", "CR-1")))
    assert type(error) is TargetError
    assert error.message.startswith("civil-registry/CR-1 is a citizen.enrolled; only")


def test_dispute_when_target_is_a_dispute_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"), dispute("D-1", TP1))
    error = then_rejected(citizen, dispute("D-2", RecordKey("dispute-office", "D-1")))
    assert type(error) is TargetError
    assert "only infractions, payments, verifications and revocations" in error.message


def test_dispute_when_target_is_a_revocation_then_disputed() -> None:
    revoke = record(r.REVOKED, "U-2", target=target("university", "U-1"), reason="fraud")
    citizen = given(enrolled(), degree(), revoke)
    event = only(when(citizen, dispute("D-1", RecordKey("university", "U-2"))),
                 Citizen.RecordDisputed)  # fmt: skip
    assert event.target == RecordKey("university", "U-2")


def test_dispute_when_already_open_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"), dispute("D-1", TP1))
    error = then_rejected(citizen, dispute("D-2", TP1, occurred_on="2025-01-21"))
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-1 already has an open dispute"


def test_dispute_when_earlier_dispute_was_resolved_then_disputed_again() -> None:
    citizen = given(enrolled(), fine("TP-1"), dispute("D-1", TP1),
                    resolution("D-2", "D-1", "upheld"))  # fmt: skip
    event = only(when(citizen, dispute("D-3", TP1, occurred_on="2025-03-01")),
                 Citizen.RecordDisputed)  # fmt: skip
    assert event.target == TP1


def test_resolve_when_target_is_not_a_dispute_then_rejected() -> None:
    citizen = given(enrolled(), record(r.INFRACTION, "X-1", authority="dispute-office",
                                       kind="traffic_fine", amount="1.00"))  # fmt: skip
    error = then_rejected(citizen, resolution("D-2", "X-1", "upheld"))
    assert type(error) is TargetError
    assert error.message == "dispute-office/X-1 is a infraction.recorded, not a dispute"


def test_resolve_when_issued_by_another_authority_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"), dispute("D-1", TP1))
    wire = resolution("D-2", "D-1", "upheld") | {"authority": "other-office"}
    error = then_rejected(citizen, wire)
    assert type(error) is TargetError
    assert error.message == "must be a dispute opened by the same authority"


def test_resolve_when_already_resolved_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"), dispute("D-1", TP1),
                    resolution("D-2", "D-1", "upheld"))  # fmt: skip
    error = then_rejected(citizen, resolution("D-3", "D-1", "removed"))
    assert type(error) is TargetError
    assert error.message == "dispute-office/D-1 is already resolved"


def test_resolve_as_removed_when_settling_the_infraction_then_rejected_as_removed() -> None:
    citizen = given(enrolled(), fine("TP-1"), dispute("D-1", TP1),
                    resolution("D-2", "D-1", "removed"))  # fmt: skip
    assert citizen.records[TP1].removed
    error = then_rejected(citizen, settlement("TP-2", "TP-1"))
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-1 was removed on dispute dispute-office/D-1"


def test_resolve_as_removed_when_vacating_the_infraction_then_rejected_as_removed() -> None:
    citizen = given(enrolled(), fine("TP-1"), dispute("D-1", TP1),
                    resolution("D-2", "D-1", "removed"))  # fmt: skip
    wire = record(r.VACATED, "V-1", target=target("traffic-police", "TP-1"), reason="x",
                  occurred_on="2025-02-02")  # fmt: skip
    error = then_rejected(citizen, wire)
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-1 was removed on dispute dispute-office/D-1"


def test_resolve_as_upheld_when_settling_the_infraction_then_settled() -> None:
    citizen = given(enrolled(), fine("TP-1"), dispute("D-1", TP1),
                    resolution("D-2", "D-1", "upheld"))  # fmt: skip
    assert not citizen.records[TP1].removed
    only(when(citizen, settlement("TP-2", "TP-1", occurred_on="2025-02-02")),
         Citizen.InfractionSettled)  # fmt: skip


U1 = RecordKey("university", "U-1")
U2 = RecordKey("university", "U-2")


def revocation(reference: str = "U-2", occurred_on: str = "2025-01-10") -> dict[str, Any]:
    return record(r.REVOKED, reference, target=target("university", "U-1"), reason="fraud",
                  occurred_on=occurred_on)  # fmt: skip


def test_resolve_as_removed_when_revoking_the_verification_again_then_revoked() -> None:
    citizen = given(enrolled(), degree(), revocation(), dispute("D-1", U2),
                    resolution("D-2", "D-1", "removed"))  # fmt: skip
    event = only(when(citizen, revocation("U-3", occurred_on="2025-03-01")),
                 Citizen.VerificationRevoked)  # fmt: skip
    assert event.target == U1
    assert citizen.records[U1].revoked_by == RecordKey("university", "U-3")


def test_resolve_as_upheld_when_revoking_the_verification_again_then_rejected() -> None:
    citizen = given(enrolled(), degree(), revocation(), dispute("D-1", U2),
                    resolution("D-2", "D-1", "upheld"))  # fmt: skip
    error = then_rejected(citizen, revocation("U-3", occurred_on="2025-03-01"))
    assert type(error) is TargetError
    assert error.message == "university/U-1 is already revoked by university/U-2"


def test_resolve_as_removed_when_revoking_the_removed_verification_then_revoked_once() -> None:
    citizen = given(enrolled(), degree(), dispute("D-1", U1), resolution("D-2", "D-1", "removed"),
                    revocation(occurred_on="2025-03-01"))  # fmt: skip
    error = then_rejected(citizen, revocation("U-3", occurred_on="2025-03-02"))
    assert type(error) is TargetError
    assert error.message == "university/U-1 is already revoked by university/U-2"


# Vacating


def test_vacate_when_already_vacated_then_rejected() -> None:
    vacate = record(r.VACATED, "V-1", target=target("traffic-police", "TP-1"), reason="x")
    citizen = given(enrolled(), fine("TP-1"), vacate)
    error = then_rejected(citizen, vacate | {"reference": "V-2"})
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-1 is already vacated"


def test_vacate_when_target_is_a_payment_then_rejected() -> None:
    citizen = given(enrolled(), record(r.PAYMENT, "B-1", kind="loan_repaid_on_time",
                                       amount="9.00"))  # fmt: skip
    wire = record(r.VACATED, "V-1", target=target("bank", "B-1"), reason="x")
    error = then_rejected(citizen, wire)
    assert type(error) is TargetError
    assert error.message == "bank/B-1 is a payment.recorded, not an infraction"


# Credit repair


def test_repair_when_not_settled_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"))
    error = then_rejected(citizen, repair("R-1", TP1))
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-1 has not been settled"


def test_repair_when_settled_then_repaired() -> None:
    citizen = given(enrolled(), fine("TP-1"), settlement("TP-2", "TP-1"))
    event = only(when(citizen, repair("R-1", TP1)), Citizen.CreditRepaired)
    assert event.target == TP1
    assert citizen.records[TP1].repaired_on == date(2025, 3, 1)


def test_repair_when_on_the_settlement_date_then_repaired() -> None:
    citizen = given(enrolled(), fine("TP-1"), settlement("TP-2", "TP-1"))
    only(when(citizen, repair("R-1", TP1, occurred_on="2025-02-01")), Citizen.CreditRepaired)


def test_repair_when_before_the_settlement_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"), settlement("TP-2", "TP-1"))
    error = then_rejected(citizen, repair("R-1", TP1, occurred_on="2025-01-31"))
    assert type(error) is RuleViolation
    assert (error.field, error.message) == (
        "occurred_on", "is before the settlement of the target on 2025-02-01"
    )  # fmt: skip


def test_repair_when_already_repaired_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"), settlement("TP-2", "TP-1"), repair("R-1", TP1))
    error = then_rejected(citizen, repair("R-2", TP1))
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-1 is already repaired"


def test_repair_when_target_is_the_settlement_then_rejected() -> None:
    citizen = given(enrolled(), fine("TP-1"), settlement("TP-2", "TP-1"))
    error = then_rejected(citizen, repair("R-1", RecordKey("traffic-police", "TP-2")))
    assert type(error) is TargetError
    assert error.message == "traffic-police/TP-2 is a infraction.settled, not an infraction"


# A refused command changes nothing

REFUSALS: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("enrolled again", [], enrolled(reference="CR-again")),
    ("before birth", [], fine("TP-9", occurred_on="1980-01-01")),
    ("unknown target", [], settlement("TP-2", "TP-404")),
    ("settled twice", [fine("TP-1"), settlement("TP-2", "TP-1")],
     settlement("TP-3", "TP-1", occurred_on="2025-03-01")),
    ("open dispute", [fine("TP-1"), dispute("D-1", TP1)], dispute("D-2", TP1)),
    ("repair unsettled", [fine("TP-1")], repair("R-1", TP1)),
    ("repair too early", [fine("TP-1"), settlement("TP-2", "TP-1")],
     repair("R-1", TP1, occurred_on="2025-01-20")),
]  # fmt: skip


@pytest.mark.parametrize(("history", "wire"), [c[1:] for c in REFUSALS],
                         ids=[c[0] for c in REFUSALS])  # fmt: skip
def test_append_when_refused_then_no_event_and_state_unchanged(
    history: list[dict[str, Any]], wire: dict[str, Any]
) -> None:
    citizen = given(enrolled(), *history)
    state = copy.deepcopy(citizen.records)
    version = citizen.version
    with pytest.raises(RuleViolation):
        citizen.append(parse_record(wire), LATER)
    assert citizen.pending_events == []
    assert citizen.version == version
    assert citizen.records == state
    # and the refusal did not spoil it: a valid record still goes in
    only(when(citizen, fine("TP-OK")), Citizen.InfractionRecorded)
    assert citizen.version == version + 1


# The authority registry


def opened() -> AuthorityRegistry:
    registry = AuthorityRegistry.open(AT)
    registry.collect_events()
    return registry


def test_open_then_the_registry_has_its_fixed_id_and_no_authorities() -> None:
    registry = AuthorityRegistry.open(AT)
    event = only(list(registry.pending_events), AuthorityRegistry.Opened)
    assert event.originator_id == REGISTRY_ID == AuthorityRegistry.open(LATER).id
    assert registry.authorities == {}


def test_register_then_authority_registered_event_and_authority() -> None:
    registry = opened()
    registry.register("traffic-police", "Traffic Police",
                      ["infraction.recorded:traffic_fine", "infraction.settled"],
                      date(2020, 1, 1), LATER)  # fmt: skip
    event = only(list(registry.pending_events), AuthorityRegistry.AuthorityRegistered)
    assert event.authority_id == "traffic-police"
    assert event.name == "Traffic Police"
    assert event.may_issue == ["infraction.recorded:traffic_fine", "infraction.settled"]
    assert event.entitled_from == date(2020, 1, 1)
    assert event.timestamp == LATER
    assert registry.authorities == {
        "traffic-police": Authority(
            "traffic-police",
            "Traffic Police",
            ("infraction.recorded:traffic_fine", "infraction.settled"),
            date(2020, 1, 1),
            LATER,
        )
    }


def test_register_then_authorities_keep_the_order_registered() -> None:
    registry = opened()
    for authority_id in ("b-second", "a-first", "c-third"):
        registry.register(authority_id, authority_id, ["citizen.enrolled"], None, AT)
    assert list(registry.authorities) == ["b-second", "a-first", "c-third"]


def test_register_when_id_already_registered_then_rejected() -> None:
    registry = opened()
    registry.register("bank", "Bank", ["payment.recorded"], None, AT)
    registry.collect_events()
    before = dict(registry.authorities)
    with pytest.raises(AuthorityExists) as caught:
        registry.register("bank", "Another Bank", ["infraction.settled"], None, LATER)
    assert (caught.value.field, caught.value.message) == ("authority", "bank is already registered")
    assert registry.pending_events == []
    assert registry.authorities == before


@pytest.mark.parametrize(
    ("may_issue", "message"),
    [
        ([], "must name at least one record type"),
        (["infraction.forgiven"], "'infraction.forgiven' is not a record type; one of "
                                  + ", ".join(r.RECORD_TYPES)),
        (["citizen.enrolled", "social.media"], "'social.media' is not a record type; one of "),
        (["infraction.recorded:jaywalking"],
         "'jaywalking' is not a kind of infraction.recorded; one of "
         + ", ".join(r.INFRACTION_KINDS)),
        (["payment.recorded:traffic_fine"], "'traffic_fine' is not a kind of payment.recorded"),
        (["citizen.enrolled:adult"], "'adult' is not a kind of citizen.enrolled; it has no kinds"),
        (["infraction.settled:traffic_fine"],
         "'traffic_fine' is not a kind of infraction.settled; it has no kinds"),
        ([""], "'' is not a record type"),
        ([":traffic_fine"], "'' is not a record type"),
    ],
)  # fmt: skip
def test_register_when_may_issue_entry_is_bad_then_rejected(
    may_issue: list[str], message: str
) -> None:
    registry = opened()
    with pytest.raises(InvalidRecord) as caught:
        registry.register("x-office", "X Office", may_issue, None, AT)
    assert caught.value.field == "may_issue"
    assert caught.value.message.startswith(message)
    assert registry.pending_events == []
    assert registry.authorities == {}


@pytest.mark.parametrize("entry", ["infraction.recorded:", "citizen.enrolled:"])
def test_register_when_may_issue_entry_has_an_empty_kind_then_rejected(entry: str) -> None:
    # TYPE[:KIND]: a colon promises a kind; without one the entry entitles to nothing
    registry = opened()
    with pytest.raises(InvalidRecord) as caught:
        registry.register("x-office", "X Office", [entry], None, AT)
    assert caught.value.field == "may_issue"
    assert registry.authorities == {}


@pytest.mark.parametrize(
    ("authority_id", "name", "field"),
    [
        ("", "X Office", "authority"),
        ("x office", "X Office", "authority"),
        ("x" * 65, "X Office", "authority"),
        ("x-office", "", "name"),
        ("x-office", "n" * 201, "name"),
    ],
)
def test_register_when_id_or_name_is_bad_then_rejected(
    authority_id: str, name: str, field: str
) -> None:
    registry = opened()
    with pytest.raises(InvalidRecord) as caught:
        registry.register(authority_id, name, ["citizen.enrolled"], None, AT)
    assert caught.value.field == field
    assert registry.pending_events == []


def registered(may_issue: list[str], entitled_from: date | None = None) -> Authority:
    registry = opened()
    registry.register("office", "Office", may_issue, entitled_from, AT)
    return registry.authorities["office"]


def entitled(authority: Authority, wire: dict[str, Any]) -> None:
    authority.check_entitled(parse_record(wire | {"authority": authority.authority_id}))


def not_entitled(authority: Authority, wire: dict[str, Any]) -> NotEntitled:
    with pytest.raises(NotEntitled) as caught:
        entitled(authority, wire)
    assert caught.value.field == "authority"
    return caught.value


def test_check_entitled_when_type_listed_without_kind_then_every_kind_entitled() -> None:
    office = registered(["infraction.recorded", "infraction.settled"])
    for kind in ("traffic_fine", "tax_arrears", "loan_default"):
        entitled(office, record(r.INFRACTION, "I-1", kind=kind, amount="1.00"))
    entitled(office, record(r.INFRACTION, "I-2", kind="criminal_conviction"))
    entitled(office, settlement("S-1", "I-1"))


def test_check_entitled_when_type_not_listed_then_not_entitled() -> None:
    office = registered(["infraction.settled"])
    error = not_entitled(office, record(r.PAYMENT, "P-1", kind="tax_paid_on_time",
                                        amount="1.00"))  # fmt: skip
    assert error.message == "office may not issue payment.recorded:tax_paid_on_time"
    error = not_entitled(office, record(r.VACATED, "V-1", target=target("a", "b"), reason="x"))
    assert error.message == "office may not issue record.vacated"


def test_check_entitled_when_kind_listed_then_only_that_kind_entitled() -> None:
    office = registered(["infraction.recorded:traffic_fine", "verification.recorded:degree"])
    entitled(office, fine("TP-1"))
    entitled(office, degree())
    error = not_entitled(office, record(r.INFRACTION, "I-1", kind="tax_arrears", amount="1.00"))
    assert error.message == "office may not issue infraction.recorded:tax_arrears"
    error = not_entitled(office, record(r.VERIFICATION, "U-1", kind="professional_license",
                                        credential="Bar"))  # fmt: skip
    assert error.message == "office may not issue verification.recorded:professional_license"


def test_check_entitled_when_entitled_from_a_date_then_only_on_or_after_it() -> None:
    office = registered(["infraction.recorded:traffic_fine"], date(2025, 1, 10))
    entitled(office, fine("TP-1", occurred_on="2025-01-10"))
    entitled(office, fine("TP-2", occurred_on="2026-01-01"))
    error = not_entitled(office, fine("TP-3", occurred_on="2025-01-09"))
    assert error.message == (
        "office may issue infraction.recorded:traffic_fine only from 2025-01-10"
    )


def test_check_entitled_when_from_a_date_and_wrong_kind_then_names_the_kind() -> None:
    office = registered(["infraction.recorded:traffic_fine"], date(2025, 1, 10))
    error = not_entitled(office, record(r.INFRACTION, "I-1", kind="tax_arrears", amount="1.00",
                                        occurred_on="2024-01-01"))  # fmt: skip
    assert error.message == "office may not issue infraction.recorded:tax_arrears"


def test_append_when_record_is_about_another_citizen_then_rejected() -> None:
    citizen = given(enrolled())
    error = then_rejected(citizen, fine("TP-LI", citizen=LI_WEI))
    assert isinstance(error, RuleViolation)
    assert error.field == "citizen"
    assert WANG_FANG in error.message
