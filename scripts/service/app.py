# flask-smorest's decorators carry no types; the views they wrap are typed.
# mypy: disallow-untyped-decorators=False
"""The HTTP service: authorities append, readers read, auditors audit.

A WSGI application on Flask and flask-smorest: request and response schemas are
marshmallow schemas and the OpenAPI document is generated from them. It holds no
rules of its own; every answer comes from the ledger or its projections, and every
error is `application/problem+json` (RFC 9457).

The ledger and its views are opened in the background and opened again after the
database was lost, so the service starts, and answers 503, while the database is away.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import closing, suppress
from typing import Any, cast

import orjson
from flask import Flask, Response, current_app, request, send_from_directory
from flask.json.provider import JSONProvider
from flask_smorest import Blueprint
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException

from ledger.application import AppendReport, Ledger, Rejection
from ledger.bulk import append_feed
from ledger.errors import DatabaseUnavailable
from ledger.partitioned import PartitionedLedger
from ledger.partitioned.checkpoints import partition_inclusion, top_checkpoints, top_of
from ledger.partitioned.ledger import gone
from ledger.transparency.audit import Log
from ledger.transparency.checkpoint import load_verifier
from projections.bundle import make_bundle
from projections.decisions.requests import request_score
from projections.queries import merged
from scripts.errors import rejected_as
from scripts.service.access import (
    answer,
    as_json,
    authorize,
    documented,
    dumps,
    ledger_parts,
    log_of,
    query,
    refused,
    requires,
)
from scripts.service.console import console_blueprint
from scripts.service.parties import parties_blueprint
from scripts.service.problems import UNAVAILABLE, Problem, problem, unavailable
from scripts.service.resources import READY_OPEN_WAIT, Opener, Probe
from scripts.service.schemas import (
    BundleSchema,
    CheckpointSchema,
    ConsistencyQuery,
    ConsistencySchema,
    EnforcementPageSchema,
    ExplanationSchema,
    HealthSchema,
    HistoryEntrySchema,
    InclusionSchema,
    KnownAtQuery,
    LedgerApi,
    PageQuery,
    PartitionQuery,
    PartyScoreQuery,
    ReportSchema,
    ScoreQuery,
    ScoreSchema,
    SizeQuery,
    problems,
)
from scripts.tokens import Token

MAX_BODY = 256 * 1024 * 1024
# Seconds a request waits for the shard map to say where a moved partition went.
MOVE_WAIT = 5.0
# How long create_app waits for the database before serving 503 until it answers.
STARTUP_WAIT = 10.0
# Bytes read at a time from an NDJSON body.
BUFFER = 1024 * 1024
SCORE_QUERY = ScoreQuery()
# What /readyz answers 503 for: the ledger still opening, or its database away.
_NOT_READY: tuple[type[BaseException], ...] = (FutureTimeout, *UNAVAILABLE)
SWAGGER_ASSETS = "/docs/assets"
PARTY_SCORE_QUERY = PartyScoreQuery()


def create_app(
    url: str, clock: Any = None, max_body: int = MAX_BODY, public_key: str | None = None
) -> Flask:
    """The WSGI application over the ledger at `url`. `public_key` (by default
    LEDGER_PUBLIC_KEY: the verifier key, or a file holding it) is what the console's
    pages check the log's checkpoints against."""
    app = LedgerFlask("ledger")
    app.json = OrjsonProvider(app)
    app.config.update(
        API_TITLE="Social credit ledger",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Swagger UI's files come with the package (swagger-ui-bundle), never from a
        # CDN: a ledger runs on networks without access to the internet.
        OPENAPI_SWAGGER_UI_URL=f"{SWAGGER_ASSETS}/",
        MAX_CONTENT_LENGTH=max_body,
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    )
    opener = Opener(url, clock)
    app.extensions["ledger"] = opener
    app.extensions["readyz"] = Probe()
    app.extensions["feed"] = (url, clock)
    api = LedgerApi(app)
    api.register_blueprint(_blueprint())
    api.register_blueprint(_health())
    api.register_blueprint(parties_blueprint())
    app.register_blueprint(console_blueprint())
    key = public_key or os.environ.get("LEDGER_PUBLIC_KEY")
    app.extensions["verifier"] = load_verifier(key).vkey() if key else None

    @app.route(f"{SWAGGER_ASSETS}/<path:name>")
    def swagger_assets(name: str) -> Response:
        """Swagger UI's scripts and styles, for /docs."""
        return send_from_directory(swagger_ui_path, name, max_age=86_400)

    @app.errorhandler(Problem)
    def answered(error: Problem) -> Response:
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

    @app.errorhandler(Exception)
    def other_error(error: Exception) -> Response:
        return problem(error).response()

    with suppress(DatabaseUnavailable):
        opener.get(wait=STARTUP_WAIT)
    return app


