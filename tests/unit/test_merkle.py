"""Merkle hashing and proofs (RFC 9162 section 2.1): known values, and every tree up to 64 leaves.

Expected values come from the RFC's definitions restated here with hashlib and list
slices, never from the code under test. For every 1 <= m <= n <= 64 and every leaf,
the generated proofs must equal the RFC's and verify, and each mutation of them
(a flipped bit in any hash, a hash dropped, added or moved, a wrong index, a wrong
size, swapped roots) must raise ProofError.

One limit is the RFC's, not the code's: a proof is a list of opaque hashes, so a wrong
tree size (size2, for consistency) whose path has the same shape as the true one
cannot be told apart, and verifies. The size is bound by the signed checkpoint, not by
the proof. The tests state exactly when that happens, from the RFC's recursion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ledger.transparency.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_hashes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 64
SIZES = range(1, MAX_SIZE + 1)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf data, straight from RFC 9162 section 2.1.1."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = largest_power_of_two_below(len(leaves))
    return sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:]))


def reference_hashed_mth(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaves that are already hashed."""
    if len(hashes) == 1:
        return hashes[0]
    k = largest_power_of_two_below(len(hashes))
    return sha256(b"\x01" + reference_hashed_mth(hashes[:k]) + reference_hashed_mth(hashes[k:]))


