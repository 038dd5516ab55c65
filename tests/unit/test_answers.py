"""How the HTTP service writes what its routes answer."""

from __future__ import annotations

import orjson

from ledger.domain.records import RecordKey
from scripts.service.access import dumps


def test_a_record_key_is_written_as_its_two_named_fields_not_as_a_list() -> None:
    written = orjson.loads(dumps({"target": RecordKey("traffic-police", "TP-1")}))
    assert written == {"target": {"authority": "traffic-police", "reference": "TP-1"}}
