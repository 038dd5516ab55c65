"""Where the log lives: database URLs, settings for eventsourcing, and the recorders
that keep the record index, the Merkle tree and the checkpoints beside the events."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.utils import get_topic

from ledger.errors import StorageError
from ledger.storage.outages import UNREACHABLE, Outage, unavailable_as_ledger_error
from ledger.storage.postgres import DDL_LOCK, PostgresLedgerRecorder
from ledger.storage.recorder import (
    IndexEntry,
    IndexRow,
    LedgerRecorder,
    check_read_versions,
    leaf_hashes,
)
from ledger.storage.sqlite import SQLiteLedgerRecorder
from ledger.storage.urls import DEFAULT_URL, SCHEMA_NAME, is_in_memory, redact, redact_text

__all__ = [
    "DDL_LOCK", "DEFAULT_URL", "UNREACHABLE", "IndexEntry", "IndexRow", "LedgerRecorder", "Outage",
    "PostgresLedgerRecorder", "SQLiteLedgerRecorder", "check_read_versions",
    "connect_postgres", "environment", "is_in_memory", "leaf_hashes", "ledger_recorder",
    "log_head_on",
    "redact", "redact_text", "unavailable_as_ledger_error",
]  # fmt: skip


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
        hosts, ports = _hosts(parts.netloc.rpartition("@")[2], url)
        attrs = query.get("target_session_attrs", ["read-write" if "," in hosts else ""])[0]
        if attrs not in SESSION_ATTRS:
            raise StorageError(
                f"{redact(url)}: target_session_attrs is one of {', '.join(SESSION_ATTRS[1:])}"
            )
        if attrs:
            # libpq reads it for every connection of this process, those eventsourcing
            # makes included: with several hosts, find the one that takes writes.
            os.environ["PGTARGETSESSIONATTRS"] = attrs
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
            "POSTGRES_HOST": hosts,
            "POSTGRES_PORT": ports,
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


SESSION_ATTRS = ("", "any", "read-write", "read-only", "primary", "standby", "prefer-standby")


def _hosts(netloc: str, url: str) -> tuple[str, str]:
    """libpq's comma-separated hosts and ports of `HOST[:PORT][,HOST[:PORT]...]`, as
    a multi-host URL names the nodes of a replicated server."""
    hosts, ports = [], []
    for item in (netloc or "127.0.0.1").split(","):
        if item.endswith("]") or ":" not in item:
            host, port = item, ""
        else:
            host, _, port = item.rpartition(":")
        if port and not port.isdigit():
            raise StorageError(f"{redact(url)}: port {port!r} is not a number")
        hosts.append(host.strip("[]") or "127.0.0.1")
        ports.append(port or "5432")
    return ",".join(hosts), ",".join(ports)


def connect_postgres(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection to a `postgresql://` ledger, in its schema."""
    env = environment(url)
    return psycopg.connect(
        host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        dbname=env["POSTGRES_DBNAME"], user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"], autocommit=True, connect_timeout=5,
        options=f"-c search_path={env['POSTGRES_SCHEMA']}",
    )  # fmt: skip


def log_head_on(conn: psycopg.Connection[Any]) -> int:
    """The log's last position (0 when empty), on a connection from `connect_postgres`:
    for monitors that poll a ledger without opening it."""
    # eventsourcing names the events table after the application class, Ledger.
    row = conn.execute("SELECT COALESCE(MAX(notification_id), 0) FROM ledger_events").fetchone()
    return int(row[0]) if row else 0


def ledger_recorder(recorder: ApplicationRecorder) -> LedgerRecorder:
    if not isinstance(recorder, SQLiteLedgerRecorder | PostgresLedgerRecorder):
        raise StorageError("the ledger needs its own recorder; open it with a database URL")
    return recorder
