"""The `ledger` command: a thin layer over the ledger's application service."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
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
from ledger.audit import Log, verify_log
from ledger.audit import checkpoint as sign_checkpoint
from ledger.bulk import Interrupted, WorkerFailed, append_feed, interruptible
from ledger.checkpoint import (
    DEFAULT_ORIGIN,
    CheckpointError,
    init_key,
    key_path,
    load_signer,
    load_verifier,
)
from ledger.errors import AuthorityExists, LedgerError, StorageError
from ledger.lifecycle import end_with_parent
from ledger.storage import DEFAULT_URL, redact, redact_text
from projections import policy as policies
from projections.bundle import make_bundle, verify_bundle
from projections.explanation import Explanation
from projections.lock import acquire, projector_lock
from projections.policy import Policy, PolicyError
from projections.queries import NotProjected, ScoreAnswer, Scores
from projections.runner import Projector, catch_up, tracking_name
from projections.store import PositionConflict, ViewStore
from scripts.demo import DEMO_AUTHORITIES, DEMO_UNTIL, Population
from scripts.tokens import ROLES, TokenStore

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

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
        raise Unusable(redact_text(str(e), url)) from None
    except (PersistenceError, psycopg.Error, sqlite3.Error, OSError) as e:
        raise Unusable(f"db: cannot open {redact(url)}: {redact_text(str(e), url)}") from None
    try:
        yield app
    except (PersistenceError, psycopg.Error, sqlite3.Error) as e:
        raise Unusable(f"db: {redact_text(str(e), url)}") from None
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
    with stream:
        with open_ledger(url):
            pass  # fails early, with exit 2, when the database cannot be used
        report = _append_with_progress(url, stream, size, patience)
    _print_report(report, as_json)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


def _append_with_progress(
    url: str, stream: IO[bytes], size: int, patience: float
) -> AppendReport:
    clock = _clock()
    if not (sys.stderr.isatty() and size > 1_000_000):
        return _feed(url, _numbered_lines(stream), clock, patience)
    with Progress(
        *Progress.get_default_columns(), console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task("appending", total=size)

        def lines() -> Iterator[tuple[int, bytes]]:
            for number, line in _numbered_lines(stream):
                progress.advance(task, len(line))
                yield number, line

        return _feed(url, lines(), clock, patience)


def _feed(
    url: str,
    lines: Iterable[tuple[int, bytes]],
    clock: Clock | None,
    patience: float,
    progress: Callable[[int], None] | None = None,
) -> AppendReport:
    try:
        with interruptible():
            return append_feed(url, lines, clock=clock, progress=progress, patience=patience)
    except KeyboardInterrupt as e:
        stopped = e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)
        click.echo(str(stopped), err=True)
        sys.exit(stopped.exit_code)
    except WorkerFailed as e:
        raise Unusable(
            f"{e}; the append stopped: the records the database acknowledged stay stored, "
            "and sending the same feed again is safe"
        ) from None
    except LedgerError as e:
        raise Unusable(str(e)) from None
    except (PersistenceError, psycopg.Error, sqlite3.Error) as e:
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
        report = _feed(url, lines, _clock(), 0.0, lambda n: progress.advance(task, n))
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
        _project(app, store, scores.all_policies(), console)
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
        _print_explanation(answer, explanation)


def _print_regions(chosen: Policy, counts: dict[tuple[str, str], int], day: date) -> None:
    names = [band.band for band in chosen.bands]
    table = Table("province", *names, title=f"{chosen.name} bands by province on {day}")
    for province in sorted({p for p, _ in counts}):
        table.add_row(province, *(str(counts.get((province, b), 0)) for b in names))
    Console(width=160).print(table)


@contextmanager
def open_views(url: str) -> Iterator[ViewStore]:
    try:
        store = ViewStore(url)
    except LedgerError as e:
        raise Unusable(redact_text(str(e), url)) from None
    except (psycopg.Error, sqlite3.Error, OSError) as e:
        raise Unusable(
            f"db: cannot open the views in {redact(url)}: {redact_text(str(e), url)}"
        ) from None
    try:
        yield store
    except (psycopg.Error, sqlite3.Error) as e:
        raise Unusable(f"db: {redact_text(str(e), url)}") from None
    finally:
        store.close()


@contextmanager
def open_scores(url: str) -> Iterator[Scores]:
    with open_ledger(url) as app, open_views(url) as store:
        try:
            yield Scores(app, store)
        except PolicyError as e:
            raise click.UsageError(str(e)) from None


def _project(
    app: Ledger,
    store: ViewStore,
    chosen: list[Policy],
    console: Console,
    wait: float | None = None,
) -> None:
    """Catch up as the one projector. Beside a running one, give up after `wait` seconds,
    or with None wait until it (or this, once it stops) has reached the end of the log."""
    lock = projector_lock(app.url)
    try:
        head = app.max_position()
        if wait is not None:
            acquire(lock, app.url, wait)
        elif not lock.try_acquire():
            click.echo("another projector is running; waiting for the projections to reach "
                       f"position {head}", err=True)  # fmt: skip
            while not lock.try_acquire():
                if min(store.position(tracking_name(p)) for p in chosen) >= head:
                    return
                time.sleep(0.2)
        behind = app.max_position() - min(store.position(tracking_name(p)) for p in chosen)
        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=console, transient=True,
            disable=not console.is_terminal,
        ) as progress:  # fmt: skip
            task = progress.add_task("projecting", total=max(behind, 0))
            catch_up(app, store, chosen, progress=lambda n: progress.advance(task, n),
                     before_write=lock.check)  # fmt: skip
    except (LedgerError, PositionConflict) as e:
        raise Unusable(str(e)) from None
    finally:
        lock.close()


def _answer_or_exit(ask: Callable[[], T]) -> T:
    try:
        return ask()
    except (NotProjected, StorageError) as e:
        raise Unusable(str(e)) from None
    except LedgerError as e:
        raise click.UsageError(str(e)) from None


def parse_policy(_: Any, param: click.Parameter, value: str | None) -> str | None:
    """A shipped or registered policy's name; never a path."""
    if value is not None and value not in policies.available():
        raise click.BadParameter(
            f"no policy {value!r}; available: {', '.join(policies.available()) or 'none'}"
        )
    return value


