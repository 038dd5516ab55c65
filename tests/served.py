"""`ledger serve` as a process on a free loopback port, for tests that talk HTTP to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from tests.proxy import free_port


class Service:
    """`ledger serve` as a process on a free loopback port."""

    def __init__(self, url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "serve", "--port", str(self.port),
             "--workers", "2", *extra],
            env={**os.environ, "LEDGER_DATABASE_URL": url, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "ledger serve exited"
            try:
                if self.get("/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("ledger serve did not come up")

    def get(self, path: str, token: str | None = None, timeout: float = 10,
            body: Any = None) -> tuple[int, dict[str, str], Any]:  # fmt: skip
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data,
                                         method="POST" if data else "GET")  # fmt: skip
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _lower(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _lower(error.headers), json.loads(error.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
