"""The stored-subtree tree agrees with the RFC 9162 reference on every small tree."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.transparency import merkle
from ledger.transparency.tree import (
    FIRST_STORED,
    Hashes,
    _plain,
    blocks,
    fetch_nodes,
    frontier,
    leaf_data,
    new_nodes,
    root_of_levels,
)

LEAVES = [merkle.leaf_hash(f"event {i}".encode()) for i in range(70)]


def _grown(appends: list[int]) -> dict[tuple[int, int], bytes]:
    """The stored nodes after appending batches of the given sizes, one after another."""
    stored: dict[tuple[int, int], bytes] = {}
    start = 0
    for count in appends:
        needed = fetch_nodes(
            lambda wanted: {n: stored[n] for n in wanted if n in stored}, frontier(start, count)
        )
        stored.update(new_nodes(start, LEAVES[start : start + count], needed))
        start += count
    return stored


@pytest.mark.parametrize("appends", [[64], [1] * 64, [3, 5, 7, 1, 20, 28], [33, 31], [2] * 32])
def test_appending_in_any_batches_gives_the_same_nodes(appends: list[int]) -> None:
    assert _grown(appends) == _grown([64])


def _reference_nodes(size: int) -> dict[tuple[int, int], bytes]:
    """Every node the tree stores for `size` leaves, each perfect subtree hashed by the
    reference implementation from the leaves under it."""
    nodes: dict[tuple[int, int], bytes] = {}
    level = 0
    while (1 << level) <= size:
        if level == 0 or level >= FIRST_STORED:
            for index in range(size >> level):
                under = LEAVES[index << level : (index + 1) << level]
                nodes[(level, index)] = merkle.root_from_hashes(under)
        level += 1
    return nodes


@given(st.lists(st.integers(min_value=1, max_value=23), min_size=1, max_size=8))
def test_the_nodes_stored_are_the_reference_hashes_of_their_subtrees(appends: list[int]) -> None:
    size = sum(appends)
    if size > len(LEAVES):
        appends, size = [len(LEAVES)], len(LEAVES)
    assert _grown(appends) == _reference_nodes(size)


def test_roots_and_proofs_match_the_reference_for_every_size_and_leaf() -> None:
    stored = _grown([5, 11, 17, 31])
    fetches: list[int] = []

    def fetch(nodes):
        wanted = list(nodes)
        fetches.append(len(wanted))
        return {n: stored[n] for n in wanted if n in stored}

    for size in range(1, 65):
        hashes = Hashes(fetch)
        root = hashes.root(size)
        assert root == merkle.root_from_hashes(LEAVES[:size])
        for index in range(size):
            proof = Hashes(fetch).inclusion(index, size)
            assert proof == merkle.inclusion_proof(LEAVES[:size], index)
            merkle.verify_inclusion(LEAVES[index], index, size, proof, root)
        for old in range(1, size + 1):
            proof = Hashes(fetch).consistency(old, size)
            assert proof == merkle.consistency_proof(LEAVES[:size], old)
            merkle.verify_consistency(old, size, proof, Hashes(fetch).root(old), root)
    # Every proof was built from one fetch of at most 2 * log2(64) nodes, those of the
    # levels not stored fetched as the leaves under them: 2 * (1 + 2 + 4 + 8) for levels
    # 0 to 3, and 2 * 3 for levels 4 to 6.
    assert max(fetches) <= 36
    assert all(node[0] == 0 or node[0] >= FIRST_STORED for node in stored)


def test_blocks_cover_a_range_with_aligned_perfect_subtrees() -> None:
    assert blocks(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert blocks(6, 13) == [(1, 3), (2, 2), (0, 12)]
    for begin in range(40):
        for end in range(begin + 1, 41):
            covered = [i for level, idx in blocks(begin, end)
                       for i in range(idx << level, (idx + 1) << level)]  # fmt: skip
            assert covered == list(range(begin, end))


def test_leaf_data_is_canonical_json_of_the_stored_event() -> None:
    state = (
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-03-01T04:00:00+00:00"},'
        b'"reference":"TP-2","authority":"traffic-police",'
        b'"occurred_on":{"_type_":"date","_data_":"2025-02-01"},'
        b'"target":{"_type_":"record_key","_data_":["traffic-police","TP-1"]},'
        b'"amount":{"_type_":"decimal_str","_data_":"200.00"}}'
    )
    aggregate = uuid.UUID(int=7)
    data = leaf_data(12, aggregate, 3, "ledger.domain:Citizen.InfractionSettled", state)
    assert json.loads(data) == {
        "position": 12, "aggregate": str(aggregate), "version": 3,
        "type": "ledger.domain:Citizen.InfractionSettled",
        "recorded_at": "2026-03-01T04:00:00+00:00",
        "payload": {"reference": "TP-2", "authority": "traffic-police",
                    "occurred_on": "2025-02-01", "amount": "200.00",
                    "target": {"authority": "traffic-police", "reference": "TP-1"}},
    }  # fmt: skip
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()


def test_the_root_of_any_prefix_comes_from_the_levels_of_the_whole_tree() -> None:
    levels = [LEAVES]
    while len(levels[-1]) > 1:
        levels.append(merkle.parents(levels[-1]))
    assert [len(level) for level in levels] == [70, 35, 17, 8, 4, 2, 1]
    for size in range(71):
        assert root_of_levels(levels, size) == merkle.root_from_hashes(LEAVES[:size])


@pytest.mark.parametrize("state", [b"[1, 2]", b'"text"', b"7", b"null"])
def test_a_stored_event_that_is_not_a_json_object_has_no_leaf(state: bytes) -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        leaf_data(1, uuid.UUID(int=1), 1, "ledger.domain:Citizen.Enrolled", state)


@pytest.mark.parametrize("state", [b"{", b'{"timestamp": 1', b"\xff"])
def test_a_stored_event_that_is_not_json_has_no_leaf(state: bytes) -> None:
    import orjson  # noqa: PLC0415

    with pytest.raises(orjson.JSONDecodeError):
        leaf_data(1, uuid.UUID(int=1), 1, "ledger.domain:Citizen.Enrolled", state)


def test_leaf_data_writes_the_bytes_of_sorted_orjson_for_any_nesting() -> None:
    import orjson  # noqa: PLC0415

    state = orjson.dumps({
        "z": [{"_type_": "date", "_data_": "2025-01-02"}, {"b": 1, "a": [None, 2.5]}],
        "a": {"_type_": "decimal_str", "_data_": {"y": 1, "x": {"_type_": "t", "_data_": 3}}},
        "m": {"_type_": "record_key", "_data_": ["auth\u00e9", 'ref "1"'], "extra": 1},
        "timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"},
    })  # fmt: skip
    expected = {
        "aggregate": str(uuid.UUID(int=5)), "position": 9, "version": 2, "type": "t\u2028",
        "recorded_at": "2026-01-01T00:00:00+00:00",
        "payload": {
            "z": ["2025-01-02", {"b": 1, "a": [None, 2.5]}], "a": {"y": 1, "x": 3},
            "m": {"_type_": "record_key", "_data_": ["auth\u00e9", 'ref "1"'], "extra": 1},
        },
    }  # fmt: skip
    data = leaf_data(9, uuid.UUID(int=5), 2, "t\u2028", state)
    assert data == orjson.dumps(expected, option=orjson.OPT_SORT_KEYS)


_TEXT = st.sampled_from(["", "a", "2025-01-02", 'q"\\', "\u00e9", "_type_", "_data_", "record_key"])
_SCALAR = st.none() | st.booleans() | st.integers(-(2**62), 2**62) | _TEXT
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_TEXT, inner, max_size=3)
        | st.fixed_dictionaries({"_type_": _TEXT | st.integers(0, 9), "_data_": inner})
        | st.fixed_dictionaries({"_data_": inner, "_type_": st.just("record_key")})
    ),
    max_leaves=8,
)


@given(st.dictionaries(_TEXT | st.just("timestamp"), _VALUE, max_size=5))
def test_leaf_data_takes_the_tags_off_each_value_as_plain_does(fields: dict[str, object]) -> None:
    # The tags of a field's value are taken off inline, for speed; this is what they
    # must come to, for any nesting and any tag (None: the event has no leaf).
    import orjson  # noqa: PLC0415

    state = orjson.dumps(fields)
    expected: bytes | None
    data: bytes | None
    try:
        expected = orjson.dumps(
            {"aggregate": "a", "position": 3, "type": "t", "version": 1,
             "recorded_at": _plain(fields.get("timestamp")),
             "payload": {k: _plain(v) for k, v in fields.items() if k != "timestamp"}},
            option=orjson.OPT_SORT_KEYS,
        )  # fmt: skip
    except (LookupError, TypeError, ValueError):
        expected = None
    try:
        data = leaf_data(3, "a", 1, "t", state)
    except (LookupError, TypeError, ValueError):
        data = None
    assert data == expected
