"""The log's reader (the port itself) and its wait for new records, and the stable
split of citizens into partitions that shared rebuilds and partitioned ledgers use."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import psycopg
from psycopg.sql import SQL, Identifier

from ledger.domain import records as r
from ledger.domain.facts import CitizenFacts
from ledger.domain.identity import ResidentId
from ledger.log.decoding import (
    CITIZEN_TOPIC_PREFIX,
    RECORD_TYPE_OF_TOPIC,
    USE_OF_TOPIC,
    as_uuid,
    citizens_rows,
    fact_fields,
    fields_of,
    folded,
    grouped,
    logged,
    record_type_at,
    resident_of,
    use_of,
)
from ledger.log.entries import (
    CitizenFile,
    FactPage,
    Leaf,
    LeafHashes,
    LoggedFact,
    LoggedRecord,
    LoggedUse,
    Page,
    UnreadableLog,
)
from ledger.storage import LedgerRecorder, connect_postgres
from ledger.transparency import merkle
from ledger.transparency.tree import leaf_data

# How often a wait looks at the head when nothing tells it of new records.
SQLITE_POLL = 0.05
RESIDENT_CACHE = 100_000
# What encoding a stored event as a leaf raises when the event has been altered into
# something that is not the JSON object it was.
UNENCODABLE = (LookupError, TypeError, ValueError)

T = TypeVar("T")


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


_new = tuple.__new__


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
        read = list(citizens_rows(rows))
        for _, cid, _, record_type, fields in read:
            if record_type == r.ENROLLED:
                residents[cid] = self._resident(cid, fields)
        self._add_residents(residents, {cid for _, cid, _, _, _ in read})
        found = tuple(
            logged(position, cid, version, record_type, residents[cid], fields)
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
        citizens: dict[Any, list[LoggedFact]] = {}
        enrolled: dict[Any, str] = {}
        versions: dict[Any, list[int]] = {}
        type_of = RECORD_TYPE_OF_TOPIC.get
        for position, originator, version, topic, state in rows:
            record_type = type_of(topic)
            if record_type is None and topic not in USE_OF_TOPIC:
                record_type_at(position, topic)
                continue
            seen = versions.get(originator)
            if seen is None:
                versions[originator] = [version, version]
            else:
                seen[1] = version
            if record_type is None:
                continue
            fields, parts = fact_fields(position, record_type, state)
            if record_type == r.ENROLLED:
                enrolled[originator] = resident_of(position, fields).value
            elif version == 1:
                # A citizen's first event is their enrolment: a reader that folds only
                # the records on the page relies on it.
                raise UnreadableLog(
                    f"position {position}: citizen {as_uuid(originator)} has records "
                    "before the enrolment"
                )
            found = citizens.get(originator)
            if found is None:
                found = citizens[originator] = []
            # tuple.__new__ straight, not the named tuple's own __new__ (a Python call):
            # one is made for every record a catch-up reads.
            found.append(_new(LoggedFact, (position, version, record_type, *parts)))
        # Each citizen's id made once, as the page is grouped.
        made = {originator: as_uuid(originator) for originator in versions}
        return FactPage(
            {made[originator]: found for originator, found in citizens.items()},
            {made[originator]: resident for originator, resident in enrolled.items()},
            {made[originator]: (first, last) for originator, (first, last) in versions.items()},
            rows[-1][0] if rows else after,
        )

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
            cid = as_uuid(originator)
            residents[cid] = self._resident(cid, fields_of(position, state))
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
        return grouped(self.recorder.log_by_originator(CITIZEN_TOPIC_PREFIX, upto, ids))

    def facts_by_citizen(
        self, upto: int, partition: tuple[int, int] | None = None
    ) -> Iterator[tuple[uuid.UUID, CitizenFacts]]:
        """As `by_citizen`, each citizen's records folded into their facts
        (ledger.domain.facts) as they are read: what a rebuild scores. Only what the
        facts hold is decoded (no Record, no recorded time, no amount), which halves
        the cost of a record; a record that cannot be read still names its position."""
        ids = None if partition is None else partition_bounds(*partition)
        return folded(self.recorder.log_by_originator(CITIZEN_TOPIC_PREFIX, upto, ids))

    def citizens(
        self, citizens: Iterable[uuid.UUID], upto: int | None = None
    ) -> dict[uuid.UUID, list[LoggedRecord]]:
        """These citizens' records (up to a position), each in log order, in one query;
        a citizen with none is left out."""
        ids = list(citizens)
        if not ids:
            return {}
        return dict(grouped(self.recorder.log_of(ids, upto)))

    def facts_of(
        self, citizens: Iterable[uuid.UUID], upto: int | None = None
    ) -> dict[uuid.UUID, CitizenFacts]:
        """As `citizens`, each citizen's records folded into their facts (as
        `facts_by_citizen` folds them)."""
        ids = list(citizens)
        if not ids:
            return {}
        return dict(folded(self.recorder.log_of(ids, upto)))

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
            fields = fields_of(position, state)
            use = USE_OF_TOPIC.get(topic)
            if use is not None:
                uses.append(use_of(position, citizen, version, use, fields))
                continue
            record_type = record_type_at(position, topic)
            if record_type is None:
                continue
            if resident is None:
                if record_type != r.ENROLLED:
                    raise UnreadableLog(
                        f"position {position}: citizen {citizen} has records before the enrolment"
                    )
                resident = resident_of(position, fields)
            records.append(logged(position, citizen, version, record_type, resident, fields))
        return CitizenFile(records, uses, version)

    def leaf(self, position: int) -> bytes:
        """The leaf document of the event at a position (see ledger.transparency.tree)."""
        row = self.recorder.log_at(position)
        if row is None:
            raise UnreadableLog(f"no event at position {position}", "position")
        _, originator, version, topic, state = row
        return leaf_data(position, as_uuid(originator), version, topic, state)

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
