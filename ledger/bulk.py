"""Bulk feeds: one writer process per shard of citizens, each a whole ledger.

A record only ever acts on records of the same citizen, so a feed split by citizen
keeps every order that matters. Each worker validates, applies and saves its own
shard in batches; what two shards could disagree on, the same (authority,
reference) sent for two citizens, is settled by the record index's unique key: the
loser's save fails, it reloads and sees a conflict. Positions in the log interleave
between shards; within a citizen they follow the feed.
"""

from __future__ import annotations

import os
import queue
import zlib
from collections.abc import Callable, Iterable
from itertools import chain, islice
from multiprocessing import get_context
from typing import Any

import orjson

from ledger.application import BATCH_SIZE, AppendReport, Clock, Ledger
from ledger.storage import is_in_memory

Lines = list[tuple[int, bytes]]

# Starting a writer costs about a second; below this many lines one process is faster.
SHARDING_THRESHOLD = 5_000
# More writers than cores pays on this kind of machine: each waits on its commits.
WRITERS = min(4, 2 * (os.cpu_count() or 1))


def append_feed(
    url: str,
    lines: Iterable[tuple[int, bytes]],
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
    writers: int = WRITERS,
) -> AppendReport:
    """Append a feed of numbered NDJSON lines: in this process when it is short,
    else with `writers` processes, one per shard of citizens.
    """
    rest = iter(lines)
    head = list(islice(rest, SHARDING_THRESHOLD))
    if writers > 1 and len(head) == SHARDING_THRESHOLD and not is_in_memory(url):
        return append_sharded(url, chain(head, rest), writers, clock, progress)
    ledger = Ledger(url, clock=clock)
    try:
        return ledger.append_lines(chain(head, rest), progress=progress)
    finally:
        ledger.close()


def shard_of(line: bytes | str, shards: int) -> int:
    """The shard of a line's citizen; a line without a readable citizen goes to 0."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return 0
    citizen = data.get("citizen") if isinstance(data, dict) else None
    if not isinstance(citizen, str):
        return 0
    return zlib.crc32(citizen.upper().encode()) % shards


def _worker(url: str, clock: Clock | None, inbox: Any, outbox: Any) -> None:
    try:
        ledger = Ledger(url, clock=clock)
        try:
            while (batch := inbox.get()) is not None:
                outbox.put(("report", len(batch), ledger.append_lines(batch, len(batch))))
        finally:
            ledger.close()
    except BaseException as e:  # noqa: BLE001 - every failure must reach the parent
        outbox.put(("error", 0, f"{type(e).__name__}: {e}"))
        return
    outbox.put(("done", 0, None))


class WorkerFailed(RuntimeError):
    """A shard's writer failed; what it had saved stays saved."""


def append_sharded(
    url: str,
    lines: Iterable[tuple[int, bytes]],
    workers: int,
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> AppendReport:
    """Append numbered NDJSON lines with `workers` writer processes, one per shard."""
    context = get_context("spawn")
    outbox = context.Queue()
    inboxes = [context.Queue(maxsize=4) for _ in range(workers)]
    processes = [
        context.Process(target=_worker, args=(url, clock, inbox, outbox), daemon=True)
        for inbox in inboxes
    ]
    for process in processes:
        process.start()
    report = AppendReport()
    finished = 0

    def take(block: bool) -> None:
        nonlocal finished
        try:
            kind, size, payload = outbox.get(block=block, timeout=1 if block else None)
        except queue.Empty:
            if not all(p.is_alive() for p in processes):
                raise WorkerFailed("a writer process died") from None
            return
        if kind == "error":
            raise WorkerFailed(payload)
        if kind == "done":
            finished += 1
            return
        _merge(report, payload)
        if progress is not None:
            progress(size)

    def send(shard: int, batch: Lines | None) -> None:
        while True:
            try:
                inboxes[shard].put(batch, timeout=0.1)
                return
            except queue.Full:
                take(block=False)

    try:
        buffers: list[Lines] = [[] for _ in range(workers)]
        for number, line in lines:
            shard = shard_of(line, workers)
            buffers[shard].append((number, line))
            if len(buffers[shard]) >= batch_size:
                send(shard, buffers[shard])
                buffers[shard] = []
            while not outbox.empty():
                take(block=False)
        for shard, batch in enumerate(buffers):
            if batch:
                send(shard, batch)
            send(shard, None)
        while finished < workers:
            take(block=True)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    report.rejected.sort(key=lambda x: x.line)
    report.positions.sort()
    report.duplicates.sort(key=lambda d: d.line)
    return report


def _merge(report: AppendReport, part: AppendReport) -> None:
    report.appended += part.appended
    report.positions.extend(part.positions)
    report.duplicates.extend(part.duplicates)
    report.rejected.extend(part.rejected)
    report.retries += part.retries
