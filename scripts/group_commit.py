"""Group commit for the HTTP service: concurrent requests share one transaction.

Each request hands its records to one writer thread and waits. The writer takes
whatever is waiting when it is free, appends it all as one batch (one transaction),
and gives each request back its own part of the report, numbered from its own first
record. Under load, requests gather while a batch is written, so the batches grow
by themselves; waiting a few milliseconds for more was measured to add nothing (32
concurrent single appends: 330/s with no wait, 320/s with 2 ms, 285/s with 10 ms)
but latency. Only the writer touches the ledger's write path, so its
aggregate cache never sees two threads.

A shared transaction that fails for a reason other than the database being out of
reach is tried again one request at a time, so that only the request whose records
caused it hears of the failure.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.application import AppendReport, Duplicate, Ledger, Rejection
from ledger.partitioned.ledger import PartitionedLedger, partition_of_line
from scripts.errors import UNAVAILABLE

WINDOW = 0.0
MAX_RECORDS = 2000


@dataclass
class _Request:
    records: Sequence[Mapping[str, Any]]
    done: threading.Event = field(default_factory=threading.Event)
    report: AppendReport | None = None
    error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class GroupCommit:
    """One writer thread appending for every request of this process."""

    def __init__(self, ledger: Ledger, window: float = WINDOW) -> None:
        self.ledger = ledger
        self.window = window
        self.waiting: queue.Queue[_Request | None] = queue.Queue()
        self.writer = threading.Thread(target=self._write, name="group-commit", daemon=True)
        self.writer.start()

    def close(self) -> None:
        """Stop the writer once what is waiting has been written."""
        self.waiting.put(None)
        self.writer.join(timeout=30)

    def append(self, records: Sequence[Mapping[str, Any]]) -> AppendReport:
        """Append these records with whatever else arrives now; their own report."""
        request = _Request(records)
        self.waiting.put(request)
        while not request.done.wait(1.0):
            if not self.writer.is_alive():
                raise RuntimeError("the group commit writer has stopped")
        if request.error is not None:
            raise request.error
        assert request.report is not None
        return request.report

    def _write(self) -> None:
        while (first := self.waiting.get()) is not None:
            group = [first]
            count = len(first.records)
            deadline = time.monotonic() + self.window
            stop = False
            while count < MAX_RECORDS:
                try:
                    more = self.waiting.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
                count += len(more.records)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Request]) -> None:
        records = [record for request in group for record in request.records]
        try:
            report = self.ledger.append_records(records)
        except UNAVAILABLE as e:
            # Out of reach: trying each request alone would only fail again.
            for request in group:
                request.fail(e)
            return
        except Exception as e:  # noqa: BLE001 - one request's records may be the cause
            if len(group) == 1:
                group[0].fail(e)
                return
            for request in group:
                self._commit([request])
            return
        except BaseException as e:
            for request in group:
                request.fail(e)
            raise
        start = 0
        for request in group:
            request.report = _part(report, start, len(request.records))
            start += len(request.records)
            request.done.set()


def _part(report: AppendReport, start: int, count: int) -> AppendReport:
    """The lines start+1 .. start+count of a report, numbered from 1."""

    def mine(line: int) -> bool:
        return start < line <= start + count

    positions = [(line - start, p) for line, p in report.positions if mine(line)]
    return AppendReport(
        appended=len(positions),
        positions=positions,
        duplicates=[Duplicate(d.line - start, d.position) for d in report.duplicates
                    if mine(d.line)],
        rejected=[Rejection(r.line - start, r.field, r.error) for r in report.rejected
                  if mine(r.line)],
        retries=report.retries,
    )  # fmt: skip


class RoutedCommits:
    """The group commits of a partitioned ledger, one a partition: a request's records
    are split by their citizens' partitions, each part appended with whatever else
    arrives for that partition, and the parts' reports put back in the request's
    order, each position naming its partition."""

    def __init__(self, routed: PartitionedLedger, window: float = WINDOW) -> None:
        self.routed = routed
        self.window = window
        self._lock = threading.Lock()
        self._commits: dict[int, GroupCommit] = {}

    def _commit(self, partition: int) -> GroupCommit:
        with self._lock:
            found = self._commits.get(partition)
            if found is None:
                found = self._commits[partition] = GroupCommit(
                    self.routed.partition(partition), self.window
                )
            return found

    def append(self, records: Sequence[Mapping[str, Any]]) -> AppendReport:
        parts: dict[int, list[int]] = {}
        for number, record in enumerate(records, start=1):
            parts.setdefault(partition_of_line(record, self.routed.partitions), []).append(number)
        report = AppendReport()
        for partition, lines in sorted(parts.items()):
            part = self._commit(partition).append([records[n - 1] for n in lines])
            report.merge(AppendReport(
                appended=part.appended,
                positions=[(lines[n - 1], p) for n, p in part.positions],
                duplicates=[Duplicate(lines[d.line - 1], d.position) for d in part.duplicates],
                rejected=[Rejection(lines[r.line - 1], r.field, r.error) for r in part.rejected],
                retries=part.retries,
                partitions=dict.fromkeys(lines, partition),
            ))  # fmt: skip
        report.sort()
        return report

    def close(self) -> None:
        with self._lock:
            commits, self._commits = list(self._commits.values()), {}
        for commit in commits:
            commit.close()
