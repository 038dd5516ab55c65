"""`ledger serve` under faults, as real processes: the database goes away and comes back,
its connections are killed, it hangs; slow clients hold connections open; the service is
killed -9. Each test starts the service on a loopback port and talks HTTP to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from ledger.application import Ledger
from projections.store import ViewStore
from scripts.drill.processes import descendants
from scripts.tokens import TokenStore
from tests.builders import WANG_FANG, append, enrolled, fine, register_authorities
from tests.proxy import Proxy, through
from tests.served import Service


def _tokens(url: str) -> dict[str, str]:
    ledger = Ledger(url)
    try:
        register_authorities(ledger)
        append(ledger, enrolled(WANG_FANG), fine("TP-1"))
        views = ViewStore(url)
        try:
            tokens = TokenStore(views)
            now = ledger.clock.now()
            return {
                "service": tokens.create("service", "traffic-police", None, now)[0],
                "reader": tokens.create("reader", None, None, now)[0],
            }
        finally:
            views.close()
    finally:
        ledger.close()


@pytest.fixture
def proxied(postgres_schema_url: str) -> Iterator[tuple[str, Proxy]]:
    """A fresh schema reached through a forwarder the test controls."""
    parts = urlsplit(postgres_schema_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    try:
        yield through(postgres_schema_url, proxy.port), proxy
    finally:
        proxy.close()


def _assert_unavailable(status: int, headers: dict[str, str], body: Any) -> None:
    assert status == 503, (status, body)
    assert headers["content-type"].startswith("application/problem+json")
    assert int(headers["retry-after"]) > 0
    text = json.dumps(body)
    assert "psycopg" not in text
    assert "connection" not in text.lower()


def _until(ask: Any, seconds: float) -> float:
    """Seconds until `ask()` is true; fails after `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if ask():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


@pytest.mark.postgres
def test_a_database_outage_is_503_and_the_service_recovers_without_a_restart(
    proxied: tuple[str, Proxy],
) -> None:
    url, proxy = proxied
    tokens = _tokens(url)
    service = Service(url)
    score = "/v1/lists/enforcement?as_of=2025-06-01"
    try:
        assert service.get(score, tokens["reader"])[0] == 200
        proxy.kill()
        for path, token, body in [(score, tokens["reader"], None),
                                  ("/v1/records", tokens["service"], fine("TP-2")),
                                  ("/readyz", None, None)]:  # fmt: skip
            started = time.monotonic()
            _assert_unavailable(*service.get(path, token, body=body))
            assert time.monotonic() - started < 3
        proxy.start()
        took = _until(lambda: service.get(score, tokens["reader"])[0] == 200, 10)
        assert service.get("/v1/records", tokens["service"], body=fine("TP-2"))[0] == 201
        assert service.get("/readyz")[0] == 200
        assert took < 10
    finally:
        service.stop()


@pytest.mark.postgres
def test_readyz_answers_within_2_s_while_the_database_hangs(
    proxied: tuple[str, Proxy],
) -> None:
    url, proxy = proxied
    _tokens(url)
    service = Service(url)
    try:
        assert service.get("/readyz")[0] == 200
        proxy.pause()
        for _ in range(3):
            started = time.monotonic()
            status, headers, body = service.get("/readyz", timeout=10)
            assert time.monotonic() - started < 2
            _assert_unavailable(status, headers, body)
        proxy.resume()
        _until(lambda: service.get("/readyz")[0] == 200, 10)
    finally:
        proxy.resume()
        service.stop()


@pytest.mark.postgres
def test_killed_connections_are_replaced_within_seconds(postgres_schema_url: str) -> None:
    tokens = _tokens(postgres_schema_url)
    name = "ledger-test-" + uuid.uuid4().hex[:8]
    service = Service(postgres_schema_url, env={"PGAPPNAME": name})
    path = f"/v1/citizens/{WANG_FANG}/history"
    try:
        assert service.get("/v1/lists/enforcement", tokens["reader"])[0] == 200
        assert service.get("/v1/records", tokens["service"], body=fine("TP-2"))[0] == 201
        with psycopg.connect(postgres_schema_url.split("?", 1)[0], autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE application_name = %s", [name],
            ).fetchone()  # fmt: skip
        assert killed is not None
        assert killed[0] >= 2
        seen = []

        def answered() -> bool:
            status, headers, body = service.get("/v1/lists/enforcement", tokens["reader"])
            seen.append(status)
            if status != 200:
                _assert_unavailable(status, headers, body)
            return status == 200

        _until(answered, 5)
        assert service.get("/v1/records", tokens["service"], body=fine("TP-3"))[0] == 201
        assert service.get(path, tokens["reader"])[0] == 403  # token checks work again
        assert set(seen) <= {200, 503}
    finally:
        service.stop()


def _slow_client(port: int, stop: threading.Event, body: bool) -> None:
    """Send a request a few bytes at a time and never finish it."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        if body:
            sock.sendall(head + b"Content-Length: 100000\r\n\r\n[")
            drip = b" "
        else:
            sock.sendall(head[:20])
            drip = b"X"
        while not stop.wait(0.5):
            try:
                sock.sendall(drip)
            except OSError:
                return


def test_forty_slow_clients_do_not_stop_the_service(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    tokens = _tokens(url)
    service = Service(url)
    stop = threading.Event()
    clients = [threading.Thread(target=_slow_client, args=(service.port, stop, n % 2 == 0))
               for n in range(40)]  # fmt: skip
    try:
        for client in clients:
            client.start()
        time.sleep(1.5)
        slowest = 0.0
        for n in range(5):
            for path, token, body, expected in [
                ("/healthz", None, None, 200),
                ("/v1/lists/enforcement", tokens["reader"], None, 200),
                ("/v1/records", tokens["service"], fine(f"SLOW-{n}"), 201),
            ]:
                started = time.monotonic()
                assert service.get(path, token, timeout=5, body=body)[0] == expected
                slowest = max(slowest, time.monotonic() - started)
        assert slowest < 1.0
    finally:
        stop.set()
        service.stop()
        for client in clients:
            client.join(timeout=5)


@pytest.mark.postgres
def test_no_password_on_any_command_line_and_nothing_outlives_kill_9(
    postgres_schema_url: str,
) -> None:
    url = through(postgres_schema_url, urlsplit(postgres_schema_url).port or 5432,
                   password="s3cret-Pw")  # trust authentication ignores it  # fmt: skip
    _tokens(url)
    service = Service(url, "--project")
    family: list[int] = []
    try:
        family = [p for p, _ in descendants(service.process.pid)]
        assert len(family) >= 3  # the server, its workers and the runner
        for pid in [service.process.pid, *family]:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"s3cret-Pw" not in command
            assert b"postgresql://" not in command
        service.process.kill()
        service.process.wait()

        _until(lambda: not any(_alive(pid) for pid in family), 10)
    finally:
        for pid in family:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        service.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopping_serve_stops_the_server_its_workers_and_the_runner(
    tmp_path: Path, signum: int
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    _tokens(url)
    service = Service(url, "--project")
    family = [p for p, _ in descendants(service.process.pid)]
    try:
        assert len(family) >= 3
        service.process.send_signal(signum)
        service.process.wait(timeout=20)
        _until(lambda: not any(_alive(pid) for pid in family), 10)
    finally:
        for pid in family:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        service.stop()
