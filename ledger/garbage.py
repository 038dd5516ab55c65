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
