"""Shares of citizens for a parallel rebuild: every id falls in exactly one share, and
the share `partition_of` names is the range `partition_bounds` gives the recorders."""

from __future__ import annotations

import uuid
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from ledger.log import partition_bounds, partition_of

LAST = 2**128 - 1


def inside(citizen: uuid.UUID, bounds: tuple[uuid.UUID, uuid.UUID | None]) -> bool:
    low, high = bounds
    return low.int <= citizen.int and (high is None or citizen.int < high.int)


@given(st.integers(1, 64), st.integers(0, LAST))
def test_an_id_is_in_the_range_of_its_share_and_no_other(parts: int, number: int) -> None:
    citizen = uuid.UUID(int=number)
    share = partition_of(citizen, parts)
    assert 0 <= share < parts
    assert [k for k in range(parts) if inside(citizen, partition_bounds(k, parts))] == [share]


@given(st.integers(1, 64))
def test_the_ranges_meet_end_to_end_from_the_first_id_to_the_last(parts: int) -> None:
    ranges = [partition_bounds(k, parts) for k in range(parts)]
    assert ranges[0][0].int == 0
    assert ranges[-1][1] is None
    for (_, high), (low, _) in pairwise(ranges):
        assert high == low
        # The ids either side of each boundary fall in the shares either side of it.
        assert partition_of(uuid.UUID(int=low.int - 1), parts) + 1 == partition_of(low, parts)
    assert partition_of(uuid.UUID(int=LAST), parts) == parts - 1


def test_uniform_ids_are_shared_out_evenly() -> None:
    counts = [0, 0, 0]
    for n in range(3000):
        counts[partition_of(uuid.uuid5(uuid.NAMESPACE_URL, str(n)), 3)] += 1
    assert all(900 < count < 1100 for count in counts)