def reference_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1."""
    if len(hashes) == 1:
        return []
    k = largest_power_of_two_below(len(hashes))
    if m < k:
        return [*reference_path(m, hashes[:k]), reference_hashed_mth(hashes[k:])]
    return [*reference_path(m - k, hashes[k:]), reference_hashed_mth(hashes[:k])]


def reference_subproof(m: int, hashes: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 section 2.1.4.1."""
    n = len(hashes)
    if m == n:
        return [] if whole else [reference_hashed_mth(hashes)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return [*reference_subproof(m, hashes[:k], whole), reference_hashed_mth(hashes[k:])]
    return [*reference_subproof(m - k, hashes[k:], False), reference_hashed_mth(hashes[:k])]


def path_shape(m: int, n: int) -> str:
    """Which side each hash of PATH(m, D[n]) joins on, leaf end first."""
    if n == 1:
        return ""
    k = largest_power_of_two_below(n)
    return path_shape(m, k) + "R" if m < k else path_shape(m - k, n - k) + "L"


def subproof_shape(m: int, n: int, whole: bool = True) -> str:
    """The same for SUBPROOF(m, D[n], b); "N" is a subtree hash the proof starts from."""
    if m == n:
        return "" if whole else "N"
    k = largest_power_of_two_below(n)
    if m <= k:
        return subproof_shape(m, k, whole) + "R"
    return subproof_shape(m - k, n - k, False) + "L"


# Leaf data of different lengths, so no two leaves or subtrees hash alike.
LEAVES = [f"event {i}:".encode() * (i % 5 + 1) for i in range(MAX_SIZE)]
HASHES = [sha256(b"\x00" + data) for data in LEAVES]
ROOTS = {n: reference_mth(LEAVES[:n]) for n in range(MAX_SIZE + 1)}
STRANGER = sha256(b"a hash from no tree")

# The reference tree of transparency-dev/merkle, with the roots published beside the vectors.
REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
PUBLISHED_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def flip(value: bytes, bit: int) -> bytes:
    bit %= len(value) * 8
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def accepted(mutations: dict[str, tuple[Any, ...]], verify: Callable[..., None]) -> list[str]:
    """The names of the mutations the verifier let through (should be none)."""
    through = []
    for name, args in mutations.items():
        try:
            verify(*args)
        except ProofError:
            continue
        through.append(name)
    return through


def proof_mutations(proof: list[bytes], seed: int) -> dict[str, list[bytes]]:
    """The proof with one hash flipped, dropped or moved in every place, or one added."""
    mutated: dict[str, list[bytes]] = {}
    for i, value in enumerate(proof):
        mutated[f"flip proof[{i}]"] = [*proof[:i], flip(value, seed + i), *proof[i + 1 :]]
        mutated[f"drop proof[{i}]"] = proof[:i] + proof[i + 1 :]
    for i in sorted({0, len(proof) // 2, len(proof)}):
        mutated[f"insert before {i}"] = [*proof[:i], STRANGER, *proof[i:]]
    if proof:
        mutated["repeat the last hash"] = [*proof, proof[-1]]
    for i in range(len(proof) - 1):
        mutated[f"swap proof[{i}] and proof[{i + 1}]"] = [
            *proof[:i],
            proof[i + 1],
            proof[i],
            *proof[i + 2 :],
        ]
    return mutated


# Known values


def test_leaf_hash_of_empty_data_is_the_published_value():
    expected = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"").hex() == expected


def test_leaf_and_node_hashes_are_prefixed_sha256():
    assert leaf_hash(b"data") == sha256(b"\x00data")
    left, right = sha256(b"left"), sha256(b"right")
    assert node_hash(left, right) == sha256(b"\x01" + left + right)
    assert node_hash(left, right) != node_hash(right, left)


def test_empty_tree_root_is_sha256_of_nothing():
    expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_hash([]).hex() == expected
    assert root_from_hashes([]).hex() == expected


@pytest.mark.parametrize("size", range(9))
def test_root_of_reference_tree_is_the_published_root(size: int):
    assert root_hash(REFERENCE_LEAVES[:size]).hex() == PUBLISHED_ROOTS[size]
    assert reference_mth(REFERENCE_LEAVES[:size]).hex() == PUBLISHED_ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_root_of_small_trees_matches_the_recursive_definition(size: int):
    assert root_hash(LEAVES[:size]) == reference_mth(LEAVES[:size])
    assert root_from_hashes(HASHES[:size]) == reference_mth(LEAVES[:size])


def test_root_of_every_tree_up_to_64_leaves_matches_the_recursive_definition():
    for n in range(MAX_SIZE + 1):
        assert root_hash(LEAVES[:n]) == ROOTS[n], n
        assert root_from_hashes(HASHES[:n]) == ROOTS[n], n


def test_root_of_a_leaf_hash_that_is_not_32_bytes_then_rejected():
    with pytest.raises(ValueError, match="leaf hash 1 is 3 bytes, expected 32"):
        root_from_hashes([HASHES[0], b"abc"])


# Messages


def test_proof_error_is_a_value_error():
    assert issubclass(ProofError, ValueError)


def test_inclusion_with_index_at_the_size_then_rejected():
    with pytest.raises(ProofError, match=r"^index 5 is not below the tree size 5$"):
        verify_inclusion(HASHES[4], 5, 5, inclusion_proof(HASHES[:5], 4), ROOTS[5])


def test_inclusion_with_negative_index_then_rejected():
    with pytest.raises(ProofError, match=r"^index -1 is negative$"):
        verify_inclusion(HASHES[0], -1, 5, inclusion_proof(HASHES[:5], 0), ROOTS[5])


def test_inclusion_with_short_proof_then_rejected_with_the_counts():
    proof = inclusion_proof(HASHES[:9], 0)
    assert len(proof) == 4
    with pytest.raises(ProofError, match=r"^proof has 3 hashes, expected 4$"):
        verify_inclusion(HASHES[0], 0, 9, proof[:3], ROOTS[9])


def test_inclusion_against_another_root_then_rejected():
    with pytest.raises(ProofError, match=r"^computed root does not match$"):
        verify_inclusion(HASHES[2], 2, 7, inclusion_proof(HASHES[:7], 2), ROOTS[6])


def test_consistency_with_size2_below_size1_then_rejected():
    with pytest.raises(ProofError, match=r"^size2 4 is smaller than size1 6$"):
        verify_consistency(6, 4, consistency_proof(HASHES[:6], 4), ROOTS[6], ROOTS[4])


def test_consistency_with_empty_proof_for_different_sizes_then_rejected():
    with pytest.raises(ProofError, match=r"^proof is empty$"):
        verify_consistency(3, 7, [], ROOTS[3], ROOTS[7])


def test_consistency_against_another_root_then_rejected():
    proof = consistency_proof(HASHES[:7], 3)
    with pytest.raises(ProofError, match=r"^computed root1 does not match$"):
        verify_consistency(3, 7, proof, ROOTS[2], ROOTS[7])
    with pytest.raises(ProofError, match=r"^computed root2 does not match$"):
        verify_consistency(3, 7, proof, ROOTS[3], ROOTS[8])


def test_generating_proofs_outside_the_tree_then_rejected():
    with pytest.raises(ValueError, match="index 3 is not in a tree of 3 leaves"):
        inclusion_proof(HASHES[:3], 3)
    with pytest.raises(ValueError, match="index -1 is not in a tree of 3 leaves"):
        inclusion_proof(HASHES[:3], -1)
    with pytest.raises(ValueError, match="size1 0 is not between 1 and the tree size 3"):
        consistency_proof(HASHES[:3], 0)
    with pytest.raises(ValueError, match="size1 4 is not between 1 and the tree size 3"):
        consistency_proof(HASHES[:3], 4)


# Every tree up to 64 leaves


@pytest.mark.parametrize("n", SIZES)
def test_generated_inclusion_proofs_are_the_rfc_path_and_verify(n: int):
    for index in range(n):
        proof = inclusion_proof(HASHES[:n], index)
        assert proof == reference_path(index, HASHES[:n]), index
        verify_inclusion(HASHES[index], index, n, proof, ROOTS[n])


@pytest.mark.parametrize("n", SIZES)
def test_generated_consistency_proofs_are_the_rfc_proof_and_verify(n: int):
    for m in range(1, n + 1):
        proof = consistency_proof(HASHES[:n], m)
        assert proof == reference_subproof(m, HASHES[:n], True), m
        verify_consistency(m, n, proof, ROOTS[m], ROOTS[n])


@pytest.mark.parametrize("n", SIZES)
def test_mutated_inclusion_proofs_are_rejected(n: int):
    for index in range(n):
        leaf, root = HASHES[index], ROOTS[n]
        proof = inclusion_proof(HASHES[:n], index)
        mutations: dict[str, tuple[Any, ...]] = {
            f"{name}": (leaf, index, n, changed, root)
            for name, changed in proof_mutations(proof, index).items()
        }
        mutations["flip leaf"] = (flip(leaf, index), index, n, proof, root)
        mutations["flip root"] = (leaf, index, n, proof, flip(root, n))
        mutations["leaf of another tree"] = (STRANGER, index, n, proof, root)
        mutations["root of a smaller tree"] = (leaf, index, n, proof, ROOTS[n - 1])
        if n > 1:
            mutations["leaf and root swapped"] = (root, index, n, proof, leaf)
        # Every path bit flipped, the neighbours and the ends, rather than all n indices.
        others = {index ^ (1 << bit) for bit in range(n.bit_length())}
        others |= {index - 1, index + 1, 0, n - 1, n, -1}
        for other in others - {index}:
            mutations[f"index {other}"] = (leaf, other, n, proof, root)
        for size in {0, n - 1, n + 1, 2 * n, n // 2} - {n}:
            if index >= size or path_shape(index, size) != path_shape(index, n):
                mutations[f"size {size}"] = (leaf, index, size, proof, root)
        assert accepted(mutations, verify_inclusion) == [], f"leaf {index} of {n}"


@pytest.mark.parametrize("n", SIZES)
def test_mutated_consistency_proofs_are_rejected(n: int):
    for m in range(1, n + 1):
        root1, root2 = ROOTS[m], ROOTS[n]
        proof = consistency_proof(HASHES[:n], m)
        mutations: dict[str, tuple[Any, ...]] = {
            name: (m, n, changed, root1, root2)
            for name, changed in proof_mutations(proof, m + n).items()
        }
        mutations["flip root1"] = (m, n, proof, flip(root1, m), root2)
        mutations["flip root2"] = (m, n, proof, root1, flip(root2, n))
        mutations["root1 of a smaller tree"] = (m, n, proof, ROOTS[m - 1], root2)
        mutations["root2 of a smaller tree"] = (m, n, proof, root1, ROOTS[n - 1])
        if m < n:
            mutations["swapped roots"] = (m, n, proof, root2, root1)
        for size1 in {0, m - 1, m + 1, 2 * m, m // 2, n + 1}:
            if size1 != m:
                mutations[f"size1 {size1}"] = (size1, n, proof, root1, root2)
        for size2 in {m - 1, n - 1, n + 1, 2 * n, n // 2} - {n}:
            if size2 <= m or subproof_shape(m, size2) != subproof_shape(m, n):
                mutations[f"size2 {size2}"] = (m, size2, proof, root1, root2)
        assert accepted(mutations, verify_consistency) == [], f"{m} to {n}"


def test_wrong_tree_size_with_the_same_path_shape_verifies_as_the_rfc_allows():
    proof = inclusion_proof(HASHES[:3], 0)
    assert path_shape(0, 3) == path_shape(0, 4) == "RR"
    verify_inclusion(HASHES[0], 0, 4, proof, ROOTS[3])
    proof = consistency_proof(HASHES[:3], 1)
    assert subproof_shape(1, 3) == subproof_shape(1, 4) == "RR"
    verify_consistency(1, 4, proof, ROOTS[1], ROOTS[3])


@pytest.mark.parametrize("n", range(1, 33))
def test_wrong_tree_size_is_rejected_exactly_when_the_path_changes_shape(n: int):
    # Every size up to 2n + 1 for trees up to 32 leaves; the mutation tests sample to 64.
    wrong = []
    for index in range(n):
        proof = inclusion_proof(HASHES[:n], index)
        for size in range(index + 1, 2 * n + 2):
            try:
                verify_inclusion(HASHES[index], index, size, proof, ROOTS[n])
            except ProofError:
                verified = False
            else:
                verified = True
            if verified != (path_shape(index, size) == path_shape(index, n)):
                wrong.append(f"leaf {index} as size {size}")
    for m in range(1, n + 1):
        proof = consistency_proof(HASHES[:n], m)
        for size2 in range(m, 2 * n + 2):
            try:
                verify_consistency(m, size2, proof, ROOTS[m], ROOTS[n])
            except ProofError:
                verified = False
            else:
                verified = True
            if verified != (subproof_shape(m, size2) == subproof_shape(m, n)):
                wrong.append(f"{m} to {size2}")
    assert wrong == []
