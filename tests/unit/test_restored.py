"""Records and logged records built from their slots are the ones their constructors build."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain.identity import ResidentId
from ledger.domain.records import Record, RecordKey, from_fields, record_key, restored
from ledger.log import LoggedRecord, UnreadableLog, logged

RESIDENT = ResidentId("110101199003078515")
RESIDENT_ID = uuid.UUID(int=7)
TARGET = RecordKey("traffic-police", "TP-1")
CASES = [
    ("citizen.enrolled", None, None, None, None, None, None),
    ("infraction.recorded", "traffic_fine", Decimal("200.00"), None, None, None, None),
    ("verification.recorded", "degree", None, "CRED-7", None, None, None),
    ("dispute.resolved", None, None, None, "wrong person", "removed", TARGET),
]


@pytest.mark.parametrize("case", CASES)
def test_a_restored_record_is_the_record_its_constructor_makes(case: tuple[Any, ...]) -> None:
    kind_of, kind, amount, credential, reason, outcome, target = case
    parts = (kind_of, RESIDENT, "bank-ccb", "R-1", date(2024, 5, 6), kind, amount,
             credential, reason, outcome)  # fmt: skip
    made = Record(*parts, target)
    back = restored(
        *parts, None if target is None else record_key(target.authority, target.reference)
    )
    assert back == made
    # Fields equality leaves out: the key, the digest, the hash, the type of the target.
    assert (back.key, back.digest, hash(back)) == (made.key, made.digest, hash(made))
    assert type(back.key) is RecordKey
    assert type(back.target) is type(made.target)
    assert [getattr(back, f.name) for f in dataclasses.fields(Record)] == [
        getattr(made, f.name) for f in dataclasses.fields(Record)
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.kind = "other"  # type: ignore[misc]


@pytest.mark.parametrize("case", CASES)
def test_a_record_made_from_loaded_fields_is_the_record_its_constructor_makes(
    case: tuple[Any, ...],
) -> None:
    kind_of, kind, amount, credential, reason, outcome, target = case
    fields: dict[str, Any] = {
        "type": kind_of, "citizen": RESIDENT, "authority": "bank-ccb", "reference": "R-1",
        "occurred_on": date(2024, 5, 6),
    }  # fmt: skip
    # Only the fields a type has, as validation loads them.
    optional = {"kind": kind, "amount": amount, "credential": credential, "reason": reason,
                "outcome": outcome, "target": target}  # fmt: skip
    fields.update({name: value for name, value in optional.items() if value is not None})
    made = Record(**fields)
    back = from_fields(fields)
    assert [getattr(back, f.name) for f in dataclasses.fields(Record)] == [
        getattr(made, f.name) for f in dataclasses.fields(Record)
    ]
    assert (back.key, back.digest, hash(back)) == (made.key, made.digest, hash(made))
    assert type(back.key) is RecordKey
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.kind = "other"  # type: ignore[misc]


def test_a_record_key_made_from_its_parts_is_the_one_its_constructor_makes() -> None:
    key = record_key("traffic-police", "TP-1")
    assert (key, hash(key), str(key), type(key)) == (TARGET, hash(TARGET), str(TARGET), RecordKey)


def test_a_logged_record_read_is_the_one_its_constructor_makes() -> None:
    fields = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2026-03-01T04:00:00+00:00"},
        "authority": "bank-ccb", "reference": "R-1",
        "occurred_on": {"_type_": "date", "_data_": "2024-05-06"},
        "target": {"_type_": "record_key", "_data_": ["traffic-police", "TP-1"]},
        "outcome": "removed",
    }  # fmt: skip
    read = logged(9, RESIDENT_ID, 3, "dispute.resolved", RESIDENT, dict(fields))
    record = Record("dispute.resolved", RESIDENT, "bank-ccb", "R-1", date(2024, 5, 6),
                    outcome="removed", target=TARGET)  # fmt: skip
    assert read == LoggedRecord(9, datetime(2026, 3, 1, 4, tzinfo=UTC), RESIDENT_ID, 3, record)
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.version = 4  # type: ignore[misc]
    # A target that is not a pair is a log that cannot be read, named by its position.
    fields["target"] = {"_type_": "record_key", "_data_": ["traffic-police"]}
    with pytest.raises(UnreadableLog, match=r"position 9: the stored dispute\.resolved"):
        logged(9, RESIDENT_ID, 3, "dispute.resolved", RESIDENT, dict(fields))
