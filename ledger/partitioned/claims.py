"""One namespace of references over every partition.

With one database, the record index refuses an (authority, reference) that already
names a record of other content. Partitioned, each partition's index sees only its own
citizens, so a writer also claims each reference new to its partition in the
partition the reference hashes to (`partition_of_reference`): a row (authority,
reference, citizen, digest) in that partition's claims table.

A claim is made before the record is applied and confirmed inside the save, while the
writer holds its partition's table lock. A claim held for another record is waited on
while it is fresh (its writer is saving), and may then be stale: its writer died, or
its record was refused by a rule. Whoever meets one takes the holder's partition's
table lock, which waits out any save in flight, and looks in that partition's record
index: the record is there (the reference is refused), or it is not, and the claim is
taken over. A writer's claim taken over before its save is
found by its confirmation, and its batch is applied again; one taken over after its
save is impossible, since the record is then in its index. So two records can never
hold one reference, without a transaction across databases.
"""

from __future__ import annotations

import functools
import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from eventsourcing.persistence import IntegrityError
from psycopg_pool import ConnectionPool

from ledger.domain.records import RecordKey
from ledger.domain.shards import partition_of, partition_of_reference, partition_schema
from ledger.errors import ConcurrencyConflict
from ledger.storage import environment
from ledger.storage.postgres import (
    claim_ages,
    claim_holders,
    claim_references,
    claimed,
    claiming,
    index_page,
    indexed,
    indexed_with_saves_held,
    release_claims,
    take_claim,
)
from ledger.storage.recorder import Claim, Holder

if TYPE_CHECKING:
    from ledger.partitioned.ledger import PartitionedLedger

# Seconds a claim is taken for its writer's, saving now, and waited on; older, it is
# taken for a writer's that died or whose record a rule refused.
FRESH = 2.0
# Seconds more a claim is fought over before the batch is given up, to be sent again.
CONTENDED = 10.0
# Index rows read at a time when checking that every stored record holds its claim.
CHECK_PAGE = 5000
# Connections a process keeps to each shard for claims: one a writer thread at a time.
SHARD_POOL = 4
CONNECT_TIMEOUT = 5


class _Yielded(Exception):
    """This writer met a fresh claim of an older one's, which may be waiting for this
    one's: it lets its own claims go, and claims again."""


class ClaimLost(IntegrityError):
    """A claim made for a batch was taken over before its save: the batch is applied
    again, and meets the record that took it."""


