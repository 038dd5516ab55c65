"""One projector writes a ledger's projections at a time.

On PostgreSQL the holder keeps a session-level advisory lock on a connection of its
own, keyed by the database and schema, so ledgers in other schemas never contend;
the lock ends with that connection, so a holder confirms it before every write. On
SQLite it is an OS file lock on a file beside the database. Nothing here writes views.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Protocol

import psycopg

from ledger.errors import LedgerError
from ledger.storage import connect_postgres, environment, redact


class ProjectorBusy(LedgerError):
    """Another projector is writing this ledger's projections."""

    field = "db"


class LockLost(LedgerError):
    """The projector lock ended with its connection; it must be taken again before writing."""

    field = "db"


class ProjectorLock(Protocol):
    def try_acquire(self) -> bool:
        """Hold the lock after this call if no one else does; True when held."""

    def check(self) -> None:
        """Raise LockLost unless the lock is still held."""

    def close(self) -> None:
        """Let the lock go."""


def projector_lock(url: str) -> ProjectorLock:
    """The lock guarding the projections of the ledger at `url`."""
    env = environment(url)
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        return PostgresLock(url, advisory_key(env["POSTGRES_DBNAME"], env["POSTGRES_SCHEMA"]))
    name = env["SQLITE_DBNAME"]
    if name.startswith("file:"):
        # An in-memory database lives in one process: there is no one to exclude.
        return _NoLock()
    return FileLock(name + ".projector-lock")


def advisory_key(dbname: str, schema: str) -> int:
    """A signed 64-bit advisory lock key for the projector of one ledger schema."""
    digest = hashlib.blake2b(f"ledger-projector\0{dbname}\0{schema}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def acquire(
    lock: ProjectorLock,
    url: str,
    wait: float,
    poll: float = 0.2,
    waiting: Callable[[], None] = lambda: None,
) -> None:
    """Take the lock within `wait` seconds, else raise ProjectorBusy; `waiting` is called
    once if the lock is not free at first."""
    deadline = time.monotonic() + wait
    if lock.try_acquire():
        return
    waiting()
    while time.monotonic() < deadline:
        time.sleep(min(poll, max(deadline - time.monotonic(), 0)))
        if lock.try_acquire():
            return
    raise ProjectorBusy(
        f"another projector is running on {redact(url)}; waited {wait:g}s. Stop it, "
        "or start this one with --follow to wait as its standby"
    )


class PostgresLock:
    """A session-level advisory lock held on a dedicated connection."""

    def __init__(self, url: str, key: int) -> None:
        self.url = url
        self.key = key
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False

    def try_acquire(self) -> bool:
        if self._held:
            try:
                self.check()
                return True
            except LockLost:
                pass
        if self._conn is None:
            self._conn = connect_postgres(self.url)
        try:
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self.close()
            raise
        self._held = row is not None and bool(row[0])
        return self._held

    def check(self) -> None:
        if not self._held or self._conn is None:
            raise LockLost("the projector lock is not held")
        try:
            # The session holds the lock for as long as it lives, so a live session is proof.
            self._conn.execute("SELECT 1")
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self.close()
            raise LockLost("the projector lock's connection ended") from None

    def close(self) -> None:
        conn, held, self._conn, self._held = self._conn, self._held, None, False
        if conn is not None:
            if held:
                # Released here, not when the server notices the session ended: another
                # projector may ask for the lock the moment this returns.
                with suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", [self.key])
            conn.close()


class FileLock:
    """An exclusive flock on a file beside the SQLite database."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def check(self) -> None:
        if self._fd is None:
            raise LockLost("the projector lock is not held")

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class _NoLock:
    def try_acquire(self) -> bool:
        return True

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass
