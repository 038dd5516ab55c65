"""Feeds the score projections from the ledger's log, a page at a time.

Each policy is its own projection with its own tracking position, so a new policy
is built from position zero while the others stay current. The log is read through
its port (ledger.log) only. A rebuild reads it citizen by citizen, a catch-up page by
page, and both fold through the one fold (projections.fold): each citizen's facts are
folded once and scored under every policy that stands at the same position; the views
and the new positions are written in one transaction. Once there is enough to fold,
worker processes share it by citizen (projections.shares), and this process writes.
One projector writes at a time (projections.lock); a follower rides out database
outages by reconnecting and going on from its tracking positions.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial

import eventsourcing.persistence as es
import psycopg

from ledger.application import Ledger
from ledger.garbage import fewer_collections
from ledger.log import LogReader, Watch
from ledger.storage import UNREACHABLE, is_in_memory, redact_text
from projections.fold import folded, page_views, scored
from projections.known import KnownFacts
from projections.lock import LockLost, projector_lock
from projections.policy import Policy
from projections.shares import CatchUpFailed, CatchUpShares, RebuildFailed, RebuildShares
from projections.store import (
    CHUNK,
    EncodedViews,
    PageRows,
    PositionConflict,
    ViewStore,
    encode_views,
    page_rows,
)

PAGE = 1000
# Positions a page when workers share the catch-up. Longer stretches hold more records
# of each citizen they touch, so fewer views are written a record: with 20,000 a warm
# catch-up of the bench's log ran 15% faster than with 5,000, PostgreSQL doing a
# quarter less.
SHARED_PAGE = 20_000
# Below this many events to fold, a rebuild or a catch-up is quicker in one process
# than starting others.
PARALLEL_FROM = 20_000

__all__ = ["CatchUpFailed", "Projector", "RebuildFailed", "catch_up", "follow", "rebuild",
           "tracking_name"]  # fmt: skip


def tracking_name(policy: Policy) -> str:
    return f"scores:{policy.name}"


def catch_up(
    ledger: Ledger,
    store: ViewStore,
    policies: Sequence[Policy],
    page_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop_at: int | None = None,
    before_write: Callable[[], None] = lambda: None,
    workers: int | None = None,
    known: KnownFacts | None = None,
) -> dict[str, int]:
    """Bring every policy's projection up to the end of the log (or `stop_at`).

    `progress(records, citizens)` is told of each part done: a rebuild's records
    and citizens as each chunk of views is written, a catch-up's positions and
    citizens as each page is handed to be written.

    Policies at position zero are rebuilt in one pass first. Then each round gives every
    group of policies at the same position one page (`page_size` records, by default
    PAGE in one process and SHARED_PAGE positions shared), so a policy behind the
    others never holds them back. `before_write` is called before each write (a projector
    confirms its lock there). `workers`: processes sharing a rebuild or a catch-up (by
    default both cores once there are PARALLEL_FROM events to fold, and a catch-up
    shared before stays shared). `known` keeps the facts of the citizens written
    from one call to the next, and with `keep_shares` the processes sharing
    the catch-up (a follower passes one, and closes it when it stops).
    """
    owned = known is None
    known = known if known is not None else KnownFacts()
    log = ledger.reader
    try:
        positions = store.positions()
        fresh = [p for p in policies if positions.get(tracking_name(p), 0) == 0]
        head = log.head() if stop_at is None else min(stop_at, log.head())
        if fresh and head > 0:
            before_write()
            rebuild(log, store, fresh, head, workers=_workers(workers, head),
                    progress=progress)  # fmt: skip
        positions = store.positions()
        starts = {positions.get(tracking_name(p), 0) for p in policies}
        run = _Run(log, store, policies, progress, stop_at, before_write, known)
        with fewer_collections():
            # Policies at different positions (one being built anew) go round by round
            # in this process, until they stand together.
            shares = None if len(starts) > 1 else _sharing(run, head - min(starts), workers)
            if shares is not None:
                _shared_pages(run, shares, starts.pop(), page_size or SHARED_PAGE)
            else:
                with _PageWriter(store) as writer:
                    _pages(run, writer, positions, page_size or PAGE)
    finally:
        if owned or not known.keep_shares:
            known.close()
    positions = store.positions()
    return {p.name: positions.get(tracking_name(p), 0) for p in policies}


@dataclass(frozen=True, slots=True)
class _Run:
    """What every page of one `catch_up` shares."""

    log: LogReader
    store: ViewStore
    policies: Sequence[Policy]
    progress: Callable[[int, int], None] | None
    stop_at: int | None
    before_write: Callable[[], None]
    known: KnownFacts

    def head(self) -> int:
        head = self.log.head()
        return head if self.stop_at is None else min(self.stop_at, head)


def _sharing(run: _Run, behind: int, workers: int | None) -> CatchUpShares | None:
    """The processes to share this catch-up, `behind` positions from the head: those
    kept in `known` when they fold the same policies, else new ones when asked for or
    worth starting; None for one process."""
    known, current = run.known, run.known.shares
    if (
        isinstance(current, CatchUpShares)
        and current.policies == [p.name for p in run.policies]
        and workers in (None, len(current.pipes))
    ):
        return current
    if workers is None:
        workers = _workers(None, behind)
    if workers <= 1 or is_in_memory(run.log.url):
        return None
    known.close()
    # What one process kept stands for nothing once others have moved the positions.
    known.clear()
    known.shares = shares = CatchUpShares(run.log.url, run.policies, workers, run.store.postgres)
    return shares


def _shared_pages(run: _Run, shares: CatchUpShares, start: int, page_size: int) -> None:
    """The incremental part of `catch_up` for policies at one position, by stretches
    of `page_size` positions that every worker folds its share of: this process writes
    the rows of a stretch as the workers make them, in one transaction with the
    positions, and the workers start on the next stretch as its last rows are written.
    A failure ends the workers (what they kept goes with them)."""
    projections = [(tracking_name(p), p.name) for p in run.policies]
    stretches = _Stretches(run, shares, page_size)
    try:
        stretches.ask(start)
        while (done := stretches.asked) is not None:
            run.before_write()
            run.store.save_row_chunks(projections, done[1], stretches.rows())
            if run.progress is not None:
                run.progress(done[1] - done[0], stretches.citizens)
    except BaseException:
        run.known.close()
        raise


class _Stretches:
    """The stretches a shared catch-up asks its workers for, one after another, and
    the rows they make of each."""

    def __init__(self, run: _Run, shares: CatchUpShares, page_size: int) -> None:
        self.run, self.shares, self.page_size = run, shares, page_size
        self.asked: tuple[int, int] | None = None
        self.citizens = 0

    def ask(self, after: int) -> None:
        """Have the workers fold the stretch after `after`, if the log goes on; `asked`
        is that stretch, or None."""
        head = self.run.head()
        if head <= after:
            self.asked = None
            return
        # A short stretch left over touches nearly as many citizens as a whole one,
        # each written once more, for a fraction of the events: taken with this one.
        end = after + self.page_size
        self.asked = (after, head if head - end < self.page_size // 2 else end)
        self.shares.ask(*self.asked)

    def rows(self) -> Iterator[PageRows]:
        """The rows the workers make of the stretch asked, as they come, their citizens
        counted in `citizens`. Once every worker is done with it, the next stretch is
        asked for, so they start on it while its last rows are written."""
        assert self.asked is not None
        end = self.asked[1]
        self.citizens = 0
        for rows in self.shares.rows():
            self.citizens += rows.citizens
            yield rows
        self.ask(end)


def _pages(run: _Run, writer: _PageWriter, positions: dict[str, int], page_size: int) -> None:
    """The incremental part of `catch_up`, page by page from `positions`."""
    log, known = run.log, run.known
    while True:
        groups: dict[int, list[Policy]] = {}
        for policy in run.policies:
            groups.setdefault(positions.get(tracking_name(policy), 0), []).append(policy)
        moved = written = 0
        for start, group in sorted(groups.items()):
            page = log.fact_page(start, page_size, run.stop_at)
            if page.end == start:
                continue
            # Policies at one position hold the same facts: fold them once, and write
            # every policy's views of the page in one transaction.
            names = [p.name for p in group]
            made = list(page_views(log, known, group, start, page))
            rows = page_rows(made, names, page.end, run.store.postgres)
            run.before_write()
            writer.write([(tracking_name(p), p.name) for p in group], page.end, rows)
            # Kept as written before the write is done: if it fails, the catch-up ends
            # with its error and the store's positions no longer match what is kept.
            known.written(names, page.end, folded(made))
            positions.update((tracking_name(p), page.end) for p in group)
            written = max(written, rows.citizens)
            moved = max(moved, page.end - start)
        if not moved:
            break
        if run.progress is not None:
            run.progress(moved, written)


class _PageWriter:
    """Writes a catch-up's pages in order, on PostgreSQL on a thread of its own, so the
    next page is read, folded and scored while the database takes the last one.
    SQLite has one writer a database: there the pages are written as they come."""

    def __init__(self, store: ViewStore) -> None:
        self._store = store
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="views-writer") if store.postgres else None
        )
        self._pending: Future[None] | None = None

    def write(self, projections: Sequence[tuple[str, str]], position: int, rows: PageRows) -> None:
        """Hand a page's rows over once the one before it is written (its error is raised
        here)."""
        self.wait()
        save = partial(self._store.save_rows, projections, position, rows)
        if self._thread is None:
            save()
        else:
            self._pending = self._thread.submit(save)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> _PageWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self.wait()
            else:
                # Already failing: let the page in flight end, and keep the first error.
                with suppress(Exception):
                    self.wait()
        finally:
            if self._thread is not None:
                self._thread.shutdown()


def rebuild(
    log: LogReader,
    store: ViewStore,
    policies: Sequence[Policy],
    head: int,
    partition: tuple[int, int] | None = None,
    workers: int = 1,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Build projections from position zero up to `head` in one pass over the log, one
    citizen at a time; their views and positions are written in one transaction, so a
    failure anywhere (a worker killed included) leaves the old views and positions.

    `partition` (k, n) limits the pass to the citizens ledger.log puts in share k of n.
    With `workers` > 1 each of that many processes reads, folds, scores and encodes
    one share, and this process is the one writer of them all (SQLite has one writer
    anyway; on PostgreSQL the shares arrive as COPY text, so writing them is cheap)."""
    projections = [(tracking_name(p), p.name) for p in policies]
    if workers <= 1 or partition is not None:
        views = scored(log.facts_by_citizen(head, partition), policies)
        encoded = encode_views(views, [p.name for p in policies], store.postgres, chunk)
        store.replace_all_encoded(projections, head, _told(encoded, progress))
        return
    with RebuildShares(log.url, policies, head, workers, store.postgres, chunk) as shares:
        store.replace_all_encoded(projections, head, _told(shares.chunks(), progress))


