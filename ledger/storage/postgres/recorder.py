"""eventsourcing's PostgreSQL recorder with the record index, the Merkle tree, the
checkpoints and the writers' gate, in the transactions of its inserts."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.storage.encoding import LeafParts
from ledger.storage.postgres.reads import PostgresReads
from ledger.storage.postgres.statements import (
    DDL_LOCK,
    EVENT_COLUMNS,
    INDEX_COLUMNS,
    TREE_COLUMNS,
    as_text,
    beside,
)
from ledger.storage.recorder import (
    check_read_versions,
    index_rows_of,
    leaf_hashes,
    leaves_of,
    read_ids,
)
from ledger.transparency.tree import fetch_nodes, frontier, new_nodes


class PostgresLedgerRecorder(PostgresReads, PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder plus the record index, in one transaction."""

    def __init__(self, datastore: PostgresDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.index_table = beside(events_table_name, "record_index")
        self.tree_table = beside(events_table_name, "merkle_nodes")
        self.checkpoint_table = beside(events_table_name, "checkpoints")
        self.claims_table = beside(events_table_name, "reference_claims")
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
                self._copy(curs, self.index_table, INDEX_COLUMNS, sorted(rows))
            ids, start = self._positions_for(curs, len(stored_events))
            self._copy(
                curs,
                self.events_table_name,
                EVENT_COLUMNS,
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
                *(as_text(statement) for statement in self.lock_table_statements),
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
            TREE_COLUMNS,
            [(level, idx, node, positions[idx - start] if level == 0 else None)
             for (level, idx), node in made.items()],
        )  # fmt: skip

    def tables(self) -> list[str]:
        """The log's own tables (not the views kept beside them), as a move copies them."""
        return [self.events_table_name, self.index_table, self.tree_table, self.checkpoint_table,
                self.claims_table]  # fmt: skip

    def save_checkpoint(self, size: int, note: str, at: str) -> None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._sql(
                    "INSERT INTO {} (size, note, created_at) VALUES (%s, %s, %s)",
                    self.checkpoint_table,
                ),
                [size, note, at],
            )
