"""The console in a real browser: Debian's Chromium, driven by Playwright through its
executable path (Playwright's own browser download needs the internet)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the console's tests need Debian's chromium (apt-get install chromium)"
    return {**browser_type_launch_args, "executable_path": chromium}
