"""HTTP clients for load tests, run in processes of their own: this module imports
nothing of the project, so that a spawned client starts in a fraction of a second."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable
from typing import Any


def post(port: int, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST one record to /v1/records: the status and the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/v1/records", body=json.dumps(body),
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"})  # fmt: skip
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def given_up(port: int, token: str, body: dict[str, Any],
             until: Callable[[], bool] | None = None) -> None:  # fmt: skip
    """Send the whole request, then go away without reading the answer, as a client
    whose timeout ran out does: at once, or once `until()` is true."""
    data = json.dumps(body).encode()
    head = (f"POST /v1/records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + data)
        deadline = time.monotonic() + 10
        while until is not None and not until():
            assert time.monotonic() < deadline, "the request was never appended"
            time.sleep(0.05)


def appender(port: int, token: str, dropped: list[dict[str, Any]],
             records: list[dict[str, Any]]) -> list[tuple[str, int, dict[str, Any]]]:  # fmt: skip
    """Give up on the `dropped` records' requests, then append `records` one at a time:
    (reference, status, answer) of each, status 0 for those given up."""
    answers: list[tuple[str, int, dict[str, Any]]] = []
    for record in dropped:
        given_up(port, token, record)
        answers.append((record["reference"], 0, {}))
    for record in records:
        status, body = post(port, token, record)
        answers.append((record["reference"], status, body))
    return answers