class Claims:
    """The claims of a partitioned ledger's writers in this process: through a small
    pool of connections to each shard, whatever number of partitions it holds."""

    def __init__(self, routed: PartitionedLedger) -> None:
        self.routed = routed
        self._pools: dict[tuple[str, ...], ConnectionPool[psycopg.Connection[Any]]] = {}
        self._lock = threading.Lock()

    def _target(self, partition: int) -> tuple[dict[str, Any], str]:
        return _connection_kwargs(self.routed.urls[partition]), partition_schema(partition)

    def _pool(self, partition: int) -> ConnectionPool[psycopg.Connection[Any]]:
        """The pool of connections to the partition's shard (where the map places it
        now: a partition moved is reached at its new shard)."""
        kwargs = _connection_kwargs(self.routed.urls[partition])
        key = tuple(str(kwargs[k]) for k in ("host", "port", "dbname", "user"))
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                # A wait for a connection no longer than for a new one: a shard that is
                # down is an outage the writer's patience waits out, batch by batch.
                pool = self._pools[key] = ConnectionPool(
                    kwargs=kwargs, min_size=1, max_size=SHARD_POOL, name="ledger-claims",
                    timeout=CONNECT_TIMEOUT, open=True,
                )  # fmt: skip
            return pool

    @contextmanager
    def _on(self, partition: int) -> Iterator[tuple[psycopg.Connection[Any], str]]:
        """A pooled connection to the partition's shard, and the partition's schema."""
        with self._pool(partition).connection() as conn:
            yield conn, partition_schema(partition)

    def _by_shard(self, wanted: Sequence[Claim]) -> list[list[tuple[int, list[Claim]]]]:
        """The claims by the partition they are kept in, those partitions by shard."""
        shards: dict[int, list[tuple[int, list[Claim]]]] = {}
        for partition, claims in sorted(self._by_partition(wanted).items()):
            shards.setdefault(id(self._pool(partition)), []).append((partition, claims))
        return list(shards.values())

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def _by_partition(self, wanted: Sequence[Claim]) -> dict[int, list[Claim]]:
        grouped: dict[int, list[Claim]] = {}
        for claim in wanted:
            partition = partition_of_reference(claim[0], self.routed.partitions)
            grouped.setdefault(partition, []).append(claim)
        return grouped

    def claim(self, wanted: Sequence[Claim]) -> set[RecordKey]:
        deadline = time.monotonic() + FRESH + CONTENDED
        while True:
            made: list[tuple[int, Claim]] = []
            try:
                return self._claim(wanted, made, time.monotonic())
            except _Yielded:
                # An older writer waits for references this one claimed: let them go.
                self._release(made)
                if time.monotonic() > deadline:
                    raise ConcurrencyConflict(
                        "other writers kept claiming the same references; try again"
                    ) from None
                time.sleep(random.uniform(0.01, 0.1))  # noqa: S311 - jitter

    def _claim(
        self, wanted: Sequence[Claim], made: list[tuple[int, Claim]], since: float
    ) -> set[RecordKey]:
        """Claim `wanted` (noting in `made` each claim this makes); the keys refused."""
        contested: list[tuple[int, Claim]] = []
        for shard in self._by_shard(wanted):
            # One round trip and one commit a shard: its partitions' statements, with
            # the transaction's BEGIN and COMMIT, in one pipeline.
            with self._on(shard[0][0]) as (conn, _):
                with conn.pipeline(), conn.transaction():
                    sent = [conn.execute(*claiming(partition_schema(partition), claims),
                                         prepare=True) for partition, claims in shard]  # fmt: skip
                answers = [claimed(cursor.fetchall()) for cursor in sent]
            # A key not claimed now is held already: by this record (a batch sent
            # again), or by another, whose claim may be stale; each is looked at alone.
            for (partition, claims), made_now in zip(shard, answers, strict=True):
                for claim in claims:
                    (made if claim[0] in made_now else contested).append((partition, claim))
        refused = set()
        for partition, (key, citizen, digest) in contested:
            mine = (citizen, digest)
            if self._renewed(partition, key, mine) or self._taken(partition, key, mine, since):
                made.append((partition, (key, citizen, digest)))
            else:
                refused.add(key)
        return refused

    def _release(self, made: list[tuple[int, Claim]]) -> None:
        """Give up claims this writer made and has not saved records for."""
        by_partition: dict[int, list[Claim]] = {}
        for partition, claim in made:
            by_partition.setdefault(partition, []).append(claim)
        for partition, claims in by_partition.items():
            with self._on(partition) as (conn, schema):
                release_claims(conn, schema, claims)

    def _renewed(self, partition: int, key: RecordKey, mine: Holder) -> bool:
        """A claim of ours from before (a batch sent again) made fresh again, as the
        confirmation's shortcut takes every claim of the batch to be; False if it is
        not ours."""
        with self._on(partition) as (conn, schema):
            return take_claim(conn, schema, key, mine, mine)

    def _taken(self, partition: int, key: RecordKey, mine: Holder, since: float) -> bool:
        """Whether a key claimed for another record is ours now: False when that record
        is stored in its citizen's partition. A claim younger than FRESH seconds is its
        writer's, saving now: a writer younger than it yields (_Yielded), an older one
        waits for it. Else writers racing for the same references would take each
        other's claims, none ever saving."""
        deadline = time.monotonic() + FRESH + CONTENDED
        while time.monotonic() < deadline:
            with self._on(partition) as (conn, schema):
                found = claim_ages(conn, schema, [key]).get(key)
                if found is None:
                    claim_references(conn, schema, [(key, *mine)])
                    continue
            held, age = found
            if held == mine:
                return True
            holders = partition_of(held[0], self.routed.partitions)
            if self._stores(holders, key, held):
                return False
            if age < FRESH:
                if age > time.monotonic() - since:
                    raise _Yielded
                time.sleep(min(0.05, FRESH - age))
                continue
            # A connection of its own: it waits for the holder's partition's saves.
            kwargs, holder_schema = self._target(holders)
            with psycopg.connect(**kwargs) as holding, holding.transaction():
                if indexed_with_saves_held(holding, holder_schema, [key]):
                    return False
                with self._on(partition) as (conn, schema):
                    if take_claim(conn, schema, key, held, mine):
                        return True
        raise ConcurrencyConflict(f"{key}: other writers kept claiming this reference; try again")

    def _stores(self, partition: int, key: RecordKey, held: Holder | None) -> bool:
        """Whether the partition's record index holds `key` for this (citizen, digest)."""
        with self._on(partition) as (conn, schema):
            return [(key, *held)] == indexed(conn, schema, [key]) if held else False

    def confirm(self, wanted: Sequence[Claim], since: float) -> None:
        if time.monotonic() - since < FRESH / 2:
            # Claims made since then are younger than FRESH: nobody has taken them over,
            # and taking them now needs this partition's lock, held until the save ends.
            return
        for shard in self._by_shard(wanted):
            with self._on(shard[0][0]) as (conn, _):
                holders: dict[RecordKey, Holder] = {}
                for partition, claims in shard:
                    keys = [key for key, _, _ in claims]
                    holders |= claim_holders(conn, partition_schema(partition), keys)
            for _, claims in shard:
                for key, citizen, digest in claims:
                    if holders.get(key) != (citizen, digest):
                        raise ClaimLost(f"{key}: claimed meanwhile for another record")