class LedgerFlask(Flask):
    """Flask, with requests that meet a partition moved away from its shard meanwhile
    (its schema gone there): a read is asked again at the partition's new place; any
    other request is answered 503, to be sent again, since part of it may be done."""

    def dispatch_request(self) -> Any:
        try:
            return super().dispatch_request()
        except Exception as error:
            partitions = ledger_parts().partitions if gone(error) else None
            if partitions is None:
                raise
            if not partitions.relocated(MOVE_WAIT):
                raise Problem(503, "Service Unavailable", "a partition is moving to another "
                              "shard; send the request again") from None  # fmt: skip
            if request.method not in ("GET", "HEAD"):
                moved = "the partition moved to another shard while the request was served"
                raise Problem(503, "Service Unavailable", f"{moved}; send it again") from None
            return super().dispatch_request()


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson, which writes it several times faster; what orjson
    leaves to it (dates, decimals, dataclasses) comes out as Flask writes it."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = dumps(self._prepare_response_obj(args, kwargs))
        return Response(body, mimetype="application/json")


def close_app(app: Flask) -> None:
    """Stop the writer thread and close the ledger and views the app opened."""
    app.extensions["ledger"].close()


def wsgi(url: str, max_body: int = MAX_BODY) -> Flask:
    """The application a WSGI server serves for the ledger at `url`."""
    return create_app(url, max_body=max_body)


