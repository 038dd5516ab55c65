"""Where the ledger gets the time: injected, so that replays and tests are repeatable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


class Clock(Protocol):
    """Where the ledger gets the time; injected so replays and tests are repeatable."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that reads `at`, moving on by `step` at every reading."""

    at: datetime
    step: timedelta = timedelta(0)

    def now(self) -> datetime:
        now = self.at
        self.at = now + self.step
        return now
