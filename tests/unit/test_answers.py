"""How the HTTP service writes what its routes answer."""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

from ledger.domain.records import RecordKey
from scripts.service.access import dumps

KEY = RecordKey("traffic-police", "TP-1")
AS_WIRE = {"authority": "traffic-police", "reference": "TP-1"}


@dataclass(frozen=True)
class Held:
    keys: list[RecordKey]


def test_a_record_key_is_written_as_its_two_named_fields_not_as_a_list() -> None:
    assert orjson.loads(dumps({"target": KEY, "held": Held([KEY])})) == {
        "target": AS_WIRE, "held": {"keys": [AS_WIRE]},
    }  # fmt: skip


def test_an_answer_orjson_refuses_is_written_with_its_record_keys_the_same() -> None:
    # An integer beyond 64 bits, as a query may echo one back, takes the other encoder.
    big = 2**70
    written = json.loads(dumps({"echo": big, "target": KEY, "held": Held([KEY]), "t": (KEY,)}))
    assert written == {"echo": big, "target": AS_WIRE, "held": {"keys": [AS_WIRE]},
                       "t": [AS_WIRE]}  # fmt: skip
