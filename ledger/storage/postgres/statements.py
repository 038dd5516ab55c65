"""The SQL the PostgreSQL recorder and the reference claims share: statements composed
once with their schema's table names, the columns written by COPY, and small helpers."""

from __future__ import annotations

import functools
from typing import Any

from psycopg import Connection
from psycopg.sql import SQL, Composable, Identifier

from ledger.storage.recorder import IdRange

DDL_LOCK = 0x1ED6E5

INDEX_COLUMNS = (
    ("authority", "text"), ("reference", "text"), ("citizen_id", "uuid"),
    ("version", "int8"), ("digest", "bytea"),
)  # fmt: skip

EVENT_COLUMNS = (
    ("originator_id", "uuid"), ("originator_version", "int8"), ("topic", "text"),
    ("state", "bytea"), ("notification_id", "int8"),
)  # fmt: skip

TREE_COLUMNS = (("level", "int2"), ("idx", "int8"), ("hash", "bytea"), ("position", "int8"))

MAX_POSITION = 2**63 - 1


def beside(events_table: str, name: str) -> str:
    """The name of one of the log's other tables, beside its events table."""
    return f"{events_table.removesuffix('_events')}_{name}"


def in_range(where: str, params: list[Any], partition: IdRange) -> tuple[str, list[Any]]:
    """A condition and its parameters narrowed to the aggregates whose ids lie in a range."""
    low, high = partition
    where += " AND originator_id >= %s"
    params = [*params, low]
    if high is not None:
        where += " AND originator_id < %s"
        params.append(high)
    return where, params


def let_reader_take_its_time(conn: Connection[Any]) -> None:
    """A stream's transaction is idle between fetches for as long as its reader takes
    with a batch (a rebuild worker blocked on its pipe, a writer's COPY, a loaded
    machine); the library's five-second limit on idle transactions would end it."""
    conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")


def as_text(statement: Any) -> str:
    """A statement without parameters as the text sent."""
    if isinstance(statement, Composable):
        return statement.as_string(None)
    return statement.decode() if isinstance(statement, bytes) else str(statement)


def qualified(schema: str, table: str) -> Any:
    return SQL("{}.{}").format(Identifier(schema), Identifier(table))


# Statements differ by their tables' schema and little else: each is composed once.
# Composing one anew costs some 30 µs of CPU, a third of what running a small one costs.
@functools.lru_cache(maxsize=512)
def composed(template: str, *tables: tuple[str, str]) -> bytes:
    """`template` with each `{}` the (schema, table) given in its place, quoted, as the
    bytes sent: psycopg would render a composed statement again on every call."""
    return (
        SQL(template).format(*(qualified(schema, table) for schema, table in tables)).as_bytes(None)
    )
