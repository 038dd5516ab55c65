"""Errors as the service answers them: RFC 9457 `application/problem+json`.

Which status, title and detail an error gets is `scripts.errors`' map, shared with the
`ledger` command. A database that cannot be reached is 503 with Retry-After, whatever
the driver said; no driver text, and so no password, ever reaches a client.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from flask import Response, has_request_context, request

from scripts.errors import (
    INTERNAL_DETAIL,
    UNAVAILABLE,
    UNAVAILABLE_DETAIL,
    UNSTORABLE,
    field_errors,
    outcome,
)

__all__ = ["PROBLEM", "RETRY_AFTER", "UNAVAILABLE", "UNSTORABLE", "Problem", "problem",
           "unavailable"]  # fmt: skip

PROBLEM = "application/problem+json"
RETRY_AFTER = 2
log = logging.getLogger("ledger.service")


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
        answer = Response(orjson.dumps(body), status=self.status, mimetype=PROBLEM)
        if self.status == 503:
            answer.headers["Retry-After"] = str(RETRY_AFTER)
        return answer


def problem(error: BaseException, errors: list[dict[str, Any]] | None = None,
            query: bool = False) -> Problem:  # fmt: skip
    """The problem the error map gives `error` (with `query`, counting a query's value
    errors); 500 for an error it does not map. `errors` replaces the field errors."""
    if isinstance(error, Problem):
        return error
    found = outcome(error, query)
    where = (request.method, request.path) if has_request_context() else ("", "")
    if found is None or found.status == 500:
        log.error("unexpected error on %s %s (%s)", *where, type(error).__name__)
    if found is None:
        return Problem(500, "Internal Server Error", INTERNAL_DETAIL)
    if found.log:
        log.warning(json.dumps({"event": found.log, "path": where[1],
                                "error": type(error).__name__}))  # fmt: skip
    if errors is None:
        errors = field_errors(error) if found.fields else []
    return Problem(found.status, found.title, found.detail(error), errors)


def unavailable() -> Problem:
    """The 503 a client gets while the database cannot be reached (readiness says so
    without logging it as a failed request)."""
    return Problem(503, "Service Unavailable", UNAVAILABLE_DETAIL)
