"""Proofs over the ledger's log and the check that nothing in it was altered.

Proofs read O(log n) stored subtree nodes. `verify_log` reads everything: it
recomputes each leaf from the stored event, checks the stored leaves and inner nodes
against them, and names the first position where they part.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.application import Ledger
from ledger.errors import LedgerError
from ledger.log import LogReader, prefetched
from ledger.storage import LedgerRecorder, ledger_recorder
from ledger.storage.recorder import StoredLevel, packed_positions
from ledger.transparency import merkle
from ledger.transparency.checkpoint import (
    Checkpoint,
    CheckpointError,
    Verifier,
    open_note,
    sign,
)
from ledger.transparency.tree import Hashes, path_ranges, root_of_levels, subproof_ranges


class ProofRequestError(LedgerError):
    """A proof was asked for a position or size the log does not have."""


@dataclass(frozen=True, slots=True)
class InclusionProof:
    position: int
    index: int
    size: int
    leaf_hash: bytes
    proof: list[bytes]
    root: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "position": self.position,
            "index": self.index,
            "size": self.size,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [h.hex() for h in self.proof],
            "root": self.root.hex(),
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: list[bytes]

    def to_json(self) -> dict[str, object]:
        return {
            "size1": self.size1,
            "size2": self.size2,
            "root1": self.root1.hex(),
            "root2": self.root2.hex(),
            "proof": [h.hex() for h in self.proof],
        }


class Log:
    """The ledger's log as a Merkle tree."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.store = ledger_recorder(ledger.recorder)

    def size(self) -> int:
        return self.store.tree_size()

    def _hashes(self) -> Hashes:
        return Hashes(self.store.tree_nodes)

    def root(self, size: int | None = None) -> bytes:
        return self._hashes().root(self._size(size))

    def _size(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise ProofRequestError(f"the log has {current} events, not {size}", "size")
        return size

    def inclusion(self, position: int, size: int | None = None) -> InclusionProof:
        index = self.store.leaf_index(position)
        if index is None:
            raise ProofRequestError(f"no event at position {position}", "position")
        tree_size = self._size(size)
        if index >= tree_size:
            raise ProofRequestError(
                f"position {position} is leaf {index}, not in a tree of {tree_size}", "size"
            )
        hashes = self._hashes()
        # One fetch for the proof, the root and the leaf together.
        hashes.prefetch([*path_ranges(index, 0, tree_size), (0, tree_size), (index, index + 1)])
        proof = hashes.inclusion(index, tree_size)
        leaf = hashes.mth(index, index + 1)
        return InclusionProof(position, index, tree_size, leaf, proof, hashes.root(tree_size))

    def consistency(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        new = self._size(size2)
        if not 1 <= size1 <= new:
            raise ProofRequestError(f"the old size must be 1 to {new}, not {size1}", "size")
        hashes = self._hashes()
        hashes.prefetch([*subproof_ranges(size1, 0, new, True), (0, size1), (0, new)])
        proof = hashes.consistency(size1, new)
        return ConsistencyProof(size1, new, hashes.root(size1), hashes.root(new), proof)


@dataclass(frozen=True, slots=True)
class Damage:
    """The first place the log and its tree disagree."""

    position: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"position {self.position}" if self.position is not None else "the log"
        return f"{where}: {self.kind}: {self.detail}"


# A stored leaf: (index, hash, position).
StoredLeaf = tuple[int, bytes, int | None]


def checkpoint(ledger: Ledger, private: Ed25519PrivateKey, verifier: Verifier) -> str:
    """Sign the current tree head, keep the note, and return it."""
    log = Log(ledger)
    size = log.size()
    note = sign(Checkpoint(verifier.name, size, log.root(size)), private, verifier)
    log.store.save_checkpoint(size, note, ledger.clock.now().isoformat())
    return note


def verify_log(ledger: Ledger, verifier: Verifier | None = None) -> Damage | None:
    """Recompute every leaf from its stored event and every inner node from the leaves,
    compare them with the stored tree, and, given the public key, check every stored
    checkpoint against the recomputed tree; None when they all agree."""
    with _cycles_uncollected():
        return _verify_log(ledger, verifier)


def _verify_log(ledger: Ledger, verifier: Verifier | None) -> Damage | None:
    store = ledger_recorder(ledger.recorder)
    leaves, stored = _leaves_as_stored(ledger.reader, store)
    if leaves is None:
        # They part somewhere: both are read again, leaf by leaf, to name the place.
        with closing(_StoredTree(store)) as tree:
            damage, leaves = _check_leaves(ledger.reader, tree)
        if damage is not None:
            return damage
    levels = [leaves]
    while len(levels[-1]) > 1:
        levels.append(merkle.parents(levels[-1]))
    if verifier is not None:
        damage = _check_checkpoints(store.checkpoints(), levels, verifier, store)
        if damage is not None:
            return damage
    if all(_same_level(level, levels) for level in stored if level.level > 0):
        return None
    with closing(_StoredTree(store)) as tree:
        return _check_inner_nodes(tree.inner(), levels, store)


def _leaves_as_stored(
    reader: LogReader, store: LedgerRecorder
) -> tuple[list[bytes] | None, list[StoredLevel]]:
    """The leaf hashes recomputed from the events, and the stored tree, read whole by
    another thread meanwhile; the leaves are None unless the stored ones are the same
    hashes (each of the hash's size) at the same positions, in the same order."""
    with ThreadPoolExecutor(1, thread_name_prefix="ledger-tree") as pool:
        reading = pool.submit(store.tree_levels)
        leaves: list[bytes] = []
        positions: list[int] = []
        with closing(reader.leaf_hashes()) as batches:
            for batch in batches:
                leaves += batch.hashes
                positions += batch.positions
        stored = reading.result()
    level = stored[0] if stored and stored[0].level == 0 else None
    if level is None:
        return (None if leaves else leaves), stored
    size = len(leaves)
    # Equal joins of n stored hashes of the hash's size make each recomputed one a
    # hash too (b"" stands for an event that cannot be encoded), and the same.
    same = (level.count == level.placed == size and level.first == 0
            and level.last == size - 1 and level.shortest == level.longest == merkle.HASH_SIZE
            and level.hashes == b"".join(leaves)
            and level.positions == packed_positions(positions))  # fmt: skip
    return (leaves if same else None), stored


def _same_level(stored: StoredLevel, levels: list[list[bytes]]) -> bool:
    """Whether a stored level above the leaves is the recomputed nodes of its indexes."""
    computed = levels[stored.level] if stored.level < len(levels) else []
    return (stored.first >= 0 and stored.last < len(computed)
            and stored.count == stored.last - stored.first + 1
            and stored.shortest == stored.longest == merkle.HASH_SIZE
            and stored.hashes == b"".join(computed[stored.first : stored.last + 1]))  # fmt: skip


@contextmanager
def _cycles_uncollected() -> Iterator[None]:
    """The garbage collector's cycle search paused: a verification makes no cycles,
    only millions of objects that live a batch long, and these set off full
    collections that cost a sixth of the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_checkpoints(
    stored: list[tuple[int, str, str]],
    levels: list[list[bytes]],
    verifier: Verifier,
    store: LedgerRecorder,
) -> Damage | None:
    """Each checkpoint's signature, and its root against the tree recomputed from the
    events. Consecutive checkpoints are then consistent, both being prefixes of it."""
    good = 0
    leaves = len(levels[0])
    for size, note, created_at in stored:
        try:
            signed = open_note(note, verifier)
        except CheckpointError as e:
            return Damage(None, "checkpoint forged", f"the checkpoint of {created_at}: {e}")
        if signed.size != size or size > leaves:
            return Damage(None, "checkpoint altered",
                          f"the checkpoint of {created_at} signs {signed.size} events, the "
                          f"log has {leaves}")  # fmt: skip
        if root_of_levels(levels, size) != signed.root:
            first = store.tree_position(good) if good < leaves else None
            return Damage(first, "rewritten",
                          f"the events from here to size {size} no longer match the "
                          f"checkpoint signed {created_at}")  # fmt: skip
        good = size
    return None


def _check_leaves(reader: LogReader, stored: _StoredTree) -> tuple[Damage | None, list[bytes]]:
    """Events against stored leaves, in order: the first damage, and the leaf hashes
    recomputed. A run that agrees throughout is compared whole, a list at a time."""
    leaves: list[bytes] = []
    with closing(reader.leaf_hashes()) as batches:
        for batch in batches:
            indexes, hashes, positions = stored.take(len(batch.positions))
            if positions == batch.positions and hashes == batch.hashes:
                leaves.extend(hashes)
                continue
            for i, position in enumerate(batch.positions):
                node = (indexes[i], hashes[i], positions[i]) if i < len(indexes) else None
                damage = _compare_leaf(position, batch.hashes[i], node, len(leaves))
                if damage is not None:
                    return damage, leaves
                leaves.append(batch.hashes[i])
    indexes, _, positions = stored.take(1)
    if indexes:
        return Damage(positions[0], "deleted", f"leaf {indexes[0]} has no event"), leaves
    return None, leaves


def _compare_leaf(
    position: int, recomputed: bytes, stored: StoredLeaf | None, index: int
) -> Damage | None:
    if not recomputed:
        return Damage(position, "altered", "the stored event is no longer a JSON object")
    if stored is None:
        return Damage(position, "inserted", "an event the tree never recorded")
    _, stored_hash, stored_position = stored
    if stored_position is not None and stored_position < position:
        return Damage(stored_position, "deleted", f"leaf {index} has no event any more")
    if stored_position != position:
        return Damage(position, "inserted", f"leaf {index} was recorded at {stored_position}")
    if stored_hash != recomputed:
        return Damage(position, "altered", "the event no longer hashes to its leaf")
    return None


def _check_inner_nodes(
    stored: Iterator[tuple[int, list[int], list[bytes]]],
    levels: list[list[bytes]],
    store: LedgerRecorder,
) -> Damage | None:
    """Every stored node above the leaves against the recomputed levels, by level then
    index: the first that lies beyond the log or does not match."""
    for level, indexes, hashes in stored:
        computed = levels[level] if level < len(levels) else []
        first, count = indexes[0], len(indexes)
        if (first >= 0 and indexes[-1] == first + count - 1
                and hashes == computed[first : first + count]):  # fmt: skip
            continue
        for index, stored_hash in zip(indexes, hashes, strict=True):
            if not 0 <= index < len(computed):
                return Damage(None, "tree altered",
                              f"node ({level}, {index}) lies beyond the log")  # fmt: skip
            if computed[index] != stored_hash:
                position = store.tree_position(index << level)
                return Damage(position, "tree altered", f"node ({level}, {index}) does not match")
    return None


class _StoredTree:
    """The stored nodes by level then index, read ahead by a thread of their own: the
    leaves taken a run at a time, then the inner nodes a level's run at a time."""

    def __init__(self, store: LedgerRecorder) -> None:
        self.batches = prefetched(lambda: _tree_columns(store), depth=0)
        self.batch: _Columns = ([], [], [], [])
        self.at = 0

    def take(self, count: int) -> tuple[list[int], list[bytes], list[int | None]]:
        """The next `count` stored leaves, fewer when the tree has no more: their
        indexes, hashes and positions."""
        indexes: list[int] = []
        hashes: list[bytes] = []
        positions: list[int | None] = []
        while len(indexes) < count and self._more():
            levels, at = self.batch[0], self.at
            end = min(len(levels), at + count - len(indexes))
            cut = bisect_left(levels, 1, at, end)
            indexes += self.batch[1][at:cut]
            hashes += self.batch[2][at:cut]
            positions += self.batch[3][at:cut]
            self.at = cut
            if cut < end:
                break
        return indexes, hashes, positions

    def inner(self) -> Iterator[tuple[int, list[int], list[bytes]]]:
        """The stored nodes above the leaves (past any leaves not taken), by level then
        index, each run of one level as (level, indexes, hashes)."""
        while self._more():
            levels, at = self.batch[0], self.at
            level = levels[at]
            self.at = bisect_left(levels, level + 1, at, len(levels))
            if level > 0:
                yield level, self.batch[1][at : self.at], self.batch[2][at : self.at]

    def close(self) -> None:
        self.batches.close()

    def _more(self) -> bool:
        """Whether nodes remain, moving on to the next batch when this one is used up."""
        while self.at == len(self.batch[0]):
            batch = next(self.batches, None)
            if batch is None:
                return False
            self.batch, self.at = batch, 0
        return True


# A batch of stored nodes as columns: levels, indexes, hashes, positions.
_Columns = tuple[list[int], list[int], list[bytes], list[int | None]]


def _tree_columns(store: LedgerRecorder) -> Iterator[_Columns]:
    """The stored nodes in batches of columns, so that runs of them are taken and
    compared as slices."""
    with closing(store.tree_rows()) as batches:
        for rows in batches:
            levels, indexes, hashes, positions = zip(*rows, strict=True)
            yield list(levels), list(indexes), list(hashes), list(positions)