policy_option = click.option(
    "--policy", callback=parse_policy, help="A policy name [default: the promoted one]."
)
as_of_option = click.option(
    "--as-of", callback=parse_date, help="The day the score is for [default: today]."
)
known_at_option = click.option(
    "--known-at",
    callback=parse_timestamp,
    help="Replay what had been recorded by this ISO timestamp instead of the projection.",
)


def reading_options(command: F) -> F:
    """--policy, --as-of and --known-at, as every score-reading command takes them."""
    return policy_option(as_of_option(known_at_option(command)))


@main.command()
@click.argument("citizen")
@reading_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@db_option
def score(
    citizen: str, policy: str | None, as_of: date | None, known_at: datetime | None,
    as_json: bool, url: str,
) -> None:  # fmt: skip
    """A citizen's score and band under a policy on a day."""
    with open_scores(url) as scores:
        answer = _answer_or_exit(lambda: scores.score(citizen, policy, as_of, known_at))
    if as_json:
        emit_json(answer.to_json())
        return
    click.echo(
        f"{answer.citizen}: {answer.score} ({answer.band}) under {answer.policy} on {answer.as_of}"
    )
    click.echo(_source(answer))


def _source(answer: ScoreAnswer) -> str:
    if answer.known_at is not None:
        return f"replayed from the records known at {answer.known_at.isoformat()}"
    lag = "up to date" if answer.lag == 0 else f"{answer.lag} events behind the log"
    return f"from the projection at position {answer.position}, {lag}"


@main.command()
@click.argument("citizen")
@reading_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@db_option
def explain(
    citizen: str, policy: str | None, as_of: date | None, known_at: datetime | None,
    as_json: bool, url: str,
) -> None:  # fmt: skip
    """Why the score is what it is: ranked reasons and every counting contribution."""
    with open_scores(url) as scores:
        answer, explanation = _answer_or_exit(
            lambda: scores.explain(citizen, policy, as_of, known_at)
        )
    if as_json:
        emit_json({**answer.to_json(), **explanation.to_json()})
        return
    _print_explanation(answer, explanation)


