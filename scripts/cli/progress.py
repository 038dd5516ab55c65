"""How `ledger project` reports its progress: a live bar on a terminal, a plain line
every few seconds otherwise (a log file, a service manager's journal)."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

# Seconds between plain lines when the output is not a terminal.
LINE_EVERY = 5.0


class ProjectionProgress:
    """Records and citizens done so far, and their rate, of a projection `total`
    positions behind the log."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = max(total, 0)
        self.records = self.citizens = 0
        self.started = self.said = time.monotonic()
        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=console, transient=True,
            disable=not console.is_terminal,
        )  # fmt: skip
        self.task = self.bar.add_task(self._describe(), total=self.total)

    def __call__(self, records: int, citizens: int) -> None:
        self.records += records
        self.citizens += citizens
        self.bar.update(self.task, advance=records, description=self._describe())
        now = time.monotonic()
        if not self.console.is_terminal and now - self.said >= LINE_EVERY:
            self.said = now
            self.console.print(self._describe(), highlight=False)

    def _describe(self) -> str:
        spent = time.monotonic() - self.started
        rate = self.records / spent if spent > 0 else 0.0
        return (f"projecting: {self.records:,} records, {self.citizens:,} citizens, "
                f"{rate:,.0f} records/s")  # fmt: skip

    def __enter__(self) -> ProjectionProgress:
        self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.bar.stop()
        if kind is None and self.records:
            self.console.print(self._describe().replace("projecting", "projected"),
                               highlight=False)  # fmt: skip
