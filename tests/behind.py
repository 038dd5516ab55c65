"""SQL run against a ledger's store behind the ledger's back, as a tamperer would."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ledger.storage import connect_postgres


@contextmanager
def behind_the_back(store_url: str) -> Iterator[Callable[..., Any]]:
    """Run SQL behind the ledger's back; yields execute(sql, params) returning rows."""
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            yield lambda sql, params=(): conn.execute(
                sql.replace("%s", "?").replace("EVENTS", "stored_events")
                .replace("POS", "rowid").replace("NODES", "merkle_nodes"), params
            ).fetchall()  # fmt: skip
        finally:
            conn.close()
    else:
        conn = connect_postgres(store_url)
        try:

            def run(sql: str, params: Any = ()) -> Any:
                cur = conn.execute(
                    sql.replace("EVENTS", "ledger_events").replace("POS", "notification_id")
                    .replace("NODES", "ledger_merkle_nodes"), params
                )  # fmt: skip
                return cur.fetchall() if cur.description else []

            yield run
        finally:
            conn.close()