def _print_explanation(answer: ScoreAnswer, explanation: Explanation) -> None:
    console = Console(width=160)
    console.print(
        f"{answer.citizen}: {answer.score} ({answer.band}) under {answer.policy} "
        f"version {explanation.policy.version} on {answer.as_of}; {_source(answer)}"
    )
    columns = ("authority", "reference", "kind", "points", "rule", "status", "from", "until",
               "what ends it")  # fmt: skip
    for title, items in (("reasons", explanation.reasons),
                         ("counting contributions", explanation.counting)):  # fmt: skip
        table = Table(*columns, title=title)
        for item in items:
            c = item.contribution
            table.add_row(
                c.authority, c.reference, c.kind, f"{c.points:+d}", c.rule, item.status,
                c.counts_from.isoformat(), c.counts_until.isoformat() if c.counts_until else "",
                item.remedy or "",
            )  # fmt: skip
        console.print(table)
    console.print(f"expired contributions: {explanation.expired}")
    disputed = ", ".join(str(k) for k in explanation.disputed) or "none"
    console.print(f"records under dispute: {disputed}")


@main.group("list")
def list_group() -> None:
    """Lists built by the projections."""


@list_group.command("enforcement")
@as_of_option
@policy_option
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def list_enforcement(as_of: date | None, policy: str | None, as_json: bool, url: str) -> None:
    """Citizens with an open, counting judgment default on the day (the defaulter list)."""
    with open_scores(url) as scores:
        listed = _answer_or_exit(lambda: scores.enforcement(as_of, policy))
        day = as_of or scores.ledger.today()
    if as_json:
        emit_json([item.to_json() for item in listed])
        return
    table = Table("citizen", "authority", "reference", "listed on", "until",
                  title=f"enforcement list on {day}: {len(listed)} citizens")  # fmt: skip
    for item in listed:
        table.add_row(item.citizen, item.authority, item.reference, item.listed_on.isoformat(),
                      item.until.isoformat() if item.until else "")  # fmt: skip
    Console(width=160).print(table)


@main.command()
@click.option("--follow", is_flag=True, help="Keep following the log until interrupted.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--wait", default=5.0, show_default=True, type=click.FloatRange(0),
              help="Without --follow: seconds to wait for a running projector to stop.")
# Set by a parent such as `ledger serve`, so that this ends when the parent does.
@click.option("--parent-pid", envvar="LEDGER_PARENT_PID", type=int, hidden=True)
@db_option
def project(follow: bool, interval: float, wait: float, parent_pid: int | None, url: str) -> None:
    """Bring every policy's projection up to the end of the log.

    One projector writes a ledger's projections at a time. Beside a running one this
    waits --wait seconds, then exits with 2; with --follow it waits as a standby and
    takes over when the other stops. A follower rides out database outages and stops
    cleanly on Ctrl-C or SIGTERM.
    """
    if parent_pid is not None:
        end_with_parent(parent_pid)

    def interrupt(signum: int, _: Any) -> None:
        # The first signal unwinds, closing connections; a second one ends at once.
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(130))
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    console = Console(stderr=True)
    try:
        if follow:
            positions = _follow(url, interval)
        else:
            with open_scores(url) as scores:
                chosen = scores.all_policies()
                _project(scores.ledger, scores.store, chosen, console, wait)
                positions = {p.name: scores.store.position(tracking_name(p)) for p in chosen}
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for name, position in positions.items():
        click.echo(f"{name}: position {position}")


def _follow(url: str, interval: float) -> dict[str, int]:
    """Follow as the one projector, or its standby, until interrupted; even the first
    connection is retried, so a follower may start before its database."""
    try:
        chosen = [policies.load(name) for name in policies.available()]
        projector = Projector(
            url, chosen, interval, lambda message: click.echo(f"project: {message}", err=True),
            lambda at: Ledger(at, clock=_clock()),
        )  # fmt: skip
    except PolicyError as e:
        raise click.UsageError(str(e)) from None
    except LedgerError as e:
        raise Unusable(str(e)) from None
    with suppress(KeyboardInterrupt):
        projector.run()
    return projector.positions


