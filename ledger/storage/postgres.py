"""eventsourcing's PostgreSQL recorder with the record index, the Merkle tree, the
checkpoints and the writers' gate, in the transactions of its inserts."""

from __future__ import annotations

import functools
import uuid
import zlib
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from eventsourcing.persistence import (
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Connection, Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composable, Identifier

from ledger.domain.records import RecordKey
from ledger.storage.encoding import LeafParts
from ledger.storage.recorder import (
    Claim,
    Holder,
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
    read_ids,
)
from ledger.transparency.tree import fetch_nodes, frontier, new_nodes

DDL_LOCK = 0x1ED6E5
_INDEX_COLUMNS = (
    ("authority", "text"), ("reference", "text"), ("citizen_id", "uuid"),
    ("version", "int8"), ("digest", "bytea"),
)  # fmt: skip
_EVENT_COLUMNS = (
    ("originator_id", "uuid"), ("originator_version", "int8"), ("topic", "text"),
    ("state", "bytea"), ("notification_id", "int8"),
)  # fmt: skip
_TREE_COLUMNS = (("level", "int2"), ("idx", "int8"), ("hash", "bytea"), ("position", "int8"))


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder plus the record index, in one transaction."""

    def __init__(self, datastore: PostgresDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.index_table = _beside(events_table_name, "record_index")
        self.tree_table = _beside(events_table_name, "merkle_nodes")
        self.checkpoint_table = _beside(events_table_name, "checkpoints")
        self.claims_table = _beside(events_table_name, "reference_claims")
        self._sequence: str | None = None
        self._lockings: dict[bool, bytes] = {}
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
        # A partitioned ledger's claims on references (ledger.partitioned.claims): which
        # citizen's record, of what content, each (authority, reference) names.
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
                "authority text NOT NULL, reference text NOT NULL, "
                "citizen_id uuid NOT NULL, digest bytea NOT NULL, "
                "claimed_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (authority, reference))"
            ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.claims_table))
        )

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
            curs.execute(self._sql("SELECT 1 AS one FROM {} LIMIT 1", self.tree_table))
            if curs.fetchone() is not None:
                return
            self._lock_table(curs)
            # Again under the lock: a writer may have saved the first events, and grown
            # the tree over them, since the look above.
            curs.execute(self._sql("SELECT 1 AS one FROM {} LIMIT 1", self.tree_table))
            if curs.fetchone() is not None:
                return
            last = 0
            while True:
                curs.execute(
                    self._sql(
                        "SELECT notification_id, originator_id, originator_version, topic, "
                        "state FROM {} WHERE notification_id > %s ORDER BY notification_id "
                        "LIMIT 5000",
                        self.events_table_name,
                    ),
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

    def _sql(self, template: str, *tables: str) -> bytes:
        """`template` with each `{}` one of this ledger's tables (see `_composed`)."""
        return _composed(template, *((self.datastore.schema, table) for table in tables))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert events, their index rows and their tree nodes in one transaction.

        Statements run one after another rather than in the library's pipeline, so a
        broken unique key surfaces as itself (an IntegrityError, which is retried),
        never as an aborted pipeline. Rows go in by binary COPY; the events' positions
        are taken from their sequence first, in order, as the table lock is held.
        """
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            # The index rows go in after the table lock, so concurrent writers meet the
            # lock first and can never deadlock on each other's index keys.
            curs.execute(self._locking(exclusive=bool(kwargs.get("exclusive"))))
            check_read_versions(kwargs, self._versions(curs, read_ids(kwargs)))
            confirm = kwargs.get("confirm")
            if confirm is not None:
                confirm()  # this ledger's other writers are locked out until the commit
            rows = index_rows_of(kwargs)
            if rows:
                self._copy(curs, self.index_table, _INDEX_COLUMNS, sorted(rows))
            ids, start = self._positions_for(curs, len(stored_events))
            self._copy(
                curs,
                self.events_table_name,
                _EVENT_COLUMNS,
                [(e.originator_id, e.originator_version, e.topic, e.state, position)
                 for e, position in zip(stored_events, ids, strict=True)],
            )  # fmt: skip
            self._grow_tree(curs, stored_events, ids, leaves_of(kwargs), start)
        return ids

    def _locking(self, exclusive: bool) -> bytes:
        """The writers' gate shared (unless this save holds it alone), the events table's
        lock and the notification of new events (sent as the transaction commits): one
        round trip, as statements without parameters go in one message."""
        found = self._lockings.get(exclusive)
        if found is None:
            gate = [] if exclusive else [f"SELECT pg_advisory_xact_lock_shared({self._gate_key})"]
            found = "; ".join([
                *gate,
                *(_text(statement) for statement in self.lock_table_statements),
                SQL("NOTIFY {0}").format(Identifier(self.channel_name)).as_string(None),
            ]).encode()  # fmt: skip
            self._lockings[exclusive] = found
        return found

    def _positions_for(self, curs: Cursor[DictRow], count: int) -> tuple[list[int], int]:
        """`count` new positions from the events' own sequence, in order, and the size of
        the tree before them, in one round trip."""
        if self._sequence is None:
            curs.execute(
                "SELECT pg_get_serial_sequence(%s, 'notification_id') AS name",
                [f'"{self.datastore.schema}"."{self.events_table_name}"'],
            )
            row = curs.fetchone()
            assert row is not None
            self._sequence = str(row["name"])
        curs.execute(
            self._sql(
                "SELECT nextval(%s::regclass) AS id, (SELECT MAX(idx) FROM {} WHERE level = 0) "
                "AS last FROM generate_series(1, %s) ORDER BY id",
                self.tree_table,
            ),
            [self._sequence, count],
            prepare=True,
        )
        rows = curs.fetchall()
        last = rows[0]["last"] if rows else None
        return [row["id"] for row in rows], 0 if last is None else int(last) + 1

    def _copy(
        self,
        curs: Cursor[DictRow],
        table: str,
        columns: tuple[tuple[str, str], ...],
        rows: Iterable[Sequence[Any]],
    ) -> None:
        """Rows into a table of this ledger by binary COPY, given (name, type) columns."""
        names = ", ".join(f'"{name}"' for name, _ in columns)
        with curs.copy(self._sql(f"COPY {{}} ({names}) FROM STDIN (FORMAT BINARY)", table)) as copy:
            copy.set_types([kind for _, kind in columns])
            for row in rows:
                copy.write_row(row)

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
            self._sql(
                "SELECT originator_id, MAX(originator_version) AS version FROM {} "
                "WHERE originator_id = ANY(%b) GROUP BY originator_id",
                self.events_table_name,
            ),
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
        # One index probe per citizen: a plain join is planned as a merge join with
        # the whole primary key once the prepared statement's plan is generic.
        rows = self._query(
            self._sql(
                "SELECT e.originator_id, e.originator_version, e.topic, e.state "
                "FROM unnest(%b::uuid[], %b::bigint[]) AS k(id, version) CROSS JOIN LATERAL "
                "(SELECT * FROM {} e WHERE e.originator_id = k.id "
                "AND e.originator_version > k.version OFFSET 0) e "
                "ORDER BY e.originator_id, e.originator_version",
                self.events_table_name,
            ),
            [list(versions), list(versions.values())],
        )
        return [
            StoredEvent(originator, version, topic, bytes(state))
            for originator, version, topic, state in rows
        ]

    def _grow_tree(
        self,
        curs: Cursor[DictRow],
        events: Sequence[StoredEvent],
        positions: Sequence[int],
        leaves: Sequence[LeafParts] | None = None,
        start: int | None = None,
    ) -> None:
        """The tree's new nodes for these events, `start` the tree's size before them
        (read here if not given)."""
        if start is None:
            curs.execute(
                self._sql("SELECT MAX(idx) AS last FROM {} WHERE level = 0", self.tree_table),
                prepare=True,
            )
            row = curs.fetchone()
            start = 0 if row is None or row["last"] is None else int(row["last"]) + 1
        needed = frontier(start, len(events))
        stored = fetch_nodes(partial(self._nodes, curs), needed) if needed else {}
        made = new_nodes(start, leaf_hashes(events, positions, leaves), stored)
        self._copy(
            curs,
            self.tree_table,
            _TREE_COLUMNS,
            [(level, idx, node, positions[idx - start] if level == 0 else None)
             for (level, idx), node in made.items()],
        )  # fmt: skip

    def _nodes(
        self, curs: Cursor[DictRow], nodes: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        wanted = list(nodes)
        curs.execute(
            self._sql(
                "SELECT t.level, t.idx, t.hash FROM {} t JOIN unnest(%b::smallint[], "
                "%b::bigint[]) AS k(level, idx) ON t.level = k.level AND t.idx = k.idx",
                self.tree_table,
            ),
            [[n[0] for n in wanted], [n[1] for n in wanted]],
            prepare=True,
        )
        return {(r["level"], r["idx"]): bytes(r["hash"]) for r in curs.fetchall()}

    def tables(self) -> list[str]:
        """The log's own tables (not the views kept beside them), as a move copies them."""
        return [self.events_table_name, self.index_table, self.tree_table, self.checkpoint_table,
                self.claims_table]  # fmt: skip

    def tree_size(self) -> int:
        rows = self._query(
            self._sql("SELECT MAX(idx) AS last FROM {} WHERE level = 0", self.tree_table),
            [],
        )
        return 0 if rows[0][0] is None else int(rows[0][0]) + 1

    def tree_nodes(self, nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            return self._nodes(curs, nodes)

    def leaf_index(self, position: int) -> int | None:
        rows = self._query(
            self._sql("SELECT idx FROM {} WHERE level = 0 AND position = %s", self.tree_table),
            [position],
        )
        return int(rows[0][0]) if rows else None

    def save_checkpoint(self, size: int, note: str, at: str) -> None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._sql(
                    "INSERT INTO {} (size, note, created_at) VALUES (%s, %s, %s)",
                    self.checkpoint_table,
                ),
                [size, note, at],
            )

    def checkpoints(self) -> list[tuple[int, str, str]]:
        rows = self._query(
            self._sql("SELECT size, note, created_at FROM {} ORDER BY id", self.checkpoint_table),
            [],
        )
        return [(int(size), note, created_at) for size, note, created_at in rows]

    def tree_position(self, index: int) -> int | None:
        """The log position of leaf `index`."""
        rows = self._query(
            self._sql("SELECT position FROM {} WHERE level = 0 AND idx = %s", self.tree_table),
            [index],
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def tree_rows(self) -> Generator[list[TreeRow], None, None]:
        # One ordered pass over the primary key: batches by index range would each be
        # planned afresh, and without statistics as a sort of the whole level.
        yield from self._batches(
            "ledger_tree",
            self._sql(
                "SELECT level, idx, hash, position FROM {} WHERE level >= 0 ORDER BY level, idx",
                self.tree_table,
            ),
            [],
            TREE_ROWS,
        )

    def tree_levels(self) -> list[StoredLevel]:
        # One row a level, the nodes in the subquery's order: no row each to decode.
        # Were the order lost, the caller would find the level unlike its own and
        # compare node by node. The catalog's functions, not any of the schema's.
        rows = self._tuples(
            self._sql(
                "SELECT level, count(*), min(idx), max(idx), "
                "min(pg_catalog.octet_length(hash)), max(pg_catalog.octet_length(hash)), "
                "count(position), pg_catalog.string_agg(hash, ''::bytea), "
                "pg_catalog.string_agg(pg_catalog.int8send(position), ''::bytea) "
                "FROM (SELECT level, idx, hash, position FROM {} WHERE level >= 0 "
                "ORDER BY level, idx) n GROUP BY level ORDER BY level",
                self.tree_table,
            ),
            [],
            binary=True,
        )
        return [
            StoredLevel(level, count, first, last, shortest, longest, placed, hashes, at or b"")
            for level, count, first, last, shortest, longest, placed, hashes, at in rows
        ]

    def _query(self, statement: Any, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # Rows as tuples: a dict a row cost a writer loading citizens a tenth of its time.
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            # Prepared: planning these small lookups costs more than running them.
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()

    def lookup(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IndexEntry]:
        key_list = list(keys)
        if not key_list:
            return {}
        rows = self._query(
            self._sql(
                "SELECT i.authority, i.reference, i.citizen_id, i.version, i.digest "
                "FROM {} i JOIN unnest(%b::text[], %b::text[]) AS k(authority, reference) "
                "ON i.authority = k.authority AND i.reference = k.reference",
                self.index_table,
            ),
            [[k.authority for k in key_list], [k.reference for k in key_list]],
        )
        return {
            RecordKey(authority, reference): IndexEntry(citizen, version, bytes(digest))
            for authority, reference, citizen, version, digest in rows
        }

    def positions(
        self, versions: Iterable[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], int]:
        pairs = list(versions)
        if not pairs:
            return {}
        rows = self._query(
            self._sql(
                "SELECT e.originator_id, e.originator_version, e.notification_id "
                "FROM unnest(%b::uuid[], %b::bigint[]) AS k(id, version) CROSS JOIN LATERAL "
                "(SELECT * FROM {} e WHERE e.originator_id = k.id "
                "AND e.originator_version = k.version OFFSET 0) e",
                self.events_table_name,
            ),
            [[p[0] for p in pairs], [p[1] for p in pairs]],
        )
        return {(originator, version): position for originator, version, position in rows}

    # What ledger.log reads: positions are notification ids.

    def log_head(self) -> int:
        return self.max_notification_id() or 0

    def log_head_query(self) -> str:
        # Schema and table are plain names (checked where the URL is read).
        return (
            f'SELECT MAX(notification_id) FROM "{self.datastore.schema}"."{self.events_table_name}"'
        )

    def log_page(
        self, after: int, limit: int, upto: int | None, partition: IdRange | None = None
    ) -> list[LogRow]:
        where = "notification_id > %s AND notification_id <= %s"
        params: list[Any] = [after, MAX_POSITION if upto is None else upto]
        if partition is not None:
            where, params = _in_range(where, params, partition)
        # Binary, with the id as text: no hex decoding of the state, no UUID objects.
        return self._tuples(
            self._sql(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                f"FROM {{}} WHERE {where} ORDER BY notification_id LIMIT %s",
                self.events_table_name,
            ),
            [*params, limit],
            binary=True,
        )

    def log_enrolments(self, originators: Sequence[uuid.UUID]) -> list[LogRow]:
        return self._tuples(
            self._sql(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                "FROM {} WHERE originator_id = ANY(%b) AND originator_version = 1",
                self.events_table_name,
            ),
            [list(originators)],
            binary=True,
        )

    def log_by_originator(
        self, topic_prefix: str, upto: int, partition: IdRange | None
    ) -> Iterator[LogRow]:
        where = "topic LIKE %s AND notification_id <= %s"
        params: list[Any] = [topic_prefix + "%", upto]
        if partition is not None:
            where, params = _in_range(where, params, partition)
        # Binary, with the id as text: no hex decoding of the state, and a UUID made
        # once per citizen (by the log's port), not once per row. The order names the
        # table's column, not the text of the same name: the primary key then gives it,
        # and the first rows come at once, not after a sort of the whole range.
        for batch in self._batches(
            "ledger_log",
            self._sql(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                f"FROM {{}} e WHERE {where} ORDER BY e.originator_id, e.originator_version",
                self.events_table_name,
            ),
            params,
            STREAM_ROWS,
        ):
            yield from batch

    def log_of(self, originators: Sequence[uuid.UUID], upto: int | None) -> list[LogRow]:
        return self._tuples(
            self._sql(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                "FROM {} e WHERE originator_id = ANY(%b) AND notification_id <= %b "
                "ORDER BY e.originator_id, e.originator_version",
                self.events_table_name,
            ),
            [list(originators), MAX_POSITION if upto is None else upto],
            binary=True,
        )

    def log_at(self, position: int) -> LogRow | None:
        rows = self._tuples(
            self._sql(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {} WHERE notification_id = %s",
                self.events_table_name,
            ),
            [position],
        )
        return rows[0] if rows else None

    def log_leaf_rows(self, after: int, upto: int | None) -> Iterator[list[LeafRow]]:
        # Binary, with the id as text: no hex decoding of the state, no UUID objects.
        yield from self._batches(
            "ledger_leaves",
            self._sql(
                "SELECT notification_id, originator_id::text, originator_version, topic, "
                "state FROM {} WHERE notification_id > %s AND notification_id <= %s "
                "ORDER BY notification_id",
                self.events_table_name,
            ),
            [after, MAX_POSITION if upto is None else upto],
            STREAM_ROWS,
        )

    def _batches(
        self, name: str, statement: Any, params: Sequence[Any], rows_after: int
    ) -> Iterator[list[Any]]:
        """Binary rows from a server-side cursor: a small first batch, so work on them
        starts soon, then `rows_after` at a time."""
        with self.datastore.get_connection() as conn, conn.transaction():
            _let_reader_take_its_time(conn)
            cursor = conn.cursor(name=name, row_factory=tuple_row, binary=True)
            cursor.execute(statement, params)
            size = FIRST_ROWS
            while rows := cursor.fetchmany(size):
                yield rows
                size = rows_after
            cursor.close()

    def log_channel(self) -> str | None:
        return str(self.channel_name)

    def _tuples(self, statement: Any, params: Sequence[Any], binary: bool = False) -> list[Any]:
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=binary) as curs,
        ):
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()


def _in_range(where: str, params: list[Any], partition: IdRange) -> tuple[str, list[Any]]:
    """A condition and its parameters narrowed to the aggregates whose ids lie in a range."""
    low, high = partition
    where += " AND originator_id >= %s"
    params = [*params, low]
    if high is not None:
        where += " AND originator_id < %s"
        params.append(high)
    return where, params


def _let_reader_take_its_time(conn: Connection[Any]) -> None:
    """A stream's transaction is idle between fetches for as long as its reader takes
    with a batch (a rebuild worker blocked on its pipe, a writer's COPY, a loaded
    machine); the library's five-second limit on idle transactions would end it."""
    conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")


MAX_POSITION = 2**63 - 1


def _beside(events_table: str, name: str) -> str:
    """The name of one of the log's other tables, beside its events table."""
    return f"{events_table.removesuffix('_events')}_{name}"


STREAM_ROWS = 20_000
TREE_ROWS = 20_000
# The first batch of a long read that its reader starts on while the rest comes.
FIRST_ROWS = 2_000


# A partitioned ledger's claims on references (see ledger.partitioned.claims), on a
# connection to a partition's shard: each partition's tables are in its own schema.
# eventsourcing names the events table after the application class, Ledger.
_EVENTS = "ledger_events"
_INDEX, _CLAIMS = _beside(_EVENTS, "record_index"), _beside(_EVENTS, "reference_claims")


def _text(statement: Any) -> str:
    """A statement without parameters as the text sent."""
    if isinstance(statement, Composable):
        return statement.as_string(None)
    return statement.decode() if isinstance(statement, bytes) else str(statement)


def _in(schema: str, table: str) -> Any:
    return SQL("{}.{}").format(Identifier(schema), Identifier(table))


# Statements differ by their tables' schema and little else: each is composed once.
# Composing one anew costs some 30 µs of CPU, a third of what running a small one costs.
@functools.lru_cache(maxsize=512)
def _composed(template: str, *tables: tuple[str, str]) -> bytes:
    """`template` with each `{}` the (schema, table) given in its place, quoted, as the
    bytes sent: psycopg would render a composed statement again on every call."""
    return SQL(template).format(*(_in(schema, table) for schema, table in tables)).as_bytes(None)


def claim_references(conn: Connection[Any], schema: str, wanted: Sequence[Claim]) -> None:
    """Claim each (key, citizen, digest) whose key is not claimed yet."""
    conn.execute(*claiming(schema, wanted))


def claiming(schema: str, wanted: Sequence[Claim]) -> tuple[Any, list[Any]]:
    """The statement, and its parameters, that claims each (key, citizen, digest) whose
    key is not claimed yet, and gives the (authority, reference) of each claim it made;
    a key it gives no row for was claimed before, for this record or another."""
    keys = [key for key, _, _ in wanted]
    claim = _composed(
        "INSERT INTO {} (authority, reference, citizen_id, digest) "
        "SELECT * FROM unnest(%b::text[], %b::text[], %b::uuid[], %b::bytea[]) "
        "ON CONFLICT DO NOTHING RETURNING authority, reference",
        (schema, _CLAIMS),
    )
    return claim, [
        [k.authority for k in keys], [k.reference for k in keys],
        [c for _, c, _ in wanted], [d for _, _, d in wanted],
    ]  # fmt: skip


def claimed(rows: Sequence[tuple[Any, ...]]) -> set[RecordKey]:
    """The keys `claiming`'s rows say it claimed."""
    return {RecordKey(authority, reference) for authority, reference in rows}


def claim_holders(
    conn: Connection[Any], schema: str, keys: Sequence[RecordKey]
) -> dict[RecordKey, Holder]:
    """The (citizen, digest) each of these keys is claimed for, if it is."""
    return {key: holder for key, (holder, _) in claim_ages(conn, schema, keys).items()}


def claim_ages(
    conn: Connection[Any], schema: str, keys: Sequence[RecordKey]
) -> dict[RecordKey, tuple[Holder, float]]:
    """The (citizen, digest) each of these keys is claimed for, if it is, and the
    seconds since it was (by the database's clock)."""
    rows = conn.execute(
        _composed(
            "SELECT c.authority, c.reference, c.citizen_id, c.digest, "
            "EXTRACT(EPOCH FROM now() - c.claimed_at)::float8 FROM {} c "
            "JOIN unnest(%b::text[], %b::text[]) AS k(authority, reference) "
            "ON c.authority = k.authority AND c.reference = k.reference",
            (schema, _CLAIMS),
        ),
        [[k.authority for k in keys], [k.reference for k in keys]],
        prepare=True,
    ).fetchall()
    return {RecordKey(a, r): ((c, bytes(d)), age) for a, r, c, d, age in rows}


def release_claims(conn: Connection[Any], schema: str, claims: Sequence[Claim]) -> None:
    """Drop these claims, each only if still held as given."""
    keys = [key for key, _, _ in claims]
    conn.execute(
        _composed(
            "DELETE FROM {} c USING unnest(%b::text[], %b::text[], %b::uuid[], %b::bytea[]) "
            "AS w(authority, reference, citizen_id, digest) WHERE c.authority = w.authority "
            "AND c.reference = w.reference AND c.citizen_id = w.citizen_id "
            "AND c.digest = w.digest",
            (schema, _CLAIMS),
        ),
        [[k.authority for k in keys], [k.reference for k in keys],
         [c for _, c, _ in claims], [d for _, _, d in claims]],
    )  # fmt: skip


def take_claim(
    conn: Connection[Any], schema: str, key: RecordKey, held: Holder, taker: Holder
) -> bool:
    """Move a key's claim from `held` to `taker`, if it is still `held`'s."""
    done = conn.execute(
        _composed(
            "UPDATE {} SET citizen_id = %s, digest = %s, claimed_at = now() WHERE authority = %s "
            "AND reference = %s AND citizen_id = %s AND digest = %s",
            (schema, _CLAIMS),
        ),
        [*taker, key.authority, key.reference, *held],
    )
    return done.rowcount == 1


def indexed_with_saves_held(
    conn: Connection[Any], schema: str, keys: Sequence[RecordKey]
) -> set[RecordKey]:
    """Which of these keys a partition's record index holds, once its saves are held
    off (by the table lock each save takes first, so a save in flight ends before):
    held until the caller's transaction on `conn` ends."""
    conn.execute(_composed("LOCK TABLE {} IN EXCLUSIVE MODE", (schema, _EVENTS)))
    return {key for key, _, _ in indexed(conn, schema, keys)}


def indexed(conn: Connection[Any], schema: str, keys: Sequence[RecordKey]) -> list[Claim]:
    """The entries a partition's record index holds for these keys, as claims."""
    rows = conn.execute(
        _composed(
            "SELECT i.authority, i.reference, i.citizen_id, i.digest FROM {} i JOIN "
            "unnest(%b::text[], %b::text[]) AS k(authority, reference) "
            "ON i.authority = k.authority AND i.reference = k.reference",
            (schema, _INDEX),
        ),
        [[k.authority for k in keys], [k.reference for k in keys]],
    ).fetchall()
    return [(RecordKey(a, r), c, bytes(d)) for a, r, c, d in rows]


def index_page(
    conn: Connection[Any], schema: str, after: RecordKey | None, limit: int
) -> list[Claim]:
    """A partition's record index in key order, after `after`: each key with the citizen
    and digest of its record, as a claim on it would hold them."""
    rows = conn.execute(
        _composed(
            "SELECT authority, reference, citizen_id, digest FROM {} "
            "WHERE (authority, reference) > (%s, %s) ORDER BY authority, reference LIMIT %s",
            (schema, _INDEX),
        ),
        [after.authority if after else "", after.reference if after else "", limit],
    ).fetchall()
    return [(RecordKey(a, r), c, bytes(d)) for a, r, c, d in rows]
