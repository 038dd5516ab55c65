"""The one way readers see the ledger's log: its head, pages of records after a
position, every citizen's records grouped by citizen, one citizen's records, a wait
for new records, and the leaf documents the Merkle tree hashes.

Records are decoded straight from the stored bytes (orjson, then the record type the
topic names in a fixed table), never through eventsourcing's mapper or event objects,
and a topic is never resolved: stored content cannot choose what gets imported.
Events that are not a citizen's record (the authority registry's) are skipped, though
they still move the end of a page. Readers (projections, audit histories, bundles,
`ledger verify`) use only this module; the SQL behind it lives in the recorders, one
implementation per dialect, and nothing here writes.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import orjson
import psycopg
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from ledger.domain import RECORD_TYPE_OF_EVENT, USE_OF_EVENT, Citizen
from ledger.domain import records as r
from ledger.domain.facts import CitizenFacts
from ledger.domain.identity import ResidentId
from ledger.domain.records import Record, RecordKey, record_key, restored, slot_setters
from ledger.errors import LedgerError
from ledger.storage import LedgerRecorder, connect_postgres
from ledger.storage.recorder import LogRow
from ledger.transparency import merkle
from ledger.transparency.tree import leaf_data

# The record type of each citizen event's topic: looked up, never imported.
RECORD_TYPE_OF_TOPIC: Mapping[str, str] = {
    get_topic(cls): record_type for cls, record_type in RECORD_TYPE_OF_EVENT.items()
}
# What each use of a citizen's file is called, by its topic: uses are no records, so
# the readers of records skip them as they skip the registries' events.
USE_OF_TOPIC: Mapping[str, str] = {get_topic(cls): use for cls, use in USE_OF_EVENT.items()}
CITIZEN_TOPIC_PREFIX = get_topic(Citizen) + "."
# How often a wait looks at the head when nothing tells it of new records.
SQLITE_POLL = 0.05
RESIDENT_CACHE = 100_000
# What encoding a stored event as a leaf raises when the event has been altered into
# something that is not the JSON object it was.
UNENCODABLE = (LookupError, TypeError, ValueError)

T = TypeVar("T")


class UnreadableLog(LedgerError):
    """A stored event cannot be read as a citizen's record."""

    field = "log"


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """One citizen's record as the log holds it."""

    position: int
    recorded_at: datetime
    citizen_id: uuid.UUID
    version: int
    record: Record

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "recorded_at": self.recorded_at.isoformat(),
            **self.record.to_wire(),
        }


_new = object.__new__
_POSITION, _RECORDED_AT, _CITIZEN_ID, _VERSION, _RECORD = slot_setters(
    LoggedRecord, "position", "recorded_at", "citizen_id", "version", "record"
)


class LoggedFact(NamedTuple):
    """A citizen's record as their facts take it (ledger.domain.facts), at its
    position: the lighter read of a page that scoring needs (no recorded time, no
    amount, no Record)."""

    position: int
    type: str
    key: RecordKey
    kind: str | None
    occurred_on: date
    target: RecordKey | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class FactPage:
    """A stretch of the log as the facts see it: each citizen's records on it in log
    order, the identity numbers of those enrolled on it, and the last position read
    (as `Page.end`)."""

    citizens: dict[uuid.UUID, list[LoggedFact]]
    enrolled: dict[uuid.UUID, str]
    end: int


@dataclass(frozen=True, slots=True)
class Page:
    """The citizens' records of a stretch of the log, and the last position read
    (registry events included; the position asked after when there was nothing)."""

    records: tuple[LoggedRecord, ...]
    end: int


@dataclass(frozen=True, slots=True)
class LoggedUse:
    """A relying party's use of a citizen's file (an inquiry or a decision) as the log
    holds it; `fields` are the event's own (party, purpose, as_of, the position it
    read up to, and what it found), dates as ISO text."""

    position: int
    recorded_at: datetime
    citizen_id: uuid.UUID
    version: int
    use: str
    fields: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "recorded_at": self.recorded_at.isoformat(),
                "use": self.use, **self.fields}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CitizenFile:
    """Everything the log holds of one citizen, read at once: their records, the uses
    of their file, and the version of their last event (0 when there is none)."""

    records: list[LoggedRecord]
    uses: list[LoggedUse]
    version: int


