"""The wire format: one JSON object per record, validated by marshmallow schemas.

`parse_record` turns one NDJSON line (or an already decoded object) into a `Record`
or raises `InvalidRecord` naming the first field in wire order that is wrong. Rules
that need the ledger's state or clock are not checked here.

The schemas are the contract. A record they accept is loaded by a plain loop over
the schema's own fields (`lean_loader`); anything else goes through `Schema.load`,
which decides and words the error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from marshmallow import RAISE, Schema, ValidationError, fields, missing, post_load
from marshmallow.decorators import POST_LOAD

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


# A feed names each citizen in many records; a valid number is checked once.
_resident_id = functools.lru_cache(maxsize=1 << 16)(parse_resident_id)


class ResidentIdField(fields.Field[ResidentId]):
    default_error_messages: Messages = _REQUIRED

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> ResidentId:
        try:
            return _resident_id(value) if type(value) is str else parse_resident_id(value)
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


class Text(fields.String):
    """A string of `low` to `high` characters without control characters (prose keeps
    tab and line breaks): the checks a Length and then a pattern validator would make,
    in that order, in the field's one call."""

    def __init__(self, low: int, high: int, prose: bool = False) -> None:
        super().__init__(required=True, error_messages={**_REQUIRED, "invalid": "must be a string"})
        self.low = low
        self.high = high
        self.control = _CONTROL_IN_PROSE if prose else _CONTROL

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> str:
        text = value if type(value) is str else super()._deserialize(value, attr, data, **kw)
        if not self.low <= len(text) <= self.high:
            raise ValidationError(f"must be {self.low} to {self.high} characters")
        found = self.control.search(text)
        if found is not None:
            raise ValidationError(
                f"must not contain the control character U+{ord(found.group()):04X}"
            )
        return text


class Reference(fields.String):
    """A reference: 1 to 64 characters of A-Z a-z 0-9 . _ : / -."""

    def __init__(self) -> None:
        super().__init__(required=True, error_messages={**_REQUIRED, "invalid": "must be a string"})

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> str:
        text = value if type(value) is str else super()._deserialize(value, attr, data, **kw)
        if r.REFERENCE_PATTERN.match(text) is None:
            raise ValidationError("must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -")
        return text


class Choice(fields.String):
    """One of a fixed list of strings."""

    def __init__(self, choices: tuple[str, ...]) -> None:
        super().__init__(required=True, error_messages={**_REQUIRED, "invalid": "must be a string"})
        self.choices = frozenset(choices)
        self.message = "must be one of " + ", ".join(choices)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> str:
        text = value if type(value) is str else super()._deserialize(value, attr, data, **kw)
        if text not in self.choices:
            raise ValidationError(self.message)
        return text


class TargetSchema(Schema):
    """The record a record acts on, named by its (authority, reference)."""

    class Meta:
        unknown = RAISE

    error_messages = {  # noqa: RUF012 - marshmallow reads it from the class
        "type": "must be an object with authority and reference",
        "unknown": "is not a field of a target",
    }

    authority = Text(1, 64)
    reference = Reference()

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> r.RecordKey:
        return r.record_key(data["authority"], data["reference"])


