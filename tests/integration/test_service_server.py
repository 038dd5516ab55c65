"""The server's bridge from RSGI to the Flask app: a request reaches a thread only when
it is whole; one too large or too slow is refused without the app."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, request

from scripts.service import server
from scripts.service.server import Bridge


def _echo() -> Flask:
    app = Flask("echo")

    @app.route("/echo", methods=["POST"])
    def echo() -> Any:
        return {"body": request.get_data().decode(), "type": request.content_type,
                "tag": request.headers.get("X-Tag"), "q": request.args.get("q")}  # fmt: skip

    return app


@dataclass
class Headers:
    pairs: list[tuple[str, str]]

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)


@dataclass
class Scope:
    method: str = "POST"
    path: str = "/echo"
    headers: Headers = field(default_factory=lambda: Headers([]))
    proto: str = "http"
    http_version: str = "1.1"
    server: str = "127.0.0.1:80"
    client: str = "127.0.0.1:5000"
    scheme: str = "http"
    query_string: str = "q=1"


class Protocol:
    """An RSGI protocol object: the body's parts (a number is a pause in seconds), then
    its end, or, unless `ends`, nothing more ever; and what was answered."""

    def __init__(self, parts: list[Any], ends: bool = True) -> None:
        self.parts, self.ends = parts, ends
        self.answers: list[tuple[int, Any]] = []

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._body()

    async def _body(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                yield part
        if not self.ends:
            await asyncio.sleep(3600)

    async def __call__(self) -> bytes:
        return b"".join([part async for part in self._body()])

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answers.append((status, json.loads(body)))


@pytest.fixture
def bridge() -> Iterator[tuple[Bridge, list[str]]]:
    seen: list[str] = []

    def make() -> Flask:
        seen.append("made")
        return _echo()

    bridge = Bridge(make, lambda _: seen.append("closed"), max_body=100, threads=1,
                    write_threads=1)  # fmt: skip
    yield bridge, seen
    for lane in (bridge.pool, bridge.writes, bridge.ready):
        lane.shutdown()


def _scope(length: int | None = None, **kwargs: Any) -> Scope:
    headers = [("content-type", "text/plain"), ("x-tag", "t1")]
    if length is not None:
        headers.append(("content-length", str(length)))
    return Scope(headers=Headers(headers), **kwargs)


def _run(bridge: Bridge, scope: Scope, protocol: Protocol) -> tuple[int, Any]:
    """The status and body the bridge answers."""
    asyncio.run(asyncio.wait_for(bridge.__rsgi__(scope, protocol), timeout=10))
    return protocol.answers[0]


def test_a_body_in_parts_reaches_the_app_whole_with_its_headers(
    bridge: tuple[Bridge, list[str]],
) -> None:
    app, seen = bridge
    status, body = _run(app, _scope(), Protocol([b"hello ", 0.05, b"world"]))
    assert status == 200
    assert body == {"body": "hello world", "type": "text/plain", "tag": "t1", "q": "1"}
    assert seen == ["made"]


def test_a_body_that_stops_coming_is_408_and_never_reaches_the_app(
    bridge: tuple[Bridge, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "BODY_IDLE", 0.2)
    app, _ = bridge
    app.app = _refusing()
    status, body = _run(app, _scope(50), Protocol([b"hel"], ends=False))
    assert (status, body["title"]) == (408, "Request Timeout")


def test_too_large_a_body_is_413_whether_declared_or_sent(
    bridge: tuple[Bridge, list[str]],
) -> None:
    app, _ = bridge
    app.app = _refusing()
    status, body = _run(app, _scope(101), Protocol([]))
    assert (status, body["status"]) == (413, 413)
    status, _ = _run(app, _scope(), Protocol([b"x" * 60, b"x" * 60]))
    assert status == 413


def test_a_body_cut_short_never_reaches_the_app(bridge: tuple[Bridge, list[str]]) -> None:
    app, _ = bridge
    app.app = _refusing()
    cut = Protocol([b"hel"])  # the client went away after 3 of 50 bytes
    asyncio.run(asyncio.wait_for(app.__rsgi__(_scope(50), cut), timeout=10))
    assert cut.answers == []


def test_a_slow_body_holds_no_thread(bridge: tuple[Bridge, list[str]]) -> None:
    app, _ = bridge  # one thread for appends only
    app.app = _echo()

    async def both() -> list[int]:
        slow, quick = Protocol([], ends=False), Protocol([b"quick"])
        stuck = asyncio.create_task(app.__rsgi__(_scope(50), slow))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(app.__rsgi__(_scope(), quick), timeout=2)
        stuck.cancel()
        return [status for status, _ in slow.answers + quick.answers]

    assert asyncio.run(both()) == [200]


def test_init_makes_the_app_and_del_closes_it(bridge: tuple[Bridge, list[str]]) -> None:
    app, seen = bridge
    loop = asyncio.new_event_loop()
    app.__rsgi_init__(loop)
    app.__rsgi_del__(loop)
    loop.close()
    assert seen == ["made", "closed"]


def _refusing() -> Flask:
    app = Flask("refusing")

    @app.route("/echo", methods=["POST"])
    def echo() -> Any:
        raise AssertionError("the app was called")

    return app


def test_healthz_and_readyz_answer_while_every_other_thread_waits(
    bridge: tuple[Bridge, list[str]],
) -> None:
    app, _ = bridge  # one thread for reads, one for appends
    release = threading.Event()
    blocking = Flask("blocking")

    @blocking.route("/echo", methods=["GET", "POST"])
    def echo() -> Any:
        release.wait(10)  # as a call to a database that hangs
        return {}

    @blocking.route("/readyz")
    def readyz() -> Any:
        return {"status": "ready"}

    app.app = blocking

    async def all_of_them() -> list[int]:
        stuck = [Protocol([]), Protocol([])]
        waiting = [asyncio.create_task(app.__rsgi__(_scope(method=method), answer))
                   for method, answer in zip(["GET", "POST"], stuck, strict=True)]  # fmt: skip
        await asyncio.sleep(0.05)
        health, ready = Protocol([]), Protocol([])
        await asyncio.wait_for(app.__rsgi__(_scope(method="GET", path="/healthz"), health), 2)
        await asyncio.wait_for(app.__rsgi__(_scope(method="GET", path="/readyz"), ready), 2)
        answered = [status for status, _ in health.answers + ready.answers]
        release.set()
        await asyncio.gather(*waiting)
        return answered + [status for answer in stuck for status, _ in answer.answers]

    assert asyncio.run(all_of_them()) == [200, 200, 200, 200]
