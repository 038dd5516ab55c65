"""What the ledger needs of its store beyond eventsourcing's recorder: the record
index, the versions a batch read, the Merkle leaves of what it writes.

The record index maps (authority, reference) to the citizen and version of the event
that holds the record, with a digest of its content. It is written in the same
transaction as the events, so the log and the index never disagree."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import (
    IntegrityError,
    StoredEvent,
)

from ledger.domain.records import RecordKey
from ledger.storage.encoding import LeafParts
from ledger.transparency.merkle import leaf_hash
from ledger.transparency.tree import leaf_data, leaf_document

IndexRow = tuple[str, str, uuid.UUID, int, bytes]
# A claim on a reference (a partitioned ledger's): the key, and the citizen and digest
# of the record it names; a claim's holder is the last two.
Claim = tuple[RecordKey, uuid.UUID, bytes]
Holder = tuple[uuid.UUID, bytes]
# (position, citizen or other aggregate id, version, topic, state), as the database
# gives them: the id may be a UUID or its text, the state bytes or a buffer.
# (position, citizen id, version, topic, state); the id as the store gives it (a UUID,
# its text or its 16 bytes), which the log's port makes a UUID (ledger.log.decoding.as_uuid).
LogRow = tuple[int, Any, int, str, Any]
# The citizens from the first id to the one before the second (None: to the last).
IdRange = tuple[uuid.UUID, uuid.UUID | None]
# A LogRow for hashing: the id as its canonical text (lower-case, hyphenated).
LeafRow = tuple[int, str, int, str, Any]
# A stored tree node: (level, index, hash, position); the position is a leaf's only.
TreeRow = tuple[int, int, bytes, int | None]


@dataclass(frozen=True, slots=True)
class StoredLevel:
    """One level of the stored tree whole: how many nodes, their first and last index,
    the shortest and longest hash, how many have a position, and the hashes and the
    positions (`packed_positions`) one after another in index order."""

    level: int
    count: int
    first: int
    last: int
    shortest: int
    longest: int
    placed: int
    hashes: bytes
    positions: bytes


def packed_positions(positions: Sequence[int]) -> bytes:
    """Positions as 8 bytes each, big-endian, as PostgreSQL's int8send writes them."""
    return struct.pack(f">{len(positions)}q", *positions)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where a record is stored and what it said."""

    citizen_id: uuid.UUID
    version: int
    digest: bytes


class LedgerRecorder(Protocol):
    """What the ledger needs of its store beyond eventsourcing's recorder."""

    def lookup(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IndexEntry]: ...

    def events_after(self, versions: Mapping[uuid.UUID, int]) -> list[StoredEvent]: ...

    def versions(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]: ...

    def exclusive_writer(self) -> AbstractContextManager[None]: ...

    def positions(
        self, versions: Iterable[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], int]: ...

    def tree_size(self) -> int: ...

    # What ledger.log reads, and nobody else.

    def log_head(self) -> int: ...

    def log_head_query(self) -> str: ...

    def log_page(
        self, after: int, limit: int, upto: int | None, partition: IdRange | None = None
    ) -> list[LogRow]:
        """At most `limit` events after `after`, up to `upto`, in position order; with
        `partition`, only those of aggregates whose ids lie in that range."""
        ...

    def log_enrolments(self, originators: Sequence[uuid.UUID]) -> list[LogRow]:
        """The first event of each of these aggregates that has one."""
        ...

    def log_by_originator(
        self, topic_prefix: str, upto: int, partition: IdRange | None
    ) -> Iterator[LogRow]: ...

    def log_of(self, originators: Sequence[uuid.UUID], upto: int | None) -> list[LogRow]: ...

    def log_at(self, position: int) -> LogRow | None: ...

    def log_leaf_rows(self, after: int, upto: int | None) -> Iterator[list[LeafRow]]:
        """Every event after a position up to another, in position order, in batches."""
        ...

    def log_channel(self) -> str | None: ...

    def tree_nodes(self, nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...

    def leaf_index(self, position: int) -> int | None: ...

    def tree_rows(self) -> Generator[list[TreeRow], None, None]:
        """Every stored node (level 0 and up) by level, then index, in batches."""
        ...

    def tree_levels(self) -> list[StoredLevel]:
        """Every level of the stored tree (0 and up) whole, by level."""
        ...

    def tree_position(self, index: int) -> int | None: ...

    def save_checkpoint(self, size: int, note: str, at: str) -> None: ...

    def checkpoints(self) -> list[tuple[int, str, str]]: ...


def leaf_hashes(
    events: Sequence[StoredEvent], positions: Sequence[int], leaves: Sequence[LeafParts] | None
) -> list[bytes]:
    """The Merkle leaf hash of each stored event at its position: from the parts of its
    leaf when the writer gave them, else from the stored event."""
    if leaves is not None:
        return [leaf_hash(leaf_document(p, *parts))
                for parts, p in zip(leaves, positions, strict=True)]  # fmt: skip
    return [
        leaf_hash(leaf_data(p, e.originator_id, e.originator_version, e.topic, e.state))
        for e, p in zip(events, positions, strict=True)
    ]


def leaves_of(kwargs: dict[str, Any]) -> Sequence[LeafParts] | None:
    leaves: Sequence[LeafParts] | None = kwargs.get("leaves")
    return leaves


def index_rows_of(kwargs: dict[str, Any]) -> list[IndexRow]:
    rows: list[IndexRow] = kwargs.get("index_rows") or []
    return rows


def check_read_versions(kwargs: dict[str, Any], stored: dict[uuid.UUID, int]) -> None:
    """Refuse the save when a citizen the batch read but did not change has moved on
    since: a rejection or a decision made on that citizen would be stale."""
    read: Mapping[uuid.UUID, int] = kwargs.get("read_versions") or {}
    moved = [cid for cid, version in read.items() if stored.get(cid, 0) != version]
    if moved:
        raise IntegrityError(f"{len(moved)} citizens changed since they were read")


def read_ids(kwargs: dict[str, Any]) -> list[uuid.UUID]:
    read: Mapping[uuid.UUID, int] = kwargs.get("read_versions") or {}
    return list(read)
