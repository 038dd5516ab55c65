"""The server `ledger serve` runs: granian's worker processes in front of the WSGI app.

Each worker reads requests on its event loop through granian's own interface (RSGI),
headers and bodies alike, under time limits, and hands only a complete request to one
of its threads running the Flask app. A client that sends slowly therefore holds no
thread, and cannot starve the others; the threads of one worker share group commit.
The database URL comes from the environment, never the command line, where `ps`
would show it.

RSGI, not ASGI, because it was measured faster: a bare Flask route answers about 1.4x
as many requests through it (no message dictionaries per request). Granian's own WSGI
interface is faster still, but it calls the app before the body has arrived, so a
slow client would hold a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from typing import IO, Any, Protocol, TypeVar

import orjson
from flask import Flask

from ledger.lifecycle import end_with_parent

T = TypeVar("T")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = list[tuple[str, str]]

# Threads per worker, by what a request does. Reads spend their time on the CPU, and
# fewer threads fight less over the GIL: 2 answered a third more score reads than 8,
# and 1 about as many as 2 (within a tenth), without their tail: with 2, now and then
# a read waited 0.2-1.3 s in its database call that PostgreSQL had long answered
# (p99 up to 850 ms under wrk, against 10-13 ms with 1). More workers read in parallel.
# Appends mostly wait for group commit, and the more wait, the larger its batches.
# Readiness has threads of its own, so that reads stuck on a database that hangs
# cannot hold it up.
READ_THREADS = int(os.environ.get("LEDGER_READ_THREADS", "1"))
WRITE_THREADS = int(os.environ.get("LEDGER_WRITE_THREADS", "32"))
READY_THREADS = 2
RESPAWN_SECONDS = 0.5
HEADER_SECONDS = 10
# A body must keep coming: no pause longer than BODY_IDLE, and all of it within
# BODY_SECONDS plus a second per MIN_RATE bytes.
BODY_IDLE = 10.0
BODY_SECONDS = 30.0
MIN_RATE = 1024 * 1024
# Bodies larger than this wait on disk, not in memory, for their thread.
SPOOL = 4 * 1024 * 1024
# Bodies of a declared length up to this are read in one step (a single record is
# about 250 bytes; reading it a chunk at a time under a timeout each cost the event
# loop more than the rest of the request).
SMALL = 64 * 1024
JSON = "application/json"
WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class Scope(Protocol):
    """What the bridge reads of an RSGI scope."""

    proto: str
    http_version: str
    server: str
    client: str
    scheme: str
    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> Any: ...


class Transport(Protocol):
    """What the bridge uses of an RSGI HTTP protocol object."""

    def __aiter__(self) -> Any: ...

    def __call__(self) -> Awaitable[bytes]: ...

    def response_bytes(self, status: int, headers: Headers, body: bytes) -> None: ...


class Refused(Exception):
    """The request is answered without the application: too large or too slow."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class Lane:
    """Threads running calls for the event loop. Lighter than `run_in_executor`, which
    makes and chains a second, thread-safe future per call: that handoff took about a
    tenth of a score read's time holding the GIL."""

    def __init__(self, threads: int, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, name=f"{name}_{n}", daemon=True)
                         for n in range(threads)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def run(self, call: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`call(*args)` on one of the threads; its result, to await on this loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, call, args))
        return future

    def shutdown(self) -> None:
        """Let each thread end once the calls already handed over are done."""
        for _ in self._threads:
            self._calls.put(None)

    def _serve(self) -> None:
        while (work := self._calls.get()) is not None:
            loop, future, call, args = work
            try:
                result = call(*args)
            except BaseException as e:  # noqa: BLE001 - handed to whoever awaits
                _settle_soon(loop, future, None, e)
            else:
                _settle_soon(loop, future, result, None)


