"""What the PostgreSQL recorder reads, apart from what it writes."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row

from ledger.domain.records import RecordKey
from ledger.storage.postgres.statements import (
    MAX_POSITION,
    composed,
    in_range,
    let_reader_take_its_time,
)
from ledger.storage.recorder import IdRange, IndexEntry, LeafRow, LogRow, StoredLevel, TreeRow

STREAM_ROWS = 20_000
# A LogRow, the id as its 16 bytes: a bytes object is cheaper to make, group and hash
# than the id's text, and a UUID is made of it once a citizen.
_LOG_COLUMNS = "notification_id, uuid_send(originator_id), originator_version, topic, state"
TREE_ROWS = 20_000

# The first batch of a long read that its reader starts on while the rest comes.
FIRST_ROWS = 2_000


class PostgresReads:
    """The PostgreSQL recorder's reads: what a writer loads and looks up, the tree and
    checkpoints, and the rows the log's port (ledger.log) decodes."""

    # Set by eventsourcing's recorder, which this is mixed into.
    datastore: PostgresDatastore
    events_table_name: str
    channel_name: str
    index_table: str
    tree_table: str
    checkpoint_table: str
    if TYPE_CHECKING:

        def max_notification_id(self) -> int | None: ...

    def _sql(self, template: str, *tables: str) -> bytes:
        """`template` with each `{}` one of this ledger's tables (see `composed`)."""
        return composed(template, *((self.datastore.schema, table) for table in tables))

    def _query(self, statement: Any, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # Rows as tuples: a dict a row cost a writer loading citizens a tenth of its time.
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            # Prepared: planning these small lookups costs more than running them.
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()

    def _tuples(self, statement: Any, params: Sequence[Any], binary: bool = False) -> list[Any]:
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=binary) as curs,
        ):
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()

    def _batches(
        self, name: str, statement: Any, params: Sequence[Any], rows_after: int
    ) -> Iterator[list[Any]]:
        """Binary rows from a server-side cursor: a small first batch, so work on them
        starts soon, then `rows_after` at a time."""
        with self.datastore.get_connection() as conn, conn.transaction():
            let_reader_take_its_time(conn)
            cursor = conn.cursor(name=name, row_factory=tuple_row, binary=True)
            cursor.execute(statement, params)
            size = FIRST_ROWS
            while rows := cursor.fetchmany(size):
                yield rows
                size = rows_after
            cursor.close()

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
            where, params = in_range(where, params, partition)
        # Binary, with the id as its 16 bytes: no hex decoding of the state, no UUID
        # objects (the log's port makes one a citizen).
        return self._tuples(
            self._sql(
                f"SELECT {_LOG_COLUMNS} FROM {{}} WHERE {where} ORDER BY notification_id LIMIT %s",
                self.events_table_name,
            ),
            [*params, limit],
            binary=True,
        )

    def log_enrolments(self, originators: Sequence[uuid.UUID]) -> list[LogRow]:
        return self._tuples(
            self._sql(
                f"SELECT {_LOG_COLUMNS} "
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
            where, params = in_range(where, params, partition)
        # Binary, with the id as its 16 bytes: no hex decoding of the state, and a UUID
        # made once per citizen (by the log's port), not once per row. The order names the
        # table's column, not the text of the same name: the primary key then gives it,
        # and the first rows come at once, not after a sort of the whole range.
        for batch in self._batches(
            "ledger_log",
            self._sql(
                f"SELECT {_LOG_COLUMNS} "
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
                f"SELECT {_LOG_COLUMNS} "
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

    def log_channel(self) -> str | None:
        return str(self.channel_name)
