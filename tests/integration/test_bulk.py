"""A feed appended by sharded writer processes ends as it would in one process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ledger.application import AppendReport, Ledger
from ledger.bulk import _failure, append_sharded, shard_of
from ledger.errors import DatabaseUnavailable
from tests.builders import (
    LI_WEI,
    WANG_FANG,
    ZHANG_MIN,
    enrolled,
    fine,
    record,
    register_authorities,
    target,
)

PEOPLE = (WANG_FANG, LI_WEI, ZHANG_MIN)


def _feed() -> list[tuple[int, bytes]]:
    feed: list[dict[str, Any] | str] = [enrolled(p) for p in PEOPLE]
    for n in range(1, 13):
        citizen = PEOPLE[n % 3]
        feed.append(fine(f"TP-{n}", citizen=citizen, amount=f"{n}.00"))
        feed.append(
            record("infraction.settled", f"TP-{n}-S", citizen=citizen,
                   target=target("traffic-police", f"TP-{n}"), amount=f"{n}.00",
                   occurred_on="2025-02-01")
        )  # fmt: skip
    feed += [
        fine("TP-1", citizen=PEOPLE[1], amount="1.00"),  # a duplicate
        fine("TP-2", citizen=WANG_FANG, amount="2.00"),  # a conflict: Zhang Min's reference
        "{broken",
        record("infraction.settled", "TP-1-S2", citizen=LI_WEI,
               target=target("traffic-police", "TP-1"), amount="1.00"),  # settled twice
    ]  # fmt: skip
    return [
        (n, line.encode() if isinstance(line, str) else json.dumps(line).encode())
        for n, line in enumerate(feed, start=1)
    ]


def _state(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    return {p: [e.record.to_wire() for e in ledger.history(p)] for p in PEOPLE}


def test_the_feed_is_split_so_that_each_citizen_has_one_shard() -> None:
    lines = _feed()
    shards = {shard_of(line, 2) for _, line in lines if WANG_FANG.encode() in line}
    assert len(shards) == 1
    # Wang Fang and Zhang Min in different shards, so their conflict crosses writers.
    assert shard_of(json.dumps(enrolled(WANG_FANG)), 3) != shard_of(
        json.dumps(enrolled(ZHANG_MIN)), 3
    )
    assert shard_of("{broken", 3) == 0


def test_sharded_append_matches_one_process(
    ledger: Ledger, store_url: str, open_ledger: Callable[[], Ledger], tmp_path: Any
) -> None:
    register_authorities(ledger)
    # Which of two shards first saves a reference both claim is a race; the claim from
    # another shard is sent once the first is stored, so the later line loses.
    feed = _feed()
    sharded = append_sharded(store_url, feed[:-4], workers=3, batch_size=4)
    rest = append_sharded(store_url, feed[-4:], workers=3, batch_size=4)
    sharded.appended += rest.appended
    sharded.duplicates += rest.duplicates
    sharded.rejected += rest.rejected

    single = Ledger(f"sqlite:///{tmp_path}/single.db", clock=ledger.clock)
    register_authorities(single)
    expected = single.append_lines(_feed(), batch_size=4)

    assert _summary(sharded) == _summary(expected)
    assert [(x.line, x.field) for x in sharded.rejected] == [
        (29, "reference"), (30, "record"), (31, "target")
    ]  # fmt: skip
    assert [d.line for d in sharded.duplicates] == [28]
    assert _state(open_ledger()) == _state(single)
    single.close()


def test_sharded_append_a_second_time_is_all_duplicates(
    ledger: Ledger, store_url: str, open_ledger: Callable[[], Ledger]
) -> None:
    register_authorities(ledger)
    first = append_sharded(store_url, _feed(), workers=2, batch_size=5)
    again = append_sharded(store_url, _feed(), workers=2, batch_size=7)
    assert again.appended == 0
    assert len(again.duplicates) == first.appended + len(first.duplicates)
    positions = dict(first.positions)
    assert {d.line: d.position for d in again.duplicates if d.line in positions} == positions


def test_a_writer_error_is_reported_by_its_first_line_without_the_password() -> None:
    url = "postgresql://clerk:s3cret%21@db.example/ledger"
    error = DatabaseUnavailable(f"cannot reach {url}: password s3cret! refused\nDETAIL: more")
    assert _failure(error, url) == (
        True,
        "DatabaseUnavailable: db: cannot reach postgresql://clerk:***@db.example/ledger: "
        "password *** refused",
    )
    assert _failure(ValueError(""), url) == (False, "ValueError")


def _summary(report: AppendReport) -> tuple[int, int, list[tuple[int, str]]]:
    return (
        report.appended,
        len(report.duplicates),
        [(x.line, x.field) for x in report.rejected],
    )
