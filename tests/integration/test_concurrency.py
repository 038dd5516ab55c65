"""Two writer processes appending to the same citizen at once lose nothing and repeat nothing."""

from __future__ import annotations

import json
import multiprocessing
from typing import Any

from ledger.application import Ledger
from tests.builders import WANG_FANG, enrolled, fine, register_authorities

SHARED = [fine(f"S-{n}", amount=f"{n}.00") for n in range(1, 16)]


def _writer(url: str, name: str, start: Any, queue: Any) -> None:
    own = [fine(f"{name}-{n}", amount=f"{n}.50") for n in range(1, 41)]
    feed = [record for pair in zip(own, SHARED + SHARED, strict=False) for record in pair]
    feed += own[len(SHARED) * 2 :]
    ledger = Ledger(url)
    start.wait()
    appended = duplicates = retries = 0
    for i in range(0, len(feed), 3):
        lines = [(n, json.dumps(r)) for n, r in enumerate(feed[i : i + 3], start=i + 1)]
        report = ledger.append_lines(lines)
        assert report.rejected == [], report.rejected
        appended += report.appended
        duplicates += len(report.duplicates)
        retries += report.retries
    ledger.close()
    queue.put((name, appended, duplicates, retries))


def test_two_processes_appending_to_one_citizen_both_succeed(ledger: Ledger, store_url: str):
    register_authorities(ledger)
    assert ledger.append_lines([(1, json.dumps(enrolled()))]).appended == 1
    context = multiprocessing.get_context("spawn")
    start, queue = context.Barrier(2), context.Queue()
    writers = [
        context.Process(target=_writer, args=(store_url, name, start, queue)) for name in ("A", "B")
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    results = sorted(queue.get(timeout=5) for _ in writers)

    history = ledger.history(WANG_FANG)
    references = [entry.record.reference for entry in history]
    expected = {f"{w}-{n}" for w in "AB" for n in range(1, 41)} | {f"S-{n}" for n in range(1, 16)}
    assert sorted(references[1:]) == sorted(expected)
    assert len(references) == len(set(references))
    assert [entry.version for entry in history] == list(range(1, len(history) + 1))
    assert sum(appended for _, appended, _, _ in results) == len(expected)
    # Each shared record went in once; every other sending of it was a duplicate.
    assert sum(duplicates for _, _, duplicates, _ in results) == 4 * len(SHARED) - len(SHARED)
