"""The console over a partitioned ledger (four partitions on two databases): a citizen's
page checks their records against their partition's checkpoint and that checkpoint
against the one signed for the whole ledger; the log page checks a partition's log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import Page, expect

from ledger.application import FixedClock, Ledger
from ledger.partitioned import PartitionedLedger
from projections import policy
from projections.store import ViewStore
from scripts.cli import main
from scripts.tokens import TokenStore
from tests.behind import behind_the_back
from tests.browser.pages import accessible, checked, score_changes, sign_in
from tests.builders import (
    LI_WEI,
    WANG_FANG,
    append,
    enrolled,
    fine,
    record,
    register_authorities,
)
from tests.schemas import fresh_databases
from tests.served import Service

pytestmark = pytest.mark.postgres


@pytest.fixture
def console(postgres_url: str, postgres_schema_url: str, tmp_path: Path) -> Iterator[Any]:
    """Two citizens' records in a ledger of four partitions, signed twice, projected and
    served with its public key; tokens for an auditor and for Li Wei."""
    catalog, key = postgres_schema_url, str(tmp_path / "ledger.key")
    runner = CliRunner()
    clock = FixedClock(datetime(2026, 7, 1, tzinfo=UTC), timedelta(milliseconds=1))

    def cli(*args: str) -> None:
        done = runner.invoke(main, list(args), obj={"clock": clock})
        assert done.exit_code == 0, done.output

    with fresh_databases(postgres_url, "ab") as shards:
        cli("shards", "init", "--partitions", "4", "--db", catalog,
            *(f"--shard={n}={u}" for n, u in shards))  # fmt: skip
        cli("keys", "init", "--key", key)
        ledger = PartitionedLedger(Ledger(catalog))
        try:
            register_authorities(ledger.catalog)
            report = append(
                ledger, enrolled(WANG_FANG), enrolled(LI_WEI),
                record("infraction.recorded", "J-1", kind="judgment_default", amount="900.00",
                       occurred_on="2024-05-01"),
                fine("TP-1", occurred_on="2025-06-01"), fine("TP-9", citizen=LI_WEI),
            )  # fmt: skip
            assert report.rejected == [], report.rejected
            cli("checkpoint", "--key", key, "--db", catalog)
            assert append(ledger, fine("TP-2", occurred_on="2025-08-01")).appended == 1
            cli("checkpoint", "--key", key, "--db", catalog)
            cli("project", "--db", catalog)
            views = ViewStore(catalog)
            tokens = TokenStore(views)
            now = ledger.catalog.clock.now()
            made = {
                "auditor": tokens.create("auditor", None, None, now)[0],
                "citizen": tokens.create("citizen", LI_WEI, None, now)[0],
            }
            service = Service(catalog, env={"LEDGER_PUBLIC_KEY": key + ".pub"})
            try:
                yield {"base": service.base, "tokens": made, "ledger": ledger, "catalog": catalog}
            finally:
                service.stop()
                views.close()
        finally:
            ledger.close()


def test_a_citizens_records_verify_up_to_the_whole_ledgers_signature(
    console: dict[str, Any], page: Page
) -> None:
    ledger: PartitionedLedger = console["ledger"]
    sign_in(page, console["base"], console["tokens"]["auditor"])
    page.get_by_label("Resident identity number").fill(WANG_FANG)
    page.get_by_role("button", name="Open").click()
    for name in policy.available():
        steps = page.locator(f"svg.chart[data-policy='{name}'] [data-step]")
        expect(steps).to_have_count(score_changes(ledger, WANG_FANG, name))
    checked(page)
    history = ledger.history(WANG_FANG)
    expect(page.locator("td.proof.verified")).to_have_count(len(history))
    expect(page.locator("td.proof").first).to_contain_text("whole ledger's signed checkpoint")
    accessible(page)

    # One of her records altered in her partition's database is marked failed.
    altered = next(e for e in history if e.record.reference == "J-1")
    partition = ledger.partition_of_resident(WANG_FANG)
    with behind_the_back(ledger.urls[partition]) as run:
        state = bytes(run("SELECT state FROM EVENTS WHERE POS = %s", [altered.position])[0][0])
        run("UPDATE EVENTS SET state = %s WHERE POS = %s",
            [state.replace(b"900.00", b"100.00"), altered.position])  # fmt: skip
    page.reload()
    checked(page)
    expect(page.locator(f"td.proof[data-position='{altered.position}']")).to_have_class(
        "proof failed")  # fmt: skip
    expect(page.locator("td.proof.verified")).to_have_count(len(history) - 1)

    # The whole ledger's checkpoint altered in the catalog to name another partition
    # where hers should be: none of her records verifies up to it any more.
    other = (partition + 1) % 4
    with behind_the_back(console["catalog"]) as run:
        for position, state in run("SELECT POS, state FROM EVENTS WHERE topic LIKE %s",
                                   ["%TopCheckpoints.Signed"]):  # fmt: skip
            changed = bytes(state).replace(f"/partition/{partition}\\n".encode(),
                                           f"/partition/{other}\\n".encode())  # fmt: skip
            assert changed != bytes(state)
            run("UPDATE EVENTS SET state = %s WHERE POS = %s", [changed, position])
    page.reload()
    checked(page)
    expect(page.locator("td.proof.failed")).to_have_count(len(history))
    expect(page.locator("td.proof").last).to_contain_text(
        f"/partition/{other} where this partition should be")  # fmt: skip


def test_the_log_page_checks_a_partitions_log_and_lists_every_partitions_defaulters(
    console: dict[str, Any], page: Page
) -> None:
    ledger: PartitionedLedger = console["ledger"]
    base = console["base"]
    partition = ledger.partition_of_resident(WANG_FANG)
    sign_in(page, base, console["tokens"]["auditor"])
    page.get_by_role("link", name="The log").click()
    expect(page.get_by_role("navigation", name="Partitions").get_by_role("link")).to_have_count(4)
    page.get_by_role("link", name=f"partition {partition}", exact=True).click()
    checked(page)
    expect(page.get_by_role("heading", level=2).first).to_have_text(
        f"Signed checkpoints of partition {partition}")  # fmt: skip
    expect(page.locator("[data-signature].verified")).to_have_count(2)
    expect(page.locator("[data-consistency].verified")).to_have_count(1)
    expect(page.get_by_role("link", name=WANG_FANG)).to_have_count(1)  # her judgment default
    accessible(page)
    refused = page.goto(f"{base}/console/log?partition=4")
    assert refused is not None
    assert refused.status == 400


def test_a_citizen_sees_their_own_file_verified_in_their_partition(
    console: dict[str, Any], page: Page
) -> None:
    base = console["base"]
    sign_in(page, base, console["tokens"]["citizen"])
    expect(page.get_by_role("heading", level=1)).to_have_text(LI_WEI)
    checked(page)
    expect(page.locator("td.proof.failed")).to_have_count(0)
    expect(page.locator("td.proof.verified")).to_have_count(
        len(console["ledger"].history(LI_WEI)))  # fmt: skip
    other = page.goto(f"{base}/console/citizens/{WANG_FANG}")
    assert other is not None
    assert other.status == 403
