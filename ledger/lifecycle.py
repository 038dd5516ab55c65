"""How a child process of the ledger ends: with its parent, never left behind.

A writer or runner whose parent was killed (kill -9, a crashed supervisor) would
otherwise go on holding database connections and writing with nobody to report to.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.process import BaseProcess

PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux), and
    check from a thread elsewhere; `parent` is the pid the caller was started by."""
    expected = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != expected:
        # The parent died before the request above was made.
        os._exit(1)
    threading.Thread(target=_watch, args=(expected,), name="parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def start_forked(process: BaseProcess) -> None:
    """Start a process made from multiprocessing's fork context: it begins with what
    this one has imported, not with a fresh interpreter's imports (a third of a second).
    Objects are frozen out of the collector around the fork, so the child never
    finalises this process's connections (closing a copy of a socket would end this
    one's session)."""
    gc.freeze()
    try:
        process.start()
    finally:
        gc.unfreeze()


def as_forked_child(parent: int) -> None:
    """A forked child's first step: end with `parent`, and take Ctrl-C and SIGTERM as a
    fresh interpreter does, not with the handlers the parent's command installed."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    end_with_parent(parent)


FORK = multiprocessing.get_context("fork")
