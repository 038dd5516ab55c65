"""The HTTP service: authorities append, readers read, auditors audit.

A WSGI application on Flask and flask-smorest: request and response schemas are
marshmallow schemas and the OpenAPI document is generated from them. It holds no
rules of its own; every answer comes from the ledger or its projections, and every
error is `application/problem+json` (RFC 9457).
"""

from __future__ import annotations

import http
import json
import logging
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar

import orjson
from flask import Flask, Response, current_app, g, request
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields, validate
from werkzeug.exceptions import HTTPException

from ledger.application import AppendReport, Ledger, Rejection
from ledger.audit import Log
from ledger.bulk import append_feed
from ledger.errors import LedgerError, UnknownCitizen
from projections.bundle import BundleError, make_bundle
from projections.policy import PolicyError
from projections.queries import NotProjected, Scores
from projections.store import ViewStore
from scripts.group_commit import GroupCommit
from scripts.tokens import Token, TokenError, TokenStore

F = TypeVar("F", bound=Callable[..., Any])

PROBLEM = "application/problem+json"
MAX_BODY = 256 * 1024 * 1024
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
        return Response(json.dumps(body), status=self.status, mimetype=PROBLEM)


# Schemas


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.List(fields.Dict())


class LedgerApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, documenting every error as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def problems(blp: Blueprint, *codes: int) -> Callable[[F], F]:
    """Document the problem responses a view may give."""

    def decorate(view: F) -> F:
        for code in codes:
            view = blp.alt_response(code, http.HTTPStatus(code).name)(view)
        return view

    return decorate


class HistoryEntrySchema(Schema):
    position = fields.Integer()
    recorded_at = fields.String()
    type = fields.String()
    citizen = fields.String()
    authority = fields.String()
    reference = fields.String()
    occurred_on = fields.String()
    kind = fields.String()
    amount = fields.String()
    credential = fields.String()
    reason = fields.String()
    outcome = fields.String()
    target = fields.Dict()


class BundleSchema(Schema):
    format = fields.String()
    citizen = fields.String()
    policy = fields.String()
    policy_version = fields.Integer()
    as_of = fields.String()
    known_at = fields.String(allow_none=True)
    checkpoint = fields.String()
    events = fields.List(fields.Dict())
    score = fields.Dict()
    explanation = fields.Dict()


class ScoreQuery(Schema):
    policy = fields.String(load_default=None)
    as_of = fields.Date(load_default=None)
    known_at = fields.AwareDateTime(load_default=None, default_timezone=None)


class KnownAtQuery(Schema):
    known_at = fields.AwareDateTime(load_default=None)


class PageQuery(Schema):
    as_of = fields.Date(load_default=None)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class SizeQuery(Schema):
    size = fields.Integer(load_default=None, validate=validate.Range(min=1))


class ConsistencyQuery(Schema):
    from_ = fields.Integer(required=True, data_key="from", validate=validate.Range(min=1))
    to = fields.Integer(load_default=None, validate=validate.Range(min=1))


class ScoreSchema(Schema):
    citizen = fields.String(required=True)
    policy = fields.String(required=True)
    as_of = fields.String(required=True)
    known_at = fields.String(allow_none=True)
    score = fields.Integer(required=True)
    band = fields.String(required=True)
    position = fields.Integer(required=True)


class ItemSchema(Schema):
    authority = fields.String()
    reference = fields.String()
    kind = fields.String()
    points = fields.Integer()
    rule = fields.String()
    status = fields.String()
    counts_from = fields.String()
    counts_until = fields.String(allow_none=True)
    remedy = fields.String(allow_none=True)


class ExplanationSchema(ScoreSchema):
    policy_version = fields.Integer()
    reasons = fields.List(fields.Nested(ItemSchema))
    contributions = fields.List(fields.Nested(ItemSchema))
    expired = fields.Integer()
    disputed = fields.List(fields.Dict())


class RejectionSchema(Schema):
    line = fields.Integer()
    field = fields.String()
    error = fields.String()


class PositionSchema(Schema):
    line = fields.Integer()
    position = fields.Integer()


class ReportSchema(Schema):
    appended = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    rejected = fields.List(fields.Nested(RejectionSchema), required=True)
    positions = fields.List(fields.Nested(PositionSchema))
    duplicate_of = fields.List(fields.Nested(PositionSchema))