def _settle_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any,
                 error: BaseException | None) -> None:  # fmt: skip
    with suppress(RuntimeError):  # the loop has closed: no one awaits any more
        loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Bridge:
    """An RSGI application running a WSGI application once a request is complete."""

    def __init__(self, make: Callable[[], Flask], close: Callable[[Flask], None],
                 max_body: int, threads: int = READ_THREADS,
                 write_threads: int = WRITE_THREADS) -> None:  # fmt: skip
        self.make, self.close, self.max_body = make, close, max_body
        self.pool = Lane(threads, "wsgi-read")
        self.writes = Lane(write_threads, "wsgi-write")
        self.ready = Lane(READY_THREADS, "wsgi-ready")
        self.app: Flask | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.app = self.make()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.app is not None:
            self.close(self.app)
        for lane in (self.pool, self.writes, self.ready):
            lane.shutdown()

    async def __rsgi__(self, scope: Scope, protocol: Transport) -> None:
        if scope.proto != "http":
            return
        if scope.path == "/healthz" and scope.method == "GET":
            # Liveness is the event loop answering, even while every thread waits on
            # a database that hangs.
            protocol.response_bytes(200, [("content-type", JSON)], b'{"lag":{},"status":"ok"}')
            return
        headers: Headers = scope.headers.items()
        try:
            body, length = await self._body(scope, headers, protocol)
        except Refused as e:
            _refuse(protocol, e)
            return
        except ConnectionAbortedError:
            return
        if self.app is None:  # a server that never called __rsgi_init__
            self.app = await self.pool.run(self.make)
        if scope.path == "/readyz":
            lane = self.ready
        elif scope.method in WITHOUT_BODY:
            lane = self.pool
        else:
            lane = self.writes
        try:
            status, out, chunks = await lane.run(
                _call, self.app, _environ(scope, headers, body, length)
            )
        finally:
            body.close()
        protocol.response_bytes(status, out, chunks)

    async def _body(
        self, scope: Scope, headers: Headers, protocol: Transport
    ) -> tuple[IO[bytes], int]:
        declared = _header(headers, "content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            raise Refused(413, "Content Too Large", f"send at most {self.max_body} bytes")
        if scope.method in WITHOUT_BODY and declared in (None, "0") and (
                _header(headers, "transfer-encoding") is None):  # fmt: skip
            return io.BytesIO(), 0
        if declared is not None and int(declared) <= SMALL:
            return await self._small(protocol, int(declared))
        body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115
        started = time.monotonic()
        length = 0
        chunks = protocol.__aiter__()
        try:
            while True:
                deadline = started + BODY_SECONDS + max(length, int(declared or 0)) / MIN_RATE
                try:
                    async with asyncio.timeout(max(min(BODY_IDLE, deadline - time.monotonic()), 0)):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise Refused(408, "Request Timeout",
                                  "the request body came too slowly") from None  # fmt: skip
                length += len(chunk)
                if length > self.max_body:
                    raise Refused(413, "Content Too Large", f"send at most {self.max_body} bytes")
                body.write(chunk)
            if declared is not None and length < int(declared):
                raise ConnectionAbortedError  # the client went away before the end
        except BaseException:
            body.close()
            raise
        body.seek(0)
        return body, length

    @staticmethod
    async def _small(protocol: Transport, declared: int) -> tuple[IO[bytes], int]:
        """A body of known, small length, read by granian in one go: all of it within
        BODY_IDLE (a stall that long is what a large body may not have either)."""
        try:
            async with asyncio.timeout(BODY_IDLE):
                data = await protocol()
        except TimeoutError:
            raise Refused(408, "Request Timeout", "the request body came too slowly") from None
        if len(data) < declared:
            raise ConnectionAbortedError  # the client went away before the end
        return io.BytesIO(data[:declared]), declared


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.strip()
    return None


def _environ(scope: Scope, headers: Headers, body: IO[bytes], length: int) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of a complete request."""
    server_name, _, server_port = scope.server.rpartition(":")
    client_addr, _, client_port = scope.client.rpartition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": scope.path.encode().decode("latin-1"),
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": client_addr,
        "REMOTE_PORT": client_port,
        "CONTENT_LENGTH": str(length),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, value in headers:
        name = raw_name.upper().replace("-", "_")
        if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            continue  # the body is whole now, of the length given above
        key = name if name == "CONTENT_TYPE" else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def _call(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, Headers, bytes]:
    """Run the WSGI application on one request; its status, headers and body."""
    chunks: list[bytes] = []
    started: list[Any] = []

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> Any:
        started[:] = [int(status.split(" ", 1)[0]), headers]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return started[0], started[1], b"".join(chunks)


def _refuse(protocol: Transport, refused: Refused) -> None:
    body = {"type": "about:blank", "title": refused.title, "status": refused.status,
            "detail": refused.detail}  # fmt: skip
    headers = [("content-type", "application/problem+json"), ("connection", "close")]
    protocol.response_bytes(refused.status, headers, orjson.dumps(body))


def application() -> Bridge:
    """The application each worker serves, for the ledger at $LEDGER_DATABASE_URL."""
    from scripts.service.app import MAX_BODY, close_app, create_app  # noqa: PLC0415

    parent = os.environ.get("LEDGER_SERVER_PID")
    if parent:
        end_with_parent(int(parent))
    url = os.environ["LEDGER_DATABASE_URL"]
    max_body = int(os.environ.get("LEDGER_MAX_BODY", MAX_BODY))
    return Bridge(lambda: create_app(url, max_body=max_body), close_app, max_body)


def bare() -> Bridge:
    """One Flask route and nothing else, served like the ledger's app: the baseline
    the benchmark measures the service against."""

    from scripts.service.app import MAX_BODY  # noqa: PLC0415

    def make() -> Flask:
        app = Flask("bare")

        @app.route("/bare", methods=["GET", "POST"])
        def answer() -> Any:
            return {"status": "ok"}

        return app

    parent = os.environ.get("LEDGER_SERVER_PID")
    if parent:
        end_with_parent(int(parent))
    return Bridge(make, lambda _: None, int(os.environ.get("LEDGER_MAX_BODY", MAX_BODY)))


def main(argv: list[str] | None = None) -> None:
    """Serve on HOST:PORT with WORKERS processes until stopped."""
    from granian import Granian  # noqa: PLC0415
    from granian.constants import Interfaces  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m scripts.service.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--access-log", action="store_true",
                        help="A line on stderr for every request answered.")  # fmt: skip
    parser.add_argument("--bare", action="store_true",
                        help="Serve only /bare, the benchmark's baseline.")  # fmt: skip
    args = parser.parse_args(argv)
    if "LEDGER_DATABASE_URL" not in os.environ and not args.bare:
        parser.error("set LEDGER_DATABASE_URL")
    parent = os.environ.get("LEDGER_PARENT_PID")
    if parent:
        end_with_parent(int(parent))
    os.environ["LEDGER_SERVER_PID"] = str(os.getpid())
    Granian(
        f"scripts.service.server:{'bare' if args.bare else 'application'}",
        address=args.host, port=args.port, interface=Interfaces.RSGI, factory=True,
        workers=args.workers, websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_SECONDS * 1000),
        log_access=args.access_log, workers_kill_timeout=10, respawn_failed_workers=True,
        respawn_interval=RESPAWN_SECONDS,
    ).serve()  # fmt: skip


if __name__ == "__main__":
    main()
