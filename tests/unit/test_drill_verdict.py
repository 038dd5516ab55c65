"""The drill's verdict from its figures: a drill passes only when nothing was lost,
doubled or wrongly refused, every planned fault happened, and the service kept its
promises to operators."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.drill.verdict import KINDS, SLACK_PER_FAULT, judged


def passing() -> dict[str, Any]:
    return {
        "lost": 0, "doubled": 0, "wrongly_refused": 0, "refused_feeds": 0, "unanswered": 0,
        "verify": {"ok": True, "detail": ""}, "rebuild": {"agrees": True},
        "faults": dict.fromkeys(KINDS, 2), "faults_planned": dict.fromkeys(KINDS, 2),
        "unavailable_seconds": 4.0, "database_down_seconds": 3.5,
        "readyz_slowest_seconds": 0.4, "projector_longest_stall_seconds": 2.0,
        "left_behind": {}, "unexpected_exits": {}, "counts": {"http 200": 900, "http 503": 12},
    }  # fmt: skip


def test_a_drill_that_kept_every_promise_passes_with_nothing_found() -> None:
    figures = judged(passing())
    assert (figures["ok"], figures["findings"], figures["failures"]) == (True, [], [])


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"counts": {"http 500": 1}}, "the service answered 5xx other than 503"),
        ({"left_behind": {"ledger serve": 2}}, "2 process(es) of ledger serve outlived it"),
        ({"readyz_slowest_seconds": 2.5}, "/readyz took over 2 s"),
        ({"counts": {"append runs hung": 1}}, "a ledger append hung"),
    ],
)
def test_a_broken_promise_to_operators_fails_the_drill_and_is_named(
    change: dict[str, Any], failure: str
) -> None:
    figures = judged(passing() | change)
    assert figures["ok"] is False
    assert failure in figures["failures"]


def test_unavailability_beyond_the_slack_the_faults_allow_fails_the_drill() -> None:
    slack = SLACK_PER_FAULT * 4  # two database kills and two worker kills
    within = judged(passing() | {"unavailable_seconds": 3.5 + slack - 0.1})
    beyond = judged(passing() | {"unavailable_seconds": 3.5 + slack + 0.1})
    assert within["ok"] is True
    assert beyond["ok"] is False
    assert beyond["failures"] == [
        f"the service stayed unavailable over {slack:.0f} s longer than the database"
    ]
    # Over a second beyond the outage is reported, within the slack or not.
    assert any("longer than the database" in found for found in within["findings"])


@pytest.mark.parametrize(
    "change",
    [
        {"lost": 1}, {"doubled": 1}, {"wrongly_refused": 1}, {"refused_feeds": 1},
        {"unanswered": 1}, {"verify": {"ok": False, "detail": "root mismatch"}},
        {"rebuild": {"agrees": False}}, {"faults": dict.fromkeys(KINDS, 2) | {"postgres": 1}},
    ],
)  # fmt: skip
def test_harm_to_a_record_or_a_fault_not_injected_fails_the_drill(change: dict[str, Any]) -> None:
    assert judged(passing() | change)["ok"] is False
