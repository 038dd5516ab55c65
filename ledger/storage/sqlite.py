"""eventsourcing's SQLite recorder with the record index, the Merkle tree, the
checkpoints and the writers' gate, in the transactions of its inserts."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from eventsourcing.persistence import (
    StoredEvent,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from ledger.domain.records import RecordKey
from ledger.storage.encoding import LeafParts
from ledger.storage.recorder import (
    IdRange,
    IndexEntry,
    LeafRow,
    LogRow,
    StoredLevel,
    TreeRow,
    check_read_versions,
    index_rows_of,
    leaf_hashes,
    leaves_of,
    packed_positions,
    read_ids,
)
from ledger.transparency.tree import fetch_nodes, frontier, new_nodes


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder plus the record index, in one transaction."""

    index_table = "record_index"
    tree_table = "merkle_nodes"
    checkpoint_table = "checkpoints"

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        name = datastore.pool.db_name
        self._gate_path = None if name.startswith("file:") else Path(name + ".writers")
        self._gate_memory = threading.RLock()

    @contextmanager
    def _gate(self, exclusive: bool) -> Iterator[None]:
        """Ordinary saves share the gate; a writer that keeps losing races holds it
        alone while it loads, decides and saves, so nobody can change what it read."""
        if self._gate_path is None:
            # An in-memory database lives in this process only.
            with self._gate_memory:
                yield
            return
        # A descriptor per holder: flock on a shared descriptor would convert locks.
        with self._gate_path.open("a") as gate:
            fcntl.flock(gate, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield

    @contextmanager
    def exclusive_writer(self) -> Iterator[None]:
        with self._gate(exclusive=True):
            yield

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if kwargs.get("exclusive"):
            return super().insert_events(stored_events, **kwargs)
        with self._gate(exclusive=False):
            return super().insert_events(stored_events, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.index_table} ("
            "authority TEXT NOT NULL, reference TEXT NOT NULL, "
            "citizen_id TEXT NOT NULL, version INTEGER NOT NULL, digest BLOB NOT NULL, "
            "PRIMARY KEY (authority, reference)) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {self.tree_table} ("
            "level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, "
            "position INTEGER, PRIMARY KEY (level, idx)) WITHOUT ROWID",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {self.tree_table}_position "
            f"ON {self.tree_table} (position)",
            f"CREATE TABLE IF NOT EXISTS {self.checkpoint_table} ("
            "id INTEGER PRIMARY KEY, size INTEGER NOT NULL, note TEXT NOT NULL, "
            "created_at TEXT NOT NULL)",
        ]

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"SELECT 1 FROM {self.tree_table} LIMIT 1")
            if c.fetchone() is not None:
                return
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} ORDER BY rowid"
            )
            rows = c.fetchall()
            # A log written before it had a tree: grow one over what is there.
            for start in range(0, len(rows), 5000):
                chunk = rows[start : start + 5000]
                self._grow_tree(
                    c,
                    [StoredEvent(uuid.UUID(o), v, t, bytes(s)) for _, o, v, t, s in chunk],
                    [int(r[0]) for r in chunk],
                )

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        # After the first insert this transaction holds the write lock, so what it
        # reads now is what every other writer has committed.
        check_read_versions(kwargs, self._versions(c, read_ids(kwargs)))
        rows = index_rows_of(kwargs)
        if rows:
            c.executemany(
                f"INSERT INTO {self.index_table} VALUES (?, ?, ?, ?, ?)",
                [(a, ref, cid.hex, v, d) for a, ref, cid, v, d in rows],
            )
        if ids:
            self._grow_tree(c, stored_events, ids, leaves_of(kwargs))
        return ids

    def _grow_tree(
        self,
        c: Any,
        events: Sequence[StoredEvent],
        positions: Sequence[int],
        leaves: Sequence[LeafParts] | None = None,
    ) -> None:
        c.execute(f"SELECT MAX(idx) FROM {self.tree_table} WHERE level = 0")
        last = c.fetchone()[0]
        start = 0 if last is None else last + 1
        stored = fetch_nodes(partial(self._nodes, c), frontier(start, len(events)))
        made = new_nodes(start, leaf_hashes(events, positions, leaves), stored)
        c.executemany(
            f"INSERT INTO {self.tree_table} (level, idx, hash, position) VALUES (?, ?, ?, ?)",
            [
                (level, idx, h, positions[idx - start] if level == 0 else None)
                for (level, idx), h in made.items()
            ],
        )

    def tree_size(self) -> int:
        rows = self._query(f"SELECT MAX(idx) FROM {self.tree_table} WHERE level = 0", [])
        return 0 if rows[0][0] is None else int(rows[0][0]) + 1

    def tree_nodes(self, nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        with self.datastore.transaction(commit=False) as c:
            return self._nodes(c, nodes)

    def _nodes(self, c: Any, nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found = {}
        for level, idx in nodes:
            c.execute(
                f"SELECT hash FROM {self.tree_table} WHERE level = ? AND idx = ?", [level, idx]
            )
            row = c.fetchone()
            if row is not None:
                found[(level, idx)] = bytes(row[0])
        return found

    def leaf_index(self, position: int) -> int | None:
        rows = self._query(
            f"SELECT idx FROM {self.tree_table} WHERE level = 0 AND position = ?", [position]
        )
        return int(rows[0][0]) if rows else None

    def save_checkpoint(self, size: int, note: str, at: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO {self.checkpoint_table} (size, note, created_at) VALUES (?, ?, ?)",
                [size, note, at],
            )

    def checkpoints(self) -> list[tuple[int, str, str]]:
        rows = self._query(
            f"SELECT size, note, created_at FROM {self.checkpoint_table} ORDER BY id", []
        )
        return [(int(size), note, at) for size, note, at in rows]

    def tree_position(self, index: int) -> int | None:
        """The log position of leaf `index`."""
        rows = self._query(
            f"SELECT position FROM {self.tree_table} WHERE level = 0 AND idx = ?", [index]
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def tree_rows(self) -> Generator[list[TreeRow], None, None]:
        with self._reading() as conn:
            cursor = conn.execute(
                f"SELECT level, idx, hash, position FROM {self.tree_table} WHERE level >= 0 "
                "ORDER BY level, idx"
            )
            size = FIRST_ROWS
            while rows := cursor.fetchmany(size):
                yield rows
                size = TREE_ROWS

    def tree_levels(self) -> list[StoredLevel]:
        rows = [row for batch in self.tree_rows() for row in batch]
        whole: list[StoredLevel] = []
        for level, group in groupby(rows, key=itemgetter(0)):
            nodes = list(group)
            sizes = [len(node[2]) for node in nodes]
            positions = [node[3] for node in nodes if node[3] is not None]
            whole.append(StoredLevel(
                level, len(nodes), nodes[0][1], nodes[-1][1], min(sizes), max(sizes),
                len(positions), b"".join(node[2] for node in nodes), packed_positions(positions),
            ))  # fmt: skip
        return whole

    def _query(self, statement: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            rows: list[sqlite3.Row] = c.fetchall()
            return rows

    def lookup(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IndexEntry]:
        found: dict[RecordKey, IndexEntry] = {}
        key_list = list(keys)
        for start in range(0, len(key_list), 400):
            chunk = key_list[start : start + 400]
            clause = " OR ".join(["(authority = ? AND reference = ?)"] * len(chunk))
            params = [x for k in chunk for x in (k.authority, k.reference)]
            rows = self._query(
                "SELECT authority, reference, citizen_id, version, digest "
                f"FROM {self.index_table} WHERE {clause}",
                params,
            )
            for a, ref, cid, version, digest in rows:
                found[RecordKey(a, ref)] = IndexEntry(uuid.UUID(cid), version, bytes(digest))
        return found

    def _versions(self, c: Any, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        found: dict[uuid.UUID, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            c.execute(
                "SELECT originator_id, MAX(originator_version) "
                f"FROM {self.events_table_name} WHERE originator_id IN "
                f"({','.join('?' * len(chunk))}) GROUP BY originator_id",
                [i.hex for i in chunk],
            )
            found.update((uuid.UUID(o), int(v)) for o, v in c.fetchall())
        return found

    def versions(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The latest version of each citizen that has any events."""
        with self.datastore.transaction(commit=False) as c:
            return self._versions(c, list(ids))

    def events_after(self, versions: Mapping[uuid.UUID, int]) -> list[StoredEvent]:
        """The events of each citizen after the version given, by citizen and version."""
        pairs = sorted(versions.items())
        events: list[StoredEvent] = []
        for start in range(0, len(pairs), 400):
            chunk = pairs[start : start + 400]
            clause = " OR ".join(["(originator_id = ? AND originator_version > ?)"] * len(chunk))
            rows = self._query(
                "SELECT originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE {clause} "
                "ORDER BY originator_id, originator_version",
                [x for cid, v in chunk for x in (cid.hex, v)],
            )
            events.extend(StoredEvent(uuid.UUID(o), v, t, bytes(s)) for o, v, t, s in rows)
        return events

    def positions(
        self, versions: Iterable[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], int]:
        found: dict[tuple[uuid.UUID, int], int] = {}
        for cid, version in versions:
            rows = self._query(
                f"SELECT rowid FROM {self.events_table_name} "
                "WHERE originator_id = ? AND originator_version = ?",
                [cid.hex, version],
            )
            if rows:
                found[(cid, version)] = rows[0][0]
        return found

    # What ledger.log reads: positions are rowids.

    def log_head(self) -> int:
        return self.max_notification_id() or 0

    def log_head_query(self) -> str:
        return f"SELECT MAX(rowid) FROM {self.events_table_name}"

    def log_page(
        self, after: int, limit: int, upto: int | None, partition: IdRange | None = None
    ) -> list[LogRow]:
        where, params = _in_range(
            "rowid > ? AND rowid <= ?", [after, MAX_POSITION if upto is None else upto],
            partition,
        )  # fmt: skip
        rows = self._query(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE {where} ORDER BY rowid LIMIT ?",
            [*params, limit],
        )
        return [tuple(row) for row in rows]

    def log_enrolments(self, originators: Sequence[uuid.UUID]) -> list[LogRow]:
        return self._log_of_ids(originators, "originator_version = 1", [])

    def log_by_originator(
        self, topic_prefix: str, upto: int, partition: IdRange | None
    ) -> Iterator[LogRow]:
        where, params = _in_range("topic LIKE ? AND rowid <= ?", [topic_prefix + "%", upto],
                                  partition)  # fmt: skip
        with self._reading() as conn:
            yield from conn.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE {where} "
                "ORDER BY originator_id, originator_version",
                params,
            )

    def log_of(self, originators: Sequence[uuid.UUID], upto: int | None) -> list[LogRow]:
        return self._log_of_ids(
            originators, "rowid <= ? ORDER BY originator_id, originator_version",
            [MAX_POSITION if upto is None else upto],
        )  # fmt: skip

    def _log_of_ids(
        self, originators: Sequence[uuid.UUID], condition: str, params: list[Any]
    ) -> list[LogRow]:
        rows: list[LogRow] = []
        ids = [o.hex for o in originators]
        # SQLite allows 32766 parameters a statement.
        for start in range(0, len(ids), 30_000):
            chunk = ids[start : start + 30_000]
            rows += [tuple(row) for row in self._query(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE originator_id IN "
                f"({','.join('?' * len(chunk))}) AND {condition}",
                [*chunk, *params],
            )]  # fmt: skip
        return rows

    def log_at(self, position: int) -> LogRow | None:
        rows = self._query(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE rowid = ?",
            [position],
        )
        return tuple(rows[0]) if rows else None

    def log_leaf_rows(self, after: int, upto: int | None) -> Iterator[list[LeafRow]]:
        with self._reading() as conn:
            cursor = conn.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
                [after, MAX_POSITION if upto is None else upto],
            )
            size = FIRST_ROWS
            while rows := cursor.fetchmany(size):
                yield [(p, _canonical_id(o), v, t, s) for p, o, v, t, s in rows]
                size = STREAM_ROWS

    def log_channel(self) -> str | None:
        return None

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own for a long read, so a stream holds no pooled one."""
        name = self.datastore.pool.db_name
        conn = sqlite3.connect(name, uri=name.startswith("file:"), check_same_thread=False)
        try:
            yield conn
        finally:
            conn.close()


MAX_POSITION = 2**63 - 1
STREAM_ROWS = 20_000
TREE_ROWS = 20_000
# The first batch of a long read that its reader starts on while the rest comes.
FIRST_ROWS = 2_000


def _canonical_id(stored: Any) -> str:
    """An id as PostgreSQL's uuid type prints it; an id altered into something else
    as it is, so that its leaf no longer matches."""
    try:
        return str(uuid.UUID(stored))
    except (AttributeError, TypeError, ValueError):
        return str(stored)


def _in_range(where: str, params: list[Any], partition: IdRange | None) -> tuple[str, list[Any]]:
    """A condition and its parameters narrowed to the aggregates whose ids lie in a range."""
    if partition is None:
        return where, params
    # Ids are stored as 32 hex digits, which sort as the ids do.
    low, high = partition
    where += " AND originator_id >= ?"
    params = [*params, low.hex]
    if high is not None:
        where += " AND originator_id < ?"
        params.append(high.hex)
    return where, params
