"""Stored events decoded straight from their bytes into what readers are given: the
record type a topic names is looked up in a fixed table, never imported; a row that
cannot be read is an UnreadableLog naming its position."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from eventsourcing.utils import get_topic

from ledger.domain import RECORD_TYPE_OF_EVENT, USE_OF_EVENT, Citizen
from ledger.domain import records as r
from ledger.domain.facts import CitizenFacts, FactParts
from ledger.domain.identity import ResidentId
from ledger.domain.records import Record, RecordKey, record_key, restored, slot_setters
from ledger.log.entries import LoggedRecord, LoggedUse, UnreadableLog
from ledger.storage.recorder import LogRow

# The record type of each citizen event's topic: looked up, never imported.
RECORD_TYPE_OF_TOPIC: Mapping[str, str] = {
    get_topic(cls): record_type for cls, record_type in RECORD_TYPE_OF_EVENT.items()
}
# What each use of a citizen's file is called, by its topic: uses are no records, so
# the readers of records skip them as they skip the registries' events.
USE_OF_TOPIC: Mapping[str, str] = {get_topic(cls): use for cls, use in USE_OF_EVENT.items()}
CITIZEN_TOPIC_PREFIX = get_topic(Citizen) + "."

_new = object.__new__
_POSITION, _RECORDED_AT, _CITIZEN_ID, _VERSION, _RECORD = slot_setters(
    LoggedRecord, "position", "recorded_at", "citizen_id", "version", "record"
)


def record_type_of_topic(topic: str) -> str | None:
    """The record type a citizen event's topic stands for; None for any other topic."""
    return RECORD_TYPE_OF_TOPIC.get(topic)


def record_from_payload(
    record_type: str, resident: ResidentId, payload: Mapping[str, Any]
) -> Record:
    """A record from a leaf document's payload (plain strings, see ledger.transparency.tree)."""
    target = payload.get("target")
    amount = payload.get("amount")
    return Record(
        type=record_type,
        citizen=resident,
        authority=payload["authority"],
        reference=payload["reference"],
        occurred_on=date.fromisoformat(payload["occurred_on"]),
        kind=payload.get("kind"),
        amount=Decimal(amount) if amount is not None else None,
        credential=payload.get("credential"),
        reason=payload.get("reason"),
        outcome=payload.get("outcome"),
        target=RecordKey(target["authority"], target["reference"]) if target else None,
    )


def record_type_at(position: int, topic: str) -> str | None:
    record_type = RECORD_TYPE_OF_TOPIC.get(topic)
    if (
        record_type is None
        and topic.startswith(CITIZEN_TOPIC_PREFIX)
        and (topic not in USE_OF_TOPIC)
    ):
        raise UnreadableLog(
            f"position {position}: {topic} is not a type of record this ledger knows"
        )
    return record_type


def grouped(rows: Iterable[LogRow]) -> Iterator[tuple[uuid.UUID, list[LoggedRecord]]]:
    """Rows in (citizen, version) order as each citizen's records; events of other
    aggregates are skipped."""
    current: uuid.UUID | None = None
    last: Any = None
    resident: ResidentId | None = None
    records: list[LoggedRecord] = []
    for position, originator, version, topic, state in rows:
        record_type = record_type_at(position, topic)
        if record_type is None:
            continue
        if originator != last:
            if current is not None:
                yield current, records
            last = originator
            current = as_uuid(originator)
            records, resident = [], None
        fields = fields_of(position, state)
        if resident is None:
            if record_type != r.ENROLLED:
                raise UnreadableLog(
                    f"position {position}: citizen {current} has records before the enrolment"
                )
            resident = resident_of(position, fields)
        assert current is not None
        records.append(logged(position, current, version, record_type, resident, fields))
    if current is not None:
        yield current, records


def citizens_rows(
    rows: Iterable[LogRow],
) -> Iterator[tuple[int, uuid.UUID, int, str, dict[str, Any]]]:
    """A page's rows that are citizens' records, as (position, citizen, version, record
    type, stored fields); each citizen's id is made once."""
    cids: dict[Any, uuid.UUID] = {}
    for position, originator, version, topic, state in rows:
        record_type = record_type_at(position, topic)
        if record_type is None:
            continue
        cid = cids.get(originator)
        if cid is None:
            cid = cids[originator] = as_uuid(originator)
        yield position, cid, version, record_type, fields_of(position, state)