class ListingSchema(Schema):
    citizen = fields.String()
    authority = fields.String()
    reference = fields.String()
    listed_on = fields.String()
    until = fields.String(allow_none=True)


class EnforcementPageSchema(Schema):
    as_of = fields.String()
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    items = fields.List(fields.Nested(ListingSchema))


class CheckpointSchema(Schema):
    size = fields.Integer()
    created_at = fields.String()
    note = fields.String()


class InclusionSchema(Schema):
    position = fields.Integer()
    index = fields.Integer()
    size = fields.Integer()
    leaf_hash = fields.String()
    proof = fields.List(fields.String())
    root = fields.String()


class ConsistencySchema(Schema):
    size1 = fields.Integer()
    size2 = fields.Integer()
    root1 = fields.String()
    root2 = fields.String()
    proof = fields.List(fields.String())


class HealthSchema(Schema):
    status = fields.String()
    lag = fields.Dict(keys=fields.String(), values=fields.Integer())


# The application


def create_app(url: str, clock: Any = None, max_body: int = MAX_BODY) -> Flask:
    """The WSGI application over the ledger at `url`."""
    app = Flask("ledger")
    app.config.update(
        API_TITLE="Social credit ledger",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        MAX_CONTENT_LENGTH=max_body,
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    )
    ledger = Ledger(url, clock=clock)
    views = ViewStore(url)
    app.extensions["ledger"] = (ledger, views, Scores(ledger, views), TokenStore(views))
    app.extensions["group_commit"] = GroupCommit(ledger)
    app.extensions["feed"] = (url, clock)
    api = LedgerApi(app)
    api.register_blueprint(_blueprint())
    api.register_blueprint(_health())

    @app.errorhandler(Problem)
    def problem(error: Problem) -> Response:
        return error.response()

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        messages = getattr(error, "data", {}).get("messages") if hasattr(error, "data") else None
        errors = [
            {"field": name, "errors": detail}
            for where in (messages or {}).values() for name, detail in where.items()
        ]  # fmt: skip
        status = error.code or 500
        return Problem(status, error.name, error.description or error.name, errors).response()

    return app


def close_app(app: Flask) -> None:
    """Stop the writer thread and close the ledger and views the app opened."""
    app.extensions["group_commit"].close()
    ledger, views, _, _ = app.extensions["ledger"]
    views.close()
    ledger.close()


def wsgi(url: str, max_body: int = MAX_BODY) -> Flask:
    """The application gunicorn serves: `scripts.service:wsgi(url='...', max_body=N)`."""
    return create_app(url, max_body=max_body)


def _parts() -> tuple[Ledger, ViewStore, Scores, TokenStore]:
    parts: tuple[Ledger, ViewStore, Scores, TokenStore] = current_app.extensions["ledger"]
    return parts


