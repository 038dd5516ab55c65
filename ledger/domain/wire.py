"""The wire format: one JSON object per record, validated by marshmallow schemas.

`parse_record` turns one NDJSON line (or an already decoded object) into a `Record`
or raises `InvalidRecord` naming the first field in wire order that is wrong. Rules
that need the ledger's state or clock are not checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from ledger.domain import records as r
from ledger.domain.identity import ResidentId, parse_resident_id
from ledger.errors import InvalidRecord

_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

FIELD_ORDER = (
    "type", "citizen", "authority", "reference", "occurred_on",
    "kind", "amount", "credential", "target", "reason", "outcome",
)  # fmt: skip

Messages = dict[str, str | list[Any] | dict[Any, Any]]
_REQUIRED: Messages = {"required": "is required", "null": "must not be null"}


class ResidentIdField(fields.Field[ResidentId]):
    default_error_messages: Messages = _REQUIRED

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> ResidentId:
        try:
            return parse_resident_id(value)
        except InvalidRecord as e:
            raise ValidationError(e.message) from None


class IsoDate(fields.Field[date]):
    default_error_messages: Messages = _REQUIRED

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> date:
        if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
            raise ValidationError("must be an ISO date such as 2024-05-31")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"{value} is not a real date") from None


class Amount(fields.Field[Decimal]):
    """A decimal string, not negative, with at most two decimals."""

    default_error_messages: Messages = _REQUIRED

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> Decimal:
        if not isinstance(value, str):
            raise ValidationError('must be a decimal string such as "200.00"')
        if not _AMOUNT.fullmatch(value):
            raise ValidationError(f'"{value}" is not a decimal number')
        if value.startswith("-"):
            raise ValidationError("must not be negative")
        if "." in value and len(value.split(".", 1)[1]) > 2:
            raise ValidationError("must have at most 2 decimal places")
        if len(value) > 20:
            raise ValidationError("must have at most 20 characters")
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise ValidationError(f'"{value}" is not a decimal number') from None


# Control characters: no database stores NUL in text, and none of them belongs in a
# name; free text keeps tab and line breaks.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_PROSE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control(pattern: re.Pattern[str]) -> validate.Validator:
    def check(value: str) -> None:
        found = pattern.search(value)
        if found is not None:
            raise ValidationError(
                f"must not contain the control character U+{ord(found.group()):04X}"
            )

    return check  # type: ignore[return-value]


def _text(low: int, high: int, prose: bool = False) -> fields.String:
    return fields.String(
        required=True,
        validate=[
            validate.Length(min=low, max=high, error=f"must be {low} to {high} characters"),
            _no_control(_CONTROL_IN_PROSE if prose else _CONTROL),
        ],
        error_messages={**_REQUIRED, "invalid": "must be a string"},
    )


def _reference() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Regexp(
            r.REFERENCE_PATTERN,
            error="must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -",
        ),
        error_messages={**_REQUIRED, "invalid": "must be a string"},
    )


def _choice(choices: tuple[str, ...]) -> fields.String:
    return fields.String(
        required=True,
        validate=validate.OneOf(choices, error="must be one of " + ", ".join(choices)),
        error_messages={**_REQUIRED, "invalid": "must be a string"},
    )


class TargetSchema(Schema):
    """The record a record acts on, named by its (authority, reference)."""

    class Meta:
        unknown = RAISE

    error_messages = {  # noqa: RUF012 - marshmallow reads it from the class
        "type": "must be an object with authority and reference",
        "unknown": "is not a field of a target",
    }

    authority = _text(1, 64)
    reference = _reference()

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> r.RecordKey:
        return r.RecordKey(data["authority"], data["reference"])


class RecordSchema(Schema):
    """Fields every record has."""

    class Meta:
        unknown = RAISE

    type = fields.String(required=True, error_messages=_REQUIRED)
    citizen = ResidentIdField(required=True)
    authority = _text(1, 64)
    reference = _reference()
    occurred_on = IsoDate(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> r.Record:
        return r.Record(**data)


def _target() -> fields.Nested:
    return fields.Nested(
        TargetSchema,
        required=True,
        error_messages={**_REQUIRED, "type": "must be an object with authority and reference"},
    )


class EnrolledSchema(RecordSchema):
    pass


class InfractionSchema(RecordSchema):
    kind = _choice(r.INFRACTION_KINDS)
    amount = Amount()

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> r.Record:
        if data["kind"] in r.UNSETTLEABLE_KINDS:
            if "amount" in data:
                raise ValidationError(f"must be absent for {data['kind']}", "amount")
        elif "amount" not in data:
            raise ValidationError(f"is required for {data['kind']}", "amount")
        return r.Record(**data)


class SettledSchema(RecordSchema):
    target = _target()
    amount = Amount(required=True)


class PaymentSchema(RecordSchema):
    kind = _choice(r.PAYMENT_KINDS)
    amount = Amount(required=True)


class VerificationSchema(RecordSchema):
    kind = _choice(r.VERIFICATION_KINDS)
    credential = _text(1, 200, prose=True)


class RevokedSchema(RecordSchema):
    target = _target()
    reason = _text(1, 500, prose=True)


class DisputedSchema(RecordSchema):
    target = _target()
    reason = _text(1, 500, prose=True)


class ResolvedSchema(RecordSchema):
    target = _target()
    outcome = _choice(r.OUTCOMES)


class VacatedSchema(RecordSchema):
    target = _target()
    reason = _text(1, 500, prose=True)


class RepairedSchema(RecordSchema):
    target = _target()


SCHEMAS: dict[str, Schema] = {
    r.ENROLLED: EnrolledSchema(),
    r.INFRACTION: InfractionSchema(),
    r.SETTLED: SettledSchema(),
    r.PAYMENT: PaymentSchema(),
    r.VERIFICATION: VerificationSchema(),
    r.REVOKED: RevokedSchema(),
    r.DISPUTED: DisputedSchema(),
    r.RESOLVED: ResolvedSchema(),
    r.VACATED: VacatedSchema(),
    r.REPAIRED: RepairedSchema(),
}


def _first_error(messages: Mapping[str, Any], record_type: str) -> InvalidRecord:
    def order(name: str) -> tuple[int, str]:
        return (FIELD_ORDER.index(name) if name in FIELD_ORDER else len(FIELD_ORDER), name)

    name = min(messages, key=order)
    detail = messages[name]
    while isinstance(detail, Mapping):
        sub = min(detail, key=order)
        name, detail = (name if sub == "_schema" else f"{name}.{sub}"), detail[sub]
    message = detail[0] if isinstance(detail, list) else str(detail)
    if message == "Unknown field.":
        message = f"is not a field of {record_type} records"
    return InvalidRecord(message, name)


def parse_record(line: str | bytes | Mapping[str, Any]) -> r.Record:
    """Validate one wire record; raise `InvalidRecord` with the field and a plain message."""
    if isinstance(line, Mapping):
        data: Any = line
    else:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise InvalidRecord(f"not valid JSON ({e})", "record") from None
    if not isinstance(data, Mapping):
        raise InvalidRecord("must be a JSON object", "record")
    record_type = data.get("type")
    if record_type is None:
        raise InvalidRecord("is required", "type")
    if not isinstance(record_type, str) or record_type not in SCHEMAS:
        raise InvalidRecord("must be one of " + ", ".join(r.RECORD_TYPES), "type")
    try:
        record: r.Record = SCHEMAS[record_type].load(data)
    except ValidationError as e:
        messages = e.messages if isinstance(e.messages, Mapping) else {"record": e.messages}
        raise _first_error(messages, record_type) from None
    return record