def _told(
    chunks: Iterable[EncodedViews], progress: Callable[[int, int], None] | None
) -> Iterator[EncodedViews]:
    """The chunks, each reported to `progress` once it is handed on to be written."""
    for chunk in chunks:
        yield chunk
        if progress is not None:
            progress(chunk.records, chunk.citizens)


def _workers(asked: int | None, head: int) -> int:
    if asked is not None:
        return max(1, asked)
    return min(2, os.cpu_count() or 1) if head >= PARALLEL_FROM else 1


def follow(
    ledger: Ledger,
    store: ViewStore,
    policies: Sequence[Policy],
    interval: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Keep catching up until told to stop, with no lock and no recovery (for tests and
    embedding; `Projector` is the one for production).

    On PostgreSQL it wakes on the ledger's NOTIFY, and polls every `interval`
    seconds anyway, so a lost notification delays it by one interval at most.
    """
    known = KnownFacts(keep_shares=True)
    try:
        with ledger.reader.watch(interval) as watch:
            while not should_stop():
                reached = catch_up(ledger, store, policies, known=known)
                watch.wait(min(reached.values(), default=0), interval)
    finally:
        known.close()


# What a lost connection or a database restart raises: worth waiting out, not dying of.
TRANSIENT = UNREACHABLE
# What writing a position another writer already passed raises.
OVERTAKEN: tuple[type[BaseException], ...] = (
    PositionConflict,
    psycopg.IntegrityError,
    sqlite3.IntegrityError,
    es.IntegrityError,
)

FIRST_BACKOFF = 0.2
LAST_BACKOFF = 2.0


class Projector:
    """Keeps every policy's projection of the ledger at `url` at the end of its log, as
    the one writer, through database outages and lost locks, until told to stop.
    `workers`: processes sharing its rebuilds and catch-ups, as `catch_up` takes them."""

    def __init__(
        self,
        url: str,
        policies: Sequence[Policy],
        interval: float = 1.0,
        log: Callable[[str], None] = lambda _: None,
        open_ledger: Callable[[str], Ledger] = Ledger,
        workers: int | None = None,
    ) -> None:
        self.url = url
        self.policies = policies
        self.workers = workers
        self.lock = projector_lock(url)
        self.interval = interval
        self.log = log
        self.open_ledger = open_ledger
        self.positions: dict[str, int] = {}
        self._ledger: Ledger | None = None
        self._store: ViewStore | None = None
        self._watch: Watch | None = None
        self._standby = False
        self._down_since: float | None = None
        self._known = KnownFacts(keep_shares=True)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
        """Follow the log; returns the positions last written."""
        backoff = FIRST_BACKOFF
        try:
            while not should_stop():
                try:
                    self._round()
                    backoff = FIRST_BACKOFF
                except LockLost as e:
                    self.log(f"{e}; taking it again before writing")
                except OVERTAKEN as e:
                    self.log(f"another writer moved the projections ({self._describe(e)}); "
                             "reading the positions again")  # fmt: skip
                    time.sleep(self.interval)
                except TRANSIENT as e:
                    if self._down_since is None:
                        self._down_since = time.monotonic()
                        self.log(f"the database does not answer ({self._describe(e)}); "
                                 "retrying until it does")  # fmt: skip
                    self._disconnect()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, LAST_BACKOFF)
        finally:
            self._known.close()
            self._disconnect()
            self.lock.close()
            if self._ledger is not None:
                with suppress(*TRANSIENT):
                    self._ledger.close()
        return self.positions

    def _round(self) -> None:
        """One catch-up and wait as the holder, or one wait as the standby."""
        if not self.lock.try_acquire():
            if not self._standby:
                self._standby = True
                self.log("another projector is running; waiting as its standby")
            self._recovered()
            time.sleep(self.interval)
            return
        if self._standby:
            self._standby = False
            self.log("the other projector stopped; taking over")
        if self._ledger is None:
            # Kept through outages: its pool checks connections and replaces dead ones.
            self._ledger = self.open_ledger(self.url)
        if self._store is None:
            self._store = ViewStore(self.url)
        if self._watch is None:
            self._watch = self._ledger.reader.watch(self.interval)
        self.positions = catch_up(
            self._ledger,
            self._store,
            self.policies,
            before_write=self.lock.check,
            workers=self.workers,
            known=self._known,
        )
        self._recovered()
        self._watch.wait(min(self.positions.values(), default=0), self.interval)

    def _recovered(self) -> None:
        if self._down_since is not None:
            gone = time.monotonic() - self._down_since
            self._down_since = None
            at = f" from position {min(self.positions.values())}" if self.positions else ""
            self.log(f"the database answers again after {gone:.1f}s; going on{at}")

    def _disconnect(self) -> None:
        store, self._store = self._store, None
        watch, self._watch = self._watch, None
        for closing in (store, watch):
            if closing is not None:
                with suppress(*TRANSIENT):
                    closing.close()

    def _describe(self, error: BaseException) -> str:
        lines = str(error).strip().splitlines()
        return redact_text(f"{type(error).__name__}: {lines[0] if lines else ''}", self.url)