def folded(rows: Iterable[LogRow]) -> Iterator[tuple[uuid.UUID, CitizenFacts]]:
    """Rows in (citizen, version) order as each citizen's facts; events of other
    aggregates are skipped. The same walk as `grouped`, kept apart: sharing it through
    a generator of decoded rows cost a rebuild an eighth of its decoding."""
    current: uuid.UUID | None = None
    last: Any = None
    facts: CitizenFacts | None = None
    type_of = RECORD_TYPE_OF_TOPIC.get
    for position, originator, _, topic, state in rows:
        record_type = type_of(topic)
        if record_type is None:
            record_type_at(position, topic)
            continue
        fields, parts = fact_fields(position, record_type, state)
        if originator != last:
            if current is not None and facts is not None:
                yield current, facts
            last = originator
            current = as_uuid(originator)
            if record_type != r.ENROLLED:
                raise UnreadableLog(
                    f"position {position}: citizen {current} has records before the enrolment"
                )
            # The identity number as stored: the enrolment was checked as it was written.
            resident = fields.get("resident_id")
            if type(resident) is not str:
                resident = resident_of(position, fields).value
            facts = CitizenFacts(resident)
        assert facts is not None
        facts.add(record_type, *parts)
    if current is not None and facts is not None:
        yield current, facts


def fact_fields(position: int, record_type: str, state: bytes) -> tuple[dict[str, Any], FactParts]:
    """A stored event's fields, and what a citizen's facts take of it besides its type
    (key, kind, date, target, outcome), as `CitizenFacts.add` takes them: in one call,
    as a rebuild and a catch-up read every event so. An event that cannot be read is
    an UnreadableLog naming its position."""
    try:
        return _facts_of_state(state)
    except (orjson.JSONDecodeError, AttributeError, *_UNREADABLE):
        fields_of(position, state)  # not JSON, or not an object
        try:
            return _facts_of_state(state)
        except _UNREADABLE as e:
            raise _unreadable(position, record_type, e) from None


_UNREADABLE = (KeyError, TypeError, ValueError)
_loads = orjson.loads
_day = date.fromisoformat


def _facts_of_state(state: bytes) -> tuple[dict[str, Any], FactParts]:
    fields: dict[str, Any] = _loads(state)
    get = fields.get
    target = get("target")
    if target is not None:
        # Two fields, or the record cannot be read (a key of one field would pass).
        authority, reference = target["_data_"]
        target = _new_tuple(RecordKey, (authority, reference))
    return fields, (
        _new_tuple(RecordKey, (fields["authority"], fields["reference"])),
        get("kind"),
        _day(fields["occurred_on"]["_data_"]),
        target,
        get("outcome"),
    )


_new_tuple = tuple.__new__


def resident_of(position: int, enrolment: Mapping[str, Any]) -> ResidentId:
    try:
        return ResidentId(enrolment["resident_id"])
    except (KeyError, TypeError, ValueError) as e:
        raise _unreadable(position, r.ENROLLED, e) from None


def _unreadable(position: int, record_type: str, error: Exception) -> UnreadableLog:
    return UnreadableLog(
        f"position {position}: the stored {record_type} cannot be read "
        f"({type(error).__name__}: {error})"
    )


def fields_of(position: int, state: Any) -> dict[str, Any]:
    try:
        fields = orjson.loads(state)
    except orjson.JSONDecodeError:
        raise UnreadableLog(f"position {position}: the stored event is not JSON") from None
    if type(fields) is not dict:
        raise UnreadableLog(f"position {position}: the stored event is not a JSON object")
    return fields


def logged(
    position: int,
    cid: uuid.UUID,
    version: int,
    record_type: str,
    resident: ResidentId,
    fields: dict[str, Any],
) -> LoggedRecord:
    try:
        record, recorded_at = _record(record_type, resident, fields)
    except (KeyError, TypeError, ValueError) as e:
        raise _unreadable(position, record_type, e) from None
    # As LoggedRecord(...) makes it, in half the time (see records.slot_setters): one is
    # made for every event read.
    logged = _new(LoggedRecord)
    _POSITION(logged, position)
    _RECORDED_AT(logged, recorded_at)
    _CITIZEN_ID(logged, cid)
    _VERSION(logged, version)
    _RECORD(logged, record)
    return logged


