"""Builders for wire records and a seeded ledger, shared by tests and features."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from ledger.application import AppendReport, Ledger
from ledger.domain.identity import make_resident_id

WANG_FANG = make_resident_id("110105", date(1990, 3, 7), 124)
LI_WEI = make_resident_id("310104", date(1985, 11, 30), 351)
ZHANG_MIN = make_resident_id("440305", date(2000, 2, 29), 18)

AUTHORITIES: dict[str, tuple[str, list[str]]] = {
    "civil-registry": ("Civil Registry", ["citizen.enrolled"]),
    "traffic-police": (
        "Traffic Police",
        ["infraction.recorded:traffic_fine", "infraction.settled"],
    ),
    "tax-bureau": (
        "Tax Bureau",
        ["infraction.recorded:tax_arrears", "infraction.settled", "payment.recorded"],
    ),
    "peoples-court": (
        "People's Court",
        [
            "infraction.recorded:court_judgment",
            "infraction.recorded:judgment_default",
            "infraction.recorded:criminal_conviction",
            "infraction.settled",
            "record.vacated",
        ],
    ),
    "bank": (
        "Bank",
        [
            "infraction.recorded:loan_default",
            "infraction.settled",
            "payment.recorded:loan_repaid_on_time",
        ],
    ),
    "university": ("University", ["verification.recorded", "verification.revoked"]),
    "dispute-office": ("Dispute Office", ["record.disputed", "dispute.resolved"]),
    "repair-office": ("Credit Repair Office", ["credit.repaired"]),
}


def register_authorities(ledger: Ledger) -> None:
    for authority_id, (name, may_issue) in AUTHORITIES.items():
        ledger.register_authority(authority_id, name, may_issue)


def record(record_type: str, reference: str, citizen: str = WANG_FANG,
           authority: str | None = None, occurred_on: str = "2025-01-10",
           **fields: Any) -> dict[str, Any]:  # fmt: skip
    """A wire record; the authority defaults to one entitled to the type."""
    if authority is None and record_type == "infraction.settled":
        authority = fields["target"]["authority"]
    if authority is None:
        authority = _DEFAULT_ISSUER[fields.get("kind", record_type)]
    return {
        "type": record_type, "citizen": citizen, "authority": authority,
        "reference": reference, "occurred_on": occurred_on, **fields,
    }  # fmt: skip


def target(authority: str, reference: str) -> dict[str, str]:
    return {"authority": authority, "reference": reference}


def enrolled(citizen: str = WANG_FANG, reference: str | None = None,
             occurred_on: str = "2010-01-01") -> dict[str, Any]:  # fmt: skip
    return record("citizen.enrolled", reference or f"E-{citizen}", citizen,
                  occurred_on=occurred_on)  # fmt: skip


def fine(reference: str, citizen: str = WANG_FANG, amount: str = "200.00",
         occurred_on: str = "2025-01-10") -> dict[str, Any]:  # fmt: skip
    return record("infraction.recorded", reference, citizen, kind="traffic_fine",
                  amount=amount, occurred_on=occurred_on)  # fmt: skip


def lines(*records: dict[str, Any] | str) -> list[tuple[int, str]]:
    """Number records as NDJSON lines from 1; strings go in as they are."""
    return [(n, r if isinstance(r, str) else json.dumps(r)) for n, r in enumerate(records, start=1)]


def append(ledger: Ledger, *records: dict[str, Any] | str) -> AppendReport:
    return ledger.append_lines(lines(*records))


_DEFAULT_ISSUER = {
    "citizen.enrolled": "civil-registry",
    "traffic_fine": "traffic-police",
    "tax_arrears": "tax-bureau",
    "tax_paid_on_time": "tax-bureau",
    "court_judgment": "peoples-court",
    "judgment_default": "peoples-court",
    "criminal_conviction": "peoples-court",
    "loan_default": "bank",
    "loan_repaid_on_time": "bank",
    "degree": "university",
    "professional_license": "university",
    "verification.revoked": "university",
    "record.disputed": "dispute-office",
    "dispute.resolved": "dispute-office",
    "record.vacated": "peoples-court",
    "credit.repaired": "repair-office",
}
