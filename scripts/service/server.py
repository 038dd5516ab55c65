"""The server `ledger serve` runs: granian's worker processes in front of the WSGI app.

Each worker reads requests on its event loop, headers and bodies alike, under time
limits, and hands only a complete request to one of its threads running the Flask
app. A client that sends slowly therefore holds no thread, and cannot starve the
others; the threads of one worker share group commit as before. The database URL
comes from the environment, never the command line, where `ps` would show it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from flask import Flask

from ledger.lifecycle import end_with_parent

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

THREADS = 8
RESPAWN_SECONDS = 0.5
HEADER_SECONDS = 10
# A body must keep coming: no pause longer than BODY_IDLE, and all of it within
# BODY_SECONDS plus a second per MIN_RATE bytes.
BODY_IDLE = 10.0
BODY_SECONDS = 30.0
MIN_RATE = 1024 * 1024
# Bodies larger than this wait on disk, not in memory, for their thread.
SPOOL = 4 * 1024 * 1024


class Refused(Exception):
    """The request is answered without the application: too large or too slow."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class Bridge:
    """An ASGI application running a WSGI application once a request is complete."""

    def __init__(self, make: Callable[[], Flask], close: Callable[[Flask], None],
                 max_body: int, threads: int = THREADS) -> None:  # fmt: skip
        self.make, self.close, self.max_body = make, close, max_body
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wsgi")
        self.app: Flask | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.app = await loop.run_in_executor(self.pool, self.make)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.app is not None:
                    await loop.run_in_executor(self.pool, self.close, self.app)
                self.pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/healthz" and scope["method"] == "GET":
            # Liveness is the event loop answering, even while every thread waits on
            # a database that hangs.
            await _send_json(send, 200, {"status": "ok", "lag": {}}, b"application/json")
            return
        if self.app is None:  # a server without lifespan support
            self.app = await asyncio.get_running_loop().run_in_executor(self.pool, self.make)
        try:
            body, length = await self._body(scope, receive)
        except Refused as e:
            await _refuse(send, e)
            return
        except ConnectionAbortedError:
            return
        app = self.app
        try:
            status, headers, chunks = await asyncio.get_running_loop().run_in_executor(
                self.pool, _call, app, _environ(scope, body, length)
            )
        finally:
            body.close()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _body(self, scope: Scope, receive: Receive) -> tuple[IO[bytes], int]:
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            raise Refused(413, "Content Too Large",
                          f"send at most {self.max_body} bytes")  # fmt: skip
        body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115
        started = time.monotonic()
        length = 0
        more = True
        try:
            while more:
                deadline = started + BODY_SECONDS + max(length, int(declared or 0)) / MIN_RATE
                wait = min(BODY_IDLE, deadline - time.monotonic())
                try:
                    message = await asyncio.wait_for(receive(), timeout=max(wait, 0))
                except TimeoutError:
                    raise Refused(408, "Request Timeout",
                                  "the request body came too slowly") from None  # fmt: skip
                if message["type"] == "http.disconnect":
                    raise ConnectionAbortedError
                chunk = message.get("body", b"")
                length += len(chunk)
                if length > self.max_body:
                    raise Refused(413, "Content Too Large", f"send at most {self.max_body} bytes")
                body.write(chunk)
                more = message.get("more_body", False)
        except BaseException:
            body.close()
            raise
        body.seek(0)
        return body, length


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


def _environ(scope: Scope, body: IO[bytes], length: int) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of a complete request."""
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": bytes(scope.get("query_string", b"")).decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(length),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name = bytes(raw_name).decode("latin-1").upper().replace("-", "_")
        value = bytes(raw_value).decode("latin-1")
        if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            continue  # the body is whole now, of the length given above
        key = name if name == "CONTENT_TYPE" else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def _call(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]],
                                                           list[bytes]]:  # fmt: skip
    """Run the WSGI application on one request; its status, headers and body."""
    chunks: list[bytes] = []
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        started[:] = [int(status.split(" ", 1)[0]), encoded]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return started[0], started[1], chunks


async def _refuse(send: Send, refused: Refused) -> None:
    body = {"type": "about:blank", "title": refused.title, "status": refused.status,
            "detail": refused.detail}  # fmt: skip
    await _send_json(send, refused.status, body, b"application/problem+json", close=True)


async def _send_json(send: Send, status: int, body: dict[str, Any], mimetype: bytes,
                     close: bool = False) -> None:  # fmt: skip
    headers = [(b"content-type", mimetype)] + ([(b"connection", b"close")] if close else [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def asgi() -> Bridge:
    """The application each worker serves, for the ledger at $LEDGER_DATABASE_URL."""
    from scripts.service.app import MAX_BODY, close_app, create_app  # noqa: PLC0415

    parent = os.environ.get("LEDGER_SERVER_PID")
    if parent:
        end_with_parent(int(parent))
    url = os.environ["LEDGER_DATABASE_URL"]
    max_body = int(os.environ.get("LEDGER_MAX_BODY", MAX_BODY))
    return Bridge(lambda: create_app(url, max_body=max_body), close_app, max_body)


def main(argv: list[str] | None = None) -> None:
    """Serve on HOST:PORT with WORKERS processes until stopped."""
    from granian import Granian  # noqa: PLC0415
    from granian.constants import Interfaces  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m scripts.service.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if "LEDGER_DATABASE_URL" not in os.environ:
        parser.error("set LEDGER_DATABASE_URL")
    parent = os.environ.get("LEDGER_PARENT_PID")
    if parent:
        end_with_parent(int(parent))
    os.environ["LEDGER_SERVER_PID"] = str(os.getpid())
    Granian(
        "scripts.service.server:asgi", address=args.host, port=args.port,
        interface=Interfaces.ASGI, factory=True, workers=args.workers, websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_SECONDS * 1000),
        log_access=True, workers_kill_timeout=10, respawn_failed_workers=True,
        respawn_interval=RESPAWN_SECONDS,
    ).serve()  # fmt: skip


if __name__ == "__main__":
    main()