def _record(
    record_type: str, resident: ResidentId, fields: dict[str, Any]
) -> tuple[Record, datetime]:
    """Fields as eventsourcing's JSON transcoder tagged them: dates, amounts, times and
    targets as {"_type_": ..., "_data_": ...}."""
    get = fields.get
    amount = get("amount")
    target = get("target")
    record = restored(
        record_type,
        resident,
        fields["authority"],
        fields["reference"],
        date.fromisoformat(fields["occurred_on"]["_data_"]),
        get("kind"),
        Decimal(amount["_data_"]) if amount is not None else None,
        get("credential"),
        get("reason"),
        get("outcome"),
        record_key(*target["_data_"]) if target is not None else None,
    )
    return record, datetime.fromisoformat(fields["timestamp"]["_data_"])


def stored_enrolment(
    cid: uuid.UUID, version: int, topic: str, state: bytes
) -> tuple[Record, datetime]:
    """A citizen's first stored event, which must be their enrolment, as its record and
    the time it was recorded, decoded as the log's port decodes the log (no event
    object): what a writer loading a citizen opens their history with."""
    record_type = _stored_type(cid, version, topic)
    if record_type != r.ENROLLED:
        raise UnreadableLog(
            f"citizen {cid} version {version}: a {record_type} before the enrolment"
        )
    try:
        fields = orjson.loads(state)
        return _record(record_type, ResidentId(fields["resident_id"]), fields)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise _unreadable_stored(cid, version, record_type, e) from None


def stored_facts(
    cid: uuid.UUID, version: int, topic: str, state: bytes
) -> tuple[str, FactParts, datetime]:
    """One of a citizen's stored records after their enrolment as what their facts take
    of it (its type and what `fact_fields` gives) and the time it was recorded: what a writer
    loading a citizen needs of it, without the record itself (its amount, its
    credential, its reason)."""
    record_type = _stored_type(cid, version, topic)
    try:
        fields, parts = _facts_of_state(state)
        return record_type, parts, datetime.fromisoformat(fields["timestamp"]["_data_"])
    except (orjson.JSONDecodeError, AttributeError, *_UNREADABLE) as e:
        raise _unreadable_stored(cid, version, record_type, e) from None


def _stored_type(cid: uuid.UUID, version: int, topic: str) -> str:
    record_type = RECORD_TYPE_OF_TOPIC.get(topic)
    if record_type is None:
        raise UnreadableLog(
            f"citizen {cid} version {version}: {topic} is not a type of record this ledger knows"
        )
    return record_type


def _unreadable_stored(
    cid: uuid.UUID, version: int, record_type: str, error: Exception
) -> UnreadableLog:
    # Named only on failure: naming a citizen costs as much as decoding a record.
    return UnreadableLog(
        f"citizen {cid} version {version}: the stored {record_type} cannot be read "
        f"({type(error).__name__}: {error})"
    )


def use_of(
    position: int, cid: uuid.UUID, version: int, use: str, fields: dict[str, Any]
) -> LoggedUse:
    try:
        recorded_at = datetime.fromisoformat(fields.pop("timestamp")["_data_"])
        fields.pop("originator_topic", None)
        shown = {k: v["_data_"] if type(v) is dict and "_data_" in v else v
                 for k, v in fields.items()}  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        raise UnreadableLog(
            f"position {position}: the stored {use} cannot be read ({type(e).__name__}: {e})"
        ) from None
    return LoggedUse(position, recorded_at, cid, version, use, shown)


def stored_use_time(cid: uuid.UUID, version: int, topic: str, state: bytes) -> datetime | None:
    """When a stored use of a citizen's file (an inquiry or a decision) was recorded;
    None when the event is no use but a record. What a writer loading a citizen needs
    of a use: it moves their version on, and nothing else."""
    if topic not in USE_OF_TOPIC:
        return None
    try:
        return datetime.fromisoformat(orjson.loads(state)["timestamp"]["_data_"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UnreadableLog(
            f"citizen {cid} version {version}: the stored {USE_OF_TOPIC[topic]} cannot be "
            f"read ({type(e).__name__}: {e})"
        ) from None


def as_uuid(value: Any) -> uuid.UUID:
    """A UUID from a stored id: a UUID already, its 16 bytes or its text as the database
    gives them (then made straight from its number, in half the time of UUID())."""
    if type(value) is uuid.UUID:
        return value
    if type(value) is bytes and len(value) == 16:
        number = int.from_bytes(value, "big")
    elif type(value) is str and len(value) == 36:
        number = int(value.replace("-", ""), 16)
    else:
        return uuid.UUID(str(value))
    made = _object_new(uuid.UUID)
    _SET_INT(made, number)
    _SET_SAFE(made, uuid.SafeUUID.unknown)
    return made


_object_new = object.__new__
_SET_INT, _SET_SAFE = slot_setters(uuid.UUID, "int", "is_safe")
