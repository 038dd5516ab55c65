"""Moving a partition to another shard while the others keep taking writes.

The partition is frozen (its tables locked on the old shard, so its writers wait),
copied table by table to the new shard, and checked there: the copy's Merkle tree
must give the root of the partition's last checkpoint at that size, and every leaf
and node must verify. The old schema is then dropped in the same transaction that
froze it, so a writer that waited finds nothing to write to, rereads the map and
goes to the new shard; only then is the map switched. At no moment do two copies
take writes; a move cut short after the drop is finished by running it again.
Proofs issued before the move still verify: the log, its positions and its tree are
the same bytes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ledger.application import Ledger
from ledger.errors import PlacementError
from ledger.partitioned.catalog import Catalog, create_partition
from ledger.storage import PostgresLedgerRecorder, connect_postgres, environment
from ledger.transparency.audit import Log, verify_log


@dataclass(frozen=True, slots=True)
class Moved:
    """What a move did."""

    partition: int
    source: str
    destination: str
    events: int
    frozen_seconds: float
    checkpoint_size: int | None


def move_partition(
    catalog: Catalog, partition: int, shard: str, say: Callable[[str], None] = lambda _: None
) -> Moved:
    """Move `partition` to `shard`; PlacementError names what stands in the way."""
    shard_map = catalog.shard_map()
    before = shard_map.placement.get(partition)
    # The map's own rules, on a copy that is not saved: the move is recorded once done.
    shard_map.place(partition, shard, catalog.clock.now())
    if before is None:
        raise PlacementError(f"partition {partition} is on no shard yet")
    source = shard_map.partition_url(partition, before)
    destination = shard_map.partition_url(partition)
    schema = environment(source)["POSTGRES_SCHEMA"]
    if not _exists(source, schema):
        # A move cut short after the old copy was dropped: the new one was checked then,
        # and is checked again before the map points to it.
        if not _exists(destination, schema):
            raise PlacementError(f"partition {partition} is on neither shard")
        say(f"partition {partition} was already copied; checking it, then the map")
        size = _check(destination)
        catalog.place(partition, shard)
        return Moved(partition, source, destination, 0, 0.0, size)
    tables = _prepared(destination, schema, shard)
    with connect_postgres(source) as frozen:
        frozen.autocommit = False
        started = time.monotonic()
        say(f"freezing partition {partition}")
        # In the order a save takes them (events, then index, tree, checkpoints), so a
        # save under way finishes first and none is caught holding one and wanting
        # the next.
        frozen.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
            )
        )
        try:
            events = _copy(frozen, destination, schema, tables)
            say(f"copied {events} events; checking the copy")
            size = _check(destination)
        except BaseException:
            frozen.rollback()
            _drop(destination, schema)
            raise
        # The views go with the old schema; `ledger project` builds them on the new shard.
        frozen.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        frozen.commit()
        frozen_for = time.monotonic() - started
    catalog.place(partition, shard)
    say(f"partition {partition} is on shard {shard!r}; it was frozen {frozen_for:.1f}s")
    return Moved(partition, source, destination, events, frozen_for, size)


def _prepared(destination: str, schema: str, shard: str) -> list[str]:
    """The log's tables, created empty on the destination; their names."""
    create_partition(destination)
    ledger = Ledger(destination)
    try:
        recorder = ledger.store
        assert isinstance(recorder, PostgresLedgerRecorder)
        if ledger.max_position():
            raise PlacementError(
                f"shard {shard!r} already holds events in {schema}; drop that schema first"
            )
        return recorder.tables()
    finally:
        ledger.close()


def _drop(url: str, schema: str) -> None:
    with connect_postgres(url) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _exists(url: str, schema: str) -> bool:
    with connect_postgres(url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone()
            is not None
        )


def _copy(frozen: psycopg.Connection[Any], destination: str, schema: str, tables: list[str]) -> int:
    """Every table's rows, and every sequence's place, from the frozen partition to the
    destination, in one transaction there; the number of events copied."""
    with connect_postgres(destination) as target, target.transaction():
        for table in tables:
            name = sql.Identifier(schema, table)
            target.execute(sql.SQL("TRUNCATE {}").format(name))
            with (
                frozen.cursor().copy(
                    sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(name)
                ) as out,
                target.cursor().copy(
                    sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(name)
                ) as into,
            ):
                for data in out:
                    into.write(data)
        for (sequence,) in frozen.execute(
            "SELECT quote_ident(sequence_schema) || '.' || quote_ident(sequence_name) "
            "FROM information_schema.sequences WHERE sequence_schema = %s", [schema]
        ).fetchall():  # fmt: skip
            row = frozen.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(str(sequence)))
            ).fetchone()
            assert row is not None
            target.execute("SELECT setval(%s::regclass, %s, %s)", [sequence, row[0], row[1]])
        counted = target.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "ledger_events"))
        ).fetchone()
    return int(counted[0]) if counted else 0


def _check(destination: str) -> int | None:
    """The copy's tree against the last checkpoint kept (its root at that size), and
    every leaf and node against the events; the checkpoint's size."""
    ledger = Ledger(destination)
    try:
        log = Log(ledger)
        kept = log.store.checkpoints()
        size = None
        if kept:
            size, note, _ = kept[-1]
            root = base64.b64decode(note.split("\n")[2])
            if log.root(size) != root:
                raise PlacementError(
                    f"the copy's root at size {size} is not the last checkpoint's; "
                    "the old shard keeps the partition"
                )
        damage = verify_log(ledger)
        if damage is not None:
            raise PlacementError(f"the copy does not verify ({damage}); the old shard keeps it")
        return size
    finally:
        ledger.close()
