"""Where the read models live: tables beside the ledger's, in the same database.

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
from typing import Any, Protocol

import orjson
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ledger.storage import DDL_LOCK, environment, unavailable_as_ledger_error
from projections.scoring import CitizenFacts, Contribution

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS projection_tracking ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projection_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS score_facts ("
    " policy TEXT NOT NULL, citizen_id TEXT NOT NULL, resident_id TEXT NOT NULL,"
    " facts TEXT NOT NULL, PRIMARY KEY (policy, citizen_id))",
    "CREATE TABLE IF NOT EXISTS score_contributions ("
    " policy TEXT NOT NULL, citizen_id TEXT NOT NULL, authority TEXT NOT NULL,"
    " reference TEXT NOT NULL, kind TEXT NOT NULL, rule TEXT NOT NULL, points INTEGER NOT NULL,"
    " counts_from TEXT NOT NULL, counts_until TEXT, cap_group TEXT)",
    "CREATE INDEX IF NOT EXISTS score_contributions_citizen"
    " ON score_contributions (policy, citizen_id)",
]


@dataclass(frozen=True, slots=True)
class CitizenView:
    """What the projection holds about one citizen under one policy."""

    facts: CitizenFacts
    contributions: list[Contribution]


# A citizen's id, facts, and contributions under each of several policies in order.
CitizenViews = tuple[uuid.UUID, CitizenFacts, list[list[Contribution]]]


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...


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
                    "host": env["POSTGRES_HOST"], "port": int(env["POSTGRES_PORT"]),
                    "dbname": env["POSTGRES_DBNAME"], "user": env["POSTGRES_USER"],
                    "password": env["POSTGRES_PASSWORD"], "autocommit": True,
                    "connect_timeout": CONNECT_TIMEOUT,
                    "options": f"-c search_path={env['POSTGRES_SCHEMA']}",
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
                if self.postgres:
                    # Two processes starting at once must not both create the tables.
                    tx.execute("SELECT pg_advisory_xact_lock(?)", [DDL_LOCK])
                for statement in SCHEMA:
                    tx.execute(statement)
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
    def transaction(self, write: bool = True, wait: float | None = None) -> Iterator[_Tx]:
        """One transaction, on a connection of its own (waited for `wait` seconds at most,
        POOL_TIMEOUT unless given)."""
        if self.postgres:
            with self._connection(wait) as conn, conn.transaction(), conn.cursor() as cur:
                yield _Tx(cur, postgres=True)
            return
        lite = self._lite()
        # IMMEDIATE takes the write lock up front, so a writer never fails halfway.
        lite.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield _Tx(lite.cursor(), postgres=False)
        except BaseException:
            lite.execute("ROLLBACK")
            raise
        lite.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not self.postgres:
            with self.transaction(write=False) as tx:
                return tx.rows(sql, params)
        with unavailable_as_ledger_error(self.url):
            try:
                return self._read(sql, params)
            except PoolTimeout:
                raise
            except psycopg.OperationalError:
                # The connection was dead: drop every dead one, then ask once more.
                self._pool.check()
                return self._read(sql, params)

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # One statement in autocommit is its own transaction: no BEGIN/COMMIT trips.
        with self._pool.connection() as conn, conn.cursor() as cur:
            return _Tx(cur, postgres=True).rows(sql, params)

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
        rows = self._rows("SELECT value FROM projection_settings WHERE key = ?", [key])
        return rows[0][0] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO projection_settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    # Citizens' views

    def load(self, policy: str, citizens: Iterable[uuid.UUID]) -> dict[uuid.UUID, CitizenFacts]:
        """The stored facts of these citizens under a policy, in one query."""
        ids = [c.hex for c in citizens]
        if not ids:
            return {}
        if self.postgres:
            rows = self._rows(
                "SELECT citizen_id, facts FROM score_facts WHERE policy = ? "
                "AND citizen_id = ANY(?)",
                [policy, ids],
            )
        else:
            rows = []
            # SQLite allows 32766 parameters a statement.
            for start in range(0, len(ids), 30_000):
                chunk = ids[start : start + 30_000]
                rows += self._rows(
                    "SELECT citizen_id, facts FROM score_facts WHERE policy = ? AND citizen_id "
                    f"IN ({','.join('?' * len(chunk))})",
                    [policy, *chunk],
                )
        return {uuid.UUID(cid): CitizenFacts.from_json(orjson.loads(facts)) for cid, facts in rows}

    def save(
        self,
        tracking: str,
        policy: str,
        position: int,
        views: dict[uuid.UUID, CitizenView],
    ) -> None:
        """Replace the views of these citizens and move the tracking position, at once."""
        self.save_page(
            [(tracking, policy)],
            position,
            [(cid, view.facts, [view.contributions]) for cid, view in views.items()],
        )

    def save_page(
        self,
        projections: Sequence[tuple[str, str]],
        position: int,
        views: Sequence[CitizenViews],
    ) -> None:
        """Replace these citizens' views under every (tracking name, policy) projection
        and move all their positions, in one transaction. `views` gives each citizen's
        facts (encoded once for every policy) and, per projection in order, their
        contributions."""
        policies = [policy for _, policy in projections]
        with self.transaction() as tx:
            for tracking, _ in projections:
                _move(tx, tracking, position)
            if not views:
                return
            facts = [
                (cid.hex, citizen.resident_id, orjson.dumps(citizen.to_json()).decode())
                for cid, citizen, _ in views
            ]
            ids = [cid for cid, _, _ in facts]
            if self.postgres:
                tx.execute(
                    "DELETE FROM score_contributions WHERE policy = ANY(?) AND citizen_id = ANY(?)",
                    [policies, ids],
                    binary=True,
                )
                for policy in policies:
                    tx.execute(
                        "INSERT INTO score_facts (policy, citizen_id, resident_id, facts) "
                        "SELECT ?, * FROM unnest(?::text[], ?::text[], ?::text[]) "
                        "ON CONFLICT (policy, citizen_id) DO UPDATE SET facts = excluded.facts",
                        [policy, ids, [f[1] for f in facts], [f[2] for f in facts]],
                        # Binary parameters: a text array escapes every quote of the JSON.
                        binary=True,
                    )
            else:
                for policy in policies:
                    for start in range(0, len(ids), 500):
                        chunk = ids[start : start + 500]
                        tx.execute(
                            "DELETE FROM score_contributions WHERE policy = ? AND citizen_id "
                            f"IN ({','.join('?' * len(chunk))})",
                            [policy, *chunk],
                        )
                    tx.executemany(
                        "INSERT INTO score_facts (policy, citizen_id, resident_id, facts) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (policy, citizen_id) "
                        "DO UPDATE SET facts = excluded.facts",
                        [(policy, *row) for row in facts],
                    )
            tx.copy_encoded(
                "score_contributions",
                CONTRIBUTION_COLUMNS,
                _contribution_data(views, policies, self.postgres),
            )

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
        with self.transaction() as tx:
            for tracking, policy in projections:
                tx.execute("DELETE FROM score_contributions WHERE policy = ?", [policy])
                tx.execute("DELETE FROM score_facts WHERE policy = ?", [policy])
                tx.execute("DELETE FROM projection_tracking WHERE name = ?", [tracking])
            for chunk in chunks:
                tx.copy_encoded("score_facts", FACTS_COLUMNS, chunk.facts)
                tx.copy_encoded("score_contributions", CONTRIBUTION_COLUMNS, chunk.contributions)
            tx.executemany(
                "INSERT INTO projection_tracking (name, position) VALUES (?, ?)",
                [(tracking, position) for tracking, _ in projections],
            )

    def view(self, policy: str, citizen: uuid.UUID) -> CitizenView | None:
        facts = self.load(policy, [citizen]).get(citizen)
        if facts is None:
            return None
        rows = self._rows(
            "SELECT authority, reference, kind, rule, points, counts_from, counts_until, "
            "cap_group FROM score_contributions WHERE policy = ? AND citizen_id = ?",
            [policy, citizen.hex],
        )
        return CitizenView(facts, [_contribution(row) for row in rows])

    def score_inputs(
        self, tracking: str, policy: str, citizen: uuid.UUID, head_query: str
    ) -> tuple[list[Contribution] | None, int, int]:
        """In one statement: a citizen's stored contributions (None when the projection
        has not seen them), the projection's position and the log's last position (by
        `head_query`, which the log's port gives)."""
        rows = self._rows(
            "SELECT (SELECT position FROM projection_tracking WHERE name = ?), "
            f"({head_query}), f.citizen_id, "
            "c.authority, c.reference, c.kind, c.rule, c.points, c.counts_from, "
            "c.counts_until, c.cap_group FROM (SELECT 1) AS one "
            "LEFT JOIN score_facts f ON f.policy = ? AND f.citizen_id = ? "
            "LEFT JOIN score_contributions c "
            "ON c.policy = f.policy AND c.citizen_id = f.citizen_id",
            [tracking, policy, citizen.hex],
        )
        position, last = rows[0][0] or 0, rows[0][1] or 0
        if rows[0][2] is None:
            return None, position, last
        return [_contribution(row[3:]) for row in rows if row[3] is not None], position, last

    def contributions(self, policy: str) -> Iterator[tuple[str, Contribution]]:
        """Every stored contribution under a policy, with its citizen's identity number."""
        rows = self._rows(
            "SELECT f.resident_id, c.authority, c.reference, c.kind, c.rule, c.points, "
            "c.counts_from, c.counts_until, c.cap_group FROM score_contributions c "
            "JOIN score_facts f ON f.policy = c.policy AND f.citizen_id = c.citizen_id "
            "WHERE c.policy = ?",
            [policy],
        )
        for row in rows:
            yield row[0], _contribution(row[1:])

    def residents(self, policy: str) -> list[str]:
        rows = self._rows("SELECT resident_id FROM score_facts WHERE policy = ?", [policy])
        return [row[0] for row in rows]

    def counting_on(
        self, policy: str, day: date, kinds: Sequence[str], rule_suffix: str
    ) -> list[tuple[str, Contribution]]:
        """Contributions of these kinds and rules counting on a day, with identity numbers."""
        if not kinds:
            return []
        iso = day.isoformat()
        rows = self._rows(
            "SELECT f.resident_id, c.authority, c.reference, c.kind, c.rule, c.points, "
            "c.counts_from, c.counts_until, c.cap_group FROM score_contributions c "
            "JOIN score_facts f ON f.policy = c.policy AND f.citizen_id = c.citizen_id "
            f"WHERE c.policy = ? AND c.kind IN ({','.join('?' * len(kinds))}) "
            "AND c.rule LIKE ? AND c.counts_from <= ? "
            "AND (c.counts_until IS NULL OR c.counts_until > ?) "
            "ORDER BY c.counts_from, f.resident_id",
            [policy, *kinds, "%" + rule_suffix, iso, iso],
        )
        return [(row[0], _contribution(row[1:])) for row in rows]


class PositionConflict(RuntimeError):
    """Another runner already moved this projection past the position being written."""


class _Tx:
    def __init__(self, cursor: Any, postgres: bool) -> None:
        self.cursor = cursor
        self.postgres = postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = (), binary: bool = False) -> None:
        if binary:
            self.cursor.execute(sql.replace("?", "%b"), params)
            return
        self.cursor.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor.executemany(self._sql(sql), rows)

    def copy(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows: COPY on PostgreSQL, executemany on SQLite."""
        if not rows:
            return
        if self.postgres:
            with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self.cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    def copy_encoded(
        self, table: str, columns: Sequence[str], data: bytes | list[tuple[Any, ...]]
    ) -> None:
        """Insert rows `encode_views` prepared: COPY text on PostgreSQL, rows on SQLite."""
        if not data:
            return
        if isinstance(data, bytes):
            with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(data)
            return
        self.copy(table, columns, data)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cursor.execute(self._sql(sql), params)
        return [tuple(row) for row in self.cursor.fetchall()]


CHUNK = 2000
CONNECT_TIMEOUT = 2
POOL_SIZE = 10
POOL_TIMEOUT = 2.0
# The first connection, made while the store is opened, may take longer on a busy host.
OPEN_TIMEOUT = 5.0
RECONNECT_TIMEOUT = 5.0
FACTS_COLUMNS = ("policy", "citizen_id", "resident_id", "facts")
CONTRIBUTION_COLUMNS = (
    "policy", "citizen_id", "authority", "reference", "kind", "rule", "points",
    "counts_from", "counts_until", "cap_group",
)  # fmt: skip


def _facts_row(policy: str, cid: uuid.UUID, view: CitizenView) -> tuple[Any, ...]:
    return (policy, cid.hex, view.facts.resident_id, orjson.dumps(view.facts.to_json()).decode())


def _contribution_rows(
    policy: str, cid: uuid.UUID, items: Sequence[Contribution]
) -> list[tuple[Any, ...]]:
    return [
        (policy, cid.hex, c.authority, c.reference, c.kind, c.rule, c.points,
         c.counts_from.isoformat(), c.counts_until.isoformat() if c.counts_until else None,
         c.cap_group)
        for c in items
    ]  # fmt: skip


def _contribution(row: Sequence[Any]) -> Contribution:
    authority, reference, kind, rule, points, start, end, group = row
    return Contribution(
        authority, reference, kind, rule, int(points), date.fromisoformat(start),
        date.fromisoformat(end) if end else None, group,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EncodedViews:
    """A chunk of views ready to write: COPY text on PostgreSQL, rows on SQLite."""

    facts: bytes | list[tuple[Any, ...]]
    contributions: bytes | list[tuple[Any, ...]]
    citizens: int
    events: int = 0


def encode_views(
    views: Iterable[CitizenViews], policies: Sequence[str], postgres: bool, chunk: int = CHUNK
) -> Iterator[EncodedViews]:
    """Views in chunks of `chunk` citizens, as `copy_encoded` writes them; each
    citizen's facts are encoded once for every policy."""
    facts: list[Any] = []
    items: list[Any] = []
    count = 0
    for cid, citizen, per_policy in views:
        encoded = orjson.dumps(citizen.to_json()).decode()
        hexid = cid.hex
        if postgres:
            tail = f"\t{hexid}\t{_text(citizen.resident_id)}\t{_text(encoded)}\n"
            for policy, found in zip(policies, per_policy, strict=True):
                quoted = _text(policy)
                facts.append(quoted + tail)
                items.extend(f"{quoted}\t{hexid}\t{_contribution_text(c)}\n" for c in found)
        else:
            for policy, found in zip(policies, per_policy, strict=True):
                facts.append((policy, hexid, citizen.resident_id, encoded))
                items.extend(_contribution_rows(policy, cid, found))
        count += 1
        if count >= chunk:
            yield _chunk(facts, items, count, postgres)
            facts, items, count = [], [], 0
    if count:
        yield _chunk(facts, items, count, postgres)


def _contribution_data(
    views: Iterable[CitizenViews], policies: Sequence[str], postgres: bool
) -> bytes | list[tuple[Any, ...]]:
    if not postgres:
        return [
            row
            for cid, _, per_policy in views
            for policy, found in zip(policies, per_policy, strict=True)
            for row in _contribution_rows(policy, cid, found)
        ]
    quoted = [_text(policy) for policy in policies]
    return "".join(
        f"{name}\t{cid.hex}\t{_contribution_text(c)}\n"
        for cid, _, per_policy in views
        for name, found in zip(quoted, per_policy, strict=True)
        for c in found
    ).encode()


def _chunk(facts: list[Any], items: list[Any], count: int, postgres: bool) -> EncodedViews:
    if postgres:
        return EncodedViews("".join(facts).encode(), "".join(items).encode(), count)
    return EncodedViews(facts, items, count)


# COPY's text format: backslash, tab, newline and carriage return escaped; \N is NULL.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str | None) -> str:
    if value is None:
        return "\\N"
    return value.translate(_COPY_ESCAPES)


def _contribution_text(c: Contribution) -> str:
    until = c.counts_until.isoformat() if c.counts_until else "\\N"
    return (
        f"{_text(c.authority)}\t{_text(c.reference)}\t{_text(c.kind)}\t{_text(c.rule)}\t"
        f"{c.points}\t{c.counts_from.isoformat()}\t{until}\t{_text(c.cap_group)}"
    )


def _move(tx: _Tx, tracking: str, position: int) -> None:
    """Move a tracking position forwards; PositionConflict if it is already there."""
    moved = tx.rows(
        "UPDATE projection_tracking SET position = ? WHERE name = ? AND position < ? "
        "RETURNING position",
        [position, tracking, position],
    )
    if moved:
        return
    existing = tx.rows("SELECT position FROM projection_tracking WHERE name = ?", [tracking])
    if existing:
        raise PositionConflict(f"{tracking} is already at {existing[0][0]}, not before {position}")
    tx.execute(
        "INSERT INTO projection_tracking (name, position) VALUES (?, ?)", [tracking, position]
    )
