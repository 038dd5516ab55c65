# flask-smorest's decorators carry no types; the views they wrap are typed.
# mypy: disallow-untyped-decorators=False
"""What every route of the HTTP service shares: the ledger's parts, who the bearer is
and what their role may do, and how answers and refusals are written."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import cache, wraps
from typing import Any, TypeVar

import orjson
from flask import Response, current_app, g, request
from flask_smorest import abort
from marshmallow import EXCLUDE, Schema, ValidationError
from werkzeug.http import http_date

from ledger.application import Ledger
from ledger.domain.records import RecordKey
from ledger.partitioned.ledger import gone
from scripts.service.problems import Problem, problem
from scripts.service.resources import Opener, Parts
from scripts.tokens import Token, TokenError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
log = logging.getLogger("ledger.service")


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=plain, option=ORJSON_OPTIONS)
    except TypeError:
        # orjson refuses integers beyond 64 bits, which a query may echo back.
        return json.dumps(keys_plain(value), default=plain, separators=(",", ":")).encode()


def plain(value: Any) -> Any:
    if isinstance(value, RecordKey):
        # A tuple, which orjson leaves to this: written as the wire writes a target.
        return {"authority": value.authority, "reference": value.reference}
    if isinstance(value, date):
        return http_date(value)
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return keys_plain(dataclasses.asdict(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def keys_plain(value: Any) -> Any:
    """`value` with every record key in it as `plain` writes one: the standard library
    writes any tuple as a list itself, never asking `plain`."""
    if isinstance(value, RecordKey):
        return plain(value)
    if isinstance(value, dict):
        return {k: keys_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [keys_plain(v) for v in value]
    return value


def ledger_parts() -> Parts:
    opener: Opener = current_app.extensions["ledger"]
    return opener.get()


def log_of(partition: int | None) -> Ledger:
    """The ledger whose log a proof or checkpoint is of: the one log's, or partition
    `partition`'s on a partitioned ledger, where each partition is a log of its own;
    422 naming the query's `partition` when it is missing, out of range or not wanted."""
    parts = ledger_parts()
    if parts.partitions is None:
        if partition is not None:
            raise _partition_error("this ledger is one log, not partitioned: send no partition")
        return parts.ledger
    count = parts.partitions.routed.partitions
    if partition is None or partition >= count:
        raise _partition_error(f"this ledger's logs are its partitions 0 to {count - 1}: "
                               "name one, ?partition=K")  # fmt: skip
    return parts.partitions.number(partition).ledger


def _partition_error(message: str) -> Problem:
    return Problem(422, "Unprocessable Entity", f"partition: {message}",
                   [{"field": "partition", "errors": [message]}])  # fmt: skip


def requires(capability: str) -> Callable[[F], F]:
    """Only bearers whose role grants `capability`; 401 without a token, 403 otherwise."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            authorize(capability)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def authorize(capability: str, *others: str) -> Token:
    """The bearer's token, kept in `g.token`, if its role grants `capability` (or one of
    the `others`)."""
    parts = ledger_parts()
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        refused(401, "no bearer token")
        raise Problem(401, "Unauthorized", "send Authorization: Bearer TOKEN")
    try:
        token = parts.tokens.check(header.removeprefix("Bearer ").strip(), parts.ledger.today())
    except TokenError as e:
        refused(401, e.message)
        raise problem(e) from None
    if not any(token.may(c) for c in (capability, *others)):
        refused(403, f"role {token.role} may not {capability}", token)
        raise Problem(403, "Forbidden", f"a {token.role} token may not {capability}")
    g.token = token
    return token


def documented(*decorators: Callable[[Any], Any]) -> Callable[[F], F]:
    """The view runs as written, documented as if flask-smorest's `decorators` wrapped
    it: the OpenAPI document is made from them, but no request goes through their
    layers. For the busiest routes, where webargs' parsing and a schema's dump of what
    already has the schema's shape took a third of a score read's time."""

    def decorate(view: F) -> F:
        shown: Any = view
        for decorator in reversed(decorators):
            shown = decorator(shown)
        view._apidoc = shown._apidoc  # type: ignore[attr-defined]
        return view

    return decorate


def query(schema: Schema) -> dict[str, Any]:
    """The query string loaded by `schema`, as flask-smorest's arguments would give it;
    422 with the field errors when it does not load."""
    if not request.args:
        return dict(_defaults(schema))
    try:
        loaded: dict[str, Any] = schema.load(request.args.to_dict(), unknown=EXCLUDE)
    except ValidationError as e:
        abort(422, exc=e, messages={"query": e.messages})
    return loaded


@cache
def _defaults(schema: Schema) -> dict[str, Any]:
    loaded: dict[str, Any] = schema.load({})
    return loaded


def as_json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def refused(status: int, reason: str, token: Token | None = None) -> None:
    log.warning(json.dumps({
        "event": "request_refused", "status": status, "reason": reason,
        "method": request.method, "path": request.path,
        "token": token.token_id if token else None, "remote": request.remote_addr,
    }))  # fmt: skip


def answer(ask: Callable[[], T]) -> T:
    """Ask; whatever refuses the query is answered as the error map says."""
    try:
        return ask()
    except Exception as e:
        if gone(e):
            raise  # a partition moved away: the app asks again at its new place
        raise problem(e, query=True) from None
