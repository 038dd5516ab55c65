"""Group commit: concurrent requests share transactions, each gets its own report."""

from __future__ import annotations

import threading
from typing import Any

from ledger.application import AppendReport, Ledger
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
