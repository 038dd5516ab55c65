"""Records as the ledger accepts them: types, kinds and the `Record` value object.

A `Record` is what a wire line becomes once its shape is valid; whether it may be
written (entitlement, enrolment, target state) is decided by the aggregates.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from ledger.domain.identity import ResidentId

ENROLLED = "citizen.enrolled"
INFRACTION = "infraction.recorded"
SETTLED = "infraction.settled"
PAYMENT = "payment.recorded"
VERIFICATION = "verification.recorded"
REVOKED = "verification.revoked"
DISPUTED = "record.disputed"
RESOLVED = "dispute.resolved"
VACATED = "record.vacated"
REPAIRED = "credit.repaired"

RECORD_TYPES = (
    ENROLLED, INFRACTION, SETTLED, PAYMENT, VERIFICATION,
    REVOKED, DISPUTED, RESOLVED, VACATED, REPAIRED,
)  # fmt: skip

INFRACTION_KINDS = (
    "traffic_fine", "tax_arrears", "court_judgment",
    "judgment_default", "loan_default", "criminal_conviction",
)  # fmt: skip
UNSETTLEABLE_KINDS = frozenset({"criminal_conviction"})
PAYMENT_KINDS = ("tax_paid_on_time", "loan_repaid_on_time")
VERIFICATION_KINDS = ("degree", "professional_license")
OUTCOMES = ("upheld", "removed")

KINDS: dict[str, tuple[str, ...]] = {
    INFRACTION: INFRACTION_KINDS,
    PAYMENT: PAYMENT_KINDS,
    VERIFICATION: VERIFICATION_KINDS,
}

TARGETED_TYPES = frozenset({SETTLED, REVOKED, DISPUTED, RESOLVED, VACATED, REPAIRED})

CENT = Decimal("0.01")
# \Z because marshmallow's Regexp validator matches from the start, not the whole string.
REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9._:/-]{1,64}\Z")


class RecordKey(NamedTuple):
    """(authority, reference): the identity of a record across the whole ledger.

    A named tuple, so that hashing and comparing one (every fold of a citizen's records
    looks several up) is the tuple's own, in C, not a Python call: a twelfth of a
    catch-up worker's time went to a dataclass's `__hash__`. It equals the plain tuple
    of the same two strings."""

    authority: str
    reference: str

    def __str__(self) -> str:
        return f"{self.authority}/{self.reference}"


@dataclass(frozen=True, slots=True)
class Record:
    """One valid wire record, normalised (upper-case check character, Decimal amount)."""

    type: str
    citizen: ResidentId
    authority: str
    reference: str
    occurred_on: date
    kind: str | None = None
    amount: Decimal | None = None
    credential: str | None = None
    reason: str | None = None
    outcome: str | None = None
    target: RecordKey | None = None
    key: RecordKey = field(init=False, repr=False, compare=False)
    _digest: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", RecordKey(self.authority, self.reference))

    @property
    def digest(self) -> bytes:
        """SHA-256 of the canonical content: equal digests mean the same record.

        Amounts are compared by value to the cent, so "200" and "200.00" are one record.
        """
        if not self._digest:
            object.__setattr__(self, "_digest", self._content_digest())
        return self._digest

    def to_wire(self) -> dict[str, Any]:
        """The record in its wire form, with only the fields its type has."""
        wire: dict[str, Any] = {
            "type": self.type,
            "citizen": self.citizen.value,
            "authority": self.authority,
            "reference": self.reference,
            "occurred_on": self.occurred_on.isoformat(),
        }
        for name in ("kind", "credential", "reason", "outcome"):
            value = getattr(self, name)
            if value is not None:
                wire[name] = value
        if self.amount is not None:
            wire["amount"] = str(self.amount)
        if self.target is not None:
            wire["target"] = {
                "authority": self.target.authority,
                "reference": self.target.reference,
            }
        return wire

    def _content_digest(self) -> bytes:
        wire = self.to_wire()
        if self.amount is not None:
            wire["amount"] = str(self.amount.quantize(CENT))
        return hashlib.sha256(orjson.dumps(wire, option=orjson.OPT_SORT_KEYS)).digest()


def restored(
    record_type: str,
    citizen: ResidentId,
    authority: str,
    reference: str,
    occurred_on: date,
    kind: str | None,
    amount: Decimal | None,
    credential: str | None,
    reason: str | None,
    outcome: str | None,
    target: RecordKey | None,
) -> Record:
    """The record a stored event holds, from its parts: equal to `Record(...)` of them,
    made in half the time. The log's readers make one of every event they read, and a
    frozen dataclass's own __init__ sets each field through object.__setattr__; this
    sets the slots directly."""
    record = _new(Record)
    _TYPE(record, record_type)
    _CITIZEN(record, citizen)
    _AUTHORITY(record, authority)
    _REFERENCE(record, reference)
    _OCCURRED_ON(record, occurred_on)
    _KIND(record, kind)
    _AMOUNT(record, amount)
    _CREDENTIAL(record, credential)
    _REASON(record, reason)
    _OUTCOME(record, outcome)
    _TARGET(record, target)
    _KEY(record, record_key(authority, reference))
    _DIGEST(record, b"")
    return record


def from_fields(fields: Mapping[str, Any]) -> Record:
    """`Record(**fields)`, made as `restored` makes records: validation makes one of
    every record it loads."""
    get = fields.get
    return restored(
        fields["type"], fields["citizen"], fields["authority"], fields["reference"],
        fields["occurred_on"], get("kind"), get("amount"), get("credential"), get("reason"),
        get("outcome"), get("target"),
    )  # fmt: skip


def record_key(authority: str, reference: str) -> RecordKey:
    """RecordKey(authority, reference), made as `restored` makes records."""
    return _tuple(RecordKey, (authority, reference))


def slot_setters(cls: type, *names: str) -> list[Any]:
    """The setters of a slotted class's fields, which a frozen dataclass's __setattr__
    does not stand in front of: for building, in the hottest loops, a value its frozen
    __init__ would build in twice the time."""
    return [cls.__dict__[name].__set__ for name in names]


_new = object.__new__
(_TYPE, _CITIZEN, _AUTHORITY, _REFERENCE, _OCCURRED_ON, _KIND, _AMOUNT, _CREDENTIAL, _REASON,
 _OUTCOME, _TARGET, _KEY, _DIGEST) = slot_setters(
    Record, "type", "citizen", "authority", "reference", "occurred_on", "kind", "amount",
    "credential", "reason", "outcome", "target", "key", "_digest",
)  # fmt: skip
_tuple = tuple.__new__
