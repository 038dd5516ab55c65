"""The published RFC 6962/9162 proof vectors (transparency-dev/merkle testdata), one test each.

The vectors and their attribution live in tests/data/rfc9162. Happy paths must verify;
every mutation of them must raise ProofError. The checks the vectors demand beyond the
RFC pseudo-code (hashes of exactly 32 bytes, no proof from size 0, equal sizes only
with an empty proof and equal roots) are also tested directly, below the vectors.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.transparency.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parents[1] / "data" / "rfc9162"
INCLUSION = sorted((VECTORS / "inclusion").glob("*/*.json"))
CONSISTENCY = sorted((VECTORS / "consistency").glob("*/*.json"))

# The reference tree of the same repository, whose happy paths the vectors are cut from.
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
REFERENCE_HASHES = [leaf_hash(data) for data in REFERENCE_LEAVES]


def vector_id(path: Path) -> str:
    return path.relative_to(VECTORS).with_suffix("").as_posix()


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def proof_of(case: dict[str, Any]) -> list[bytes]:
    return [b64(p) for p in case["proof"] or []]


def check_inclusion(case: dict[str, Any]) -> None:
    verify_inclusion(
        b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof_of(case), b64(case["root"])
    )


def check_consistency(case: dict[str, Any]) -> None:
    verify_consistency(
        case["size1"], case["size2"], proof_of(case), b64(case["root1"]), b64(case["root2"])
    )


def test_vectors_are_all_present():
    assert len(INCLUSION) == 53
    assert len(CONSISTENCY) == 43
    assert (VECTORS / "LICENSE").is_file()
    assert (VECTORS / "README.md").is_file()


@pytest.mark.parametrize("path", INCLUSION, ids=vector_id)
def test_inclusion_vector(path: Path):
    case = load(path)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            check_inclusion(case)
    else:
        check_inclusion(case)


@pytest.mark.parametrize("path", CONSISTENCY, ids=vector_id)
def test_consistency_vector(path: Path):
    case = load(path)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            check_consistency(case)
    else:
        check_consistency(case)


def test_every_folder_has_one_happy_path():
    for paths in (INCLUSION, CONSISTENCY):
        folders = {path.parent for path in paths}
        for folder in folders:
            happy = [p.name for p in paths if p.parent == folder and not load(p)["wantErr"]]
            assert len(happy) == 1, folder


@pytest.mark.parametrize(
    "path",
    [p for p in INCLUSION if p.parent.name != "single-entry" and not load(p)["wantErr"]],
    ids=vector_id,
)
def test_inclusion_happy_path_is_the_proof_we_generate(path: Path):
    case = load(path)
    size = case["treeSize"]
    assert b64(case["root"]) == root_hash(REFERENCE_LEAVES[:size])
    assert b64(case["leafHash"]) == REFERENCE_HASHES[case["leafIdx"]]
    assert inclusion_proof(REFERENCE_HASHES[:size], case["leafIdx"]) == proof_of(case)


@pytest.mark.parametrize("path", [p for p in CONSISTENCY if not load(p)["wantErr"]], ids=vector_id)
def test_consistency_happy_path_is_the_proof_we_generate(path: Path):
    case = load(path)
    assert b64(case["root1"]) == root_hash(REFERENCE_LEAVES[: case["size1"]])
    assert b64(case["root2"]) == root_hash(REFERENCE_LEAVES[: case["size2"]])
    assert consistency_proof(REFERENCE_HASHES[: case["size2"]], case["size1"]) == proof_of(case)


def test_single_entry_vectors_hash_the_word_data():
    case = load(VECTORS / "inclusion" / "single-entry" / "matching-root-and-leaf.json")
    assert b64(case["leafHash"]) == leaf_hash(b"data")


# The extra checks the vectors' README demands, each shown on its own.

ROOT8 = root_hash(REFERENCE_LEAVES)
ROOT6 = root_hash(REFERENCE_LEAVES[:6])
EMPTY_ROOT = hashlib.sha256(b"").digest()


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_inclusion_with_a_hash_not_32_bytes_then_rejected(length: int):
    proof = inclusion_proof(REFERENCE_HASHES, 5)
    good = (REFERENCE_HASHES[5], 5, 8, proof, ROOT8)
    verify_inclusion(*good)
    bad = bytes(length)
    with pytest.raises(ProofError, match=f"leaf hash is {length} bytes, expected 32"):
        verify_inclusion(bad, 5, 8, proof, ROOT8)
    with pytest.raises(ProofError, match=f"root is {length} bytes, expected 32"):
        verify_inclusion(REFERENCE_HASHES[5], 5, 8, proof, bad)
    with pytest.raises(ProofError, match=f"proof hash 1 is {length} bytes, expected 32"):
        verify_inclusion(REFERENCE_HASHES[5], 5, 8, [proof[0], bad, proof[2]], ROOT8)


def test_single_leaf_with_empty_leaf_and_root_then_rejected():
    # Without the size check an empty "hash" would be its own root.
    with pytest.raises(ProofError, match="leaf hash is 0 bytes"):
        verify_inclusion(b"", 0, 1, [], b"")


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_consistency_with_a_hash_not_32_bytes_then_rejected(length: int):
    proof = consistency_proof(REFERENCE_HASHES, 6)
    verify_consistency(6, 8, proof, ROOT6, ROOT8)
    bad = bytes(length)
    with pytest.raises(ProofError, match=f"root1 is {length} bytes"):
        verify_consistency(6, 8, proof, bad, ROOT8)
    with pytest.raises(ProofError, match=f"root2 is {length} bytes"):
        verify_consistency(6, 8, proof, ROOT6, bad)
    with pytest.raises(ProofError, match=f"proof hash 0 is {length} bytes"):
        verify_consistency(6, 8, [bad, *proof[1:]], ROOT6, ROOT8)
    with pytest.raises(ProofError, match=f"root1 is {length} bytes"):
        verify_consistency(3, 3, [], bad, bad)


@pytest.mark.parametrize(
    ("size2", "proof", "root2"),
    [
        (0, [], EMPTY_ROOT),
        (8, [], ROOT8),
        (8, [ROOT8], ROOT8),
        (1, [], REFERENCE_HASHES[0]),
    ],
    ids=["to-empty", "empty-proof", "one-hash-proof", "to-one-leaf"],
)
def test_consistency_from_size_0_then_rejected(size2: int, proof: list[bytes], root2: bytes):
    with pytest.raises(
        ProofError, match="size1 is 0: there is no consistency proof from an empty tree"
    ):
        verify_consistency(0, size2, proof, EMPTY_ROOT, root2)


@pytest.mark.parametrize("size", [1, 2, 6, 8])
def test_consistency_of_equal_sizes_verifies_only_with_empty_proof_and_equal_roots(size: int):
    root = root_hash(REFERENCE_LEAVES[:size])
    other = root_hash(REFERENCE_LEAVES[: size - 1])
    verify_consistency(size, size, [], root, root)
    with pytest.raises(ProofError, match="proof has 1 hashes, expected 0 for equal sizes"):
        verify_consistency(size, size, [root], root, root)
    with pytest.raises(ProofError, match="the sizes are equal but the roots differ"):
        verify_consistency(size, size, [], root, other)
    with pytest.raises(ProofError, match="the sizes are equal but the roots differ"):
        verify_consistency(size, size, [], other, root)