class RecordSchema(Schema):
    """Fields every record has."""

    class Meta:
        unknown = RAISE

    type = fields.String(required=True, error_messages=_REQUIRED)
    citizen = ResidentIdField(required=True)
    authority = Text(1, 64)
    reference = Reference()
    occurred_on = IsoDate(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> r.Record:
        return r.from_fields(data)


def _target() -> fields.Nested:
    return fields.Nested(
        TargetSchema,
        required=True,
        error_messages={**_REQUIRED, "type": "must be an object with authority and reference"},
    )


class EnrolledSchema(RecordSchema):
    pass


class InfractionSchema(RecordSchema):
    kind = Choice(r.INFRACTION_KINDS)
    amount = Amount()

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> r.Record:
        if data["kind"] in r.UNSETTLEABLE_KINDS:
            if "amount" in data:
                raise ValidationError(f"must be absent for {data['kind']}", "amount")
        elif "amount" not in data:
            raise ValidationError(f"is required for {data['kind']}", "amount")
        return r.from_fields(data)


class SettledSchema(RecordSchema):
    target = _target()
    amount = Amount(required=True)


class PaymentSchema(RecordSchema):
    kind = Choice(r.PAYMENT_KINDS)
    amount = Amount(required=True)


class VerificationSchema(RecordSchema):
    kind = Choice(r.VERIFICATION_KINDS)
    credential = Text(1, 200, prose=True)


class RevokedSchema(RecordSchema):
    target = _target()
    reason = Text(1, 500, prose=True)


class DisputedSchema(RecordSchema):
    target = _target()
    reason = Text(1, 500, prose=True)


class ResolvedSchema(RecordSchema):
    target = _target()
    outcome = Choice(r.OUTCOMES)


class VacatedSchema(RecordSchema):
    target = _target()
    reason = Text(1, 500, prose=True)


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


class _Unsure(Exception):
    """The lean load met something the schema would report: `Schema.load` decides."""


Load = Callable[[Mapping[str, Any]], Any]


def lean_loader(schema: Schema) -> Load:
    """`schema.load` for data it accepts: one loop over the same fields, calling their
    own `_deserialize` and the schema's post_load, without what costs and checks
    nothing (the error store, a closure and an `And` of no validators for every field,
    the partial and hook dispatch). It raises `_Unsure` at the first thing the schema
    would report, so it never accepts what the schema refuses; a schema using a
    feature the loop does not follow (validators among them: the fields here check
    in `_deserialize`) is refused when it is built."""
    hooks = {tag: found for tag, found in schema._hooks.items() if found}
    post = hooks.pop(POST_LOAD, [])
    if (hooks or len(post) != 1 or post[0][1] or post[0][2].get("pass_original")
            or schema.unknown != RAISE):  # fmt: skip
        raise TypeError(f"{type(schema).__name__}: the lean load follows only post_load")
    make = getattr(schema, post[0][0])
    steps: list[tuple[str, bool, Callable[..., Any]]] = []
    for attr, field in schema.load_fields.items():
        if (field.data_key is not None or field.attribute is not None or field.allow_none
                or field.load_default is not missing or field.pre_load or field.post_load
                or field.validators):  # fmt: skip
            raise TypeError(f"{type(schema).__name__}.{attr}: not for the lean load")
        convert: Callable[..., Any] = field._deserialize
        if isinstance(field, fields.Nested):
            if field.many or field.only is not None or field.exclude or field.unknown:
                raise TypeError(f"{type(schema).__name__}.{attr}: not for the lean load")
            convert = _nested(lean_loader(field.schema))
        steps.append((attr, field.required, convert))
    known = frozenset(schema.load_fields)

    def load(data: Mapping[str, Any]) -> Any:
        if not known.issuperset(data):
            raise _Unsure
        loaded: dict[str, Any] = {}
        try:
            for attr, required, convert in steps:
                value = data.get(attr, missing)
                if value is missing:
                    if required:
                        raise _Unsure
                    continue
                if value is None:
                    raise _Unsure
                loaded[attr] = convert(value, attr, data)
            return make(loaded, many=False, partial=None, unknown=RAISE)
        except ValidationError:
            raise _Unsure from None

    return load


def _nested(load: Load) -> Callable[..., Any]:
    def convert(value: Any, attr: str, data: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _Unsure
        return load(value)

    return convert


LEAN: dict[str, Load] = {record_type: lean_loader(s) for record_type, s in SCHEMAS.items()}


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
    # A dict is looked for first: asking the Mapping ABC costs more than what follows.
    if type(line) is dict or isinstance(line, Mapping):
        data: Any = line
    else:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise InvalidRecord(f"not valid JSON ({e})", "record") from None
    if type(data) is not dict and not isinstance(data, Mapping):
        raise InvalidRecord("must be a JSON object", "record")
    record_type = data.get("type")
    if record_type is None:
        raise InvalidRecord("is required", "type")
    if not isinstance(record_type, str) or record_type not in SCHEMAS:
        raise InvalidRecord("must be one of " + ", ".join(r.RECORD_TYPES), "type")
    try:
        record: r.Record = LEAN[record_type](data)
    except _Unsure:
        pass
    else:
        return record
    try:
        record = SCHEMAS[record_type].load(data)
    except ValidationError as e:
        messages = e.messages if isinstance(e.messages, Mapping) else {"record": e.messages}
        raise _first_error(messages, record_type) from None
    return record
