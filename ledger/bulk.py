"""Bulk feeds: one writer process per shard of citizens, each a whole ledger.

A record only ever acts on records of the same citizen, so a feed split by citizen
keeps every order that matters. Each worker validates, applies and saves its own
shard in batches; what two shards could disagree on, the same (authority,
reference) sent for two citizens, is settled by the record index's unique key: the
loser's save fails, it reloads and sees a conflict. Positions in the log interleave
between shards; within a citizen they follow the feed.

No writer outlives its append: each ends with its parent (kill -9 included), ignores
Ctrl-C, and is stopped by the parent when the append fails or is interrupted. A
writer's failure stops the whole append with that writer's own error.

Each line is decoded once: the object that names its shard is what its writer
validates. A line that is not a JSON object goes as it came, for its writer to reject.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from itertools import chain, islice
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

import orjson

from ledger.application import BATCH_SIZE, AppendReport, Clock, Ledger, Line, open_patiently
from ledger.errors import DatabaseUnavailable, LedgerError
from ledger.lifecycle import end_with_parent
from ledger.storage import is_in_memory, redact_text, unavailable_as_ledger_error

Lines = list[tuple[int, Line]]

# Starting a writer costs about a second; below this many lines one process is faster.
SHARDING_THRESHOLD = 5_000
# One database: one writer a core. Each save holds the events table's lock, so more
# writers than cores wait on one another and cost PostgreSQL more: on 2 cores, 4 writers
# appended the bench's feed 0.8x as fast as 2, at half again the CPU a record.
WRITERS = os.cpu_count() or 1
# Partitions lock apart, and a writer's batch waits on several shards' round trips: there
# two writers a core did best (in alternated runs on 2 cores, the bench's feed went in at
# 8,900-10,200 records/s with four writers, 9,200-9,800 with three, 8,100-9,100 with two).
PARTITIONED_WRITERS = min(4, 2 * WRITERS)
# Seconds a writer told to stop (SIGTERM) gets before it is killed.
STOP_GRACE = 2.0
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def append_feed(
    url: str,
    lines: Iterable[tuple[int, Line]],
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
    writers: int = WRITERS,
    patience: float = 0.0,
) -> AppendReport:
    """Append a feed of numbered NDJSON lines: in this process when it is short,
    else with `writers` processes, one per shard of citizens. Each writer waits up to
    `patience` seconds for a database that stopped answering. A line may come already
    decoded (a dict, as `decoded` gives it), and is not decoded again.
    """
    rest = iter(lines)
    head = list(islice(rest, SHARDING_THRESHOLD))
    if writers > 1 and len(head) == SHARDING_THRESHOLD and not is_in_memory(url):
        return append_sharded(url, chain(head, rest), writers, clock, progress, patience=patience)
    ledger = open_patiently(url, clock, patience)
    try:
        return ledger.append_lines(chain(head, rest), progress=progress)
    finally:
        ledger.close()


def decoded(line: Line) -> Line:
    """The line's JSON object, or the line itself when it is not one (its writer
    rejects it with the reason)."""
    if isinstance(line, Mapping):
        return line
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    return data if isinstance(data, dict) else line


def shard_of(line: Line, shards: int) -> int:
    """The shard of a line's citizen; a line without a readable citizen goes to 0."""
    data = decoded(line)
    citizen = data.get("citizen") if isinstance(data, Mapping) else None
    if not isinstance(citizen, str):
        return 0
    return zlib.crc32(citizen.upper().encode()) % shards


class Appender(Protocol):
    """What a writer process appends its batches through."""

    def append(self, target: Any, batch: Lines) -> AppendReport: ...

    def close(self) -> None: ...


class _Ledgers:
    """Ledgers by URL, each opened when a batch first names it."""

    def __init__(self, clock: Clock | None, patience: float) -> None:
        self.clock = clock
        self.patience = patience
        self._open: dict[str, Ledger] = {}

    def append(self, target: Any, batch: Lines) -> AppendReport:
        ledger = self._open.get(target)
        if ledger is None:
            ledger = self._open[target] = open_patiently(target, self.clock, self.patience)
        return ledger.append_lines(batch, len(batch))

    def close(self) -> None:
        for ledger in self._open.values():
            ledger.close()


def open_ledgers(url: str, clock: Clock | None, patience: float) -> Appender:
    """A writer's ledgers when its batches name the URL to append to."""
    return _Ledgers(clock, patience)


def _writer(
    url: str, clock: Clock | None, patience: float, parent: int, inbox: Any, outbox: Connection,
    opener: Callable[[str, Clock | None, float], Appender],
) -> None:  # fmt: skip
    """A writer's loop: batches as (where to append them, as `opener`'s appender takes
    it, and their lines)."""
    end_with_parent(parent)
    # Ctrl-C reaches the whole process group; the parent alone decides how writers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    try:
        with unavailable_as_ledger_error(url):
            appender = opener(url, clock, patience)
            try:
                while (item := inbox.get()) is not None:
                    target, batch = item
                    outbox.send(("report", len(batch), appender.append(target, batch)))
            finally:
                with suppress(Exception):
                    appender.close()  # an error to report is the one above
    except Exception as e:  # noqa: BLE001 - every failure must reach the parent
        outbox.send(("error", 0, _failure(e, url)))
        return
    outbox.send(("done", 0, None))


def _failure(error: Exception, url: str) -> tuple[bool, str]:
    """Whether the error is the database's absence, and its first line without the
    URL's password."""
    lines = str(error).strip().splitlines()
    message = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return isinstance(error, DatabaseUnavailable), redact_text(message, url)


class WorkerFailed(LedgerError):
    """A shard's writer failed or died; the append stopped, what was saved stays saved."""