def _blueprint() -> Blueprint:
    blp = Blueprint("v1", "v1", url_prefix="/v1", description="The ledger's API")

    _busiest(blp)

    @blp.route("/citizens/<citizen>/explanation")
    @blp.arguments(ScoreQuery(), location="query")
    @blp.response(200, ExplanationSchema)
    @problems(blp, 401, 403, 404, 503)
    @requires("audit")
    def citizen_explanation(args: dict[str, Any], citizen: str) -> Any:
        """Ranked reasons and every counting contribution."""
        scores = answer(lambda: ledger_parts().of(citizen)).scores

        def explained() -> dict[str, Any]:
            answer, explanation = scores.explain(citizen, **args)
            return {**answer.to_json(), **explanation.to_json()}

        return answer(explained)

    @blp.route("/citizens/<citizen>/history")
    @blp.arguments(KnownAtQuery(), location="query")
    @blp.response(200, HistoryEntrySchema(many=True))
    @blp.paginate(page_size=1000, max_page_size=10_000)
    @problems(blp, 401, 403, 404)
    @requires("audit")
    def citizen_history(args: dict[str, Any], citizen: str, pagination_parameters: Any) -> Any:
        """The citizen's records in the order received, a page at a time (X-Pagination)."""
        ledger = answer(lambda: ledger_parts().of(citizen)).ledger
        entries = answer(lambda: ledger.history(citizen, args["known_at"]))
        pagination_parameters.item_count = len(entries)
        first = pagination_parameters.first_item
        return [e.to_json() for e in entries[first : first + pagination_parameters.page_size]]

    @blp.route("/citizens/<citizen>/bundle")
    @blp.arguments(ScoreQuery(), location="query")
    @blp.response(200, BundleSchema)
    @problems(blp, 401, 403, 404, 409, 503)
    @requires("audit")
    def citizen_bundle(args: dict[str, Any], citizen: str) -> Any:
        """An audit bundle to check offline with `ledger verify-bundle`."""
        parts = ledger_parts()
        scores = answer(lambda: parts.of(citizen)).scores
        top = None if parts.partitions is None else top_of(parts.partitions.routed, citizen)
        return answer(lambda: make_bundle(scores, citizen, **args, top=top))

    @blp.route("/lists/enforcement")
    @blp.arguments(PageQuery(), location="query")
    @blp.response(200, EnforcementPageSchema)
    @problems(blp, 401, 403)
    @requires("read")
    def enforcement(args: dict[str, Any]) -> Any:
        """The defaulter list on a day, a page at a time."""
        parts = ledger_parts()
        day = args["as_of"] or parts.ledger.today()
        listed = answer(lambda: merged(each.scores.enforcement(day) for each in parts.every()))
        start = (args["page"] - 1) * args["per_page"]
        return {
            "as_of": day.isoformat(), "page": args["page"], "per_page": args["per_page"],
            "total": len(listed),
            "items": [x.to_json() for x in listed[start : start + args["per_page"]]],
        }  # fmt: skip

    @blp.route("/checkpoints/latest")
    @blp.arguments(PartitionQuery(), location="query")
    @blp.response(200, CheckpointSchema)
    @problems(blp, 401, 403, 404, 422)
    @requires("audit")
    def latest_checkpoint(args: dict[str, Any]) -> Any:
        """The latest signed checkpoint: of the log, or of a partitioned ledger's
        partition (`partition`); without one, a partitioned ledger's latest top
        checkpoint, which signs every log's checkpoint (its leaves)."""
        partitions = ledger_parts().partitions
        if partitions is not None and args["partition"] is None:
            routed = partitions.routed
            tops = answer(lambda: top_checkpoints(routed))
            if not tops:
                raise Problem(404, "Not Found", "no checkpoint has been signed yet")
            return {"size": len(tops[-1].leaves), "created_at": None, "note": tops[-1].note,
                    "leaves": list(tops[-1].leaves)}  # fmt: skip
        log = Log(log_of(args["partition"]))
        kept = answer(log.store.checkpoints)
        if not kept:
            raise Problem(404, "Not Found", "no checkpoint has been signed yet")
        size, note, created_at = kept[-1]
        shown = {"size": size, "created_at": created_at, "note": note}
        return shown if args["partition"] is None else {**shown, "partition": args["partition"]}

    @blp.route("/proofs/inclusion/<int:position>")
    @blp.arguments(SizeQuery(), location="query")
    @blp.response(200, InclusionSchema)
    @problems(blp, 401, 403, 422)
    @requires("audit")
    def inclusion(args: dict[str, Any], position: int) -> Any:
        """An inclusion proof for the event at a position (of partition `partition` on a
        partitioned ledger, where it comes with its link to the top checkpoint: by
        default, at the size that checkpoint signs)."""
        partition, size = args["partition"], args["size"]
        ledger = log_of(partition)
        routed = ledger_parts().partitions
        if routed is None or partition is None:
            return answer(lambda: Log(ledger).inclusion(position, size).to_json())
        return answer(lambda: partition_inclusion(routed.routed, partition, position, size))

    @blp.route("/proofs/consistency")
    @blp.arguments(ConsistencyQuery(), location="query")
    @blp.response(200, ConsistencySchema)
    @problems(blp, 401, 403, 422)
    @requires("audit")
    def consistency(args: dict[str, Any]) -> Any:
        """A consistency proof between two tree sizes (of partition `partition`'s log on
        a partitioned ledger)."""
        ledger = log_of(args["partition"])
        return answer(lambda: Log(ledger).consistency(args["from_"], args["to"]).to_json())

    return blp