@main.group("policy")
def policy_group() -> None:
    """The scoring policies and which one readers get by default."""


@policy_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def policy_list(as_json: bool, url: str) -> None:
    """Each policy's version, projection position and lag."""
    with open_scores(url) as scores:
        head = scores.ledger.max_position()
        default = scores.policy().name
        rows = [
            {
                "name": item.name,
                "version": item.version,
                "title": item.title,
                "position": (at := scores.store.position(tracking_name(item))),
                "lag": head - at,
                "default": item.name == default,
            }
            for item in scores.all_policies()
        ]
    if as_json:
        emit_json(rows)
        return
    table = Table("policy", "version", "title", "position", "lag", "default")
    for row in rows:
        table.add_row(
            str(row["name"]), str(row["version"]), str(row["title"]), str(row["position"]),
            str(row["lag"]), "yes" if row["default"] else "",
        )  # fmt: skip
    Console().print(table)


@policy_group.command("promote")
@click.argument("name")
@db_option
def policy_promote(name: str, url: str) -> None:
    """Make NAME the policy readers get when they name none."""
    with open_scores(url) as scores:
        scores.promote(name)
        lag = scores.ledger.max_position() - scores.store.position(
            tracking_name(scores.policy(name))
        )
    click.echo(f"{name} is now the default policy" + (f"; it lags {lag} events" if lag else ""))


@main.group()
def prove() -> None:
    """Merkle proofs over the ledger's log (RFC 9162, SHA-256)."""


@prove.command("inclusion")
@click.argument("position", type=click.IntRange(1))
@click.option("--size", type=click.IntRange(1), help="The tree size [default: the current one].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object; hashes in hex.")
@db_option
def prove_inclusion(position: int, size: int | None, as_json: bool, url: str) -> None:
    """Prove the event at POSITION is in the log of the given size."""
    with open_ledger(url) as app:
        proof = _answer_or_exit(lambda: Log(app).inclusion(position, size))
    if as_json:
        emit_json(proof.to_json())
        return
    click.echo(f"position {proof.position} is leaf {proof.index} of {proof.size}")
    click.echo(f"leaf hash {proof.leaf_hash.hex()}")
    click.echo(f"root      {proof.root.hex()}")
    for step in proof.proof:
        click.echo(f"  {step.hex()}")