@dataclass(frozen=True, slots=True)
class LeafHashes:
    """The leaf hashes of a run of positions; b"" where the stored event can no longer
    be encoded as a leaf (not JSON, or not a JSON object)."""

    positions: list[int]
    hashes: list[bytes]


@dataclass(frozen=True, slots=True)
class Leaf:
    """The leaf document of a position; None when the stored event is no longer JSON."""

    position: int
    document: bytes | None


def partition_of(citizen: uuid.UUID, parts: int) -> int:
    """The partition (0 to parts - 1) a citizen falls in, the same in every process:
    ids are uniform (uuid5), so the id space cut into `parts` equal ranges shares
    citizens out evenly, and a recorder reads one share as one range of its index."""
    return (citizen.int * parts) >> 128


def partition_bounds(part: int, parts: int) -> tuple[uuid.UUID, uuid.UUID | None]:
    """The first id of a partition and the first of the next (None after the last)."""

    def first(k: int) -> uuid.UUID:
        return uuid.UUID(int=-((-k << 128) // parts))

    return first(part), first(part + 1) if part + 1 < parts else None


class LogReader:
    """The ledger's log as readers see it; see the module's docstring."""

    def __init__(self, recorder: LedgerRecorder, url: str) -> None:
        self.recorder = recorder
        self.url = url
        self._residents: dict[uuid.UUID, ResidentId] = {}

    def head(self) -> int:
        """The position of the last event in the log, 0 when it is empty."""
        return self.recorder.log_head()

    def head_query(self) -> str:
        """The head as a scalar SQL query, for a reader that wants it in the same
        statement as its own reads of tables in the same database."""
        return self.recorder.log_head_query()

    def page(
        self,
        after: int,
        limit: int,
        upto: int | None = None,
        partition: tuple[int, int] | None = None,
    ) -> Page:
        """The citizens' records of at most `limit` positions after `after`, up to `upto`;
        with `partition` (k, n), only the records of the citizens `partition_of` puts in k
        (and then the end is the last of their positions read)."""
        ids = None if partition is None else partition_bounds(*partition)
        rows = self.recorder.log_page(after, limit, upto, ids)
        residents: dict[uuid.UUID, ResidentId] = {}
        read = list(_citizens_rows(rows))
        for _, cid, _, record_type, fields in read:
            if record_type == r.ENROLLED:
                residents[cid] = self._resident(cid, fields)
        self._add_residents(residents, {cid for _, cid, _, _, _ in read})
        found = tuple(
            _logged(position, cid, version, record_type, residents[cid], fields)
            for position, cid, version, record_type, fields in read
        )
        return Page(found, rows[-1][0] if rows else after)

    def fact_page(
        self,
        after: int,
        limit: int,
        upto: int | None = None,
        partition: tuple[int, int] | None = None,
    ) -> FactPage:
        """As `page`, each record read only as far as its citizen's facts need it, and
        grouped by citizen: what a catch-up folds, in half the time of a `page`."""
        ids = None if partition is None else partition_bounds(*partition)
        rows = self.recorder.log_page(after, limit, upto, ids)
        citizens: dict[uuid.UUID, list[LoggedFact]] = {}
        enrolled: dict[uuid.UUID, str] = {}
        for position, cid, _, record_type, fields in _citizens_rows(rows):
            if record_type == r.ENROLLED:
                enrolled[cid] = _resident_of(position, fields).value
            found = citizens.get(cid)
            if found is None:
                found = citizens[cid] = []
            found.append(
                LoggedFact(position, record_type, *_fact_parts(position, record_type, fields))
            )
        return FactPage(citizens, enrolled, rows[-1][0] if rows else after)

    def _add_residents(
        self, residents: dict[uuid.UUID, ResidentId], citizens: Iterable[uuid.UUID]
    ) -> None:
        """Every citizen's identity number into `residents`: known, or read from their
        enrolments in one query."""
        missing = []
        for cid in citizens:
            if cid not in residents:
                known = self._residents.get(cid)
                if known is None:
                    missing.append(cid)
                else:
                    residents[cid] = known
        if not missing:
            return
        for position, originator, _, _, state in self.recorder.log_enrolments(missing):
            cid = _uuid(originator)
            residents[cid] = self._resident(cid, _fields(position, state))
        for cid in missing:
            if cid not in residents:
                raise UnreadableLog(f"citizen {cid} has no enrolment in the log")

    def by_citizen(
        self, upto: int, partition: tuple[int, int] | None = None
    ) -> Iterator[tuple[uuid.UUID, list[LoggedRecord]]]:
        """Every citizen's records up to a position, citizen by citizen, each in log
        order; with `partition` (k, n), only the citizens `partition_of` puts in k.

        Read as a stream, so memory stays flat in the size of the log."""
        ids = None if partition is None else partition_bounds(*partition)
        return _grouped(self.recorder.log_by_originator(CITIZEN_TOPIC_PREFIX, upto, ids))

    def facts_by_citizen(
        self, upto: int, partition: tuple[int, int] | None = None
    ) -> Iterator[tuple[uuid.UUID, CitizenFacts]]:
        """As `by_citizen`, each citizen's records folded into their facts
        (ledger.domain.facts) as they are read: what a rebuild scores. Only what the
        facts hold is decoded (no Record, no recorded time, no amount), which halves
        the cost of a record; a record that cannot be read still names its position."""
        ids = None if partition is None else partition_bounds(*partition)
        return _folded(self.recorder.log_by_originator(CITIZEN_TOPIC_PREFIX, upto, ids))

    def citizens(
        self, citizens: Iterable[uuid.UUID], upto: int | None = None
    ) -> dict[uuid.UUID, list[LoggedRecord]]:
        """These citizens' records (up to a position), each in log order, in one query;
        a citizen with none is left out."""
        ids = list(citizens)
        if not ids:
            return {}
        return dict(_grouped(self.recorder.log_of(ids, upto)))

    def facts_of(
        self, citizens: Iterable[uuid.UUID], upto: int | None = None
    ) -> dict[uuid.UUID, CitizenFacts]:
        """As `citizens`, each citizen's records folded into their facts (as
        `facts_by_citizen` folds them)."""
        ids = list(citizens)
        if not ids:
            return {}
        return dict(_folded(self.recorder.log_of(ids, upto)))

    def citizen(self, citizen: uuid.UUID) -> list[LoggedRecord]:
        """One citizen's records in log order; empty when they have none."""
        return self.citizens([citizen]).get(citizen, [])

    def file(self, citizen: uuid.UUID) -> CitizenFile:
        """One citizen's records and the uses of their file, in log order, in one query."""
        records: list[LoggedRecord] = []
        uses: list[LoggedUse] = []
        version = 0
        resident: ResidentId | None = None
        for position, _, version, topic, state in self.recorder.log_of([citizen], None):
            fields = _fields(position, state)
            use = USE_OF_TOPIC.get(topic)
            if use is not None:
                uses.append(_use(position, citizen, version, use, fields))
                continue
            record_type = _record_type(position, topic)
            if record_type is None:
                continue
            if resident is None:
                if record_type != r.ENROLLED:
                    raise UnreadableLog(
                        f"position {position}: citizen {citizen} has records before the enrolment"
                    )
                resident = _resident_of(position, fields)
            records.append(_logged(position, citizen, version, record_type, resident, fields))
        return CitizenFile(records, uses, version)

    def leaf(self, position: int) -> bytes:
        """The leaf document of the event at a position (see ledger.transparency.tree)."""
        row = self.recorder.log_at(position)
        if row is None:
            raise UnreadableLog(f"no event at position {position}", "position")
        _, originator, version, topic, state = row
        return leaf_data(position, _uuid(originator), version, topic, state)

    def leaves(self, after: int = 0) -> Iterator[Leaf]:
        """Every event's leaf document after a position, in log order, as a stream."""
        for rows in self.recorder.log_leaf_rows(after, None):
            for position, aggregate, version, topic, state in rows:
                try:
                    document: bytes | None = leaf_data(position, aggregate, version, topic, state)
                except UNENCODABLE:
                    document = None
                yield Leaf(position, document)

    def leaf_hashes(
        self, after: int = 0, upto: int | None = None
    ) -> Generator[LeafHashes, None, None]:
        """The leaf hash of every event after a position up to another, in log order, a
        batch at a time; the next batch is read from the store while this one is used."""
        leaf_hash = merkle.leaf_hash
        for rows in prefetched(lambda: self.recorder.log_leaf_rows(after, upto)):
            hashes: list[bytes] = []
            append = hashes.append
            for position, aggregate, version, topic, state in rows:
                try:
                    append(leaf_hash(leaf_data(position, aggregate, version, topic, state)))
                except UNENCODABLE:
                    append(b"")
            yield LeafHashes([row[0] for row in rows], hashes)

    def watch(self, poll: float = 1.0) -> Watch:
        """A wait for new records: NOTIFY on PostgreSQL (and a look at the head every
        `poll` seconds, in case a notification is lost), polling on SQLite."""
        channel = self.recorder.log_channel()
        if channel is None:
            return Watch(self, None, min(poll, SQLITE_POLL))
        conn = connect_postgres(self.url)
        try:
            conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
        except BaseException:
            conn.close()
            raise
        return Watch(self, conn, poll)

    def _resident(self, cid: uuid.UUID, enrolment: Mapping[str, Any]) -> ResidentId:
        value = enrolment.get("resident_id")
        if value is None:
            raise UnreadableLog(f"citizen {cid} has no enrolment in the log")
        if len(self._residents) >= RESIDENT_CACHE:
            self._residents.clear()
        resident = self._residents[cid] = ResidentId(value)
        return resident


class Watch:
    """Waits for the log to grow; close it when done."""

    def __init__(self, log: LogReader, conn: psycopg.Connection[Any] | None, poll: float) -> None:
        self.log = log
        self.conn = conn
        self.poll = poll

    def wait(self, after: int, timeout: float) -> int:
        """Return the head once it is past `after`, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            head = self.log.head()
            remaining = deadline - time.monotonic()
            if head > after or remaining <= 0:
                return head
            if self.conn is None:
                time.sleep(min(self.poll, remaining))
                continue
            for _ in self.conn.notifies(timeout=min(self.poll, remaining), stop_after=1):
                pass

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def prefetched(batches: Callable[[], Iterator[T]], depth: int = 2) -> Generator[T, None, None]:
    """What `batches()` yields, read by a thread of its own up to `depth` ahead (0: as
    far as it goes), so the store's time to send the next batch overlaps the caller's
    time on this one."""
    box: queue.Queue[tuple[bool, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            source = batches()
            try:
                for batch in source:
                    if not put((True, batch)):
                        return
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            put((False, e))
            return
        put((False, None))

    thread = threading.Thread(target=read, name="ledger-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            more, item = box.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        thread.join()


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


def _record_type(position: int, topic: str) -> str | None:
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


def _grouped(rows: Iterable[LogRow]) -> Iterator[tuple[uuid.UUID, list[LoggedRecord]]]:
    """Rows in (citizen, version) order as each citizen's records; events of other
    aggregates are skipped."""
    current: uuid.UUID | None = None
    last: Any = None
    resident: ResidentId | None = None
    records: list[LoggedRecord] = []
    for position, originator, version, topic, state in rows:
        record_type = _record_type(position, topic)
        if record_type is None:
            continue
        if originator != last:
            if current is not None:
                yield current, records
            last = originator
            current = originator if type(originator) is uuid.UUID else uuid.UUID(originator)
            records, resident = [], None
        fields = _fields(position, state)
        if resident is None:
            if record_type != r.ENROLLED:
                raise UnreadableLog(
                    f"position {position}: citizen {current} has records before the enrolment"
                )
            resident = _resident_of(position, fields)
        assert current is not None
        records.append(_logged(position, current, version, record_type, resident, fields))
    if current is not None:
        yield current, records


def _citizens_rows(
    rows: Iterable[LogRow],
) -> Iterator[tuple[int, uuid.UUID, int, str, dict[str, Any]]]:
    """A page's rows that are citizens' records, as (position, citizen, version, record
    type, stored fields); each citizen's id is made once."""
    cids: dict[Any, uuid.UUID] = {}
    for position, originator, version, topic, state in rows:
        record_type = _record_type(position, topic)
        if record_type is None:
            continue
        cid = cids.get(originator)
        if cid is None:
            cid = cids[originator] = _uuid(originator)
        yield position, cid, version, record_type, _fields(position, state)


def _folded(rows: Iterable[LogRow]) -> Iterator[tuple[uuid.UUID, CitizenFacts]]:
    """Rows in (citizen, version) order as each citizen's facts; events of other
    aggregates are skipped. The same walk as `_grouped`, kept apart: sharing it through
    a generator of decoded rows cost a rebuild an eighth of its decoding."""
    current: uuid.UUID | None = None
    last: Any = None
    facts: CitizenFacts | None = None
    for position, originator, _, topic, state in rows:
        record_type = _record_type(position, topic)
        if record_type is None:
            continue
        fields = _fields(position, state)
        if originator != last:
            if current is not None and facts is not None:
                yield current, facts
            last = originator
            current = originator if type(originator) is uuid.UUID else uuid.UUID(originator)
            if record_type != r.ENROLLED:
                raise UnreadableLog(
                    f"position {position}: citizen {current} has records before the enrolment"
                )
            facts = CitizenFacts(_resident_of(position, fields).value)
        assert facts is not None
        facts.add(record_type, *_fact_parts(position, record_type, fields))
    if current is not None and facts is not None:
        yield current, facts


FactParts = tuple[RecordKey, str | None, date, RecordKey | None, str | None]


def _fact_parts(position: int, record_type: str, fields: Mapping[str, Any]) -> FactParts:
    """What a citizen's facts take of a stored record besides its type (key, kind,
    date, target, outcome), as `CitizenFacts.add` takes them."""
    try:
        get = fields.get
        target = get("target")
        return (
            record_key(fields["authority"], fields["reference"]),
            get("kind"),
            date.fromisoformat(fields["occurred_on"]["_data_"]),
            record_key(*target["_data_"]) if target is not None else None,
            get("outcome"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise _unreadable(position, record_type, e) from None


def _resident_of(position: int, enrolment: Mapping[str, Any]) -> ResidentId:
    try:
        return ResidentId(enrolment["resident_id"])
    except (KeyError, TypeError, ValueError) as e:
        raise _unreadable(position, r.ENROLLED, e) from None


def _unreadable(position: int, record_type: str, error: Exception) -> UnreadableLog:
    return UnreadableLog(
        f"position {position}: the stored {record_type} cannot be read "
        f"({type(error).__name__}: {error})"
    )


def _fields(position: int, state: Any) -> dict[str, Any]:
    try:
        fields = orjson.loads(state)
    except orjson.JSONDecodeError:
        raise UnreadableLog(f"position {position}: the stored event is not JSON") from None
    if type(fields) is not dict:
        raise UnreadableLog(f"position {position}: the stored event is not a JSON object")
    return fields


def _logged(
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
        target["_data_"] if target is not None else None,
    )
    return record, datetime.fromisoformat(fields["timestamp"]["_data_"])


def stored_record(
    cid: uuid.UUID, version: int, topic: str, state: bytes, resident: ResidentId | None
) -> tuple[Record, datetime]:
    """One of a citizen's stored events as its record and the time it was recorded,
    decoded as the log's port decodes the log (no event object): what a writer loads a
    citizen from. `resident` is the citizen's identity number, None for the enrolment,
    which carries it."""
    record_type = RECORD_TYPE_OF_TOPIC.get(topic)
    if record_type is None:
        raise UnreadableLog(
            f"citizen {cid} version {version}: {topic} is not a type of record this ledger knows"
        )
    try:
        fields = orjson.loads(state)
        if resident is None:
            if record_type != r.ENROLLED:
                raise UnreadableLog(
                    f"citizen {cid} version {version}: a {record_type} before the enrolment"
                )
            resident = ResidentId(fields["resident_id"])
        return _record(record_type, resident, fields)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        # Named only on failure: naming a citizen costs as much as decoding a record.
        raise UnreadableLog(
            f"citizen {cid} version {version}: the stored {record_type} cannot be read "
            f"({type(e).__name__}: {e})"
        ) from None


def _use(
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


def _uuid(value: Any) -> uuid.UUID:
    return value if type(value) is uuid.UUID else uuid.UUID(str(value))