class WorkerUnavailable(WorkerFailed, DatabaseUnavailable):
    """A shard's writer could not reach the database."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped an append; what the database acknowledged stays stored."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 plus the signal's number."""
        return 128 + self.signum

    def __str__(self) -> str:
        return (
            f"append stopped by {signal.Signals(self.signum).name}: the records the "
            "database acknowledged stay stored and the rest were not written; sending the "
            "same feed again is safe, as records already stored are recognised as duplicates"
        )


@contextmanager
def interruptible() -> Iterator[None]:
    """Within, SIGINT and SIGTERM raise Interrupted (in the main thread; elsewhere
    signals cannot be handled and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _: object) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, stop) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (the service appends from others)
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, so it is never cut short."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class Writers:
    """The writer processes of one append: fed batches, watched for reports, errors
    and deaths, and always ended with it. Each appends through what `opener` gives it
    (by default, ledgers by the URL each batch names)."""

    def __init__(
        self,
        url: str,
        clock: Clock | None,
        count: int,
        report: AppendReport,
        progress: Callable[[int], None] | None,
        patience: float = 0.0,
        opener: Callable[[str, Clock | None, float], Appender] = open_ledgers,
    ) -> None:
        context = get_context("spawn")
        self.report = report
        self.progress = progress
        self.inboxes: list[Any] = []
        self.outboxes: list[Connection] = []
        self.processes: list[Any] = []
        self.done: set[int] = set()
        # Started with the stop signals blocked and Ctrl-C ignored, both of which they
        # inherit: none dies of a Ctrl-C before it can ignore it, even while importing
        # (Python leaves an inherited ignored SIGINT ignored). Blocked here, a Ctrl-C
        # meanwhile waits for this process's own handler, restored before unblocking.
        try:
            with _signals_deferred(), _sigint_ignored():
                for _ in range(count):
                    inbox = context.Queue(maxsize=4)
                    receiver, sender = context.Pipe(duplex=False)
                    process = context.Process(
                        target=_writer,
                        args=(url, clock, patience, os.getpid(), inbox, sender, opener),
                        daemon=True,
                    )
                    self.inboxes.append(inbox)
                    self.outboxes.append(receiver)
                    self.processes.append(process)
                    process.start()
                    # The writer holds the only sending end: when it dies, reading ends.
                    sender.close()
        except BaseException:
            self.stop()
            raise

    def send(self, shard: int, batch: tuple[Any, Lines] | None) -> None:
        """Hand a batch (where to append it, and its lines; None: the end) to a shard's
        writer, taking what writers sent."""
        while True:
            self.take(0)
            try:
                self.inboxes[shard].put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Tell every writer the feed has ended and wait until each has saved its shard."""
        for shard in range(len(self.processes)):
            self.send(shard, None)
        while len(self.done) < len(self.processes):
            self.take(1)

    def take(self, timeout: float) -> None:
        """Take the writers' reports; a writer's error or death raises WorkerFailed."""
        running = [n for n in range(len(self.processes)) if n not in self.done]
        watched: dict[Any, int] = {self.outboxes[n]: n for n in running}
        watched.update({self.processes[n].sentinel: n for n in running})
        for shard in sorted({watched[ready] for ready in wait(list(watched), timeout)}):
            self._drain(shard)

    def _drain(self, shard: int) -> None:
        outbox = self.outboxes[shard]
        while shard not in self.done and outbox.poll():
            try:
                kind, size, payload = outbox.recv()
            except EOFError:
                break
            if kind == "error":
                unavailable, message = payload
                failed = WorkerUnavailable if unavailable else WorkerFailed
                raise failed(f"writer {shard + 1} failed: {message}")
            if kind == "done":
                self.done.add(shard)
            else:
                self.report.merge(payload)
                if self.progress is not None:
                    self.progress(size)
        code = self.processes[shard].exitcode
        if shard not in self.done and code is not None:
            raise WorkerFailed(f"writer {shard + 1} {_death(code)} before its shard was saved")

    def stop(self) -> None:
        """End every writer still running (SIGTERM, then SIGKILL) and let go of the
        queues without waiting on a reader that is gone."""
        with _signals_deferred():
            started = [p for p in self.processes if p.pid is not None]
            for n, process in enumerate(self.processes):
                if n not in self.done and process.pid is not None and process.exitcode is None:
                    process.terminate()
            deadline = time.monotonic() + STOP_GRACE
            for process in started:
                process.join(max(0.0, deadline - time.monotonic()))
            for process in started:
                if process.exitcode is None:
                    process.kill()
                    process.join(STOP_GRACE)
            for inbox in self.inboxes:
                inbox.cancel_join_thread()
                inbox.close()
            for outbox in self.outboxes:
                outbox.close()


def _death(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def append_sharded(
    url: str,
    lines: Iterable[tuple[int, Line]],
    workers: int,
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    patience: float = 0.0,
) -> AppendReport:
    """Append numbered NDJSON lines with `workers` writer processes, one per shard.

    When a writer fails or dies, or the append is interrupted, every writer is ended
    before the error is raised: none outlives the call.
    """
    report = AppendReport()
    writers = Writers(url, clock, workers, report, progress, patience)
    try:
        buffers: list[Lines] = [[] for _ in range(workers)]
        for number, line in lines:
            data = decoded(line)
            shard = shard_of(data, workers)
            buffers[shard].append((number, data))
            if len(buffers[shard]) >= batch_size:
                writers.send(shard, (url, buffers[shard]))
                buffers[shard] = []
        for shard, batch in enumerate(buffers):
            if batch:
                writers.send(shard, (url, batch))
        writers.finish()
    finally:
        writers.stop()
    report.sort()
    return report