@functools.lru_cache(maxsize=256)
def _connection_kwargs(url: str) -> dict[str, Any]:
    """How to connect to the database of a partition's URL (its schema aside)."""
    env = environment(url)
    return {
        "host": env["POSTGRES_HOST"], "port": env["POSTGRES_PORT"],
        "dbname": env["POSTGRES_DBNAME"], "user": env["POSTGRES_USER"],
        "password": env["POSTGRES_PASSWORD"], "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT,
    }  # fmt: skip


@dataclass
class ClaimsChecked:
    """Whether every stored record holds the claim on its reference."""

    records: int = 0
    # Claims made for records stored without one (by `check_claims(..., fill=True)`).
    claimed: int = 0
    # References of stored records not claimed (by `check_claims(..., fill=False)`).
    unclaimed: list[RecordKey] = field(default_factory=list)
    # References held by records in two partitions: (key, one's partition, the other's).
    doubled: list[tuple[RecordKey, int, int]] = field(default_factory=list)

    def doubles(self) -> list[str]:
        """Each reference held by records in two partitions, in words."""
        return [f"{key} is held by records in partition {one} and partition {other}"
                for key, one, other in self.doubled]  # fmt: skip


def check_claims(routed: PartitionedLedger, fill: bool) -> ClaimsChecked:
    """Every partition's stored records against the claims on their references; with
    `fill`, a record stored without its claim (by a ledger partitioned before there were
    claims) gets it, unless another record holds it."""
    claims, checked = Claims(routed), ClaimsChecked()
    try:
        for partition in range(routed.partitions):
            after: RecordKey | None = None
            while True:
                with claims._on(partition) as (conn, schema):
                    page = index_page(conn, schema, after, CHECK_PAGE)
                if not page:
                    break
                after = page[-1][0]
                checked.records += len(page)
                _check_page(claims, partition, page, fill, checked)
    finally:
        claims.close()
    return checked


def _check_page(
    claims: Claims, partition: int, page: list[Claim], fill: bool, checked: ClaimsChecked
) -> None:
    for holder, wanted in claims._by_partition(page).items():
        keys = [key for key, _, _ in wanted]
        with claims._on(holder) as (conn, schema):
            before = claim_holders(conn, schema, keys)
            held = before
            if fill and len(before) < len(keys):
                claim_references(conn, schema, [w for w in wanted if w[0] not in before])
                held = claim_holders(conn, schema, keys)
        for key, citizen, digest in wanted:
            mine = (citizen, digest)
            found = held.get(key)
            if found == mine:
                checked.claimed += key not in before
                continue
            other = None if found is None else partition_of(found[0], claims.routed.partitions)
            if other is not None and claims._stores(other, key, found):
                checked.doubled.append((key, partition, other))
            # A record stored long ago is older than any writer: it waits, never yields.
            elif fill and claims._taken(holder, key, mine, since=-math.inf):
                checked.claimed += 1
            else:
                checked.unclaimed.append(key)
