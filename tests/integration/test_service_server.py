"""The server's bridge from ASGI to the Flask app: a request reaches a thread only when
it is whole; one too large or too slow is refused without the app."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
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


@pytest.fixture
def bridge() -> Iterator[tuple[Bridge, list[str]]]:
    seen: list[str] = []

    def make() -> Flask:
        seen.append("made")
        return _echo()

    bridge = Bridge(make, lambda _: seen.append("closed"), max_body=100, threads=1)
    yield bridge, seen
    bridge.pool.shutdown(wait=False, cancel_futures=True)


def _scope(length: int | None = None) -> dict[str, Any]:
    headers = [(b"content-type", b"text/plain"), (b"x-tag", b"t1")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "method": "POST", "path": "/echo", "query_string": b"q=1",
            "headers": headers, "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}  # fmt: skip


def _run(bridge: Bridge, scope: dict[str, Any], messages: list[Any]) -> tuple[int, Any]:
    """Send the messages (a number is a pause in seconds); the status and body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        while messages:
            message = messages.pop(0)
            if isinstance(message, float):
                await asyncio.sleep(message)
                continue
            return dict(message)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(bridge(scope, receive, send), timeout=10))
    return sent[0]["status"], json.loads(sent[1]["body"])


def _part(body: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_body_in_parts_reaches_the_app_whole_with_its_headers(
    bridge: tuple[Bridge, list[str]],
) -> None:
    app, seen = bridge
    status, body = _run(app, _scope(), [_part(b"hello "), 0.05, _part(b"world", more=False)])
    assert status == 200
    assert body == {"body": "hello world", "type": "text/plain", "tag": "t1", "q": "1"}
    assert seen == ["made"]


def test_a_body_that_stops_coming_is_408_and_never_reaches_the_app(
    bridge: tuple[Bridge, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "BODY_IDLE", 0.2)
    app, _ = bridge
    app.app = _refusing()
    status, body = _run(app, _scope(50), [_part(b"hel")])
    assert (status, body["title"]) == (408, "Request Timeout")


def test_too_large_a_body_is_413_whether_declared_or_sent(
    bridge: tuple[Bridge, list[str]],
) -> None:
    app, _ = bridge
    app.app = _refusing()
    status, body = _run(app, _scope(101), [])
    assert (status, body["status"]) == (413, 413)
    status, _ = _run(app, _scope(), [_part(b"x" * 60), _part(b"x" * 60, more=False)])
    assert status == 413


def test_a_slow_body_holds_no_thread(bridge: tuple[Bridge, list[str]]) -> None:
    app, _ = bridge  # one thread only
    app.app = _echo()

    async def both() -> list[int]:
        statuses: list[int] = []

        async def slow_receive() -> dict[str, Any]:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        async def fast_receive() -> dict[str, Any]:
            return _part(b"quick", more=False)

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        slow = asyncio.create_task(app(_scope(50), slow_receive, send))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(app(_scope(), fast_receive, send), timeout=2)
        slow.cancel()
        return statuses

    assert asyncio.run(both()) == [200]


def test_lifespan_makes_the_app_and_closes_it(bridge: tuple[Bridge, list[str]]) -> None:
    app, seen = bridge
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert seen == ["made", "closed"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def _refusing() -> Flask:
    app = Flask("refusing")

    @app.route("/echo", methods=["POST"])
    def echo() -> Any:
        raise AssertionError("the app was called")

    return app


def test_healthz_answers_while_every_thread_waits(bridge: tuple[Bridge, list[str]]) -> None:
    app, _ = bridge  # one thread only
    release = threading.Event()
    blocking = Flask("blocking")

    @blocking.route("/echo", methods=["POST"])
    def echo() -> Any:
        release.wait(10)  # as a call to a database that hangs
        return {}

    app.app = blocking

    async def both() -> list[int]:
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return _part(b"", more=False)

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        stuck = asyncio.create_task(app(_scope(), receive, send))
        await asyncio.sleep(0.05)
        health = dict(_scope(), method="GET", path="/healthz")
        await asyncio.wait_for(app(health, receive, send), timeout=2)
        release.set()
        await stuck
        return statuses

    assert asyncio.run(both()) == [200, 200]
