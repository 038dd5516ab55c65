"""A partitioned ledger as its users see it: one ledger, each citizen's records in
the partition their id hashes to."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import suppress
from datetime import date, datetime
from itertools import chain, islice
from typing import Any

import psycopg

from ledger.application import (
    BATCH_SIZE,
    AppendReport,
    Clock,
    HistoryEntry,
    Ledger,
    Line,
    open_patiently,
)
from ledger.application.service import PARTITION_POOL
from ledger.bulk import PARTITIONED_WRITERS, SHARDING_THRESHOLD, Writers, decoded
from ledger.domain.identity import citizen_id, parse_resident_id
from ledger.domain.registrants import Authority, Party
from ledger.domain.shards import partition_of
from ledger.garbage import fewer_collections
from ledger.partitioned.catalog import Catalog
from ledger.partitioned.claims import Claims

# Seconds an append waits, at least, for the map to show where a partition went.
MOVE_WAIT = 30.0


class PartitionedLedger:
    """The catalog's registries and every partition's ledger, opened as first needed."""

    def __init__(self, catalog: Ledger, clock: Clock | None = None, patience: float = 0.0) -> None:
        self.catalog = catalog
        self.clock = clock
        self.patience = patience
        shard_map = Catalog(catalog).shard_map()
        self.partitions = shard_map.partitions
        self.urls = [shard_map.partition_url(p) for p in range(self.partitions)]
        self._open: dict[int, Ledger] = {}
        # Threads of one process (the service's) share the partitions: each is opened
        # once, and opening one never waits on another's (a shard may be slow to answer).
        self._lock = threading.Lock()
        self._opening: dict[int, threading.Lock] = {}
        self._claims = Claims(self)

    @property
    def url(self) -> str:
        return self.catalog.url

    def partition(self, number: int) -> Ledger:
        """Partition `number`'s own ledger, checking records against the catalog."""
        found = self._open.get(number)
        if found is not None:
            return found
        with self._lock:
            opening = self._opening.setdefault(number, threading.Lock())
        with opening:
            while True:
                found = self._open.get(number)
                if found is not None:
                    return found
                url = self.urls[number]
                found = open_patiently(url, self.clock, self.patience, registries=self.catalog)
                found.claims = self._claims
                with self._lock:
                    # Moved while it opened: open it again where the map places it now.
                    if url == self.urls[number]:
                        self._open[number] = found
                        return found
                found.close()

    def partition_of_resident(self, resident_id: str) -> int:
        """The partition of the citizen with this identity number (checked first)."""
        return partition_of(parse_resident_id(resident_id).citizen_id, self.partitions)

    def for_resident(self, resident_id: str) -> Ledger:
        return self.partition(self.partition_of_resident(resident_id))

    def close_partitions(self) -> None:
        """Close every partition's ledger opened (the catalog's stays open)."""
        with self._lock:
            opened, self._open = self._open, {}
        for ledger in opened.values():
            ledger.close()

    def close(self) -> None:
        self.close_partitions()
        self._claims.close()
        self.catalog.close()

    # The catalog's registries

    def register_authority(
        self, authority_id: str, name: str, may_issue: list[str], entitled_from: date | None = None
    ) -> int:
        return self.catalog.register_authority(authority_id, name, may_issue, entitled_from)

    def register_party(
        self, party_id: str, name: str, purposes: list[str], entitled_from: date | None = None
    ) -> int:
        return self.catalog.register_party(party_id, name, purposes, entitled_from)

    def authorities(self) -> list[Authority]:
        return self.catalog.authorities()

    def parties(self) -> list[Party]:
        return self.catalog.parties()

    # Records

    def append_lines(
        self,
        lines: Iterable[tuple[int, Line]],
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> AppendReport:
        """Append numbered NDJSON lines, each to its citizen's partition, in this
        process; within a citizen in the order given."""
        report = AppendReport()
        with fewer_collections():
            for partition, batch in self._batches(lines, report, batch_size):
                report.merge(self.append(partition, batch))
                if progress is not None:
                    progress(len(batch))
        report.sort()
        return report

    def append(self, target: Any, batch: list[tuple[int, Line]]) -> AppendReport:
        """Append a batch of one partition's lines to it, wherever it is now: a batch
        that fails because the partition moved away meanwhile (its schema is gone from
        the old shard) goes to its new shard, once the map says where that is."""
        partition = int(target)
        while True:
            try:
                return self.partition(partition).append_lines(batch, len(batch))
            except Exception as error:
                if not self._moved(error):
                    raise

    def _moved(self, error: Exception) -> bool:
        """Whether a partition is somewhere else now (to append the batch again),
        waiting for the map to say so while the error is that of a partition gone from
        its shard."""
        deadline = time.monotonic() + max(self.patience, MOVE_WAIT)
        while True:
            # Any partition moved, not only this one: a batch claims references in
            # others.
            if self.relocated():
                return True
            if not gone(error) or time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def relocated(self) -> list[int]:
        """The partitions the shard map now places elsewhere than where they were
        opened (read from the catalog): their ledgers are closed, to be opened again at
        their new place when next asked for."""
        shard_map = Catalog(self.catalog).shard_map()
        moved, stale = [], []
        with self._lock:
            for partition in range(self.partitions):
                url = shard_map.partition_url(partition)
                if url != self.urls[partition]:
                    self.urls[partition] = url
                    moved.append(partition)
                    stale.append(self._open.pop(partition, None))
        for ledger in stale:
            if ledger is not None:
                with suppress(Exception):
                    ledger.close()
        return moved

    def append_feed(
        self,
        lines: Iterable[tuple[int, Line]],
        progress: Callable[[int], None] | None = None,
        writers: int = PARTITIONED_WRITERS,
        batch_size: int = BATCH_SIZE,
    ) -> AppendReport:
        """Append a feed: in this process when it is short, else with `writers` processes,
        each writing the partitions that fall to it. As with one database, when a writer
        fails every writer is ended before the error is raised, what was acknowledged
        stays stored, and the same feed sent again is safe."""
        rest = iter(lines)
        head = list(islice(rest, SHARDING_THRESHOLD))
        if writers <= 1 or len(head) < SHARDING_THRESHOLD:
            return self.append_lines(head, batch_size, progress)
        workers = min(writers, self.partitions)
        report = AppendReport()
        started = Writers(
            self.url, self.clock, workers, report, progress, self.patience, open_partitions
        )
        try:
            for partition, batch in self._batches(chain(head, rest), report, batch_size):
                started.send(partition % workers, (partition, batch))
            started.finish()
        finally:
            started.stop()
        report.sort()
        return report

    def _batches(
        self, lines: Iterable[tuple[int, Line]], report: AppendReport, batch_size: int
    ) -> Iterator[tuple[int, list[tuple[int, Line]]]]:
        """The lines, each decoded once, in batches of one partition's (noted in the
        report line by line), each batch as soon as it is full, then the rest."""
        buffers: dict[int, list[tuple[int, Line]]] = {}
        for number, line in lines:
            data = decoded(line)
            partition = partition_of_line(data, self.partitions)
            report.partitions[number] = partition
            buffer = buffers.setdefault(partition, [])
            buffer.append((number, data))
            if len(buffer) >= batch_size:
                yield partition, buffers.pop(partition)
        yield from sorted(buffers.items())

    def append_records(self, records: Iterable[Mapping[str, Any]]) -> AppendReport:
        return self.append_lines(enumerate(records, start=1))

    def history(self, resident_id: str, known_at: datetime | None = None) -> list[HistoryEntry]:
        return self.for_resident(resident_id).history(resident_id, known_at)


def open_partitions(url: str, clock: Clock | None, patience: float) -> PartitionedLedger:
    """A writer process's view of the partitioned ledger whose catalog is at `url`
    (whose registries it reads once a batch: one connection is enough)."""
    catalog = open_patiently(url, clock, patience, env=PARTITION_POOL)
    return PartitionedLedger(catalog, clock, patience)


def gone(error: BaseException) -> bool:
    """Whether the error, or one it came from, is a table or schema that is not there:
    what a partition moved away leaves on its old shard."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
            return True
        if "does not exist" in str(seen) and ("relation" in str(seen) or "schema" in str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def partition_of_line(line: Line, partitions: int) -> int:
    """The partition of a decoded line's citizen; a line without a readable citizen
    goes to partition 0, where it is rejected with the reason."""
    resident = line.get("citizen") if isinstance(line, Mapping) else None
    if not isinstance(resident, str):
        return 0
    return partition_of(citizen_id(resident), partitions)