@prove.command("consistency")
@click.argument("old_size", type=click.IntRange(1))
@click.argument("new_size", type=click.IntRange(1), required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object; hashes in hex.")
@db_option
def prove_consistency(old_size: int, new_size: int | None, as_json: bool, url: str) -> None:
    """Prove the log of OLD_SIZE is a prefix of the log of NEW_SIZE [default: current]."""
    with open_ledger(url) as app:
        proof = _answer_or_exit(lambda: Log(app).consistency(old_size, new_size))
    if as_json:
        emit_json(proof.to_json())
        return
    click.echo(f"size {proof.size1} root {proof.root1.hex()}")
    click.echo(f"size {proof.size2} root {proof.root2.hex()}")
    for step in proof.proof:
        click.echo(f"  {step.hex()}")


def key_option(command: F) -> F:
    return click.option(
        "--key",
        "key",
        help="The signing key [default: $LEDGER_SIGNING_KEY, else ./ledger.key].",
    )(command)


@main.group()
def keys() -> None:
    """The log's Ed25519 signing key."""


@keys.command("init")
@key_option
@click.option("--origin", default=DEFAULT_ORIGIN, show_default=True,
              help="The log's name, the first line of every checkpoint.")  # fmt: skip
def keys_init(key: str | None, origin: str) -> None:
    """Create the signing key (mode 0600) and PATH.pub; print the public key."""
    path = key_path(key)
    try:
        verifier = init_key(path, origin)
    except CheckpointError as e:
        raise Unusable(str(e)) from None
    click.echo(verifier.vkey())


@main.group(invoke_without_command=True)
@key_option
@db_option
@click.pass_context
def checkpoint(ctx: click.Context, key: str | None, url: str) -> None:
    """Sign the log's current tree head as a C2SP checkpoint, keep it and print it."""
    if ctx.invoked_subcommand is not None:
        return
    private, verifier = _answer_or_exit(lambda: load_signer(key_path(key)))
    with open_ledger(url) as app:
        note = sign_checkpoint(app, private, verifier)
    click.echo(note, nl=False)


@checkpoint.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def checkpoint_list(as_json: bool, url: str) -> None:
    """The checkpoints kept, oldest first."""
    with open_ledger(url) as app:
        kept = Log(app).store.checkpoints()
    if as_json:
        emit_json([{"size": size, "created_at": at, "note": note} for size, note, at in kept])
        return
    table = Table("size", "signed at", "root (base64)")
    for size, note, at in kept:
        table.add_row(str(size), at, note.split("\n")[2])
    Console(width=160).print(table)


@main.command()
@click.option(
    "--public-key",
    help="The verifier key or a file holding it [default: the signing key's .pub].",
)
@key_option
@db_option
def verify(public_key: str | None, key: str | None, url: str) -> None:
    """Recompute every leaf and node of the log's tree and check every checkpoint;
    name the first damage found.

    Exit 0 when everything matches, 1 when something does not.
    """
    pub = public_key or f"{key_path(key)}.pub"
    verifier = (
        _answer_or_exit(lambda: load_verifier(pub)) if (public_key or Path(pub).is_file()) else None
    )
    with open_ledger(url) as app:
        size = Log(app).size()
        kept = len(Log(app).store.checkpoints())
        damage = verify_log(app, verifier)
    if damage is None:
        plural = "" if kept == 1 else "s"
        checked = f" and {kept} signed checkpoint{plural}" if verifier else " (no public key: "
        checked += "" if verifier else "checkpoints not checked)"
        click.echo(f"verified {size} events: every leaf and node matches{checked}")
        return
    click.echo(f"damage at {damage}", err=True)
    sys.exit(EXIT_REJECTED)


@main.command()
@click.argument("citizen")
@reading_options
@click.option("--bundle", "bundle_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write everything, with proofs, to this JSON file.")  # fmt: skip
@db_option
def audit(
    citizen: str, policy: str | None, as_of: date | None, known_at: datetime | None,
    bundle_path: str | None, url: str,
) -> None:  # fmt: skip
    """The citizen's history as known at a time, each event with the score just after it,
    and the explanation on the day; with --bundle, a file an auditor checks offline."""
    with open_scores(url) as scores:
        chosen = _answer_or_exit(lambda: scores.policy(policy))
        steps = _answer_or_exit(lambda: scores.audit_history(citizen, known_at))
        answer, explanation = _answer_or_exit(
            lambda: scores.explain(citizen, chosen.name, as_of, known_at or _END_OF_TIME)
        )
        bundle = (
            _answer_or_exit(lambda: make_bundle(scores, citizen, chosen.name, as_of, known_at))
            if bundle_path else None
        )  # fmt: skip
    table = Table("position", "recorded at", "record", "reference", "occurred on",
                  f"{chosen.name} after", "started", "ended",
                  title=f"history of {answer.citizen}")  # fmt: skip
    for step in steps:
        points, band = step.scores[chosen.name]
        table.add_row(
            str(step.entry.position), step.entry.recorded_at.isoformat(timespec="seconds"),
            step.entry.record.type, f"{step.entry.record.authority}/{step.entry.record.reference}",
            step.entry.record.occurred_on.isoformat(), f"{points} ({band})",
            ", ".join(f"{c.rule} {c.points:+d}" for c in step.started[chosen.name]),
            ", ".join(c.rule for c in step.ended[chosen.name]),
        )  # fmt: skip
    Console(width=200).print(table)
    _print_explanation(answer, explanation)
    if bundle is not None and bundle_path is not None:
        Path(bundle_path).write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
        click.echo(f"bundle written to {bundle_path}: {len(bundle['events'])} events")


_END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)


