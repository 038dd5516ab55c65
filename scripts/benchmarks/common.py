"""What every benchmark shares: a scratch schema, a checkpoint, the demo authorities."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from ledger.application import Ledger
from scripts.demo import DEMO_AUTHORITIES

LEDGER = str(Path(sys.executable).with_name("ledger"))


@contextmanager
def schema(url: str) -> Iterator[str]:
    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def settle(url: str) -> None:
    """A checkpoint before a phase that writes is timed: what the phase before it wrote
    is flushed now, not in its time (a checkpoint landing in one phase and not in the
    other moved the ratio of partitioned to plain ingest by a tenth)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def register(url: str) -> None:
    app = Ledger(url)
    for spec in DEMO_AUTHORITIES:
        app.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
    app.close()
