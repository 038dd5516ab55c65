"""Worker processes that share the read side's work by citizen, one share each of the
citizens `ledger.log.partition_of` spreads over them, so that no two fold the same
citizen and every core folds.

A rebuild's workers each read, fold, score and encode their share of the whole log once
and end. A catch-up's workers stay for as long as whoever keeps them (a follower, or
one `catch_up`): each is asked for the rows of its share of a page, and keeps the
facts of its citizens from one page to the next, as `KnownFacts` does in one process.
Every worker is forked from this process and ends with it; this process is the one
writer. A worker that fails or dies fails the work it shares: a rebuild writes
nothing, a catch-up nothing after the last stretch it wrote.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import islice
from multiprocessing.connection import Connection, wait
from typing import Any

from ledger.application import Ledger
from ledger.errors import DatabaseUnavailable, LedgerError
from ledger.garbage import set_aside
from ledger.lifecycle import FORK, as_forked_child, start_forked
from ledger.storage import UNREACHABLE, redact_text
from projections.fold import folded, page_views, scored
from projections.known import KnownFacts
from projections.policy import Policy
from projections.store import CHUNK, EncodedViews, PageRows, encode_views, page_rows

# A worker only reads the log, whose tables the process that started it has made: a
# small pool, and no statements to make them (a third of a worker's start).
WORKER_ENV = {"POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "2", "CREATE_TABLE": "n"}


class RebuildFailed(LedgerError):
    """A process sharing a rebuild failed or died; nothing of the rebuild was written."""

    field = "rebuild"


class CatchUpFailed(LedgerError):
    """A process sharing a catch-up failed or died; the page it shared was not written."""

    field = "projection"


class _Workers:
    """Forked processes, one per share, each with a pipe both ways to this process."""

    failed: type[LedgerError] = LedgerError
    what = "work"
    # What a failure leaves, as the error says it.
    left = ""

    def __init__(self, workers: int, target: Any, args: tuple[Any, ...]) -> None:
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        try:
            for k in range(workers):
                mine, theirs = FORK.Pipe()
                process = FORK.Process(
                    target=_forked, name=f"{self.what}-{k}of{workers}", daemon=True,
                    args=(list(self.pipes), target, *args, (k, workers), theirs, os.getpid()),
                )  # fmt: skip
                start_forked(process)
                # Only the child holds its end (the next child is forked after this is
                # closed): its death is an end of file here.
                theirs.close()
                self.processes.append(process)
                self.pipes.append(mine)
            # Every share has opened its connection before the writer takes its lock
            # (on SQLite a share opening the ledger would otherwise wait on the writer).
            for k in range(workers):
                self.expect(k, "ready")
        except BaseException:
            self.close()
            raise

    def expect(self, k: int, expected: str) -> Any:
        kind, value = self.receive(k)
        if kind != expected:
            raise self.failed(f"share {k} sent {kind!r}, not {expected!r}")
        return value

    def receive(self, k: int) -> tuple[str, Any]:
        try:
            kind, value = self.pipes[k].recv()
        except (EOFError, OSError):
            process = self.processes[k]
            process.join(5)
            raise self.failed(
                f"the process of share {k} of {len(self.processes)} in the {self.what} "
                f"died (exit code {process.exitcode}); {self.left}"
            ) from None
        if kind == "unreachable":
            raise DatabaseUnavailable(value)
        if kind == "error":
            raise self.failed(f"share {k} of {len(self.processes)} failed: {value}; {self.left}")
        return str(kind), value

    def gathered(self, item: str, end: str) -> Iterator[Any]:
        """What every share sends as `item`, as it comes, until each has sent `end`."""
        waiting = dict(zip(self.pipes, range(len(self.pipes)), strict=True))
        while waiting:
            for pipe in wait(list(waiting)):
                assert isinstance(pipe, Connection)
                kind, value = self.receive(waiting[pipe])
                if kind == end:
                    del waiting[pipe]
                elif kind == item:
                    yield value
                else:
                    raise self.failed(f"share {waiting[pipe]} sent {kind!r}")

    def close(self) -> None:
        for pipe in self.pipes:
            with suppress(OSError):
                pipe.send(("stop", None))
            pipe.close()
        for process in self.processes:
            process.join(1 if process.exitcode is None else 0)
            if process.is_alive():
                process.kill()
                process.join()
        self.pipes, self.processes = [], []


def _forked(others: list[Connection], target: Any, *args: Any) -> None:
    """A worker's start: without the ends of the other workers' pipes it was forked
    with, so that each of them sees this process's end of the pipe close as it ends."""
    for pipe in others:
        pipe.close()
    target(*args)


