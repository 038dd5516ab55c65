"""`ledger report` and `ledger disputes pending`, on both stores."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.application import FixedClock, Ledger
from scripts.cli import main
from tests.builders import LI_WEI, WANG_FANG, append, enrolled, fine, record, register_authorities
from tests.builders import target as at

JUDGMENT = record("infraction.recorded", "J-1", kind="judgment_default", amount="900.00",
                  occurred_on="2024-05-01")  # fmt: skip


@pytest.fixture
def cli(ledger: Ledger, store_url: str, clock: FixedClock) -> Any:
    """Wang Fang disputed a judgment on 2026-02-20; Li Wei a fine on 2026-01-15 and
    another, since resolved; the ledger's today is 2026-03-01."""
    register_authorities(ledger)
    report = append(
        ledger, enrolled(WANG_FANG), enrolled(LI_WEI), JUDGMENT, fine("TP-9", citizen=LI_WEI),
        fine("TP-8", citizen=LI_WEI),
        record("record.disputed", "D-1", target=at("peoples-court", "J-1"), reason="paid",
               occurred_on="2026-02-20"),
        record("record.disputed", "D-2", citizen=LI_WEI, target=at("traffic-police", "TP-9"),
               reason="not me", occurred_on="2026-01-15"),
        record("record.disputed", "D-3", citizen=LI_WEI, target=at("traffic-police", "TP-8"),
               reason="not me", occurred_on="2026-01-10"),
        record("dispute.resolved", "D-4", citizen=LI_WEI, target=at("dispute-office", "D-3"),
               outcome="upheld", occurred_on="2026-01-20"),
    )  # fmt: skip
    assert report.rejected == [], report.rejected

    def run(*args: str) -> Any:
        done = CliRunner().invoke(main, [*args, "--db", store_url], obj={"clock": clock})
        assert done.exit_code == 0, done.output
        return done

    return run


def test_pending_disputes_come_by_deadline_and_resolved_ones_not_at_all(cli: Any) -> None:
    listed = json.loads(cli("disputes", "pending", "--json").stdout)
    assert [(p["dispute"], p["target"], p["due"]) for p in listed] == [
        ("dispute-office/D-2", "traffic-police/TP-9", "2026-02-14"),
        ("dispute-office/D-1", "peoples-court/J-1", "2026-03-22"),
    ]
    soon = json.loads(cli("disputes", "pending", "--due-within", "10", "--json").stdout)
    assert [p["dispute"] for p in soon] == ["dispute-office/D-2"]  # overdue, so due within
    assert "2026-02-14 (overdue)" in cli("disputes", "pending").stdout


def test_a_citizens_report_lists_their_records_scores_and_what_counts_against_them(
    cli: Any,
) -> None:
    body = json.loads(cli("report", WANG_FANG, "--json").stdout)
    assert [r["reference"] for r in body["records"]] == [f"E-{WANG_FANG}", "J-1", "D-1"]
    assert body["records"][1]["source"] == "People's Court"
    finance = next(s for s in body["scores"] if s["policy"] == "finance-v1")
    assert (finance["score"], finance["reasons"][0]["reference"]) == (550, "J-1")
    (against,) = body["against"]
    assert (against["reference"], against["disputed"]) == ("J-1", True)
    assert against["points"] == {"finance-v1": -150, "national-v1": -100}
    assert body["inquiries_and_decisions"] == []
    shown = cli("report", WANG_FANG).stdout
    assert "counts against you: peoples-court/J-1" in shown
