"""One signed checkpoint for a whole partitioned ledger: a checkpoint of checkpoints.

Each log (the catalog's, then each partition's in order) gets a signed checkpoint of
its own, kept in that log as with one database, so each still verifies alone. Their
bodies, with the origins ORIGIN/catalog and ORIGIN/partition/K, are the leaves of a
small Merkle tree whose root is signed once and kept, with the bodies, as an event in
the catalog's log: an auditor checks one signature. A record's inclusion proof is its
partition's proof up to the size in that partition's body, and the body's proof in
the top tree.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from ledger.application import Ledger
from ledger.application.service import MAX_ATTEMPTS
from ledger.domain.shards import TOP_CHECKPOINTS_ID, TopCheckpoints
from ledger.errors import ConcurrencyConflict
from ledger.partitioned.ledger import PartitionedLedger
from ledger.transparency import merkle
from ledger.transparency.audit import Damage, InclusionProof, Log, ProofRequestError, checkpoint
from ledger.transparency.checkpoint import Checkpoint, CheckpointError, Verifier, open_note, sign

# What links a partition's checkpoint, by its size, to the top checkpoint over it.
TopLink = Callable[[int], dict[str, object] | None]


def log_names(partitions: int) -> list[str]:
    """The leaves' names, in the top tree's order."""
    return ["catalog", *(f"partition/{k}" for k in range(partitions))]


def _logs(routed: PartitionedLedger) -> list[Ledger]:
    return [routed.catalog, *(routed.partition(k) for k in range(routed.partitions))]


@dataclass(frozen=True, slots=True)
class TopCheckpoint:
    """A signed top checkpoint and the bodies of the logs' checkpoints it covers."""

    note: str
    leaves: tuple[str, ...]

    def leaf(self, index: int) -> Checkpoint:
        return parse_body(self.leaves[index])


def parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) != 4 or lines[3]:
        raise CheckpointError("a checkpoint body is three lines", "checkpoint")
    try:
        return Checkpoint(lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True))
    except ValueError:
        raise CheckpointError(
            "a checkpoint body's size or root is malformed", "checkpoint"
        ) from None


def sign_top(routed: PartitionedLedger, private: Ed25519PrivateKey, verifier: Verifier) -> str:
    """Sign and keep every log's checkpoint, then the top checkpoint over them; returns
    the top note."""
    leaves = []
    for name, app in zip(log_names(routed.partitions), _logs(routed), strict=True):
        own = open_note(checkpoint(app, private, verifier), verifier)
        leaves.append(Checkpoint(f"{verifier.name}/{name}", own.size, own.root).body())
    root = merkle.root_hash([leaf.encode() for leaf in leaves])
    note = sign(Checkpoint(verifier.name, len(leaves), root), private, verifier)
    catalog = routed.catalog
    for _ in range(MAX_ATTEMPTS):
        now = catalog.clock.now()
        try:
            kept: TopCheckpoints = catalog.repository.get(TOP_CHECKPOINTS_ID)
        except AggregateNotFoundError:
            kept = TopCheckpoints.open(now)
        kept.keep(note, leaves, now)
        try:
            catalog.save(kept)
        except IntegrityError:
            continue
        return note
    raise ConcurrencyConflict("other processes kept signing checkpoints; try again")


def top_checkpoints(routed: PartitionedLedger) -> list[TopCheckpoint]:
    """Every top checkpoint kept, oldest first."""
    try:
        kept: TopCheckpoints = routed.catalog.repository.get(TOP_CHECKPOINTS_ID)
    except AggregateNotFoundError:
        return []
    return [TopCheckpoint(note, leaves) for note, leaves in kept.signed]


@dataclass(frozen=True, slots=True)
class PartitionedInclusion:
    """A record's place in its partition's log, and that log's in the signed top tree."""

    partition: int
    inclusion: InclusionProof
    top: TopCheckpoint
    top_proof: list[bytes]

    def to_json(self) -> dict[str, object]:
        return {
            "partition": self.partition,
            "inclusion": self.inclusion.to_json(),
            "top_index": self.partition + 1,
            "top_leaves": list(self.top.leaves),
            "top_proof": [h.hex() for h in self.top_proof],
            "top_note": self.top.note,
        }


def prove_inclusion(
    routed: PartitionedLedger, partition: int, position: int
) -> PartitionedInclusion:
    """The proof that the event at `position` of `partition` is covered by the latest
    top checkpoint."""
    if not 0 <= partition < routed.partitions:
        raise ProofRequestError(
            f"there is no partition {partition}: the ledger has {routed.partitions}", "partition"
        )
    kept = top_checkpoints(routed)
    if not kept:
        raise ProofRequestError("no checkpoint is signed yet: run `ledger checkpoint`", "size")
    top = kept[-1]
    size = top.leaf(partition + 1).size
    inclusion = Log(routed.partition(partition)).inclusion(position, size)
    hashes = [merkle.leaf_hash(leaf.encode()) for leaf in top.leaves]
    return PartitionedInclusion(
        partition, inclusion, top, merkle.inclusion_proof(hashes, partition + 1)
    )


def partition_inclusion(
    routed: PartitionedLedger, partition: int, position: int, size: int | None
) -> dict[str, object]:
    """The inclusion proof of the event at `position` of `partition` at `size` (by
    default the size the latest top checkpoint signs, else the partition's own latest),
    with its link to the top checkpoint that covers the partition at that size."""
    if size is None:
        kept = top_checkpoints(routed)
        size = kept[-1].leaf(partition + 1).size if kept else None
    inclusion = Log(routed.partition(partition)).inclusion(position, size)
    return {**inclusion.to_json(), "partition": partition,
            "top": top_link(routed, partition, inclusion.size)}  # fmt: skip


