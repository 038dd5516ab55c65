"""The console, served by `ledger serve` and used in headless Chromium: the chart, the
replay controls, the proofs the page checks itself, and who may see what."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ledger.application import Ledger
from ledger.transparency.audit import checkpoint
from ledger.transparency.checkpoint import init_key, load_signer
from projections import policy
from projections.runner import catch_up
from projections.scoring import contributions, fold, score
from projections.store import ViewStore
from scripts.tokens import TokenStore
from tests.behind import behind_the_back
from tests.browser.pages import accessible, checked, score_changes, screenshots, sign_in
from tests.builders import (
    LI_WEI,
    WANG_FANG,
    append,
    enrolled,
    fine,
    record,
    register_authorities,
    target,
)
from tests.served import Service


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def console(store_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A ledger with two citizens' histories and a signed checkpoint, served with its
    public key; tokens for an auditor and for Li Wei."""
    ledger = Ledger(store_url)
    register_authorities(ledger)
    report = append(
        ledger, enrolled(WANG_FANG), enrolled(LI_WEI),
        record("infraction.recorded", "J-1", kind="judgment_default", amount="900.00",
               occurred_on="2024-05-01"),
        fine("TP-1", occurred_on="2025-06-01"),
        record("infraction.settled", "TP-2", target=target("traffic-police", "TP-1"),
               amount="200.00", occurred_on="2025-07-01"),
        record("payment.recorded", "TX-1", kind="tax_paid_on_time", amount="10.00",
               occurred_on="2025-03-01"),
        fine("TP-9", citizen=LI_WEI),
    )  # fmt: skip
    assert report.rejected == [], report.rejected
    init_key(tmp_path / "ledger.key")
    signer = load_signer(tmp_path / "ledger.key")
    checkpoint(ledger, *signer)
    assert append(ledger, fine("TP-8", citizen=LI_WEI, occurred_on="2025-08-01")).appended == 1
    checkpoint(ledger, *signer)
    views = ViewStore(store_url)
    catch_up(ledger, views, [policy.load(n) for n in policy.available()])
    tokens = TokenStore(views)
    now = ledger.clock.now()
    made = {
        "auditor": tokens.create("auditor", None, None, now)[0],
        "citizen": tokens.create("citizen", LI_WEI, None, now)[0],
    }
    service = Service(store_url, env={"LEDGER_PUBLIC_KEY": str(tmp_path / "ledger.key.pub")})
    try:
        yield {"base": service.base, "tokens": made, "ledger": ledger, "url": store_url}
    finally:
        service.stop()
        views.close()
        ledger.close()


def test_an_auditor_sees_the_replays_steps_and_every_record_verified(
    console: dict[str, Any], page: Page, tmp_path: Path
) -> None:
    sign_in(page, console["base"], console["tokens"]["auditor"])
    page.get_by_label("Resident identity number").fill(WANG_FANG)
    page.get_by_role("button", name="Open").click()
    for name in policy.available():
        steps = page.locator(f"svg.chart[data-policy='{name}'] [data-step]")
        expect(steps).to_have_count(score_changes(console["ledger"], WANG_FANG, name))
    first = page.locator("svg.chart[data-policy='finance-v1'] [data-step]").first
    first.focus()  # by keyboard, a step names the record that moved the score
    expect(first).to_be_focused()
    expect(first).to_have_attribute("aria-label", "2024-05-01: 550 (very poor), peoples-court/J-1")
    checked(page)
    proofs = page.locator("td.proof")
    expect(proofs).to_have_count(len(console["ledger"].history(WANG_FANG)))
    expect(page.locator("td.proof.verified")).to_have_count(proofs.count())
    shot = screenshots(tmp_path) / "console-citizen.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    accessible(page)


