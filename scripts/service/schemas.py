"""The service's request and response schemas, from which its OpenAPI document is made.

Marshmallow schemas only: no rules of the ledger live here.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any, TypeVar

from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields, validate

from scripts.service.problems import PROBLEM

F = TypeVar("F", bound=Callable[..., Any])


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


class PartitionQuery(Schema):
    # Which log of a partitioned ledger; a ledger of one log takes none.
    partition = fields.Integer(load_default=None, validate=validate.Range(min=0))


class SizeQuery(PartitionQuery):
    size = fields.Integer(load_default=None, validate=validate.Range(min=1))


class ConsistencyQuery(PartitionQuery):
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
    # None for a partitioned ledger's top checkpoint, which is kept without a time.
    created_at = fields.String(allow_none=True)
    note = fields.String()
    # A top checkpoint's leaves: the bodies of the logs' checkpoints it signs.
    leaves = fields.List(fields.String())
    partition = fields.Integer()


class TopLinkSchema(Schema):
    """A partition's checkpoint as a leaf of the signed top checkpoint."""

    partition = fields.Integer()
    note = fields.String()
    leaf = fields.String()
    index = fields.Integer()
    proof = fields.List(fields.String())


class InclusionSchema(Schema):
    position = fields.Integer()
    index = fields.Integer()
    size = fields.Integer()
    leaf_hash = fields.String()
    proof = fields.List(fields.String())
    root = fields.String()
    partition = fields.Integer()
    # On a partitioned ledger, when a top checkpoint covers the partition at `size`.
    top = fields.Nested(TopLinkSchema, allow_none=True)


class ConsistencySchema(Schema):
    size1 = fields.Integer()
    size2 = fields.Integer()
    root1 = fields.String()
    root2 = fields.String()
    proof = fields.List(fields.String())


class HealthSchema(Schema):
    status = fields.String()
    lag = fields.Dict(keys=fields.String(), values=fields.Integer())


class PartyScoreQuery(ScoreQuery):
    purpose = fields.String(load_default=None)


class DecisionRequestSchema(Schema):
    citizen = fields.String(required=True)
    purpose = fields.String(required=True)
    rule = fields.String(load_default=None)
    as_of = fields.Date(load_default=None)


class ReasonSchema(ItemSchema):
    words = fields.String()


class NoticeSchema(Schema):
    outcome = fields.String()
    reasons = fields.List(fields.String())
    sources = fields.List(fields.String())
    rights = fields.List(fields.String())


class DecisionSchema(Schema):
    citizen = fields.String(required=True)
    party = fields.String(required=True)
    read_up_to = fields.Integer(required=True)
    position = fields.Integer(allow_none=True)
    recorded_at = fields.String(allow_none=True)
    outcome = fields.String(required=True)
    as_of = fields.String()
    rule = fields.String()
    rule_version = fields.Integer()
    purpose = fields.String()
    policy = fields.String()
    policy_version = fields.Integer()
    score = fields.Integer()
    band = fields.String()
    approve_from = fields.Integer()
    refer_from = fields.Integer()
    conditions_unmet = fields.List(fields.String())
    reasons = fields.List(fields.Nested(ReasonSchema))
    notice = fields.Nested(NoticeSchema, allow_none=True)


class FileSchema(Schema):
    citizen = fields.String(required=True)
    as_of = fields.String(required=True)
    read_up_to = fields.Integer(required=True)
    records = fields.List(fields.Dict())
    scores = fields.List(fields.Dict())
    inquiries_and_decisions = fields.List(fields.Dict())
    against = fields.List(fields.Dict())


class FileQuery(Schema):
    as_of = fields.Date(load_default=None)


class TargetSchema(Schema):
    authority = fields.String(required=True)
    reference = fields.String(required=True)


class DisputeRequestSchema(Schema):
    target = fields.Nested(TargetSchema, required=True)
    statement = fields.String(required=True, validate=validate.Length(min=1, max=500))
