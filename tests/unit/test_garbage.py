"""Batch work collects the youngest generation less often, and leaves the collector's
thresholds as they were: nested, and from several threads at once."""

from __future__ import annotations

import gc
import threading

from ledger.garbage import YOUNG_COLLECTION, fewer_collections


def test_thresholds_are_raised_inside_and_restored_after_nesting() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == (YOUNG_COLLECTION, *before[1:])
        with fewer_collections():
            assert gc.get_threshold()[0] == YOUNG_COLLECTION
        assert gc.get_threshold()[0] == YOUNG_COLLECTION
    assert gc.get_threshold() == before


def test_threads_leaving_in_any_order_restore_the_thresholds_once_all_are_out() -> None:
    before = gc.get_threshold()
    inside, leave_first = threading.Barrier(3), threading.Event()
    seen: list[int] = []

    def work(first: bool) -> None:
        with fewer_collections():
            inside.wait()
            if not first:
                leave_first.wait()
                seen.append(gc.get_threshold()[0])  # the other one has left by now
        if first:
            leave_first.set()

    threads = [threading.Thread(target=work, args=(first,)) for first in (True, False)]
    for thread in threads:
        thread.start()
    inside.wait()
    for thread in threads:
        thread.join()
    assert seen == [YOUNG_COLLECTION]
    assert gc.get_threshold() == before
