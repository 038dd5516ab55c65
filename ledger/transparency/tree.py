"""The ledger's log as an RFC 9162 Merkle tree, stored as its perfect subtrees.

Leaf i is the i-th event of the log in position order; its data is the canonical
encoding below. Only complete (perfect, aligned) subtrees are stored, as (level,
index) -> hash: every leaf, and the inner nodes from level FIRST_STORED up, so
appending k events to a tree of n writes k leaves and at most k / 8 + log2(n + k)
inner nodes. A node of the levels in between is hashed again from the 2**level leaves
under it (`fetch_nodes`), so any root or proof for any size is still built from O(log n)
stored nodes and a few leaves, fetched at once.

Leaf data, canonical JSON (keys sorted, no spaces, UTF-8) of:
    {"position": <int>, "aggregate": "<uuid>", "version": <int>, "type": "<topic>",
     "recorded_at": "<ISO 8601>", "payload": {<the event's fields>}}
where the payload holds the event's fields as stored, with dates, amounts and times as
the strings `ledger history --json` shows and a target as {"authority", "reference"}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from ledger.transparency.merkle import leaf_hash, node_hash, parents, root_from_hashes

Node = tuple[
    int, int
]  # (level, index): the subtree of leaves [index * 2**level, (index + 1) * 2**level)


def leaf_data(position: int, aggregate: object, version: int, topic: str, state: bytes) -> bytes:
    """The canonical encoding of one stored event; ValueError when it is not a JSON object."""
    fields = _loads(state)
    if type(fields) is not dict:
        raise ValueError("the stored event is not a JSON object")
    recorded_at = fields.pop("timestamp", None)
    # `_plain` of each value, with its commonest case (a tagged string) inline: this
    # runs for every event `ledger verify` reads.
    for name, value in fields.items():
        if type(value) is dict:
            if len(value) == 2 and "_data_" in value and "_type_" in value:
                data = value["_data_"]
                if value["_type_"] == "record_key":
                    fields[name] = {"authority": data[0], "reference": data[1]}
                elif type(data) is str:
                    fields[name] = data
                else:
                    fields[name] = _plain(data)
            else:
                fields[name] = _plain(value)
        elif type(value) is list:
            fields[name] = _plain(value)
    return leaf_document(position, str(aggregate), version, topic, _plain(recorded_at), fields)


def leaf_document(
    position: int, aggregate: str, version: int, topic: str, recorded_at: Any, payload: Any
) -> bytes:
    """The canonical encoding of an event from its parts, the payload without tags: how
    `leaf_data` ends, and how a writer that encoded the event itself hashes its leaf."""
    return _dumps(
        {"aggregate": aggregate, "payload": payload, "position": position,
         "recorded_at": recorded_at, "type": topic, "version": version},
        option=_SORTED,
    )  # fmt: skip


_loads = orjson.loads
_SORTED = orjson.OPT_SORT_KEYS
_dumps = orjson.dumps


def _plain(value: Any) -> Any:
    """A value as stored, with eventsourcing's {"_type_", "_data_"} tags taken off."""
    if type(value) is dict:
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            data = value["_data_"]
            if value["_type_"] == "record_key":
                return {"authority": data[0], "reference": data[1]}
            return data if type(data) is str else _plain(data)
        return {k: _plain(v) for k, v in value.items()}
    if type(value) is list:
        return [_plain(v) for v in value]
    return value


# The lowest level of inner nodes stored. Below it a node costs a row a record or more
# to keep, and fewer than 2**FIRST_STORED leaves to hash again when a proof needs it.
FIRST_STORED = 4


def is_stored(node: Node) -> bool:
    """Whether the tree keeps this node (a leaf, or an inner node from FIRST_STORED up)."""
    return node[0] == 0 or node[0] >= FIRST_STORED


def new_nodes(
    start: int, leaves: Sequence[bytes], stored: Mapping[Node, bytes]
) -> dict[Node, bytes]:
    """The nodes to store (`is_stored`) completed by appending `leaves` (leaf hashes) to
    a tree of `start` leaves; `stored` must hold `frontier(start, len(leaves))`, as
    `fetch_nodes` gives it."""
    size = start + len(leaves)
    made: dict[Node, bytes] = {(0, start + i): h for i, h in enumerate(leaves)}
    # A level at a time: the new nodes of one level, from index `first` on, paired into
    # the next (an unpaired last one waits for a later append).
    row, first, level = list(leaves), start, 0
    while (size >> (level + 1)) > (start >> (level + 1)):
        if first % 2:
            row.insert(0, stored[(level, first - 1)])
            first -= 1
        row, first, level = parents(row), first // 2, level + 1
        if level >= FIRST_STORED:
            made.update(((level, first + i), h) for i, h in enumerate(row))
    return made