def test_moving_as_of_back_shows_the_replays_score(console: dict[str, Any], page: Page) -> None:
    sign_in(page, console["base"], console["tokens"]["auditor"])
    page.goto(f"{console['base']}/console/citizens/{WANG_FANG}")
    page.get_by_label("As of").fill("2024-06-01")
    page.get_by_role("button", name="Show").click()
    ledger = console["ledger"]
    for name in policy.available():
        chosen = policy.load(name)
        items = contributions(fold(WANG_FANG, (e.record for e in ledger.history(WANG_FANG))),
                              chosen)  # fmt: skip
        expected = score(items, date(2024, 6, 1), chosen).score
        expect(page.locator(f"p.score[data-policy='{name}']")).to_have_attribute(
            "data-score", str(expected))  # fmt: skip


def test_a_record_altered_behind_the_services_back_is_marked_failed(
    console: dict[str, Any], page: Page
) -> None:
    ledger = console["ledger"]
    altered = next(e for e in ledger.history(WANG_FANG) if e.record.reference == "J-1")
    with behind_the_back(console["url"]) as run:
        state = bytes(run("SELECT state FROM EVENTS WHERE POS = %s", [altered.position])[0][0])
        run("UPDATE EVENTS SET state = %s WHERE POS = %s",
            [state.replace(b"900.00", b"100.00"), altered.position])  # fmt: skip
    sign_in(page, console["base"], console["tokens"]["auditor"])
    page.goto(f"{console['base']}/console/citizens/{WANG_FANG}")
    checked(page)
    bad = page.locator(f"td.proof[data-position='{altered.position}']")
    expect(bad).to_have_class("proof failed")
    expect(bad).to_contain_text("failed")
    expect(page.locator("td.proof.verified")).to_have_count(
        len(ledger.history(WANG_FANG)) - 1)  # fmt: skip


def test_a_citizen_sees_only_their_own_file_and_signing_out_ends_the_session(
    console: dict[str, Any], page: Page
) -> None:
    base = console["base"]
    sign_in(page, base, console["tokens"]["citizen"])
    expect(page.get_by_role("heading", level=1)).to_have_text(LI_WEI)
    checked(page)
    expect(page.locator("td.proof.failed")).to_have_count(0)
    other = page.goto(f"{base}/console/citizens/{WANG_FANG}")
    assert other is not None
    assert other.status == 403
    expect(page.get_by_role("alert")).to_contain_text("only their own file")
    accessible(page)
    own_proof = page.request.get(f"{base}/console/data/proof/1")  # the registry's, not hers
    assert own_proof.status == 403
    page.goto(f"{base}/console/citizens/{LI_WEI}")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{base}/console/citizens/{LI_WEI}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.set_viewport_size({"width": 360, "height": 740})
    sign_in(page, base, console["tokens"]["citizen"])
    expect(page.get_by_role("heading", level=1)).to_have_text(LI_WEI)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page is {width} px wide at 360"


def test_the_sign_in_and_home_pages_have_no_serious_accessibility_violations(
    console: dict[str, Any], page: Page
) -> None:
    page.goto(f"{console['base']}/console/")
    accessible(page)
    sign_in(page, console["base"], console["tokens"]["auditor"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Open a citizen's file")
    accessible(page)
    bad = page.goto(f"{console['base']}/console/")
    assert bad is not None
    assert "default-src 'self'" in (bad.headers.get("content-security-policy") or "")


def test_the_log_page_checks_every_checkpoint_and_that_each_extends_the_last(
    console: dict[str, Any], page: Page, tmp_path: Path
) -> None:
    base = console["base"]
    sign_in(page, base, console["tokens"]["auditor"])
    page.get_by_role("link", name="The log").click()
    checked(page)
    expect(page.locator("[data-signature].verified")).to_have_count(2)
    expect(page.locator("[data-consistency].verified")).to_have_count(1)
    expect(page.locator("[data-consistency]")).to_contain_text("extends the log of")
    expect(page.get_by_role("link", name=WANG_FANG)).to_have_count(1)  # her judgment default
    shot = screenshots(tmp_path) / "console-log.png"
    page.screenshot(path=str(shot), full_page=True)
    accessible(page)
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, base, console["tokens"]["citizen"])
    refused = page.goto(f"{base}/console/log")
    assert refused is not None
    assert refused.status == 403
