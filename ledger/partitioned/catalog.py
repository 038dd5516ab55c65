"""The catalog: the shard map's commands, load, act, save on the catalog's ledger."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from psycopg import sql

from ledger.application import Clock, Ledger
from ledger.application.service import MAX_ATTEMPTS
from ledger.domain.shards import SHARD_MAP_ID, ShardMap
from ledger.errors import ConcurrencyConflict, PlacementError
from ledger.storage import connect_postgres, environment


def is_partitioned(ledger: Ledger) -> bool:
    """Whether this ledger is a catalog: whether it holds a shard map (one query)."""
    return bool(ledger.store.events_after({SHARD_MAP_ID: 0}))


class Catalog:
    """The shard map of the catalog ledger `ledger`, read fresh on every call."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @property
    def url(self) -> str:
        return self.ledger.url

    @property
    def clock(self) -> Clock:
        return self.ledger.clock

    def shard_map(self) -> ShardMap:
        """The map as stored now; PlacementError when this ledger is not partitioned."""
        try:
            found: ShardMap = self.ledger.repository.get(SHARD_MAP_ID)
        except AggregateNotFoundError:
            raise PlacementError(
                f"{self.ledger.url.split('?')[0]} holds no shard map: create one with "
                "`ledger shards init`"
            ) from None
        return found

    def init(self, partitions: int, shards: Sequence[tuple[str, str]]) -> ShardMap:
        """Make this ledger the catalog of `partitions` partitions placed in turn on
        `shards` (name, URL), creating every partition's schema and tables."""
        if environment(self.url)["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
            raise PlacementError("a partitioned ledger's catalog is a PostgreSQL database")
        if self.ledger.store.events_after({SHARD_MAP_ID: 0}):
            raise PlacementError("this ledger already has a shard map")
        if self.ledger.max_position():
            raise PlacementError(
                "this ledger already holds records; a catalog starts as an empty database"
            )
        if not shards:
            raise PlacementError("name at least one shard")
        now = self.clock.now()
        shard_map = ShardMap.open(partitions, now)
        for name, url in shards:
            shard_map.add_shard(name, url, now)
        names = [name for name, _ in shards]
        for partition in range(partitions):
            shard_map.place(partition, names[partition % len(names)], now)
        for partition in range(partitions):
            create_partition(shard_map.partition_url(partition))
        try:
            self.ledger.save(shard_map)
        except IntegrityError:
            raise PlacementError("another process made a shard map at the same time") from None
        return shard_map

    def add_shard(self, name: str, url: str) -> ShardMap:
        return self._change(lambda shard_map, now: shard_map.add_shard(name, url, now))

    def place(self, partition: int, shard: str) -> ShardMap:
        return self._change(lambda shard_map, now: shard_map.place(partition, shard, now))

    def _change(self, act: Callable[[ShardMap, datetime], None]) -> ShardMap:
        for _ in range(MAX_ATTEMPTS):
            shard_map = self.shard_map()
            act(shard_map, self.clock.now())
            try:
                self.ledger.save(shard_map)
            except IntegrityError:
                continue
            return shard_map
        raise ConcurrencyConflict("the shard map kept changing; try again")

    def partition_urls(self) -> list[str]:
        shard_map = self.shard_map()
        return [shard_map.partition_url(p) for p in range(shard_map.partitions)]


def create_partition(url: str) -> None:
    """A partition's schema on its shard, and its ledger's tables in it."""
    schema = environment(url)["POSTGRES_SCHEMA"]
    with connect_postgres(url.split("?", maxsplit=1)[0]) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    Ledger(url).close()