class RebuildShares(_Workers):
    """A rebuild's workers, each reading, folding, scoring and encoding one share of
    the citizens up to `head`, sending chunks back as they are made."""

    failed = RebuildFailed
    what = "rebuild"
    left = "the old views stay"

    def __init__(
        self, url: str, policies: Sequence[Policy], head: int, workers: int, postgres: bool,
        chunk: int,
    ) -> None:  # fmt: skip
        super().__init__(workers, _rebuild_share, (url, list(policies), head, postgres, chunk))

    def chunks(self) -> Iterator[EncodedViews]:
        """Every share's chunks as they come; RebuildFailed if a share fails or dies."""
        return self.gathered("chunk", "done")

    def __enter__(self) -> RebuildShares:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _rebuild_share(
    url: str,
    policies: list[Policy],
    head: int,
    postgres: bool,
    chunk: int,
    share: tuple[int, int],
    pipe: Connection,
    parent: int,
) -> None:
    with _opened(url, pipe, parent) as ledger:
        views = scored(ledger.reader.facts_by_citizen(head, share), policies)
        for encoded in encode_views(views, [p.name for p in policies], postgres, chunk):
            pipe.send(("chunk", encoded))
        pipe.send(("done", None))


class CatchUpShares(_Workers):
    """A catch-up's workers for a group of policies, each keeping its share's citizens.

    `ask` hands every worker the same stretch of the log, and `rows` gives the rows they
    make of it, a chunk of citizens at a time as each is folded, so that this process
    writes while the workers fold. A worker asked for the stretch after the one it made
    last keeps the facts it folded of that one as known: they are what the views were
    made of at that position, written by whoever wrote that position (`KnownFacts`).
    """

    failed = CatchUpFailed
    what = "catch-up"
    left = "the views stay as the last stretch written left them"

    def __init__(self, url: str, policies: Sequence[Policy], workers: int, postgres: bool) -> None:
        self.policies = [p.name for p in policies]
        super().__init__(workers, _catch_up_share, (url, list(policies), postgres))

    def ask(self, start: int, end: int) -> None:
        """Have every worker fold its share of the positions (start, end]."""
        for pipe in self.pipes:
            pipe.send(("page", start, end))

    def rows(self) -> Iterator[PageRows]:
        """The rows every worker makes of the stretch last asked for, as they come."""
        return self.gathered("rows", "made")


def _catch_up_share(
    url: str,
    policies: list[Policy],
    postgres: bool,
    share: tuple[int, int],
    pipe: Connection,
    parent: int,
) -> None:
    with _opened(url, pipe, parent) as ledger:
        log = ledger.reader
        known = KnownFacts()
        names = [p.name for p in policies]
        made: tuple[int, list[Any]] | None = None
        while True:
            try:
                kind, *stretch = pipe.recv()
            except EOFError:
                return
            if kind == "stop":
                return
            start, end = stretch
            if made is not None and made[0] == start:
                known.written(names, start, made[1])
            page = log.fact_page(start, end - start, end, share)
            items = page_views(log, known, policies, start, page)
            facts: list[Any] = []
            while part := list(islice(items, CHUNK)):
                facts += folded(part)
                pipe.send(("rows", page_rows(part, names, end, postgres)))
            pipe.send(("made", None))
            made = (end, facts)
            set_aside()


@contextmanager
def _opened(url: str, pipe: Connection, parent: int) -> Iterator[Ledger]:
    """A worker's ledger, open once the worker has said it is ready, closed as it ends.
    The worker ends with `parent`, and its failure is sent there before it ends: an
    unreachable database as such, anything else as its type and message, without the
    URL's password."""
    as_forked_child(parent)
    try:
        ledger = Ledger(url, env=WORKER_ENV)
        try:
            pipe.send(("ready", None))
            yield ledger
        finally:
            ledger.close()
    except BaseException as e:  # noqa: BLE001 - any failure is reported, then this ends
        kind = "unreachable" if isinstance(e, UNREACHABLE) else "error"
        with suppress(OSError):
            pipe.send((kind, redact_text(f"{type(e).__name__}: {e}", url)))
        raise SystemExit(1) from None
