# flask-smorest's decorators carry no types; the views they wrap are typed.
# mypy: disallow-untyped-decorators=False
"""The routes of relying parties and of citizens: a party asks for decisions (each
recorded on the citizen's file), a citizen reads their own file and disputes what is
wrong in it. A party or citizen token is bound to its party or citizen: it never acts
for anyone else."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError

from ledger.domain.identity import parse_resident_id
from ledger.domain.records import REFERENCE_PATTERN
from ledger.errors import LedgerError
from projections.decisions.requests import request_decision
from projections.report import citizen_report
from scripts.service.access import (
    answer,
    as_json,
    authorize,
    documented,
    ledger_parts,
    query,
)
from scripts.service.disputes import dispute_record
from scripts.service.problems import Problem, problem
from scripts.service.schemas import (
    DecisionRequestSchema,
    DecisionSchema,
    DisputeRequestSchema,
    FileQuery,
    FileSchema,
    ReportSchema,
    problems,
)

DECISION_REQUEST = DecisionRequestSchema()
DISPUTE_REQUEST = DisputeRequestSchema()
FILE_QUERY = FileQuery()


def parties_blueprint() -> Blueprint:
    blp = Blueprint("parties", "parties", url_prefix="/v1", description="Relying parties "
                    "and citizens")  # fmt: skip

    @blp.route("/decisions", methods=["POST"])
    @documented(
        blp.arguments(DecisionRequestSchema()),
        blp.response(201, DecisionSchema),
        blp.alt_response(
            200,
            schema=DecisionSchema,
            description="Decided before, under the same Idempotency-Key",
            success=True,
        ),
        problems(blp, 400, 401, 403, 404, 409, 422),
    )
    def decisions() -> Any:
        """A decision about a citizen for a purpose the party is registered for, under
        the purpose's rule; recorded on the citizen's file before it is answered. Sent
        again with the same Idempotency-Key, the same decision is answered (200) and
        nothing new is recorded."""
        token = authorize("decide")
        asked = _body(DECISION_REQUEST)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not REFERENCE_PATTERN.fullmatch(key):
            raise Problem(422, "Unprocessable Content", "Idempotency-Key: must be 1 to 64 "
                          "characters of A-Z a-z 0-9 . _ : / -")  # fmt: skip
        ledger = answer(lambda: ledger_parts().of(asked["citizen"])).ledger
        made = answer(lambda: request_decision(
            ledger, str(token.party), asked["purpose"], asked["citizen"], asked["rule"],
            asked["as_of"], request=key,
        ))  # fmt: skip
        return as_json(made.to_json(), 200 if made.repeated else 201)

    @blp.route("/me/report")
    @documented(
        blp.arguments(FileQuery(), location="query"),
        blp.response(200, FileSchema),
        problems(blp, 401, 403, 404, 422),
    )
    def my_report() -> Any:
        """The bearer's own file: records and their sources, scores and their reasons,
        every inquiry and decision about them, and how to dispute what counts against
        them."""
        token = authorize("own_file")
        args = query(FILE_QUERY)
        ledger = answer(lambda: ledger_parts().of(str(token.citizen))).ledger
        return as_json(answer(lambda: citizen_report(ledger, str(token.citizen),
                                                     args["as_of"]).to_json()))  # fmt: skip

    @blp.route("/me/disputes", methods=["POST"])
    @documented(
        blp.arguments(DisputeRequestSchema()),
        blp.response(201, ReportSchema),
        problems(blp, 400, 401, 403, 409, 422),
    )
    def my_disputes() -> Any:
        """Dispute one of the bearer's own records: a record.disputed from the citizens'
        channel, dated today, validated as every record is."""
        token = authorize("own_file")
        asked = _body(DISPUTE_REQUEST)
        parts = ledger_parts()
        citizen = parse_resident_id(str(token.citizen)).value
        ledger = parts.of(citizen).ledger
        report = answer(lambda: dispute_record(ledger, parts.group_commit, citizen,
                                               asked["target"], asked["statement"]))  # fmt: skip
        if report.rejected:
            rejection = report.rejected[0]
            errors = [{"field": rejection.field, "error": rejection.error}]
            raise problem(LedgerError(rejection.error, rejection.field), errors)
        return as_json(report.to_json(), 201 if report.appended else 200)

    return blp


def _body(schema: Schema) -> dict[str, Any]:
    """The JSON body loaded by `schema`; 400 when it is no JSON object, 422 with the
    field errors when it does not load."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Problem(400, "Bad Request", "send a JSON object")
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as e:
        errors = [{"field": name, "errors": detail} for name, detail in e.messages_dict.items()]
        raise Problem(422, "Unprocessable Content", "the body does not load", errors) from None
    return loaded
