"""`ledger serve` as a real process on a loopback port: append and read over HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ledger.application import Ledger
from projections import policy
from projections.runner import catch_up
from projections.store import ViewStore
from scripts.tokens import TokenStore
from tests.builders import WANG_FANG, enrolled, fine, register_authorities


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serve_appends_and_reads_over_real_http(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger(url)
    register_authorities(ledger)
    views = ViewStore(url)
    tokens = TokenStore(views)
    service = tokens.create("service", "civil-registry", None, ledger.clock.now())[0]
    police = tokens.create("service", "traffic-police", None, ledger.clock.now())[0]
    reader = tokens.create("reader", None, None, ledger.clock.now())[0]
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "serve", "--port", str(port), "--workers", "2",
         "--db", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("ledger serve did not come up")
        status, report = _request(f"{base}/v1/records", service, enrolled())
        assert (status, report["appended"]) == (201, 1)
        status, report = _request(f"{base}/v1/records", police, [fine("TP-1"), fine("TP-2")])
        assert (status, report["appended"]) == (201, 2)
        catch_up(ledger, views, [policy.load(n) for n in policy.available()])
        status, answer = _request(f"{base}/v1/citizens/{WANG_FANG}/score?as_of=2025-06-01",
                                  reader)  # fmt: skip
        assert status == 200
        assert (answer["score"], answer["band"]) == (990, "A")
        feed = "\n".join(json.dumps(fine(f"ND-{n}")) for n in range(300)).encode()
        request = urllib.request.Request(f"{base}/v1/records", data=feed, method="POST")
        request.add_header("Authorization", f"Bearer {police}")
        request.add_header("Content-Type", "application/x-ndjson")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert (response.status, json.loads(response.read())["appended"]) == (201, 300)
    finally:
        process.terminate()
        process.wait(timeout=10)
        views.close()
        ledger.close()
