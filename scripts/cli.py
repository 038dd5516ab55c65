"""The `ledger` command: a thin layer over the ledger's application service."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import orjson
import psycopg
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from ledger.application import AppendReport, Clock, Ledger
from ledger.bulk import WorkerFailed, append_feed
from ledger.errors import AuthorityExists, LedgerError
from ledger.storage import DEFAULT_URL
from scripts.demo import DEMO_AUTHORITIES, DEMO_UNTIL, Population

F = TypeVar("F", bound=Callable[..., Any])

EXIT_REJECTED = 1
EXIT_UNUSABLE = 2


class Unusable(click.ClickException):
    """The input or the database cannot be used at all."""

    exit_code = EXIT_UNUSABLE


def db_option(command: F) -> F:
    return click.option(
        "--db",
        "url",
        envvar="LEDGER_DATABASE_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB (env LEDGER_DATABASE_URL).",
    )(command)


def _clock() -> Clock | None:
    """The clock a caller injected (tests do), else the system's."""
    clock: Clock | None = (click.get_current_context().obj or {}).get("clock")
    return clock


@contextmanager
def open_ledger(url: str) -> Iterator[Ledger]:
    """Open the ledger, turning every failure to reach the database into exit 2."""
    try:
        app = Ledger(url, clock=_clock())
    except LedgerError as e:
        raise Unusable(str(e)) from None
    except (PersistenceError, psycopg.Error, sqlite3.Error, OSError) as e:
        raise Unusable(f"db: cannot open {url}: {e}") from None
    try:
        yield app
    except (PersistenceError, psycopg.Error, sqlite3.Error) as e:
        raise Unusable(f"db: {e}") from None
    finally:
        app.close()


def parse_date(_: Any, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date such as 2024-05-31") from None


def parse_timestamp(_: Any, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO timestamp such as 2026-01-31T12:00:00+08:00"
        ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=None))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """An event-sourced ledger of records about citizens from registered authorities."""


@main.group()
def authority() -> None:
    """Register and list the authorities that may issue records."""


@authority.command("add")
@click.argument("authority_id", metavar="ID")
@click.option("--name", required=True, help="The authority's official name.")
@click.option(
    "--may-issue",
    "may_issue",
    multiple=True,
    required=True,
    metavar="TYPE[:KIND]",
    help="A record type it may issue, optionally limited to one kind; repeatable.",
)
@click.option("--from", "entitled_from", callback=parse_date, help="Entitled from this date on.")
@db_option
def authority_add(
    authority_id: str, name: str, may_issue: tuple[str, ...], entitled_from: date | None, url: str
) -> None:
    """Register authority ID as entitled to issue the given records."""
    with open_ledger(url) as app:
        try:
            position = app.register_authority(authority_id, name, list(may_issue), entitled_from)
        except LedgerError as e:
            raise click.UsageError(str(e)) from None
    click.echo(f"registered {authority_id} at position {position}")


@authority.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def authority_list(as_json: bool, url: str) -> None:
    """List the registered authorities."""
    with open_ledger(url) as app:
        authorities = app.authorities()
    if as_json:
        emit_json(
            [
                {
                    "id": a.authority_id,
                    "name": a.name,
                    "may_issue": list(a.may_issue),
                    "from": a.entitled_from.isoformat() if a.entitled_from else None,
                    "registered_at": a.registered_at.isoformat(),
                }
                for a in authorities
            ]
        )
        return
    table = Table("id", "name", "may issue", "from")
    for a in authorities:
        table.add_row(
            a.authority_id,
            a.name,
            "\n".join(a.may_issue),
            a.entitled_from.isoformat() if a.entitled_from else "always",
        )
    Console().print(table)


def _numbered_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


@main.command()
@click.argument("source", default="-", metavar="[FILE|-]")
@click.option("--json", "as_json", is_flag=True, help="Report as one JSON object.")
@db_option
def append(source: str, as_json: bool, url: str) -> None:
    """Append NDJSON records in order; invalid lines are rejected, the rest go in.

    Exit 0 when nothing was rejected, 1 when something was, 2 when the input or the
    database cannot be used.
    """
    if source == "-":
        stream: IO[bytes] = sys.stdin.buffer
        size = 0
    else:
        path = Path(source)
        try:
            stream = path.open("rb")
        except OSError as e:
            raise Unusable(f"{source}: {e.strerror}") from None
        size = path.stat().st_size
    with stream:
        with open_ledger(url):
            pass  # fails early, with exit 2, when the database cannot be used
        report = _append_with_progress(url, stream, size)
    _print_report(report, as_json)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


