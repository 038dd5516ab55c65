"""Group commit: concurrent requests share transactions, each gets its own report."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from ledger.application import AppendReport, Ledger
from ledger.errors import DatabaseUnavailable
from scripts.group_commit import GroupCommit
from tests.builders import WANG_FANG, append, enrolled, fine, register_authorities


class Counting:
    """The ledger, counting the batches it is asked to append."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.batches = 0

    def append_records(self, records: Any) -> AppendReport:
        self.batches += 1
        return self.ledger.append_records(records)


def test_concurrent_requests_share_transactions_and_keep_their_own_numbering(
    ledger: Ledger,
) -> None:
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG))
    counting = Counting(ledger)
    group = GroupCommit(counting, window=0.05)  # type: ignore[arg-type]
    reports: dict[int, AppendReport] = {}
    start = threading.Barrier(8)

    def request(n: int) -> None:
        records = [fine(f"G-{n}-{k}", amount=f"{k}.00") for k in range(1, 4)]
        records.insert(1, fine(f"G-{n}-bad", amount="-1"))
        start.wait()
        reports[n] = group.append(records)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    group.close()

    assert counting.batches < 8
    positions = set()
    for report in reports.values():
        assert report.appended == 3
        assert [(r.line, r.field) for r in report.rejected] == [(2, "amount")]
        assert [line for line, _ in report.positions] == [1, 3, 4]
        positions.update(p for _, p in report.positions)
    assert len(positions) == 24
    history = [e.record.reference for e in ledger.history(WANG_FANG)]
    assert len(history) == 1 + 24


class Poisoned(Counting):
    """The ledger, failing any batch that holds a record with reference POISON, as a
    database refuses a whole transaction for one value it cannot store."""

    def append_records(self, records: Any) -> AppendReport:
        self.batches += 1
        if any(r.get("reference") == "POISON" for r in records):
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return self.ledger.append_records(records)


class Unreachable(Counting):
    def append_records(self, records: Any) -> AppendReport:
        self.batches += 1
        raise DatabaseUnavailable("the database does not answer now; try again")


def _concurrently(group: GroupCommit, requests: list[list[Any]]) -> list[Any]:
    """Send each request from its own thread at once; each one's report or error."""
    answers: list[Any] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def send(n: int) -> None:
        start.wait()
        try:
            answers[n] = group.append(requests[n])
        except Exception as e:  # noqa: BLE001 - the error is the answer under test
            answers[n] = e

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    group.close()
    return answers


def test_a_request_that_fails_the_shared_transaction_fails_alone(ledger: Ledger) -> None:
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG))
    poisoned = Poisoned(ledger)
    requests = [[fine(f"P-{n}-{k}") for k in range(2)] for n in range(6)]
    requests[3].insert(1, fine("POISON"))
    answers = _concurrently(GroupCommit(poisoned, window=0.2), requests)  # type: ignore[arg-type]

    assert isinstance(answers[3], psycopg.DataError)
    for n, answer in enumerate(answers):
        if n != 3:
            assert isinstance(answer, AppendReport), answer
            assert (answer.appended, answer.rejected) == (2, [])
    assert poisoned.batches < 6 + 6  # the group was shared, then split
    references = {e.record.reference for e in ledger.history(WANG_FANG)}
    assert {f"P-{n}-{k}" for n in range(6) if n != 3 for k in range(2)} <= references
    assert not references & {"P-3-0", "P-3-1", "POISON"}


def test_an_unreachable_database_reaches_every_waiter_without_retries(ledger: Ledger) -> None:
    unreachable = Unreachable(ledger)
    requests = [[fine(f"U-{n}")] for n in range(4)]
    answers = _concurrently(GroupCommit(unreachable, window=0.2), requests)  # type: ignore[arg-type]

    assert all(isinstance(answer, DatabaseUnavailable) for answer in answers)
    assert unreachable.batches == 1