@main.command("verify-bundle")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", required=True, help="The verifier key or a file holding it.")
def verify_bundle_command(bundle_file: str, public_key: str) -> None:
    """Check an audit bundle offline: signature, leaves, proofs and replayed scores.

    Exit 0 only if all of it holds.
    """
    verifier = _answer_or_exit(lambda: load_verifier(public_key))
    try:
        bundle = orjson.loads(Path(bundle_file).read_bytes())
        checked = verify_bundle(bundle, verifier)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, LedgerError) as e:
        click.echo(f"the bundle does not hold: {e}", err=True)
        sys.exit(EXIT_REJECTED)
    click.echo(
        f"the bundle holds: {checked.events} events, each in the log of {checked.size} "
        "signed by the key, every score replayed"
    )


@main.group()
def token() -> None:
    """Bearer tokens for the HTTP service."""


_audit_log = logging.getLogger("ledger.tokens")


@token.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--authority", help="The authority a service token appends for.")
@click.option("--expires", callback=parse_date, help="The last day it is accepted.")
@db_option
def token_create(role: str, authority: str | None, expires: date | None, url: str) -> None:
    """Create a token and print it, once, alone on one line; only its hash is kept."""
    with open_ledger(url) as app, open_views(url) as views:
        if authority and authority not in {a.authority_id for a in app.authorities()}:
            raise click.UsageError(f"authority: {authority} is not a registered authority")
        secret, made = _answer_or_exit(
            lambda: TokenStore(views).create(role, authority, expires, app.clock.now())
        )
    _audit_log.warning(json.dumps({"event": "token_created", "token": made.token_id,
                                   "role": role, "authority": authority}))  # fmt: skip
    click.echo(secret)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def token_list(as_json: bool, url: str) -> None:
    """Every token: id, role, authority, expiry, and whether revoked (never the secret)."""
    with open_views(url) as views:
        kept = TokenStore(views).list()
    rows = [{"id": t.token_id, "role": t.role, "authority": t.authority,
             "expires": t.expires.isoformat() if t.expires else None,
             "created_at": t.created_at, "revoked_at": t.revoked_at} for t in kept]  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "role", "authority", "expires", "created", "revoked")
    columns = ("id", "role", "authority", "expires", "created_at", "revoked_at")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in columns))
    Console(width=160).print(table)


@token.command("revoke")
@click.argument("token_id")
@db_option
def token_revoke(token_id: str, url: str) -> None:
    """Revoke a token by its id; it is refused from then on."""
    with open_ledger(url) as app, open_views(url) as views:
        _answer_or_exit(lambda: TokenStore(views).revoke(token_id, app.clock.now()))
    _audit_log.warning(json.dumps({"event": "token_revoked", "token": token_id}))
    click.echo(f"revoked {token_id}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1))
@click.option("--max-body-mb", default=256, show_default=True, type=click.IntRange(1),
              help="Requests with larger bodies get 413.")  # fmt: skip
@click.option("--project", "with_runner", is_flag=True,
              help="Also run the projection runner beside the service.")  # fmt: skip
@db_option
def serve(
    host: str, port: int, workers: int, max_body_mb: int, with_runner: bool, url: str
) -> None:
    """Run the HTTP service: granian worker processes, each running the app in threads.

    A request is read whole, under time limits, before it takes a thread, so slow
    clients cannot starve the others. The database URL reaches the server and the
    runner through their environment, never their command lines.
    """
    with open_ledger(url):
        pass  # fails early, with exit 2, when the database cannot be used
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_PARENT_PID": str(os.getpid()),
           "LEDGER_MAX_BODY": str(max_body_mb * 1024 * 1024)}  # fmt: skip
    children = []
    if with_runner:
        children.append(subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "project", "--follow"], env=env
        ))  # fmt: skip
    server = subprocess.Popen(  # noqa: S603 - this program's own server
        [sys.executable, "-m", "scripts.service.server", "--host", host, "--port", str(port),
         "--workers", str(workers)], env=env,
    )  # fmt: skip
    children.append(server)

    def stop(signum: int, _: Any) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = server.wait()
    for child in children:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    sys.exit(code)


if __name__ == "__main__":
    main()