def fetch_nodes(
    fetch: Callable[[Iterable[Node]], Mapping[Node, bytes]], wanted: Iterable[Node]
) -> dict[Node, bytes]:
    """The wanted nodes of any level found, from `fetch` of the ones `is_stored` keeps:
    the others hashed again from the leaves under them, fetched with the rest in one
    call. A node missing, or with a leaf under it missing, is left out."""
    wanted = set(wanted)
    under = {
        (level, index): [(0, leaf) for leaf in range(index << level, (index + 1) << level)]
        for level, index in wanted
        if not is_stored((level, index))
    }
    found = dict(fetch((wanted - under.keys()) | {leaf for row in under.values() for leaf in row}))
    for node, row in under.items():
        if all(leaf in found for leaf in row):
            found[node] = root_from_hashes([found[leaf] for leaf in row])
    return {node: found[node] for node in wanted if node in found}


def frontier(start: int, count: int) -> list[Node]:
    """The stored nodes `new_nodes` needs: left siblings of the first new node per level."""
    size = start + count
    needed = []
    level = 0
    while (size >> (level + 1)) > (start >> (level + 1)):
        first = start >> level
        if first % 2 == 1:
            needed.append((level, first - 1))
        level += 1
    return needed


def blocks(begin: int, end: int) -> list[Node]:
    """The perfect aligned subtrees that make up the leaves [begin, end), left to right."""
    out = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length() - 1
        while (1 << level) > end - begin:
            level -= 1
        out.append((level, begin >> level))
        begin += 1 << level
    return out


def root_of_levels(levels: Sequence[Sequence[bytes]], size: int) -> bytes:
    """The root of the first `size` leaves of a whole tree held level by level (the
    leaves, then `merkle.parents` of each level), from the perfect subtrees in it."""
    if size == 0:
        return _EMPTY
    parts = [levels[level][index] for level, index in blocks(0, size)]
    root = parts.pop()
    while parts:
        root = node_hash(parts.pop(), root)
    return root


class Hashes:
    """Range hashes (RFC 9162 MTH of a range of leaves) from stored subtree nodes."""

    def __init__(self, fetch: Callable[[Iterable[Node]], Mapping[Node, bytes]]) -> None:
        self.fetch = fetch
        self.known: dict[Node, bytes] = {}

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        wanted = {n for b, e in ranges for n in blocks(b, e)} - self.known.keys()
        if wanted:
            found = fetch_nodes(self.fetch, wanted)
            missing = wanted - found.keys()
            if missing:
                raise LookupError(f"the stored tree lacks nodes {sorted(missing)[:3]}")
            self.known.update(found)

    def mth(self, begin: int, end: int) -> bytes:
        """MTH of leaves [begin, end), by the RFC's split at the largest power of two."""
        if end - begin == 1 or _perfect(begin, end):
            level = (end - begin).bit_length() - 1
            return self.known[(level, begin >> level)]
        k = _largest_power_below(end - begin)
        return node_hash(self.mth(begin, begin + k), self.mth(begin + k, end))

    def root(self, size: int) -> bytes:
        if size == 0:
            return _EMPTY
        self.prefetch([(0, size)])
        return self.mth(0, size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        ranges = path_ranges(index, 0, size)
        self.prefetch(ranges)
        return [self.mth(b, e) for b, e in ranges]

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        ranges = subproof_ranges(size1, 0, size2, complete=True)
        self.prefetch(ranges)
        return [self.mth(b, e) for b, e in ranges]


def _perfect(begin: int, end: int) -> bool:
    width = end - begin
    return width & (width - 1) == 0 and begin % width == 0


def _largest_power_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def path_ranges(m: int, begin: int, n: int) -> list[tuple[int, int]]:
    """RFC 9162 PATH(m, D[begin:begin+n]) as the ranges whose MTHs it lists."""
    if n <= 1:
        return []
    k = _largest_power_below(n)
    if m < k:
        return [*path_ranges(m, begin, k), (begin + k, begin + n)]
    return [*path_ranges(m - k, begin + k, n - k), (begin, begin + k)]


def subproof_ranges(m: int, begin: int, n: int, complete: bool) -> list[tuple[int, int]]:
    """RFC 9162 SUBPROOF(m, D[begin:begin+n], b) as ranges."""
    if m == n:
        return [] if complete else [(begin, begin + n)]
    k = _largest_power_below(n)
    if m <= k:
        return [*subproof_ranges(m, begin, k, complete), (begin + k, begin + n)]
    return [*subproof_ranges(m - k, begin + k, n - k, False), (begin, begin + k)]


_EMPTY = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

__all__ = [
    "FIRST_STORED", "Hashes", "blocks", "fetch_nodes", "frontier", "is_stored",
    "leaf_data", "leaf_document", "leaf_hash", "new_nodes", "root_of_levels",
]  # fmt: skip
