"""How events are encoded in the store: eventsourcing's tagged JSON, written by orjson.

The stored form is exactly what eventsourcing's `JSONTranscoder` writes (values it
cannot represent are tagged `{"_type_": ..., "_data_": ...}`), so either transcoder
reads what the other wrote; orjson only makes it several times faster.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding

from ledger.domain.records import RecordKey

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_CONTAINERS = (dict, list)


class OrjsonTranscoder(JSONTranscoder):
    """eventsourcing's JSON transcoder, with orjson doing the encoding and parsing."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)

    def decode(self, data: bytes) -> Any:
        return self._untag(orjson.loads(data))

    def _untag(self, value: Any) -> Any:
        # Only containers can hold tags; scalars are returned without a call.
        if type(value) is dict:
            untagged = {
                k: self._untag(v) if type(v) in _CONTAINERS else v for k, v in value.items()
            }
            return self._decode_obj(untagged) if "_type_" in untagged else untagged
        if type(value) is list:
            return [self._untag(v) if type(v) in _CONTAINERS else v for v in value]
        return value


class DateAsISO(Transcoding):
    type = date
    name = "date"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class RecordKeyAsList(Transcoding):
    type = RecordKey
    name = "record_key"

    def encode(self, obj: RecordKey) -> list[str]:
        return [obj.authority, obj.reference]

    def decode(self, data: list[str]) -> RecordKey:
        return RecordKey(data[0], data[1])
