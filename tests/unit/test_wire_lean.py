"""The lean load of a wire record: for any data, it gives what `Schema.load` gives or
steps aside; it never accepts what the schema refuses, and it loads every valid form."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, post_load, pre_load

from ledger.domain import records as r
from ledger.domain.wire import LEAN, SCHEMAS, _Unsure, lean_loader
from tests.builders import LI_WEI, WANG_FANG, record, target

VALID: dict[str, dict[str, Any]] = {
    r.ENROLLED: record(r.ENROLLED, "CR-1", occurred_on="2008-03-07"),
    r.INFRACTION: record(r.INFRACTION, "TP-1", kind="traffic_fine", amount="200.00"),
    r.SETTLED: record(r.SETTLED, "TP-2", target=target("traffic-police", "TP-1"), amount="200"),
    r.PAYMENT: record(r.PAYMENT, "TX-1", kind="tax_paid_on_time", amount="10"),
    r.VERIFICATION: record(r.VERIFICATION, "U-1", kind="degree", credential="BSc 学士"),
    r.REVOKED: record(r.REVOKED, "U-2", target=target("university", "U-1"), reason="fraud"),
    r.DISPUTED: record(r.DISPUTED, "D-1", target=target("traffic-police", "TP-1"), reason="x"),
    r.RESOLVED: record(
        r.RESOLVED, "D-2", target=target("dispute-office", "D-1"), outcome="removed"
    ),
    r.VACATED: record(r.VACATED, "PC-2", target=target("peoples-court", "PC-1"), reason="y"),
    r.REPAIRED: record(r.REPAIRED, "R-1", target=target("traffic-police", "TP-1")),
}

FIELDS = ["type", "citizen", "authority", "reference", "occurred_on", "kind", "amount",
          "credential", "target", "reason", "outcome", "extra"]  # fmt: skip
ODD_VALUES: list[Any] = [
    None, 0, 1.5, True, [], {}, "", " ", "x" * 64, "x" * 65, "x" * 200, "x" * 201, "x" * 501,
    "a\x00b", "a\tb", "a\nb", "a\x7fb", "TP-1", "TP 1", "traffic_fine", "criminal_conviction",
    "degree", "removed", "upheld", "2024-02-29", "2023-02-29", "2024-5-1", "1899-12-31",
    "200", "200.00", "200.001", "-1", "01", "1e5", ".5", "9" * 21, WANG_FANG, LI_WEI,
    WANG_FANG.lower(), "11010519491231002x", b"TP-1", target("a", "b"), {"authority": "a"},
    {"authority": "a", "reference": "b", "c": 1}, {"authority": None, "reference": "b"},
    {"authority": "", "reference": "b"}, {"authority": "a", "reference": "b b"},
]  # fmt: skip


def outcome(load: Any, data: Any) -> tuple[str, Any]:
    try:
        return "loaded", load(data)
    except (ValidationError, _Unsure):
        return "refused", None


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(sorted(VALID)),
    st.dictionaries(
        st.sampled_from(FIELDS),
        st.one_of(st.sampled_from([*ODD_VALUES, ...]), st.text(max_size=8)),
        max_size=4,
    ),
)
def test_lean_load_gives_what_the_schema_gives_or_steps_aside(
    record_type: str, changes: dict[str, Any]
) -> None:
    data = dict(VALID[record_type])
    for name, value in changes.items():
        if value is ...:
            data.pop(name, None)
        else:
            data[name] = value
    expected = outcome(SCHEMAS[record_type].load, data)
    assert outcome(LEAN[record_type], data) == expected


@pytest.mark.parametrize("record_type", sorted(VALID))
def test_lean_load_loads_every_valid_form(record_type: str) -> None:
    assert LEAN[record_type](VALID[record_type]) == SCHEMAS[record_type].load(VALID[record_type])


def test_a_schema_with_hooks_the_lean_load_does_not_follow_is_refused() -> None:
    class Hooked(Schema):
        name = fields.String(required=True)

        @pre_load
        def tidy(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
            return data

        @post_load
        def make(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
            return data

    with pytest.raises(TypeError, match="only post_load"):
        lean_loader(Hooked())


def test_a_field_with_a_default_is_refused() -> None:
    class Defaulted(Schema):
        name = fields.String(load_default="x")

        @post_load
        def make(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
            return data

    with pytest.raises(TypeError, match=r"Defaulted\.name"):
        lean_loader(Defaulted())
