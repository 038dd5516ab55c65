"""Writers in separate processes on the same citizens: no valid record refused, none
written twice, whatever the order in which the processes get there."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ledger.application import Ledger
from projections.store import ViewStore
from scripts.demo import DEMO_AUTHORITIES, Population
from scripts.tokens import TokenStore
from tests.builders import WANG_FANG, append, enrolled, fine, record, register_authorities, target
from tests.proxy import Proxy, free_port, through

UNTIL = date(2025, 12, 31)


def _ledger_append(url: str, feed: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "append", str(feed), "--db", url, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _interleaved(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The same records in another order that keeps each citizen's own order."""
    queues: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in records:
        queues[item["citizen"]].append(item)
    rng = random.Random(seed)
    pending = [list(reversed(q)) for q in queues.values()]
    out: list[dict[str, Any]] = []
    while pending:
        i = rng.randrange(len(pending))
        out.append(pending[i].pop())
        if not pending[i]:
            pending[i] = pending[-1]
            pending.pop()
    return out


def test_a_record_acting_on_one_written_by_another_process_is_accepted(
    ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    register_authorities(ledger)
    assert append(ledger, enrolled()).appended == 1  # this ledger now holds the citizen
    other = _ledger_append(store_url, _write(tmp_path / "fine.ndjson", [fine("TP-9")]))
    assert other.wait(timeout=60) == 0, other.stderr.read() if other.stderr else ""

    settled = record("infraction.settled", "TP-9S", target=target("traffic-police", "TP-9"),
                     amount="200.00", occurred_on="2025-02-01")  # fmt: skip
    report = append(ledger, settled)

    assert report.rejected == []
    assert report.appended == 1
    assert [e.record.reference for e in ledger.history(WANG_FANG)][-2:] == ["TP-9", "TP-9S"]


def test_an_authority_registered_by_another_process_is_honoured_by_the_next_batch(
    ledger: Ledger, store_url: str
) -> None:
    """The registry rides along with the citizens' query: what another process
    registered since this writer last read it counts in the very next batch."""
    register_authorities(ledger)
    assert append(ledger, enrolled()).appended == 1  # this ledger now holds the registry
    refused = append(ledger, record("payment.recorded", "CB-1", authority="city-bank",
                                    kind="loan_repaid_on_time", amount="50.00"))  # fmt: skip
    assert [r.field for r in refused.rejected] == ["authority"]

    other = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "authority", "add", "city-bank", "--name",
         "City Bank", "--may-issue", "payment.recorded", "--db", store_url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    report = append(ledger, record("payment.recorded", "CB-1", authority="city-bank",
                                   kind="loan_repaid_on_time", amount="50.00"))  # fmt: skip

    assert report.rejected == []
    assert report.appended == 1
    assert [a.authority_id for a in ledger.authorities()][-1] == "city-bank"


def test_a_refusal_decided_before_another_process_wrote_is_decided_again(
    ledger: Ledger, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_authorities(ledger)
    feed = _write(tmp_path / "enrol.ndjson", [enrolled()])
    lookup = ledger.store.lookup
    calls = 0

    def lookup_while_another_process_enrols(keys: Any) -> Any:
        # Runs after this ledger has loaded the citizen (not yet enrolled) and before
        # it decides: another process enrols the citizen in between.
        nonlocal calls
        calls += 1
        if calls == 1:
            other = _ledger_append(store_url, feed)
            assert other.wait(timeout=60) == 0
        return lookup(keys)

    monkeypatch.setattr(ledger.store, "lookup", lookup_while_another_process_enrols)
    report = append(ledger, fine("TP-1"))

    assert report.rejected == []
    assert report.appended == 1
    assert report.retries >= 1
    assert [e.record.reference for e in ledger.history(WANG_FANG)] == [f"E-{WANG_FANG}", "TP-1"]


def test_four_appends_of_one_feed_in_different_orders_store_each_record_once(
    ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    _four_appends_in_different_orders(ledger, store_url, tmp_path, citizens=60)


@pytest.mark.postgres
def test_four_bulk_appends_of_one_feed_in_different_orders_store_each_record_once(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    # Over 5,000 lines each: four processes of four writers each, on PostgreSQL, where
    # a deployment runs them.
    ledger = Ledger(postgres_schema_url)
    try:
        _four_appends_in_different_orders(ledger, postgres_schema_url, tmp_path, citizens=500)
    finally:
        ledger.close()


def _four_appends_in_different_orders(
    ledger: Ledger, url: str, tmp_path: Path, citizens: int
) -> None:
    for spec in DEMO_AUTHORITIES:
        ledger.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
    records = Population(citizens, 11, UNTIL).records()
    feeds = [_write(tmp_path / f"feed-{n}.ndjson", _interleaved(records, n)) for n in range(4)]

    processes = [_ledger_append(url, feed) for feed in feeds]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        reports.append(json.loads(out))

    assert all(r["rejected"] == [] for r in reports)
    assert sum(r["appended"] for r in reports) == len(records)
    assert sum(r["duplicates"] for r in reports) == 3 * len(records)
    stored = [
        (e.record.authority, e.record.reference)
        for citizen in {r["citizen"] for r in records}
        for e in ledger.history(citizen)
    ]
    assert len(stored) == len(set(stored)) == len(records)


def test_over_http_a_settlement_after_its_infraction_is_accepted_by_either_worker(
    ledger: Ledger, store_url: str
) -> None:
    register_authorities(ledger)
    assert append(ledger, enrolled()).appended == 1
    views = ViewStore(store_url)
    police = TokenStore(views).create("service", "traffic-police", None, ledger.clock.now())[0]
    views.close()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "serve", "--port", str(port), "--workers", "2",
         "--db", store_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/healthz")
        answers = []
        for n in range(40):
            # Each request on a new connection, so the two workers take turns at random.
            infraction = _post(f"{base}/v1/records", police, fine(f"TP-{n}"))
            settled = record("infraction.settled", f"TP-{n}S",
                             target=target("traffic-police", f"TP-{n}"), amount="200.00",
                             occurred_on="2025-02-01")  # fmt: skip
            answers.append((infraction[0], _post(f"{base}/v1/records", police, settled)))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    assert [(first, status) for first, (status, _) in answers] == [(201, 201)] * 40, answers
    references = [e.record.reference for e in ledger.history(WANG_FANG)]
    assert len(references) == 1 + 80 == len(set(references))


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _post(url: str, token: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.postgres
@pytest.mark.parametrize("citizens", [100, 600], ids=["one-process", "bulk-writers"])
def test_an_append_rides_out_a_database_that_goes_away_and_comes_back(
    postgres_schema_url: str, tmp_path: Path, citizens: int
) -> None:
    parts = urlsplit(postgres_schema_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    url = through(postgres_schema_url, proxy.port)
    ledger = Ledger(postgres_schema_url)
    try:
        for spec in DEMO_AUTHORITIES:
            ledger.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
        records = Population(citizens, 5, UNTIL).records()
        feed = _write(tmp_path / "feed.ndjson", records)
        before = ledger.max_position()
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "append", str(feed), "--json",
             "--patience", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "LEDGER_DATABASE_URL": url},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while ledger.max_position() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.kill()  # every connection cut, new ones refused
        time.sleep(8)
        proxy.start()
        out, err = process.communicate(timeout=180)
    finally:
        proxy.close()
    try:
        assert process.returncode == 0, err[-2000:]
        report = json.loads(out)
        assert report["rejected"] == []
        assert report["appended"] + report["duplicates"] == len(records)
        stored = [
            (e.record.authority, e.record.reference)
            for citizen in {r["citizen"] for r in records}
            for e in ledger.history(citizen)
        ]
        assert len(stored) == len(set(stored)) == len(records)
    finally:
        ledger.close()