def verify_inclusion(proof: PartitionedInclusion, verifier: Verifier) -> None:
    """Check a record's proof up to the top note's signature; ProofError or
    CheckpointError says what does not hold."""
    signed = open_note(proof.top.note, verifier)
    inclusion = proof.inclusion
    body = proof.top.leaf(proof.partition + 1)
    if body.origin != f"{verifier.name}/partition/{proof.partition}":
        raise merkle.ProofError(f"leaf {proof.partition + 1} is {body.origin!r}")
    if (inclusion.size, inclusion.root) != (body.size, body.root):
        raise merkle.ProofError("the partition's proof is not for the checkpoint signed")
    merkle.verify_inclusion(
        inclusion.leaf_hash, inclusion.index, inclusion.size, inclusion.proof, body.root
    )
    hashes = [merkle.leaf_hash(leaf.encode()) for leaf in proof.top.leaves]
    if len(hashes) != signed.size:
        raise merkle.ProofError(f"the top tree has {signed.size} leaves, not {len(hashes)}")
    merkle.verify_inclusion(
        hashes[proof.partition + 1], proof.partition + 1, signed.size, proof.top_proof,
        signed.root,
    )  # fmt: skip


def check_top_checkpoints(routed: PartitionedLedger, verifier: Verifier | None) -> Damage | None:
    """Each top checkpoint against the logs (whose trees are verified already): its
    leaves are the logs' checkpoints at their sizes, its note signs their root, and
    its signature holds (given the key); the first that does not, as damage."""
    names = log_names(routed.partitions)
    logs = _logs(routed)
    for number, top in enumerate(top_checkpoints(routed), start=1):
        problem = _problem(top, names, logs, verifier)
        if problem is not None:
            return Damage(None, f"top checkpoint {number}", problem)
    return None


def _problem(
    top: TopCheckpoint, names: list[str], logs: list[Ledger], verifier: Verifier | None
) -> str | None:
    if len(top.leaves) != len(names):
        return f"covers {len(top.leaves)} logs, not {len(names)}"
    try:
        for name, app, leaf in zip(names, logs, top.leaves, strict=True):
            body = parse_body(leaf)
            if not body.origin.endswith(f"/{name}"):
                return f"its leaf for {name} names {body.origin!r}"
            if Log(app).root(body.size) != body.root:
                return f"{name}: the root of size {body.size} differs"
        claimed = parse_body(top.note.split("\n\n", 1)[0] + "\n")
        if verifier is not None:
            claimed = open_note(top.note, verifier)
    except (CheckpointError, ProofRequestError) as e:
        return e.message
    root = merkle.root_hash([leaf.encode() for leaf in top.leaves])
    if (claimed.size, claimed.root) != (len(top.leaves), root):
        return "its note does not sign these leaves"
    return None


def top_link(routed: PartitionedLedger, partition: int, size: int) -> dict[str, object] | None:
    """The latest top checkpoint whose leaf for `partition` is that log's checkpoint at
    `size`, with the leaf's proof in the top tree, for a bundle to carry; None when no
    top checkpoint covers that checkpoint."""
    for top in reversed(top_checkpoints(routed)):
        if len(top.leaves) > partition + 1 and top.leaf(partition + 1).size == size:
            hashes = [merkle.leaf_hash(leaf.encode()) for leaf in top.leaves]
            return {
                "partition": partition, "note": top.note, "leaf": top.leaves[partition + 1],
                "index": partition + 1,
                "proof": [h.hex() for h in merkle.inclusion_proof(hashes, partition + 1)],
            }  # fmt: skip
    return None


def check_top_link(link: dict[str, object], checkpoint: Checkpoint, verifier: Verifier) -> int:
    """That `checkpoint` (a partition's, already opened) is the leaf a signed top
    checkpoint holds for its partition; the top tree's size. ProofError or
    CheckpointError say what does not hold."""
    note, leaf, index, proof = link["note"], link["leaf"], link["index"], link["proof"]
    if not (isinstance(note, str) and isinstance(leaf, str) and isinstance(index, int)
            and isinstance(proof, list)):  # fmt: skip
        raise merkle.ProofError("the link to the top checkpoint is malformed")
    signed = open_note(note, verifier)
    body = parse_body(leaf)
    if body.origin != f"{verifier.name}/partition/{link['partition']}" or index != (
        int(str(link["partition"])) + 1
    ):
        raise merkle.ProofError(f"the top tree's leaf {index} is {body.origin!r}")
    if (body.size, body.root) != (checkpoint.size, checkpoint.root):
        raise merkle.ProofError("the top checkpoint holds another checkpoint of the partition")
    merkle.verify_inclusion(
        merkle.leaf_hash(leaf.encode()), index, signed.size,
        [bytes.fromhex(str(h)) for h in proof], signed.root,
    )  # fmt: skip
    return signed.size


def top_of(routed: PartitionedLedger, resident: str) -> TopLink:
    """For a bundle of the citizen with this identity number: their partition's
    checkpoint's link (by its size) to the whole ledger's checkpoint."""
    partition = routed.partition_of_resident(resident)
    return lambda size: top_link(routed, partition, size)