def _append_with_progress(url: str, stream: IO[bytes], size: int) -> AppendReport:
    clock = _clock()
    if not (sys.stderr.isatty() and size > 1_000_000):
        return _feed(url, _numbered_lines(stream), clock)
    with Progress(
        *Progress.get_default_columns(), console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task("appending", total=size)

        def lines() -> Iterator[tuple[int, bytes]]:
            for number, line in _numbered_lines(stream):
                progress.advance(task, len(line))
                yield number, line

        return _feed(url, lines(), clock)


def _feed(
    url: str,
    lines: Iterable[tuple[int, bytes]],
    clock: Clock | None,
    progress: Callable[[int], None] | None = None,
) -> AppendReport:
    try:
        return append_feed(url, lines, clock=clock, progress=progress)
    except (WorkerFailed, PersistenceError, psycopg.Error, sqlite3.Error) as e:
        raise Unusable(f"db: {e}") from None


def _print_report(report: AppendReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    for rejection in report.rejected:
        click.echo(str(rejection))
    click.echo(report.summary())


@main.command()
@click.argument("citizen")
@click.option(
    "--known-at",
    callback=parse_timestamp,
    help="Only what had been recorded by this ISO timestamp (UTC unless it has an offset).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def history(citizen: str, known_at: datetime | None, as_json: bool, url: str) -> None:
    """The citizen's records in the order the ledger received them."""
    with open_ledger(url) as app:
        try:
            entries = app.history(citizen, known_at)
        except LedgerError as e:
            raise Unusable(str(e)) from None
    if as_json:
        emit_json([e.to_json() for e in entries])
        return
    table = Table("position", "recorded at", "type", "authority", "reference", "occurred on",
                  "fields", title=f"citizen {citizen.upper()}")  # fmt: skip
    for entry in entries:
        wire = entry.to_json()
        extra = {k: v for k, v in wire.items() if k not in _COMMON}
        table.add_row(
            str(entry.position), entry.recorded_at.isoformat(timespec="seconds"),
            wire["type"], wire["authority"], wire["reference"], wire["occurred_on"],
            json.dumps(extra, ensure_ascii=False) if extra else "",
        )  # fmt: skip
    Console(width=200).print(table)


_COMMON = frozenset(
    {"position", "recorded_at", "type", "citizen", "authority", "reference", "occurred_on"}
)


@main.command()
@click.option("--citizens", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--until",
    callback=parse_date,
    help=f"The last day of the generated history [default: {DEMO_UNTIL}, or today if earlier].",
)
@db_option
def demo(citizens: int, seed: int, until: date | None, url: str) -> None:
    """Register the demo authorities and append a synthetic population.

    The same seed and the same last day generate the same records, so running it
    again on the same database appends nothing new.
    """
    console = Console(stderr=True)
    started = time.perf_counter()
    with open_ledger(url) as app:
        for spec in DEMO_AUTHORITIES:
            with suppress(AuthorityExists):
                app.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
        last_day = min(until or DEMO_UNTIL, app.today())
        records = Population(citizens, seed, last_day).records()
    generated = time.perf_counter() - started
    lines = ((n, orjson.dumps(rec)) for n, rec in enumerate(records, start=1))
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    ) as progress:  # fmt: skip
        task = progress.add_task("appending", total=len(records))
        report = _feed(url, lines, _clock(), lambda n: progress.advance(task, n))
    elapsed = time.perf_counter() - started
    table = Table("record type", "records", title=f"demo: {citizens} citizens, seed {seed}")
    for record_type, count in sorted(Counter(r["type"] for r in records).items()):
        table.add_row(record_type, str(count))
    table.add_row("all", str(len(records)))
    Console().print(table)
    click.echo(report.summary())
    click.echo(
        f"generated in {generated:.1f}s, appended in {elapsed - generated:.1f}s "
        f"({len(records) / max(elapsed - generated, 1e-9):,.0f} records/s)"
    )
    for rejection in report.rejected[:10]:
        click.echo(str(rejection))
    if report.rejected:
        sys.exit(EXIT_REJECTED)
