"""How events are encoded in the store: eventsourcing's tagged JSON, written by orjson.

The stored form is eventsourcing's tagged JSON (values JSON cannot represent are
tagged `{"_type_": ..., "_data_": ...}`), so either transcoder reads what the other
wrote; orjson only makes it several times faster. A record key is a tuple, which
orjson hands to its transcoding and tags, where the standard library's encoder would
write a bare list: only this transcoder writes.

`record_events` writes a citizen's new records straight from the records, with no
event object: the same bytes the mapper writes for the aggregate's events, and with
them the parts of each event's Merkle leaf, so the leaf is never decoded back.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, StoredEvent, Transcoding
from eventsourcing.utils import get_topic

from ledger.domain import RECORD_TYPE_OF_EVENT, Citizen
from ledger.domain.records import Record, RecordKey

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


# A new event's leaf document but for its position: (aggregate id as text, version,
# topic, recorded at, payload without tags), as `tree.leaf_document` takes them.
LeafParts = tuple[str, int, str, str, dict[str, Any]]
# One field of an event from its record: the value as stored (tagged) and as the leaf
# shows it.
_Field = Callable[[Record], tuple[Any, Any]]
_CITIZEN_TOPIC = get_topic(Citizen)


def _date(record: Record) -> tuple[Any, Any]:
    text = record.occurred_on.isoformat()
    return {"_type_": "date", "_data_": text}, text


def _amount(record: Record) -> tuple[Any, Any]:
    if record.amount is None:
        return None, None
    text = str(record.amount)
    return {"_type_": "decimal_str", "_data_": text}, text


def _target(record: Record) -> tuple[Any, Any]:
    key = record.target
    assert key is not None  # the schemas require it of every type whose event has one
    return (
        {"_type_": "record_key", "_data_": [key.authority, key.reference]},
        {"authority": key.authority, "reference": key.reference},
    )


def _attribute(name: str) -> _Field:
    def field(record: Record) -> tuple[Any, Any]:
        value = getattr(record, name)
        return value, value

    return field


_FIELDS: dict[str, _Field] = {
    "originator_topic": lambda _: (_CITIZEN_TOPIC, _CITIZEN_TOPIC),
    "resident_id": lambda record: (record.citizen.value, record.citizen.value),
    "occurred_on": _date,
    "amount": _amount,
    "target": _target,
}


def _layout(event_class: type[Any]) -> tuple[str, list[tuple[str, _Field]]]:
    """An event class's topic and its stored fields in the order the mapper writes
    them (the dataclass's, as `vars` of an event has them), each with its encoding."""
    if getattr(event_class, "class_version", 1) != 1:
        raise TypeError(f"{event_class.__qualname__}: versioned events are not encoded here")
    names = [f.name for f in dataclasses.fields(event_class)]
    if names[:3] != ["originator_id", "originator_version", "timestamp"]:
        raise TypeError(f"{event_class.__qualname__}: not a citizen event as expected")
    return get_topic(event_class), [
        (name, _FIELDS.get(name) or _attribute(name)) for name in names[3:]
    ]


_LAYOUTS = {record_type: _layout(cls) for cls, record_type in RECORD_TYPE_OF_EVENT.items()}


def record_events(
    new: Sequence[tuple[uuid.UUID, int, Record]], at: datetime
) -> tuple[list[StoredEvent], list[LeafParts]]:
    """Each (citizen id, version, record) as the stored event the mapper writes for the
    aggregate's event recorded `at`, and the parts of its leaf."""
    recorded_at = at.isoformat()
    timestamp = {"_type_": "datetime_iso", "_data_": recorded_at}
    events: list[StoredEvent] = []
    leaves: list[LeafParts] = []
    ids: dict[uuid.UUID, str] = {}
    for cid, version, record in new:
        topic, fields = _LAYOUTS[record.type]
        state: dict[str, Any] = {"timestamp": timestamp}
        payload: dict[str, Any] = {}
        for name, field in fields:
            state[name], payload[name] = field(record)
        events.append(StoredEvent(cid, version, topic, orjson.dumps(state)))
        text = ids.get(cid)
        if text is None:
            text = ids[cid] = str(cid)
        leaves.append((text, version, topic, recorded_at, payload))
    return events, leaves
