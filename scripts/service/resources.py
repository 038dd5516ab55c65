"""What the service holds open: the ledger, its views, the token store and the group
commit, opened in the background and again after the database was lost; and the
readiness probe, which never waits on a database that hangs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, NamedTuple, TypeVar

from ledger.application import Ledger
from ledger.errors import DatabaseUnavailable
from ledger.partitioned import PartitionedLedger, is_partitioned
from ledger.storage import redact_text
from projections.queries import Scores
from projections.store import ViewStore
from scripts.group_commit import GroupCommit, RoutedCommits
from scripts.tokens import TokenStore

T = TypeVar("T")

# How long a request waits for the ledger to be opened, and /readyz for its probe.
OPEN_WAIT = 2.0
READY_OPEN_WAIT = 0.5
READY_WAIT = 1.2
MAX_PROBES = 4
log = logging.getLogger("ledger.service")


def _in_background(work: Callable[[], T], name: str) -> Future[T]:
    """Run `work` on a daemon thread: a caller may stop waiting for it, and a hung
    database call then keeps no one waiting, not even the interpreter's exit."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits
            future.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class CitizenParts(NamedTuple):
    """What a request about one citizen reads: the ledger of their log and its views."""

    ledger: Ledger
    scores: Scores


class Partitions:
    """A partitioned ledger's partitions, each with its views, opened as first asked."""

    def __init__(self, routed: PartitionedLedger) -> None:
        self.routed = routed
        self._lock = threading.Lock()
        self._open: dict[int, CitizenParts] = {}

    def of(self, citizen: str) -> CitizenParts:
        """The parts of the citizen's partition; InvalidRecord for a bad identity number."""
        return self.number(self.routed.partition_of_resident(citizen))

    def number(self, partition: int) -> CitizenParts:
        with self._lock:
            found = self._open.get(partition)
            if found is None:
                ledger = self.routed.partition(partition)
                found = self._open[partition] = CitizenParts(
                    ledger, Scores(ledger, ViewStore(ledger.url))
                )
            return found

    def every(self) -> list[CitizenParts]:
        return [self.number(n) for n in range(self.routed.partitions)]

    def relocated(self, wait: float) -> list[int]:
        """The partitions the shard map moved since they were opened here (waiting up to
        `wait` seconds for the map to show one), closed, to be opened at their new place
        by the next request that needs them."""
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                moved = self.routed.relocated()
                stale = [self._open.pop(n) for n in moved if n in self._open]
            for parts in stale:
                parts.scores.store.close()
            if moved or time.monotonic() > deadline:
                return moved
            time.sleep(0.2)

    def close(self) -> None:
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for parts in opened:
            parts.scores.store.close()
        self.routed.close_partitions()


class Parts(NamedTuple):
    """What the service holds open. On a partitioned ledger, `ledger`, `views` and
    `scores` are the catalog's (its registries and tokens), and what is about a
    citizen is read from their partition (`of`)."""

    ledger: Ledger
    views: ViewStore
    scores: Scores
    tokens: TokenStore
    group_commit: GroupCommit | RoutedCommits
    partitions: Partitions | None = None

    def of(self, citizen: str) -> CitizenParts:
        if self.partitions is None:
            return CitizenParts(self.ledger, self.scores)
        return self.partitions.of(citizen)

    def every(self) -> list[CitizenParts]:
        """Each log's parts: the one ledger's, or every partition's."""
        if self.partitions is None:
            return [CitizenParts(self.ledger, self.scores)]
        return self.partitions.every()

    def close(self) -> None:
        self.group_commit.close()
        if self.partitions is not None:
            self.partitions.close()
        self.tokens.close()
        self.views.close()
        self.ledger.close()


class Opener:
    """Opens the ledger and its views once, in the background, and again after a
    failure; a request waits for that at most OPEN_WAIT seconds."""

    def __init__(self, url: str, clock: Any) -> None:
        self.url, self.clock = url, clock
        self._lock = threading.Lock()
        self._opening: Future[Parts] | None = None
        self._opened: Parts | None = None
        self._closed = False

    def get(self, wait: float = OPEN_WAIT) -> Parts:
        """The opened parts; DatabaseUnavailable if they cannot be had within `wait`."""
        opened = self._opened
        if opened is not None:
            return opened  # once open, every request takes it without a lock
        with self._lock:
            if self._closed:
                raise DatabaseUnavailable("the service is stopping")
            failed = self._opening is not None and self._opening.done() and (
                self._opening.exception() is not None)  # fmt: skip
            if self._opening is None or failed:
                self._opening = _in_background(self._open, "ledger-open")
            opening = self._opening
        try:
            parts = opening.result(timeout=wait)
        except FutureTimeout:
            raise DatabaseUnavailable("the database does not answer now") from None
        except DatabaseUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - whatever stopped it, the answer is 503
            log.warning(json.dumps({"event": "open_failed", "error": type(e).__name__,
                                    "detail": redact_text(str(e), self.url)}))  # fmt: skip
            raise DatabaseUnavailable("the database cannot be opened now") from None
        with self._lock:
            if not self._closed:
                self._opened = parts
        return parts

    def _open(self) -> Parts:
        ledger = Ledger(self.url, clock=self.clock)
        views: ViewStore | None = None
        try:
            views = ViewStore(self.url)
            tokens = TokenStore(views, remember=True)
            routed = PartitionedLedger(ledger, self.clock) if is_partitioned(ledger) else None
        except BaseException:
            if views is not None:
                views.close()
            ledger.close()
            raise
        scores = Scores(ledger, views)
        if routed is None:
            return Parts(ledger, views, scores, tokens, GroupCommit(ledger))
        return Parts(ledger, views, scores, tokens, RoutedCommits(routed), Partitions(routed))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._opened = None
            opening = self._opening
        if opening is not None and opening.done() and opening.exception() is None:
            opening.result().close()


class Probe:
    """/readyz's look at the database, waited for READY_WAIT seconds at most, so that
    a database that hangs cannot hold readiness checks. A look still running is
    shared for a while; a few at most run at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: list[tuple[float, Future[dict[str, int]]]] = []

    def lag(self, parts: Parts) -> dict[str, int]:
        def look() -> dict[str, int]:
            head, positions = parts.views.head_and_positions(parts.ledger.reader.head_query())
            return {p.name: head - positions.get(f"scores:{p.name}", 0)
                    for p in parts.scores.all_policies()}  # fmt: skip

        now = time.monotonic()
        with self._lock:
            self._running = [(t, f) for t, f in self._running if not f.done()]
            fresh = [f for t, f in self._running if now - t < READY_WAIT]
            if fresh or len(self._running) >= MAX_PROBES:
                running = fresh[-1] if fresh else self._running[-1][1]
            else:
                running = _in_background(look, "readyz")
                self._running.append((now, running))
        return running.result(timeout=READY_WAIT)
