"""Proofs over the ledger's log and the check that nothing in it was altered.

Proofs read O(log n) stored subtree nodes. `verify_log` reads everything: it
recomputes each leaf from the stored event, checks the stored leaves and inner nodes
against them, and names the first position where they part.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import merkle
from ledger.application import Ledger
from ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    Verifier,
    open_note,
    sign,
)
from ledger.errors import LedgerError
from ledger.log import Leaf
from ledger.storage import LedgerRecorder, ledger_recorder
from ledger.tree import Hashes, path_ranges, subproof_ranges


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


StoredNode = tuple[int, int, bytes, int | None]


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
    store = ledger_recorder(ledger.recorder)
    tree = store.stream_tree()
    damage, leaves, rest = _check_leaves(ledger, tree)
    if damage is not None:
        return damage
    if verifier is not None:
        damage = _check_checkpoints(store.checkpoints(), leaves, verifier, store)
        if damage is not None:
            return damage
    levels = [leaves]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([merkle.node_hash(below[i], below[i + 1])
                       for i in range(0, len(below) - 1, 2)])  # fmt: skip
    for level, idx, stored_hash, _ in chain(rest, tree):
        if level >= len(levels) or idx >= len(levels[level]):
            return Damage(None, "tree altered", f"node ({level}, {idx}) lies beyond the log")
        if levels[level][idx] != stored_hash:
            position = store.tree_position(idx << level)
            return Damage(position, "tree altered", f"node ({level}, {idx}) does not match")
    return None


def _check_checkpoints(
    stored: list[tuple[int, str, str]],
    leaves: list[bytes],
    verifier: Verifier,
    store: LedgerRecorder,
) -> Damage | None:
    """Each checkpoint's signature, and its root against the tree recomputed from the
    events. Consecutive checkpoints are then consistent, both being prefixes of it."""
    good = 0
    for size, note, created_at in stored:
        try:
            signed = open_note(note, verifier)
        except CheckpointError as e:
            return Damage(None, "checkpoint forged", f"the checkpoint of {created_at}: {e}")
        if signed.size != size or size > len(leaves):
            return Damage(None, "checkpoint altered",
                          f"the checkpoint of {created_at} signs {signed.size} events, the "
                          f"log has {len(leaves)}")  # fmt: skip
        if merkle.root_from_hashes(leaves[:size]) != signed.root:
            first = store.tree_position(good) if good < len(leaves) else None
            return Damage(first, "rewritten",
                          f"the events from here to size {size} no longer match the "
                          f"checkpoint signed {created_at}")  # fmt: skip
        good = size
    return None


def _check_leaves(
    ledger: Ledger, tree: Iterator[StoredNode]
) -> tuple[Damage | None, list[bytes], list[StoredNode]]:
    """Events against stored leaves, in order: the first damage, the leaf hashes
    recomputed, and the first stored node past the leaves."""
    leaves: list[bytes] = []
    for index, leaf in enumerate(ledger.reader.leaves()):
        damage, recomputed = _compare_leaf(leaf, next(tree, None), index)
        if damage is not None:
            return damage, leaves, []
        leaves.append(recomputed)
    rest = next(tree, None)
    if rest is not None and rest[0] == 0:
        return Damage(rest[3], "deleted", f"leaf {rest[1]} has no event"), leaves, []
    return None, leaves, [rest] if rest is not None else []


def _compare_leaf(
    leaf: Leaf, stored: StoredNode | None, index: int
) -> tuple[Damage | None, bytes]:
    position = leaf.position
    if leaf.document is None:
        return Damage(position, "altered", "the stored event is no longer JSON"), b""
    recomputed = merkle.leaf_hash(leaf.document)
    if stored is None or stored[0] != 0:
        return Damage(position, "inserted", "an event the tree never recorded"), recomputed
    _, _, stored_hash, stored_position = stored
    if stored_position is not None and stored_position < position:
        return Damage(stored_position, "deleted", f"leaf {index} has no event any more"), b""
    if stored_position != position:
        return Damage(position, "inserted", f"leaf {index} was recorded at {stored_position}"), b""
    if stored_hash != recomputed:
        return Damage(position, "altered", "the event no longer hashes to its leaf"), b""
    return None, recomputed
