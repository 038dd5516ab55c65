"""A bounded load test of `ledger serve`: client processes append single records at
once, some giving up on their request as soon as it is sent; every record answered 2xx
is in the log once, at the position its answer named. A retry of a request whose
answer was lost is a duplicate naming the original position; a retry of one the
service never read (granian drops a request whose client left before it was handed
on) is appended then; either way the record is in the log once."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from multiprocessing import get_context
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.domain.identity import make_resident_id
from projections.store import ViewStore
from scripts.tokens import TokenStore
from tests.builders import append, enrolled, fine, register_authorities
from tests.clients import appender, given_up, post
from tests.served import Service

CLIENTS = 8
APPENDS = 20  # by each client, one at a time
DROPPED = 2  # by each client, first: sent whole, then the connection closed unread
CITIZENS = [make_resident_id("110105", date(1980, 1, 1) + timedelta(days=n), 100 + n)
            for n in range(16)]  # fmt: skip


def _record(number: int, k: int, prefix: str) -> dict[str, Any]:
    return fine(f"{prefix}-{number}-{k}", CITIZENS[(number * 7 + k) % len(CITIZENS)])


def _stored(url: str) -> dict[str, list[int]]:
    """The positions of each reference in the log."""
    ledger = Ledger(url)
    held: dict[str, list[int]] = {}
    after = 0
    try:
        while (page := ledger.reader.page(after, 1000)).end != after:
            for logged in page.records:
                held.setdefault(logged.record.reference, []).append(logged.position)
            after = page.end
    finally:
        ledger.close()
    return held


@pytest.mark.postgres
def test_every_record_answered_2xx_is_in_the_log_once_and_a_retry_names_it(
    postgres_schema_url: str,
) -> None:
    url = postgres_schema_url
    ledger = Ledger(url)
    register_authorities(ledger)
    append(ledger, *[enrolled(citizen) for citizen in CITIZENS])
    views = ViewStore(url)
    token = TokenStore(views).create("service", "traffic-police", None, ledger.clock.now())[0]
    views.close()
    ledger.close()
    service = Service(url)
    try:
        started = time.monotonic()
        with ProcessPoolExecutor(CLIENTS, mp_context=get_context("spawn")) as clients:
            runs = [clients.submit(appender, service.port, token,
                                   [_record(n, k, "GONE") for k in range(DROPPED)],
                                   [_record(n, k, "LOAD") for k in range(APPENDS)])
                    for n in range(CLIENTS)]  # fmt: skip
            answers = [answer for run in runs for answer in run.result(timeout=120)]
        loaded = time.monotonic() - started
        # A client gave up on its request once the record was in the log, its answer
        # lost; another gave up at once, and the service may never have read it.
        lost = _record(CLIENTS, 0, "LOST")
        given_up(service.port, token, lost, lambda: lost["reference"] in _stored(url))
        gone = [(n, k) for n in range(CLIENTS) for k in range(DROPPED)]
        retried = {f"GONE-{n}-{k}": post(service.port, token, _record(n, k, "GONE"))
                   for n, k in gone}  # fmt: skip
        retried[lost["reference"]] = post(service.port, token, lost)
    finally:
        service.stop()

    held = _stored(url)
    statuses = Counter(status for _, status, _ in answers if status)
    assert statuses == {201: CLIENTS * APPENDS}, statuses
    for reference, status, body in answers:
        if status:
            assert held[reference] == [body["positions"][0]["position"]], reference
    for reference, (status, body) in retried.items():
        assert len(held[reference]) == 1, reference
        named = {200: "duplicate_of", 201: "positions"}[status]
        assert body[named] == [{"line": 1, "position": held[reference][0]}], (reference, body)
    assert retried[lost["reference"]][0] == 200
    sent = {reference for reference, _, _ in answers}
    assert {r for r in held if r.startswith(("LOAD-", "GONE-"))} == sent
    assert loaded < 60, loaded
