"""Merkle tree hashing, proofs and their verification, as RFC 9162 section 2.1 defines them.

The ledger's log is a Merkle tree over its events: this module computes the tree
hash (MTH) with SHA-256, builds inclusion and consistency proofs from a list of
leaf hashes, and verifies such proofs with the RFC's own algorithms, so that an
auditor with nothing but hashes can check that an event is in the log and that a
later log extends an earlier one. A proof does not bind the tree size on its own,
so callers take size and root together from a signed checkpoint. It is pure (hashlib
only): it must not read the store, know what an event is, or trust a proof it has not
recomputed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "HASH_SIZE",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "parents",
    "root_from_hashes",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A proof does not show what it claims; the message says why."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def parents(hashes: Sequence[bytes]) -> list[bytes]:
    """The node hash of each pair of hashes, left to right; an odd last one has none."""
    sha256 = hashlib.sha256
    return [sha256(_NODE_PREFIX + left + right).digest()
            for left, right in zip(hashes[0::2], hashes[1::2], strict=False)]  # fmt: skip


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of the leaves' data (SHA-256 of nothing for no leaves)."""
    return root_from_hashes([leaf_hash(data) for data in leaves])


def root_from_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of a tree whose leaves are already hashed."""
    _check_hashes(leaf_hashes)
    if not leaf_hashes:
        return hashlib.sha256(b"").digest()
    return _subtree(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path PATH(index, D[n]) of RFC 9162 section 2.1.3.1, leaf end first."""
    _check_hashes(leaf_hashes)
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"index {index} is not in a tree of {len(leaf_hashes)} leaves")
    proof: list[bytes] = []
    _path(leaf_hashes, index, 0, len(leaf_hashes), proof)
    return proof


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """PROOF(size1, D[n]) of RFC 9162 section 2.1.4.1; empty when size1 is n."""
    _check_hashes(leaf_hashes)
    if not 1 <= size1 <= len(leaf_hashes):
        raise ValueError(f"size1 {size1} is not between 1 and the tree size {len(leaf_hashes)}")
    proof: list[bytes] = []
    _subproof(leaf_hashes, size1, 0, len(leaf_hashes), True, proof)
    return proof


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf_hash is leaf `index` of the tree of `size` leaves with this root."""
    _check_size("leaf hash", leaf_hash)
    _check_size("root", root)
    _check_proof(proof)
    if index < 0:
        raise ProofError(f"index {index} is negative")
    if index >= size:
        raise ProofError(f"index {index} is not below the tree size {size}")
    inner, border = _decompose(index, size)
    _check_length(proof, inner + border)

    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the path to the root")
    if r != root:
        raise ProofError("computed root does not match")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of size2 leaves with root2 extends the one of size1 with root1."""
    _check_size("root1", root1)
    _check_size("root2", root2)
    _check_proof(proof)
    if size1 < 0:
        raise ProofError(f"size1 {size1} is negative")
    if size1 == 0:
        # The RFC defines consistency proofs for 0 < size1 only; an empty tree's root
        # is fixed, so a caller compares it directly instead of asking for a proof.
        raise ProofError("size1 is 0: there is no consistency proof from an empty tree")
    if size2 < size1:
        raise ProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == size2:
        if proof:
            raise ProofError(f"proof has {len(proof)} hashes, expected 0 for equal sizes")
        if root1 != root2:
            raise ProofError("the sizes are equal but the roots differ")
        return
    if not proof:
        raise ProofError("proof is empty")

    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    power_of_two = size1 == 1 << shift
    _check_length(proof, inner - shift + border + (0 if power_of_two else 1))

    path = [root1, *proof] if power_of_two else list(proof)
    fr, sr = _consistency_roots(size1, size2, path)
    if fr != root1:
        raise ProofError("computed root1 does not match")
    if sr != root2:
        raise ProofError("computed root2 does not match")


def _consistency_roots(size1: int, size2: int, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    """Steps 3 to 7 of RFC 9162 section 2.1.4.2: both roots as the path computes them."""
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the path to the root")
    return fr, sr


def _decompose(index: int, size: int) -> tuple[int, int]:
    """How many proof hashes lie below the split from the right border, and how many on it."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _check_size(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            _check_size(f"proof hash {i}", value)


def _check_length(proof: Sequence[bytes], expected: int) -> None:
    if len(proof) != expected:
        raise ProofError(f"proof has {len(proof)} hashes, expected {expected}")


def _check_hashes(leaf_hashes: Sequence[bytes]) -> None:
    for i, value in enumerate(leaf_hashes):
        if len(value) != HASH_SIZE:
            raise ValueError(f"leaf hash {i} is {len(value)} bytes, expected {HASH_SIZE}")


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    n = end - start
    if n == 1:
        return hashes[start]
    k = _split(n)
    return node_hash(_subtree(hashes, start, start + k), _subtree(hashes, start + k, end))


def _path(hashes: Sequence[bytes], m: int, start: int, end: int, out: list[bytes]) -> None:
    n = end - start
    if n == 1:
        return
    k = _split(n)
    if m < k:
        _path(hashes, m, start, start + k, out)
        out.append(_subtree(hashes, start + k, end))
    else:
        _path(hashes, m - k, start + k, end, out)
        out.append(_subtree(hashes, start, start + k))


def _subproof(
    hashes: Sequence[bytes], m: int, start: int, end: int, whole: bool, out: list[bytes]
) -> None:
    n = end - start
    if m == n:
        if not whole:
            out.append(_subtree(hashes, start, end))
        return
    k = _split(n)
    if m <= k:
        _subproof(hashes, m, start, start + k, whole, out)
        out.append(_subtree(hashes, start + k, end))
    else:
        _subproof(hashes, m - k, start + k, end, False, out)
        out.append(_subtree(hashes, start, start + k))
