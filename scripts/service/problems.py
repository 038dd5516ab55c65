"""Errors as the service answers them: RFC 9457 `application/problem+json`.

A database that cannot be reached is 503 with Retry-After, whatever the driver said;
no driver text, and so no password, ever reaches a client.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import psycopg
from eventsourcing.persistence import DataError, InterfaceError, OperationalError
from flask import Response
from psycopg_pool import PoolTimeout

from ledger.errors import DatabaseUnavailable

PROBLEM = "application/problem+json"
RETRY_AFTER = 2
# Errors that mean "the database did not answer", from the ledger or from a driver.
UNAVAILABLE = (DatabaseUnavailable, OperationalError, InterfaceError, psycopg.OperationalError,
               psycopg.InterfaceError, PoolTimeout, sqlite3.OperationalError)  # fmt: skip
# Values a database refuses to store (a NUL character in text, for one).
UNSTORABLE = (DataError, psycopg.DataError)


class Problem(Exception):
    """An RFC 9457 problem: status, title, detail and field errors."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []

    def response(self) -> Response:
        body = {"type": "about:blank", "title": self.title, "status": self.status,
                "detail": self.detail}  # fmt: skip
        if self.errors:
            body["errors"] = self.errors
        answer = Response(json.dumps(body), status=self.status, mimetype=PROBLEM)
        if self.status == 503:
            answer.headers["Retry-After"] = str(RETRY_AFTER)
        return answer


def unavailable(what: str = "the database") -> Problem:
    """The 503 a client gets while the database cannot be reached."""
    return Problem(503, "Service Unavailable",
                   f"{what} does not answer now; try again in a few seconds")  # fmt: skip


def unstorable() -> Problem:
    """The 422 for records holding a value the database cannot store."""
    detail = "a value in these records cannot be stored (a NUL character, for one)"
    return Problem(422, "Unprocessable Content", detail)
