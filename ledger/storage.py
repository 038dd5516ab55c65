"""Where the log lives: database URLs, and recorders that keep the record index.

The record index maps (authority, reference) to the citizen and version of the event
that holds the record, with a digest of its content. It is written in the same
transaction as the events, so the log and the index never disagree.
"""

from __future__ import annotations

import fcntl
import re
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import psycopg
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier
from psycopg_pool import PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from ledger.errors import DatabaseUnavailable, StorageError
from ledger.merkle import leaf_hash
from ledger.records import RecordKey
from ledger.tree import frontier, leaf_data, new_nodes

# psycopg_pool waits 1, 2, 4, 8... seconds between attempts to reach a server that went
# away, so every pool of a process would stay empty long after a short restart or a
# failover; try at a steady pace instead (a refused connection costs little).
AttemptWithBackoff.INITIAL_DELAY = 0.5
AttemptWithBackoff.DELAY_BACKOFF = 1.0

DEFAULT_URL = "sqlite:///ledger.db"
DDL_LOCK = 0x1ED6E5
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

IndexRow = tuple[str, str, uuid.UUID, int, bytes]


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where a record is stored and what it said."""

    citizen_id: uuid.UUID
    version: int
    digest: bytes


def environment(url: str) -> dict[str, str]:
    """The eventsourcing settings for a `sqlite:///PATH` or `postgresql://` URL."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise StorageError(f"{redact(url)!r}: use sqlite:///PATH, e.g. sqlite:///ledger.db")
        path = unquote(parts.path[1:])
        if path == ":memory:":
            path = f"file:ledger-{uuid.uuid4().hex}?mode=memory&cache=shared"
        elif not Path(path).resolve().parent.is_dir():
            raise StorageError(f"{redact(url)!r}: folder {Path(path).parent} does not exist")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            # Writers in other processes hold SQLite's one write lock in turn; with
            # several bulk writers a turn can take longer than the library's 5 s.
            "SQLITE_LOCK_TIMEOUT": "120",
            "APPLICATION_RECORDER_TOPIC": get_topic(SQLiteLedgerRecorder),
        }
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.path.strip("/"):
            raise StorageError(f"{redact(url)!r}: name the database, e.g. postgresql://HOST/DB")
        query = parse_qs(parts.query)
        schema = query.get("schema", ["public"])[0]
        if not SCHEMA_NAME.fullmatch(schema):
            raise StorageError(
                f"{redact(url)}: schema {schema!r} is not a plain lower-case name "
                "(letters, digits and _, not starting with a digit)"
            )
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_SCHEMA": schema,
            "POSTGRES_CONNECT_TIMEOUT": "5",
            # Checked before use, so connections killed by a server restart are replaced.
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_POOL_SIZE": "4",
            "APPLICATION_RECORDER_TOPIC": get_topic(PostgresLedgerRecorder),
        }
    raise StorageError(
        f"{redact(url)!r}: unsupported database; use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def redact(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<an unreadable database URL>"
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def redact_text(text: str, url: str) -> str:
    """A message from a driver, with the URL's password taken out wherever it appears."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = text.replace(url, redact(url))
    return text.replace(unquote(password), "***") if password else text


@contextmanager
def unavailable_as_ledger_error(url: str) -> Iterator[None]:
    """Turn the driver's "cannot reach the database" errors into DatabaseUnavailable,
    naming the database without its password."""
    try:
        yield
    except (OperationalError, InterfaceError, psycopg.OperationalError,
            psycopg.InterfaceError, PoolTimeout) as e:  # fmt: skip
        detail = redact_text(str(e).strip().splitlines()[0] if str(e).strip() else "", url)
        raise DatabaseUnavailable(
            f"{redact(url)} does not answer now ({type(e).__name__}: {detail}); try again"
        ) from None


class Outage:
    """A caller's patience with a database that stopped answering: what it may retry,
    and for how long since the database last answered."""

    PAUSE = 0.5

    def __init__(self, url: str, patience: float) -> None:
        self.url = url
        self.patience = patience
        self.since: float | None = None

    @contextmanager
    def unless_over(self) -> Iterator[None]:
        """Run a step; the driver's outage errors come out as DatabaseUnavailable."""
        with unavailable_as_ledger_error(self.url):
            yield
        self.since = None

    def wait(self, error: DatabaseUnavailable) -> None:
        """Pause before the next try, or raise the outage once patience is spent."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.since >= self.patience:
            raise error
        time.sleep(self.PAUSE)


def is_in_memory(url: str) -> bool:
    """An in-memory SQLite ledger lives in one process only."""
    return url.startswith("sqlite:") and url.rstrip("/").endswith(":memory:")


def connect_postgres(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection to a `postgresql://` ledger, in its schema."""
    env = environment(url)
    return psycopg.connect(
        host=env["POSTGRES_HOST"], port=int(env["POSTGRES_PORT"]),
        dbname=env["POSTGRES_DBNAME"], user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"], autocommit=True, connect_timeout=5,
        options=f"-c search_path={env['POSTGRES_SCHEMA']}",
    )  # fmt: skip


class LedgerRecorder(Protocol):
    """What the ledger needs of its store beyond eventsourcing's recorder."""

    def lookup(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IndexEntry]: ...

    def events_of(self, ids: Sequence[uuid.UUID]) -> list[StoredEvent]: ...

    def events_after(self, versions: Mapping[uuid.UUID, int]) -> list[StoredEvent]: ...

    def versions(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]: ...

    def exclusive_writer(self) -> AbstractContextManager[None]: ...

    def positions(
        self, versions: Iterable[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], int]: ...

    def recorded_positions(self, citizen: uuid.UUID) -> list[tuple[int, int]]: ...

    def stream_by_originator(self, topic_prefix: str, upto: int) -> Iterator[StoredEvent]: ...

    def tree_size(self) -> int: ...

    def tree_nodes(self, nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...

    def leaf_index(self, position: int) -> int | None: ...

    def stream_tree(self) -> Iterator[tuple[int, int, bytes, int | None]]: ...

    def tree_position(self, index: int) -> int | None: ...

    def save_checkpoint(self, size: int, note: str, at: str) -> None: ...

    def checkpoints(self) -> list[tuple[int, str, str]]: ...


def leaf_hashes(events: Sequence[StoredEvent], positions: Sequence[int]) -> list[bytes]:
    """The Merkle leaf hash of each stored event at its position."""
    return [
        leaf_hash(leaf_data(p, e.originator_id, e.originator_version, e.topic, e.state))
        for e, p in zip(events, positions, strict=True)
    ]


def index_rows_of(kwargs: dict[str, Any]) -> list[IndexRow]:
    rows: list[IndexRow] = kwargs.get("index_rows") or []
    return rows


def check_read_versions(kwargs: dict[str, Any], stored: dict[uuid.UUID, int]) -> None:
    """Refuse the save when a citizen the batch read but did not change has moved on
    since: a rejection or a decision made on that citizen would be stale."""
    read: Mapping[uuid.UUID, int] = kwargs.get("read_versions") or {}
    moved = [cid for cid, version in read.items() if stored.get(cid, 0) != version]
    if moved:
        raise IntegrityError(f"{len(moved)} citizens changed since they were read")


def read_ids(kwargs: dict[str, Any]) -> list[uuid.UUID]:
    read: Mapping[uuid.UUID, int] = kwargs.get("read_versions") or {}
    return list(read)


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
            self._grow_tree(c, stored_events, ids)
        return ids

    def _grow_tree(self, c: Any, events: Sequence[StoredEvent], positions: Sequence[int]) -> None:
        c.execute(f"SELECT MAX(idx) FROM {self.tree_table} WHERE level = 0")
        last = c.fetchone()[0]
        start = 0 if last is None else last + 1
        stored = {}
        for level, idx in frontier(start, len(events)):
            c.execute(
                f"SELECT hash FROM {self.tree_table} WHERE level = ? AND idx = ?", [level, idx]
            )
            stored[(level, idx)] = bytes(c.fetchone()[0])
        made = new_nodes(start, leaf_hashes(events, positions), stored)
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
        found = {}
        for level, idx in nodes:
            rows = self._query(
                f"SELECT hash FROM {self.tree_table} WHERE level = ? AND idx = ?", [level, idx]
            )
            if rows:
                found[(level, idx)] = bytes(rows[0][0])
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

    def stream_tree(self) -> Iterator[tuple[int, int, bytes, int | None]]:
        """Every stored node, (level, index, hash, position), by level then index."""
        name = self.datastore.pool.db_name
        conn = sqlite3.connect(name, uri=name.startswith("file:"), check_same_thread=False)
        try:
            yield from (
                (level, idx, bytes(h), position)
                for level, idx, h, position in conn.execute(
                    f"SELECT level, idx, hash, position FROM {self.tree_table} ORDER BY level, idx"
                )
            )
        finally:
            conn.close()

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

    def events_of(self, ids: Sequence[uuid.UUID]) -> list[StoredEvent]:
        return self.events_after(dict.fromkeys(ids, 0))

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

    def stream_by_originator(self, topic_prefix: str, upto: int) -> Iterator[StoredEvent]:
        """Events whose topic starts with the prefix, up to a position, by aggregate."""
        name = self.datastore.pool.db_name
        conn = sqlite3.connect(name, uri=name.startswith("file:"), check_same_thread=False)
        try:
            rows = conn.execute(
                "SELECT originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE topic LIKE ? AND rowid <= ? "
                "ORDER BY originator_id, originator_version",
                [topic_prefix + "%", upto],
            )
            for o, v, t, state in rows:
                yield StoredEvent(uuid.UUID(o), v, t, bytes(state))
        finally:
            conn.close()

    def recorded_positions(self, citizen: uuid.UUID) -> list[tuple[int, int]]:
        rows = self._query(
            f"SELECT originator_version, rowid FROM {self.events_table_name} "
            "WHERE originator_id = ? ORDER BY originator_version",
            [citizen.hex],
        )
        return [(v, p) for v, p in rows]


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder plus the record index, in one transaction."""

    def __init__(self, datastore: PostgresDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.index_table = events_table_name.removesuffix("_events") + "_record_index"
        self.tree_table = events_table_name.removesuffix("_events") + "_merkle_nodes"
        self.checkpoint_table = events_table_name.removesuffix("_events") + "_checkpoints"
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} (id bigserial PRIMARY KEY, "
                "size bigint NOT NULL, note text NOT NULL, created_at text NOT NULL)"
            ).format(
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.checkpoint_table),
            )
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
                "level smallint NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL, "
                "position bigint UNIQUE, PRIMARY KEY (level, idx))"
            ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.tree_table))
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
                "authority text NOT NULL, reference text NOT NULL, "
                "citizen_id uuid NOT NULL, version bigint NOT NULL, digest bytea NOT NULL, "
                "PRIMARY KEY (authority, reference))"
            ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.index_table))
        )

    @property
    def _insert_columns(self) -> Any:
        return SQL(
            "INSERT INTO {} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(self._table(self.events_table_name))

    def create_table(self) -> None:
        # Concurrent CREATE ... IF NOT EXISTS and CREATE OR REPLACE FUNCTION fail with
        # "tuple concurrently updated" when several writers start at once.
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", [DDL_LOCK])
            try:
                super().create_table()
                self._backfill_tree()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", [DDL_LOCK])

    def _backfill_tree(self) -> None:
        """Grow a tree over a log written before it had one."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("SELECT 1 AS one FROM {} LIMIT 1").format(
                self._table(self.tree_table)))  # fmt: skip
            if curs.fetchone() is not None:
                return
            self._lock_table(curs)
            last = 0
            while True:
                curs.execute(
                    SQL(
                        "SELECT notification_id, originator_id, originator_version, topic, "
                        "state FROM {} WHERE notification_id > %s ORDER BY notification_id "
                        "LIMIT 5000"
                    ).format(self._table(self.events_table_name)),
                    [last],
                )
                rows = curs.fetchall()
                if not rows:
                    return
                self._grow_tree(
                    curs,
                    [
                        StoredEvent(r["originator_id"], r["originator_version"], r["topic"],
                                    bytes(r["state"]))
                        for r in rows
                    ],
                    [r["notification_id"] for r in rows],
                )  # fmt: skip
                last = rows[-1]["notification_id"]

    def _table(self, name: str) -> Any:
        return SQL("{}.{}").format(Identifier(self.datastore.schema), Identifier(name))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert events, their index rows and their tree nodes in one transaction.

        Statements run one after another rather than in the library's pipeline, so a
        broken unique key surfaces as itself (an IntegrityError, which is retried),
        never as an aborted pipeline.
        """
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            if not kwargs.get("exclusive"):
                curs.execute("SELECT pg_advisory_xact_lock_shared(%s)", [self._gate_key],
                             prepare=True)  # fmt: skip
            # The index rows go in after the table lock, so concurrent writers meet the
            # lock first and can never deadlock on each other's index keys.
            self._lock_table(curs)
            check_read_versions(kwargs, self._versions(curs, read_ids(kwargs)))
            rows = index_rows_of(kwargs)
            if rows:
                columns = list(zip(*sorted(rows), strict=True))
                curs.execute(
                    SQL(
                        "INSERT INTO {} SELECT * FROM unnest("
                        "%b::text[], %b::text[], %b::uuid[], %b::bigint[], %b::bytea[])"
                    ).format(self._table(self.index_table)),
                    [list(col) for col in columns],
                )
            self._notify_channel(curs)
            # Parallel arrays sent in binary (%b), rather than the library's array of a
            # composite type in text, which psycopg escapes field by field.
            curs.execute(
                self._insert_columns,
                [
                    [e.originator_id for e in stored_events],
                    [e.originator_version for e in stored_events],
                    [e.topic for e in stored_events],
                    [e.state for e in stored_events],
                ],
            )
            ids = [row["notification_id"] for row in curs.fetchall()]
            self._grow_tree(curs, stored_events, ids)
        return ids

    @property
    def _gate_key(self) -> int:
        """The advisory lock every save of this ledger shares, and one writer may hold alone."""
        name = f"ledger-writers:{self.datastore.schema}.{self.events_table_name}"
        return zlib.crc32(name.encode())

    @contextmanager
    def exclusive_writer(self) -> Iterator[None]:
        """Hold the writers' gate alone: no other save commits until this one has."""
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", [self._gate_key])
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", [self._gate_key])

    def _versions(self, curs: Cursor[DictRow], ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not ids:
            return {}
        curs.execute(
            SQL(
                "SELECT originator_id, MAX(originator_version) AS version FROM {} "
                "WHERE originator_id = ANY(%b) GROUP BY originator_id"
            ).format(self._table(self.events_table_name)),
            [list(ids)],
            prepare=True,
        )
        return {row["originator_id"]: int(row["version"]) for row in curs.fetchall()}

    def versions(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The latest version of each citizen that has any events."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            return self._versions(curs, list(ids))

    def events_after(self, versions: Mapping[uuid.UUID, int]) -> list[StoredEvent]:
        """The events of each citizen after the version given, by citizen and version."""
        if not versions:
            return []
        rows = self._query(
            SQL(
                "SELECT e.originator_id, e.originator_version, e.topic, e.state FROM {} e "
                "JOIN unnest(%b::uuid[], %b::bigint[]) AS k(id, version) "
                "ON e.originator_id = k.id AND e.originator_version > k.version "
                "ORDER BY e.originator_id, e.originator_version"
            ).format(self._table(self.events_table_name)),
            [list(versions), list(versions.values())],
        )
        return [
            StoredEvent(
                row["originator_id"], row["originator_version"], row["topic"],
                bytes(row["state"]),
            )
            for row in rows
        ]  # fmt: skip

    def _grow_tree(
        self, curs: Cursor[DictRow], events: Sequence[StoredEvent], positions: Sequence[int]
    ) -> None:
        table = self._table(self.tree_table)
        curs.execute(SQL("SELECT MAX(idx) AS last FROM {} WHERE level = 0").format(table))
        row = curs.fetchone()
        start = 0 if row is None or row["last"] is None else int(row["last"]) + 1
        needed = frontier(start, len(events))
        stored = self._nodes(curs, needed) if needed else {}
        made = new_nodes(start, leaf_hashes(events, positions), stored)
        curs.execute(
            SQL(
                "INSERT INTO {} (level, idx, hash, position) SELECT * FROM "
                "unnest(%b::smallint[], %b::bigint[], %b::bytea[], %b::bigint[])"
            ).format(table),
            [
                [level for level, _ in made],
                [idx for _, idx in made],
                list(made.values()),
                [positions[idx - start] if level == 0 else None for level, idx in made],
            ],
        )

    def _nodes(
        self, curs: Cursor[DictRow], nodes: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        wanted = list(nodes)
        curs.execute(
            SQL(
                "SELECT t.level, t.idx, t.hash FROM {} t JOIN unnest(%b::smallint[], "
                "%b::bigint[]) AS k(level, idx) ON t.level = k.level AND t.idx = k.idx"
            ).format(self._table(self.tree_table)),
            [[n[0] for n in wanted], [n[1] for n in wanted]],
            prepare=True,
        )
        return {(r["level"], r["idx"]): bytes(r["hash"]) for r in curs.fetchall()}

    def tree_size(self) -> int:
        rows = self._query(
            SQL("SELECT MAX(idx) AS last FROM {} WHERE level = 0").format(
                self._table(self.tree_table)
            ),
            [],
        )
        return 0 if rows[0]["last"] is None else int(rows[0]["last"]) + 1

    def tree_nodes(self, nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            return self._nodes(curs, nodes)

    def leaf_index(self, position: int) -> int | None:
        rows = self._query(
            SQL("SELECT idx FROM {} WHERE level = 0 AND position = %s").format(
                self._table(self.tree_table)
            ),
            [position],
        )
        return int(rows[0]["idx"]) if rows else None

    def save_checkpoint(self, size: int, note: str, at: str) -> None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("INSERT INTO {} (size, note, created_at) VALUES (%s, %s, %s)").format(
                    self._table(self.checkpoint_table)
                ),
                [size, note, at],
            )

    def checkpoints(self) -> list[tuple[int, str, str]]:
        rows = self._query(
            SQL("SELECT size, note, created_at FROM {} ORDER BY id").format(
                self._table(self.checkpoint_table)
            ),
            [],
        )
        return [(int(r["size"]), r["note"], r["created_at"]) for r in rows]

    def tree_position(self, index: int) -> int | None:
        """The log position of leaf `index`."""
        rows = self._query(
            SQL("SELECT position FROM {} WHERE level = 0 AND idx = %s").format(
                self._table(self.tree_table)
            ),
            [index],
        )
        return int(rows[0]["position"]) if rows and rows[0]["position"] is not None else None

    def stream_tree(self) -> Iterator[tuple[int, int, bytes, int | None]]:
        """Every stored node, (level, index, hash, position), by level then index."""
        with self.datastore.get_connection() as conn, conn.transaction():
            cursor = conn.cursor(name="stream_tree", row_factory=tuple_row)
            cursor.itersize = 10_000
            cursor.execute(
                SQL("SELECT level, idx, hash, position FROM {} ORDER BY level, idx").format(
                    self._table(self.tree_table)
                )
            )
            for level, idx, h, position in cursor:
                yield level, idx, bytes(h), position
            cursor.close()

    def _query(self, statement: Any, params: Sequence[Any]) -> list[DictRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            # Prepared: planning these small lookups costs more than running them.
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()

    def lookup(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IndexEntry]:
        key_list = list(keys)
        if not key_list:
            return {}
        rows = self._query(
            SQL(
                "SELECT i.authority, i.reference, i.citizen_id, i.version, i.digest "
                "FROM {} i JOIN unnest(%b::text[], %b::text[]) AS k(authority, reference) "
                "ON i.authority = k.authority AND i.reference = k.reference"
            ).format(self._table(self.index_table)),
            [[k.authority for k in key_list], [k.reference for k in key_list]],
        )
        return {
            RecordKey(row["authority"], row["reference"]): IndexEntry(
                row["citizen_id"], row["version"], bytes(row["digest"])
            )
            for row in rows
        }

    def events_of(self, ids: Sequence[uuid.UUID]) -> list[StoredEvent]:
        return self.events_after(dict.fromkeys(ids, 0))

    def positions(
        self, versions: Iterable[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], int]:
        pairs = list(versions)
        if not pairs:
            return {}
        rows = self._query(
            SQL(
                "SELECT e.originator_id, e.originator_version, e.notification_id FROM {} e "
                "JOIN unnest(%s::uuid[], %s::bigint[]) AS k(id, version) "
                "ON e.originator_id = k.id AND e.originator_version = k.version"
            ).format(self._table(self.events_table_name)),
            [[p[0] for p in pairs], [p[1] for p in pairs]],
        )
        return {
            (row["originator_id"], row["originator_version"]): row["notification_id"]
            for row in rows
        }

    def stream_by_originator(self, topic_prefix: str, upto: int) -> Iterator[StoredEvent]:
        """Events whose topic starts with the prefix, up to a position, by aggregate."""
        with self.datastore.get_connection() as conn, conn.transaction():
            cursor = conn.cursor(name="stream_by_originator", row_factory=tuple_row)
            cursor.itersize = 5000
            cursor.execute(
                SQL(
                    "SELECT originator_id, originator_version, topic, state FROM {} "
                    "WHERE topic LIKE %s AND notification_id <= %s "
                    "ORDER BY originator_id, originator_version"
                ).format(self._table(self.events_table_name)),
                [topic_prefix + "%", upto],
            )
            for o, v, t, state in cursor:
                yield StoredEvent(o, v, t, bytes(state))
            cursor.close()

    def recorded_positions(self, citizen: uuid.UUID) -> list[tuple[int, int]]:
        rows = self._query(
            SQL(
                "SELECT originator_version, notification_id FROM {} "
                "WHERE originator_id = %s ORDER BY originator_version"
            ).format(self._table(self.events_table_name)),
            [citizen],
        )
        return [(row["originator_version"], row["notification_id"]) for row in rows]


def ledger_recorder(recorder: ApplicationRecorder) -> LedgerRecorder:
    if not isinstance(recorder, SQLiteLedgerRecorder | PostgresLedgerRecorder):
        raise StorageError("the ledger needs its own recorder; open it with a database URL")
    return recorder
