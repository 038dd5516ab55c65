"""Python's garbage collector during batch work (appends, projections).

Batch work makes many short-lived objects while it holds many long-lived ones (the
citizens a writer keeps, the views a catch-up keeps). Python collects the youngest
generation every 700 allocations by default, and with that much alive each
collection costs: it took a tenth of a one-process append and a third of a warm
catch-up. Reference counting still frees what it can at once; only cycles wait longer.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_COLLECTION = 100_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the youngest generation every YOUNG_COLLECTION allocations while any
    thread is inside; the thresholds as they were once the last one leaves."""
    global _depth, _saved  # noqa: PLW0603 - one setting for the whole process
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(YOUNG_COLLECTION, *_saved[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)


def set_aside() -> None:
    """Take every object alive now out of the collector's reach (gc.freeze), for a
    worker process whose kept objects (a catch-up's facts and views of its citizens)
    far outnumber what each step of its work makes: every older-generation collection
    would walk them all again. Reference counting still frees each when it is dropped;
    only garbage in a cycle would stay, and facts and views hold none."""
    gc.freeze()
