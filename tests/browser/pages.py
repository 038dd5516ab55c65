"""What the console's browser tests do on a page: sign in, wait for its own checks,
run axe-core, and count a replay's score changes the slow way to compare with it."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from projections import policy
from projections.scoring import contributions, fold, score


def screenshots(tmp_path: Path) -> Path:
    """Where the tests' screenshots go: LEDGER_SCREENSHOTS (the README's are made with
    LEDGER_SCREENSHOTS=docs), else the test's own folder."""
    folder = Path(os.environ.get("LEDGER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: Page, base: str, token: str) -> None:
    page.goto(f"{base}/console/")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def score_changes(ledger: Any, citizen: str, name: str) -> int:
    """How often the score changes, day by day from the first record until well after
    the last contribution ends: the replay, counted the slow way."""
    chosen = policy.load(name)
    history = ledger.history(citizen)
    items = contributions(fold(citizen, (e.record for e in history)), chosen)
    day = min(e.record.occurred_on for e in history)
    end = max([c.counts_until or c.counts_from for c in items] + [day]) + timedelta(days=2)
    changes, last = 0, score(items, day, chosen).score
    while day <= end:
        now = score(items, day, chosen).score
        changes += now != last
        last, day = now, day + timedelta(days=1)
    return changes


def accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation on the page."""
    serious = [v for v in Axe().run(page).response["violations"]
               if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert serious == [], serious


def checked(page: Page) -> None:
    expect(page.locator("body[data-proofs=done]")).to_have_count(1, timeout=20_000)
