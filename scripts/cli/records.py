"""Writing the ledger: authorities, appending records, a citizen's history, the demo."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from datetime import date, datetime
from pathlib import Path
from typing import IO

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from ledger.application import AppendReport, Clock, Ledger
from ledger.bulk import Interrupted, append_feed, interruptible
from ledger.errors import AuthorityExists, LedgerError
from ledger.partitioned import PartitionedLedger
from ledger.storage import redact_text
from projections.policy import Policy
from projections.queries import Scores
from scripts.cli.base import (
    Unusable,
    db_option,
    emit_json,
    exit_for,
    injected_clock,
    main,
    open_ledger,
    open_routed,
    open_views,
    parse_date,
    parse_timestamp,
)
from scripts.cli.reading import print_explanation, project_views
from scripts.demo import DEMO_AUTHORITIES, DEMO_UNTIL, Population
from scripts.errors import DATABASE, EXIT_REJECTED


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
        position = app.register_authority(authority_id, name, list(may_issue), entitled_from)
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
@click.option("--patience", default=60.0, show_default=True, type=click.FloatRange(0),
              help="Seconds to wait for a database that stops answering (a restart, a "
                   "failover) before giving up.")  # fmt: skip
@db_option
def append(source: str, as_json: bool, patience: float, url: str) -> None:
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
    # Opened first, so a database that cannot be used fails early, with exit 2.
    with stream, open_routed(url, patience) as routed:
        partitioned = None if isinstance(routed, Ledger) else routed
        report = _append_with_progress(url, stream, size, patience, partitioned)
    _print_report(report, as_json)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


def _append_with_progress(
    url: str, stream: IO[bytes], size: int, patience: float,
    partitioned: PartitionedLedger | None = None,
) -> AppendReport:  # fmt: skip
    clock = injected_clock()
    if not (sys.stderr.isatty() and size > 1_000_000):
        return _feed(url, _numbered_lines(stream), clock, patience, partitioned=partitioned)
    with Progress(
        *Progress.get_default_columns(), console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task("appending", total=size)

        def lines() -> Iterator[tuple[int, bytes]]:
            for number, line in _numbered_lines(stream):
                progress.advance(task, len(line))
                yield number, line

        return _feed(url, lines(), clock, patience, partitioned=partitioned)


def _feed(
    url: str,
    lines: Iterable[tuple[int, bytes]],
    clock: Clock | None,
    patience: float,
    progress: Callable[[int], None] | None = None,
    partitioned: PartitionedLedger | None = None,
) -> AppendReport:
    try:
        with interruptible():
            if partitioned is not None:
                return partitioned.append_feed(lines, progress)
            return append_feed(url, lines, clock=clock, progress=progress, patience=patience)
    except KeyboardInterrupt as e:
        stopped = e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)
        click.echo(str(stopped), err=True)
        sys.exit(stopped.exit_code)
    except LedgerError as e:
        raise exit_for(e, url) from None
    except DATABASE as e:
        raise Unusable(f"db: {redact_text(str(e), url)}") from None


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
    with open_routed(url) as app:
        entries = app.history(citizen, known_at)
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
        report = _feed(url, lines, injected_clock(), 0.0, lambda n: progress.advance(task, n))
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
    with open_ledger(url) as app, open_views(url) as store:
        scores = Scores(app, store)
        project_views(app, store, scores.all_policies(), console)
        _print_demo_scores(scores, last_day)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


def _print_demo_scores(scores: Scores, day: date) -> None:
    """Bands per policy, the default policy's bands per province, the enforcement list's
    size, and one citizen's explanation."""
    default = scores.policy().name
    for chosen in scores.all_policies():
        counts = scores.bands(day, chosen.name)
        by_band = Counter[str]()
        for (_, name), n in counts.items():
            by_band[name] += n
        table = Table("band", "citizens", title=f"{chosen.name} on {day}")
        for band in chosen.bands:
            table.add_row(band.band, str(by_band.get(band.band, 0)))
        Console().print(table)
        if chosen.name == default:
            _print_regions(chosen, counts, day)
    listed = scores.enforcement(day)
    click.echo(f"enforcement list on {day}: {len(listed)} citizens")
    residents = [item.citizen for item in listed] or scores.store.residents(default)
    if residents:
        answer, explanation = scores.explain(residents[0], as_of=day)
        print_explanation(answer, explanation)


def _print_regions(chosen: Policy, counts: dict[tuple[str, str], int], day: date) -> None:
    names = [band.band for band in chosen.bands]
    table = Table("province", *names, title=f"{chosen.name} bands by province on {day}")
    for province in sorted({p for p, _ in counts}):
        table.add_row(province, *(str(counts.get((province, b), 0)) for b in names))
    Console(width=160).print(table)