def requires(capability: str) -> Callable[[F], F]:
    """Only bearers whose role grants `capability`; 401 without a token, 403 otherwise."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            ledger, _, _, tokens = _parts()
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                _refused(401, "no bearer token")
                raise Problem(401, "Unauthorized", "send Authorization: Bearer TOKEN")
            try:
                token = tokens.check(header.removeprefix("Bearer ").strip(), ledger.today())
            except TokenError as e:
                _refused(401, e.message)
                raise Problem(401, "Unauthorized", f"the token {e.message}") from None
            if not token.may(capability):
                _refused(403, f"role {token.role} may not {capability}", token)
                raise Problem(403, "Forbidden", f"a {token.role} token may not {capability}")
            g.token = token
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def _refused(status: int, reason: str, token: Token | None = None) -> None:
    log.warning(json.dumps({
        "event": "request_refused", "status": status, "reason": reason,
        "method": request.method, "path": request.path,
        "token": token.token_id if token else None, "remote": request.remote_addr,
    }))  # fmt: skip


def _blueprint() -> Blueprint:
    blp = Blueprint("v1", "v1", url_prefix="/v1", description="The ledger's API")

    @blp.route("/records", methods=["POST"])
    @blp.response(200, ReportSchema)
    @blp.alt_response(201, schema=ReportSchema, description="Appended", success=True)
    @problems(blp, 400, 401, 403, 409, 413, 422)
    @requires("append")
    def append_records() -> Any:
        """Append one record, a JSON array of records, or NDJSON."""
        if request.mimetype == "application/x-ndjson":
            return _stream_ndjson(g.token)
        records, single = _records()
        authority = g.token.authority
        for number, record in enumerate(records, start=1):
            if isinstance(record, dict) and record.get("authority") != authority:
                _refused(403, "record of another authority", g.token)
                detail = f"record {number}: this token appends only for {authority}"
                raise Problem(403, "Forbidden", detail)
        report = current_app.extensions["group_commit"].append(records)
        return _report_response(report, single)

    @blp.route("/citizens/<citizen>/score")
    @blp.arguments(ScoreQuery, location="query")
    @blp.response(200, ScoreSchema)
    @problems(blp, 401, 403, 404, 503)
    @requires("read")
    def citizen_score(args: dict[str, Any], citizen: str) -> Any:
        """The citizen's score and band."""
        _, _, scores, _ = _parts()
        return _answer(lambda: scores.score(citizen, **args).to_json())

    @blp.route("/citizens/<citizen>/explanation")
    @blp.arguments(ScoreQuery, location="query")
    @blp.response(200, ExplanationSchema)
    @problems(blp, 401, 403, 404, 503)
    @requires("audit")
    def citizen_explanation(args: dict[str, Any], citizen: str) -> Any:
        """Ranked reasons and every counting contribution."""
        _, _, scores, _ = _parts()

        def explained() -> dict[str, Any]:
            answer, explanation = scores.explain(citizen, **args)
            return {**answer.to_json(), **explanation.to_json()}

        return _answer(explained)

    @blp.route("/citizens/<citizen>/history")
    @blp.arguments(KnownAtQuery, location="query")
    @blp.response(200, HistoryEntrySchema(many=True))
    @blp.paginate(page_size=1000, max_page_size=10_000)
    @problems(blp, 401, 403, 404)
    @requires("audit")
    def citizen_history(args: dict[str, Any], citizen: str, pagination_parameters: Any) -> Any:
        """The citizen's records in the order received, a page at a time (X-Pagination)."""
        ledger, *_ = _parts()
        entries = _answer(lambda: ledger.history(citizen, args["known_at"]))
        pagination_parameters.item_count = len(entries)
        first = pagination_parameters.first_item
        return [e.to_json() for e in entries[first : first + pagination_parameters.page_size]]

    @blp.route("/citizens/<citizen>/bundle")
    @blp.arguments(ScoreQuery, location="query")
    @blp.response(200, BundleSchema)
    @problems(blp, 401, 403, 404, 409, 503)
    @requires("audit")
    def citizen_bundle(args: dict[str, Any], citizen: str) -> Any:
        """An audit bundle to check offline with `ledger verify-bundle`."""
        _, _, scores, _ = _parts()
        return _answer(lambda: make_bundle(scores, citizen, **args))

    @blp.route("/lists/enforcement")
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, EnforcementPageSchema)
    @problems(blp, 401, 403)
    @requires("read")
    def enforcement(args: dict[str, Any]) -> Any:
        """The defaulter list on a day, a page at a time."""
        ledger, _, scores, _ = _parts()
        day = args["as_of"] or ledger.today()
        listed = _answer(lambda: scores.enforcement(day))
        start = (args["page"] - 1) * args["per_page"]
        return {
            "as_of": day.isoformat(), "page": args["page"], "per_page": args["per_page"],
            "total": len(listed),
            "items": [x.to_json() for x in listed[start : start + args["per_page"]]],
        }  # fmt: skip

    @blp.route("/checkpoints/latest")
    @blp.response(200, CheckpointSchema)
    @problems(blp, 401, 403, 404)
    @requires("audit")
    def latest_checkpoint() -> Any:
        """The latest signed checkpoint."""
        ledger, *_ = _parts()
        kept = Log(ledger).store.checkpoints()
        if not kept:
            raise Problem(404, "Not Found", "no checkpoint has been signed yet")
        size, note, created_at = kept[-1]
        return {"size": size, "created_at": created_at, "note": note}

    @blp.route("/proofs/inclusion/<int:position>")
    @blp.arguments(SizeQuery, location="query")
    @blp.response(200, InclusionSchema)
    @problems(blp, 401, 403)
    @requires("audit")
    def inclusion(args: dict[str, Any], position: int) -> Any:
        """An inclusion proof for the event at a position."""
        ledger, *_ = _parts()
        return _answer(lambda: Log(ledger).inclusion(position, args["size"]).to_json())

    @blp.route("/proofs/consistency")
    @blp.arguments(ConsistencyQuery, location="query")
    @blp.response(200, ConsistencySchema)
    @problems(blp, 401, 403)
    @requires("audit")
    def consistency(args: dict[str, Any]) -> Any:
        """A consistency proof between two tree sizes."""
        ledger, *_ = _parts()
        return _answer(lambda: Log(ledger).consistency(args["from_"], args["to"]).to_json())

    return blp


