"""The view store: the read models' tables beside the ledger's, in the same database.

Every write of a view goes in one transaction with its projection's tracking
position, so a runner that stops anywhere resumes exactly where it left off and
never applies an event twice.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ledger.storage import environment, unavailable_as_ledger_error
from projections.scoring import CitizenFacts, Contribution, Scored
from projections.store import changes, tables
from projections.store.encoding import (
    VIEW_COLUMNS,
    CitizenViews,
    EncodedViews,
    PageRows,
    encode_views,
    merged,
    page_rows,
)
from projections.store.sql import Tx


@dataclass(frozen=True, slots=True)
class ScoreInputs:
    """What a score read needs from one snapshot of the database."""

    # None when the projection has not seen the citizen.
    contributions: list[Contribution] | None
    position: int
    head: int
    setting: str | None


class ViewStore:
    """The read models of one ledger database, on SQLite or PostgreSQL.

    Safe to share between threads: on PostgreSQL each call or transaction takes a
    connection of its own from a pool that checks it first and replaces dead ones;
    on SQLite each thread has its own connection. A database that cannot be reached
    raises DatabaseUnavailable, naming it without its password.
    """

    def __init__(self, url: str) -> None:
        env = environment(url)
        self.url = url
        self.postgres = env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
        if self.postgres:
            self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                kwargs={
                    "host": env["POSTGRES_HOST"], "port": env["POSTGRES_PORT"],
                    "dbname": env["POSTGRES_DBNAME"], "user": env["POSTGRES_USER"],
                    "password": env["POSTGRES_PASSWORD"], "autocommit": True,
                    "connect_timeout": CONNECT_TIMEOUT,
                    "options": f"-c search_path={env['POSTGRES_SCHEMA']} -c jit=off",
                },
                # No check on every checkout (a round trip per score read): writes
                # check their connection themselves, and a read that fails on a dead
                # one has the pool checked and is asked once more.
                min_size=1, max_size=POOL_SIZE, timeout=POOL_TIMEOUT, name="ledger-views",
                # Give up on a failing reconnection soon: the next request then starts a
                # fresh one, so recovery does not wait out a long backoff.
                reconnect_timeout=RECONNECT_TIMEOUT, open=False,
            )  # fmt: skip
            self._pool.open(wait=False)
        else:
            self._name = env["SQLITE_DBNAME"]
            self._local = threading.local()
            self._opened: list[sqlite3.Connection] = []
            self._opened_lock = threading.Lock()
        try:
            with self.transaction(wait=OPEN_TIMEOUT) as tx:
                tables.create(tx, self.postgres)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.postgres:
            self._pool.close()
            return
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    def _lite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._name, uri=self._name.startswith("file:"), timeout=30,
                isolation_level=None, check_same_thread=False,
            )  # fmt: skip
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    @contextmanager
    def _connection(self, wait: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection that answered a check; dead ones are closed, which
        makes the pool replace them."""
        with unavailable_as_ledger_error(self.url):
            for _ in range(POOL_SIZE):
                with self._pool.connection(wait) as conn:
                    try:
                        ConnectionPool.check_connection(conn)
                    except psycopg.Error:
                        conn.close()
                        continue
                    yield conn
                    return
            raise psycopg.OperationalError("no pooled connection answers")

    @contextmanager
    def transaction(self, write: bool = True, wait: float | None = None) -> Iterator[Tx]:
        """One transaction, on a connection of its own (waited for `wait` seconds at most,
        POOL_TIMEOUT unless given)."""
        if self.postgres:
            with self._connection(wait) as conn, conn.transaction(), conn.cursor() as cur:
                yield Tx(cur, postgres=True)
            return
        lite = self._lite()
        # IMMEDIATE takes the write lock up front, so a writer never fails halfway.
        lite.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield Tx(lite.cursor(), postgres=False)
        except BaseException:
            lite.execute("ROLLBACK")
            raise
        lite.execute("COMMIT")

    def read(
        self, sql: str, params: Sequence[Any] = (), prepare: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement on this store's database, for the other
        tables kept beside the views (the service's tokens), with `?` marks."""
        return self._rows(sql, params, prepare)

    def _rows(
        self, sql: str, params: Sequence[Any] = (), prepare: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement. `prepare` keeps its plan on the server
        (PostgreSQL) for the statements every request runs."""
        if not self.postgres:
            # One statement outside a transaction is its own consistent snapshot.
            cursor = self._lite().execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()]
        with unavailable_as_ledger_error(self.url):
            try:
                return self._read(sql, params, prepare)
            except PoolTimeout:
                raise
            except psycopg.OperationalError:
                # The connection was dead: drop every dead one, then ask once more.
                self._pool.check()
                return self._read(sql, params, prepare)

    def _read(self, sql: str, params: Sequence[Any], prepare: bool) -> list[tuple[Any, ...]]:
        # One statement in autocommit is its own transaction: no BEGIN/COMMIT trips.
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params, prepare=prepare or None)
            return cur.fetchall()

    # Tracking and settings

    def positions(self) -> dict[str, int]:
        return dict(self._rows("SELECT name, position FROM projection_tracking"))

    def position(self, name: str) -> int:
        return self.positions().get(name, 0)

    def head_and_positions(self, head_query: str) -> tuple[int, dict[str, int]]:
        """In one statement: the log's last position (by `head_query`, which the log's
        port gives) and every projection's."""
        rows = self._rows(
            f"SELECT ({head_query}), t.name, t.position "
            "FROM (SELECT 1) AS one LEFT JOIN projection_tracking t ON 1 = 1"
        )
        return rows[0][0] or 0, {name: position for _, name, position in rows if name}

    def setting(self, key: str) -> str | None:
        rows = self._rows(
            "SELECT value FROM projection_settings WHERE key = ?", [key], prepare=True
        )
        return rows[0][0] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO projection_settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    # Citizens' views

    def save(
        self,
        tracking: str,
        policy: str,
        position: int,
        views: dict[uuid.UUID, tuple[str, list[Contribution]]],
    ) -> None:
        """Replace the contributions of these citizens (by id: identity number and
        contributions) and move the tracking position, at once."""
        whole = [CitizenViews(cid, CitizenFacts(resident), [list[Scored](found)])
                 for cid, (resident, found) in views.items()]  # fmt: skip
        self.save_rows(
            [(tracking, policy)], position, page_rows(whole, [policy], position, self.postgres)
        )

    def save_rows(
        self, projections: Sequence[tuple[str, str]], position: int, rows: PageRows
    ) -> None:
        """Write the rows `page_rows` made of a page under every (tracking name, policy)
        projection and move all their positions, in one transaction."""
        self.save_row_chunks(projections, position, [rows])

    def save_row_chunks(
        self,
        projections: Sequence[tuple[str, str]],
        position: int,
        chunks: Iterable[PageRows],
    ) -> None:
        """As `save_rows`, the rows written a chunk at a time as `chunks` yields them,
        all in one transaction: they can come from workers still making the rest; the
        views the rows name to be folded then have their changes folded in. On SQLite
        the chunks
        are all taken first: its one write lock, which the ledger's writers wait on, is
        held only for the writing."""
        if not self.postgres:
            chunks = list(chunks)
        folds: list[tuple[str, str]] = []
        with self.transaction() as tx:
            for tracking, _ in projections:
                tables.move(tx, tracking, position)
            for chunk in chunks:
                changes.write_views(tx, chunk.views)
                changes.write_changes(tx, chunk.changes)
                folds += chunk.folds
            changes.fold_in(tx, folds)

    def replace_all(
        self,
        projections: Sequence[tuple[str, str]],
        position: int,
        views: Iterable[CitizenViews],
    ) -> None:
        """Replace every view of these (tracking name, policy) projections and set their
        positions, in one transaction. `views` gives each citizen's facts and, per
        projection in order, their contributions; it is written in chunks as it comes,
        so memory stays flat.
        """
        policies = [policy for _, policy in projections]
        self.replace_all_encoded(
            projections, position, encode_views(views, policies, self.postgres)
        )

    def replace_all_encoded(
        self,
        projections: Sequence[tuple[str, str]],
        position: int,
        chunks: Iterable[EncodedViews],
    ) -> None:
        """As `replace_all`, from views already encoded by `encode_views` (perhaps in
        other processes). Nothing is visible until every chunk is in: a failure anywhere
        leaves the old views and positions as they were."""
        if self.postgres:
            self._swap_in(projections, position, chunks)
            return
        with self.transaction() as tx:
            for _, policy in projections:
                tx.execute("DELETE FROM score_views WHERE policy = ?", [policy])
            tables.drop_changes(tx, [policy for _, policy in projections])
            for chunk in chunks:
                tx.copy_encoded("score_views", VIEW_COLUMNS, chunk.rows)
            tables.set_positions(tx, projections, position)

    def _swap_in(
        self,
        projections: Sequence[tuple[str, str]],
        position: int,
        chunks: Iterable[EncodedViews],
    ) -> None:
        """`replace_all_encoded` on PostgreSQL: the views go into a new table beside the
        old one, with the other policies' views, indexed once they are all in; it takes
        the old one's place as the transaction ends. No old view is deleted row by row,
        nor left dead for reads to wade through."""
        policies = [policy for _, policy in projections]
        with self.transaction() as tx:
            tables.start_next(tx, policies)
            for chunk in chunks:
                tx.copy_encoded(tables.NEXT, VIEW_COLUMNS, chunk.rows)
            tables.swap_in_next(tx)
            tables.drop_changes(tx, policies)
            tables.set_positions(tx, projections, position)

    def view(
        self, tracking: str, policy: str, citizen: uuid.UUID
    ) -> tuple[list[Contribution] | None, int]:
        """In one statement: a citizen's stored contributions under a policy (None when
        the projection has not seen them) and the projection's position."""
        found = self._rows(
            "SELECT (SELECT position FROM projection_tracking WHERE name = ?), "
            f"v.contributions, {changes.of_view('v', self.postgres)} FROM (SELECT 1) AS one "
            "LEFT JOIN score_views v ON v.policy = ? AND v.citizen_id = ?",
            [tracking, policy, citizen.hex],
        )
        position, view, later = found[0]
        return (None if view is None else merged(view, later)), position or 0

    def score_inputs(
        self, tracking: str, policy: str, citizen: uuid.UUID, head_query: str, setting: str
    ) -> ScoreInputs:
        """In one statement: a citizen's stored contributions, the projection's position,
        the log's last position (by `head_query`, which the log's port gives) and the
        value of a setting, all from the same snapshot."""
        found = self._rows(
            "SELECT (SELECT position FROM projection_tracking WHERE name = ?), "
            f"({head_query}), (SELECT value FROM projection_settings WHERE key = ?), "
            f"v.contributions, {changes.of_view('v', self.postgres)} FROM (SELECT 1) AS one "
            "LEFT JOIN score_views v ON v.policy = ? AND v.citizen_id = ?",
            [tracking, setting, policy, citizen.hex],
            prepare=True,
        )
        position, head, value, view, later = found[0]
        return ScoreInputs(
            None if view is None else merged(view, later), position or 0, head or 0, value
        )

    def contributions(self, policy: str) -> Iterator[tuple[str, Contribution]]:
        """Every stored contribution under a policy, with its citizen's identity number."""
        for resident, view, later in self._rows(
            f"SELECT v.resident_id, v.contributions, {changes.of_view('v', self.postgres)} "
            "FROM score_views v WHERE v.policy = ?",
            [policy],
        ):
            for item in merged(view, later):
                yield str(resident), item

    def residents(self, policy: str) -> list[str]:
        found = self._rows("SELECT resident_id FROM score_views WHERE policy = ?", [policy])
        return [row[0] for row in found]

    def counting_on(
        self, policy: str, day: date, kinds: Sequence[str], rule_suffix: str
    ) -> list[tuple[str, Contribution]]:
        """Contributions of these kinds and rules counting on a day, with identity
        numbers, by the day they began counting and then identity number."""
        if not kinds:
            return []
        wanted = set(kinds)
        found = [
            (resident, item)
            for resident, item in self.contributions(policy)
            if item.kind in wanted and item.rule.endswith(rule_suffix) and item.counts_on(day)
        ]
        found.sort(key=lambda pair: (pair[1].counts_from, pair[0], pair[1].authority,
                                     pair[1].reference, pair[1].rule))  # fmt: skip
        return found


CONNECT_TIMEOUT = 2
POOL_SIZE = 10
POOL_TIMEOUT = 2.0
# The first connection, made while the store is opened, may take longer on a busy host.
OPEN_TIMEOUT = 5.0
RECONNECT_TIMEOUT = 5.0