def _busiest(blp: Blueprint) -> None:
    """The routes authorities and lenders call most: appends and score reads."""

    @blp.route("/records", methods=["POST"])
    @documented(
        blp.response(200, ReportSchema),
        blp.alt_response(201, schema=ReportSchema, description="Appended", success=True),
        problems(blp, 400, 401, 403, 409, 413, 422),
    )
    def append_records() -> Any:
        """Append one record, a JSON array of records, or NDJSON."""
        token = authorize("append")
        if request.mimetype == "application/x-ndjson":
            return _stream_ndjson(token)
        records, single = _records()
        authority = token.authority
        for number, record in enumerate(records, start=1):
            if isinstance(record, dict) and record.get("authority") != authority:
                refused(403, "record of another authority", token)
                detail = f"record {number}: this token appends only for {authority}"
                raise Problem(403, "Forbidden", detail)
        report = ledger_parts().group_commit.append(records)
        return _report_response(report, single)

    @blp.route("/citizens/<citizen>/score")
    @documented(
        blp.arguments(PartyScoreQuery(), location="query"),
        blp.response(200, ScoreSchema),
        problems(blp, 401, 403, 404, 409, 422, 503),
    )
    def citizen_score(citizen: str) -> Any:
        """The citizen's score and band. A relying party names the purpose of its read
        (`purpose`), which it must be registered for; the score is then under a policy
        proportionate to that purpose, and the read is recorded on the citizen's file."""
        token = authorize("read", "inquire")
        if token.party is not None:
            return _party_score(token, citizen)
        args = query(SCORE_QUERY)
        scores = answer(lambda: ledger_parts().of(citizen)).scores
        return as_json(answer(lambda: scores.score(citizen, **args).to_json()))


def _party_score(token: Token, citizen: str) -> Any:
    args = query(PARTY_SCORE_QUERY)
    if args["purpose"] is None:
        refused(403, "a party's read without a purpose", token)
        raise Problem(403, "Forbidden", "a relying party names the purpose of its read: "
                      "?purpose=...")  # fmt: skip
    if args["known_at"] is not None:
        raise Problem(422, "Unprocessable Content", "a relying party reads the file as it "
                      "stands now; known_at is for auditors")  # fmt: skip
    ledger, party = answer(lambda: ledger_parts().of(citizen)).ledger, str(token.party)
    return as_json(
        answer(
            lambda: request_score(
                ledger, party, args["purpose"], citizen, args["policy"], args["as_of"]
            ).to_json()
        )
    )


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
        try:
            parts = current_app.extensions["ledger"].get(wait=READY_OPEN_WAIT)
            lag = current_app.extensions["readyz"].lag(parts)
        except _NOT_READY:
            raise unavailable() from None
        return {"status": "ready", "lag": lag}

    return blp


def _stream_ndjson(token: Token) -> Any:
    """Append NDJSON as it arrives, as `ledger append` does (batches; writer processes
    for a long feed): a line for another authority than the token's is rejected alone,
    the rest still go in."""
    refused: list[Rejection] = []

    def lines() -> Iterator[tuple[int, bytes]]:
        # Buffered: werkzeug's length-limited stream alone gives a line a byte at a
        # time, which cost NDJSON over HTTP more than half its time.
        body = io.BufferedReader(cast("io.RawIOBase", request.stream), BUFFER)
        for number, line in enumerate(body, start=1):
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
    routed = ledger_parts().partitions
    if routed is None:
        report = append_feed(url, lines(), clock=clock)
    else:
        # Its own ledgers: the partitions' are shared by the threads that read them.
        with closing(PartitionedLedger(Ledger(url, clock=clock), clock)) as partitioned:
            report = partitioned.append_feed(lines())
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


def _report_response(report: AppendReport, single: bool) -> Response:
    if single and report.rejected:
        rejection = report.rejected[0]
        errors = [{"line": 1, "field": rejection.field, "error": rejection.error}]
        refusal = rejected_as(rejection.field, rejection.error)
        raise problem(refusal(rejection.error, rejection.field), errors)
    return as_json(report.to_json(), 201 if report.appended else 200)
