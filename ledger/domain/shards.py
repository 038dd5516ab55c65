"""Where a partitioned ledger keeps its citizens: partitions, shards and the map.

A partitioned ledger has a fixed number of partitions, each a complete log of its own
(positions, record index, Merkle tree, checkpoints) in its own schema on one shard, a
PostgreSQL database. A citizen belongs to one partition forever, by a stable hash of
their aggregate id. The map of which partition lives on which shard is an aggregate
in the catalog's own log, so every change of placement is a recorded, tamper-evident
fact.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from eventsourcing.domain import Aggregate

from ledger.domain.identity import NAMESPACE
from ledger.domain.records import RecordKey
from ledger.errors import InvalidRecord, PlacementError

SHARD_MAP_ID = uuid.uuid5(NAMESPACE, "shard-map")
MAX_PARTITIONS = 1024
SHARD_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def partition_of(citizen: uuid.UUID, partitions: int) -> int:
    """The partition (0 to partitions - 1) of a citizen's aggregate id, forever.

    A hash of its own, not a range of the id: the projections share a partition's
    rebuild between processes by ranges of the id, and a partition that was itself
    one range would fall wholly into one share."""
    digest = hashlib.sha256(b"ledger-partition:" + citizen.bytes).digest()
    return int.from_bytes(digest[:8], "big") % partitions


def partition_of_reference(key: RecordKey, partitions: int) -> int:
    """The partition that holds the claim on a record's (authority, reference): one
    namespace of references over every partition, itself spread over them."""
    text = f"{key.authority}\n{key.reference}".encode()
    digest = hashlib.sha256(b"ledger-reference:" + text).digest()
    return int.from_bytes(digest[:8], "big") % partitions


def partition_schema(partition: int) -> str:
    """The PostgreSQL schema that holds a partition's log and views on its shard."""
    return f"partition_{partition:04d}"


def check_shard_url(url: str) -> None:
    """A shard's URL as the map may hold it: PostgreSQL, with no password (the map is a
    log every auditor reads; passwords come from PGPASSWORD or ~/.pgpass) and no
    schema (each partition has its own)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        raise InvalidRecord(f"{url!r} is not a URL", "url") from None
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise InvalidRecord(f"{url!r}: a shard is a postgresql://HOST/DB URL", "url")
    if password is not None:
        raise InvalidRecord(
            "a shard's URL must not hold a password: the shard map is a log every "
            "auditor reads; give the password in PGPASSWORD or ~/.pgpass",
            "url",
        )
    if "schema" in parse_qs(parts.query):
        raise InvalidRecord(
            f"{url!r}: a shard's URL names no schema; each partition has its own", "url"
        )


class ShardMap(Aggregate):
    """The partitions of a ledger, the shards that host them, and where each one is."""

    class Opened(Aggregate.Created):
        partitions: int

    class ShardAdded(Aggregate.Event):
        shard: str
        url: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ShardMap)
            aggregate.shards[self.shard] = self.url

    class PartitionPlaced(Aggregate.Event):
        partition: int
        shard: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ShardMap)
            aggregate.placement[self.partition] = self.shard

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.shards: dict[str, str] = {}
        self.placement: dict[int, str] = {}

    @classmethod
    def open(cls, partitions: int, at: datetime) -> ShardMap:
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidRecord(f"must be 1 to {MAX_PARTITIONS}, not {partitions}", "partitions")
        return cls._create(cls.Opened, id=SHARD_MAP_ID, timestamp=at, partitions=partitions)

    def add_shard(self, shard: str, url: str, at: datetime) -> None:
        if not SHARD_NAME.fullmatch(shard):
            raise InvalidRecord(
                f"{shard!r}: a shard's name is 1 to 40 of a-z 0-9 _ -, starting with a letter",
                "shard",
            )
        if shard in self.shards:
            raise PlacementError(f"shard {shard!r} is already in the map")
        check_shard_url(url)
        if url in self.shards.values():
            raise PlacementError(f"{url} is already shard {self.shard_at(url)!r}")
        self.trigger_event(self.ShardAdded, timestamp=at, shard=shard, url=url)

    def place(self, partition: int, shard: str, at: datetime) -> None:
        if not 0 <= partition < self.partitions:
            raise PlacementError(
                f"there is no partition {partition}: the ledger has {self.partitions}"
            )
        if shard not in self.shards:
            raise PlacementError(f"there is no shard {shard!r}; add it first")
        if self.placement.get(partition) == shard:
            raise PlacementError(f"partition {partition} is already on shard {shard!r}")
        self.trigger_event(self.PartitionPlaced, timestamp=at, partition=partition, shard=shard)

    def shard_at(self, url: str) -> str:
        return next(name for name, known in self.shards.items() if known == url)

    def unplaced(self) -> list[int]:
        return [p for p in range(self.partitions) if p not in self.placement]

    def partition_url(self, partition: int, shard: str | None = None) -> str:
        """The URL of a partition's own log: its shard's (or `shard`'s), in the
        partition's schema."""
        if shard is None and partition not in self.placement:
            raise PlacementError(f"partition {partition} is on no shard yet")
        url = self.shards[shard or self.placement[partition]]
        return f"{url}{'&' if '?' in url else '?'}schema={partition_schema(partition)}"


TOP_CHECKPOINTS_ID = uuid.uuid5(NAMESPACE, "top-checkpoints")


class TopCheckpoints(Aggregate):
    """Every signed checkpoint of a partitioned ledger's logs: the note signing the root
    of a tree whose leaves are the checkpoint bodies of the catalog's log and of each
    partition's, in order, kept with those bodies."""

    class Opened(Aggregate.Created):
        pass

    class Signed(Aggregate.Event):
        note: str
        leaves: list[str]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, TopCheckpoints)
            aggregate.signed.append((self.note, tuple(self.leaves)))

    def __init__(self) -> None:
        self.signed: list[tuple[str, tuple[str, ...]]] = []

    @classmethod
    def open(cls, at: datetime) -> TopCheckpoints:
        return cls._create(cls.Opened, id=TOP_CHECKPOINTS_ID, timestamp=at)

    def keep(self, note: str, leaves: list[str], at: datetime) -> None:
        self.trigger_event(self.Signed, timestamp=at, note=note, leaves=list(leaves))