def _health() -> Blueprint:
    blp = Blueprint("health", "health", description="Liveness and readiness")

    @blp.route("/healthz")
    @blp.response(200, HealthSchema)
    def healthz() -> Any:
        """The process is up."""
        return {"status": "ok", "lag": {}}

    @blp.route("/readyz")
    @blp.response(200, HealthSchema)
    @problems(blp, 503)
    def readyz() -> Any:
        """The database answers; how far each policy's projection lags the log."""
        ledger, views, scores, _ = _parts()
        try:
            head = ledger.max_position()
            positions = views.positions()
        except Exception as e:  # noqa: BLE001 - any failure to reach the database
            detail = f"the database does not answer: {e}"
            raise Problem(503, "Service Unavailable", detail) from None
        return {
            "status": "ready",
            "lag": {p.name: head - positions.get(f"scores:{p.name}", 0)
                    for p in scores.all_policies()},
        }  # fmt: skip

    return blp


def _stream_ndjson(token: Token) -> Any:
    """Append NDJSON as it arrives, as `ledger append` does (batches; writer processes
    for a long feed): a line for another authority than the token's is rejected alone,
    the rest still go in."""
    refused: list[Rejection] = []

    def lines() -> Iterator[tuple[int, bytes]]:
        for number, line in enumerate(request.stream, start=1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield number, line  # the ledger rejects it with its reason
                continue
            if isinstance(data, dict) and data.get("authority") != token.authority:
                error = f"this token appends only for {token.authority}"
                refused.append(Rejection(number, "authority", error))
                continue
            yield number, line

    url, clock = current_app.extensions["feed"]
    report = append_feed(url, lines(), clock=clock)
    report.rejected = sorted([*report.rejected, *refused], key=lambda r: r.line)
    return _report_response(report, single=False)


def _records() -> tuple[list[Any], bool]:
    body = request.get_data()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise Problem(400, "Bad Request", f"the body is not valid JSON ({e})") from None
    if isinstance(data, list):
        return data, False
    if isinstance(data, dict):
        return [data], True
    raise Problem(400, "Bad Request", "send a record, an array of records, or NDJSON")


def _report_response(report: AppendReport, single: bool) -> Any:
    body = report.to_json()
    if not single:
        return body, 201 if report.appended else 200
    if report.rejected:
        rejection = report.rejected[0]
        errors = [{"line": 1, "field": rejection.field, "error": rejection.error}]
        if rejection.field == "reference" and "already names" in rejection.error:
            raise Problem(409, "Conflict", rejection.error, errors)
        raise Problem(422, "Unprocessable Content", f"{rejection.field}: {rejection.error}",
                      errors)  # fmt: skip
    return body, 201 if report.appended else 200


T = TypeVar("T")


def _answer(ask: Callable[[], T]) -> T:
    try:
        return ask()
    except UnknownCitizen as e:
        raise Problem(404, "Not Found", e.message) from None
    except NotProjected as e:
        raise Problem(503, "Service Unavailable", e.message) from None
    except (PolicyError, ValueError) as e:
        raise Problem(422, "Unprocessable Content", str(e)) from None
    except BundleError as e:
        raise Problem(409, "Conflict", e.message) from None
    except LedgerError as e:
        raise Problem(422, "Unprocessable Content", str(e),
                      [{"field": e.field, "error": e.message}]) from None  # fmt: skip
