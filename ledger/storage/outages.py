"""A database that stops answering: the pools' pace of reconnecting, the ledger's own
error for it, and how long a caller waits for it to come back."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
)
from psycopg_pool import PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from ledger.errors import DatabaseUnavailable
from ledger.storage.urls import redact, redact_text

# psycopg_pool waits 1, 2, 4, 8... seconds between attempts to reach a server that went
# away, so every pool of a process would stay empty long after a short restart or a
# failover; try at a steady pace instead (a refused connection costs little).
AttemptWithBackoff.INITIAL_DELAY = 0.5
AttemptWithBackoff.DELAY_BACKOFF = 1.0


# What a database that cannot be reached raises, from the ledger or from a driver: worth
# waiting out, not dying of.
UNREACHABLE: tuple[type[BaseException], ...] = (
    DatabaseUnavailable, OperationalError, InterfaceError, psycopg.OperationalError,
    psycopg.InterfaceError, sqlite3.OperationalError,
)  # fmt: skip


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
