"""The `ledger` group and what its commands share: options, openers, errors, output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import click

from ledger.application import Clock, Ledger, open_patiently
from ledger.errors import LedgerError
from ledger.partitioned import PartitionedLedger, is_partitioned
from ledger.partitioned.checkpoints import TopLink, top_of
from ledger.storage import DEFAULT_URL, redact, redact_text
from projections import policy as policies
from projections.queries import Scores
from projections.store import ViewStore
from scripts.errors import DATABASE, EXIT_UNUSABLE, Exit, outcome

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Unusable(click.ClickException):
    """The input or the database cannot be used at all."""

    exit_code = EXIT_UNUSABLE


def exit_for(error: BaseException, url: str | None = None) -> click.ClickException:
    """How the command ends on `error`, as the error map says: a usage error, or unusable
    input; with `url`, its password never shows."""
    found = outcome(error)
    text = str(error) + (found.hint if found else "")
    if url is not None:
        text = redact_text(text, url)
    if found is not None and found.exit is Exit.USAGE:
        return click.UsageError(text)
    return Unusable(text)


def db_option(command: F) -> F:
    """--db, the database URL, as every command that reads or writes takes it."""
    return click.option(
        "--db",
        "url",
        envvar="LEDGER_DATABASE_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB (env LEDGER_DATABASE_URL).",
    )(command)


def injected_clock() -> Clock | None:
    """The clock a caller injected (tests do), else the system's."""
    clock: Clock | None = (click.get_current_context().obj or {}).get("clock")
    return clock


@contextmanager
def refusals_as_exits(url: str) -> Iterator[None]:
    """End the command as the error map says when the ledger refuses something, or
    with exit 2 when the database stops answering."""
    try:
        yield
    except LedgerError as e:
        raise exit_for(e, url) from None
    except DATABASE as e:
        raise Unusable(f"db: {redact_text(str(e), url)}") from None


@contextmanager
def open_routed(url: str, patience: float = 0.0) -> Iterator[Ledger | PartitionedLedger]:
    """The ledger at `url`, or, when it is a partitioned ledger's catalog, the whole
    partitioned ledger, as `open_ledger` opens it."""
    with open_ledger(url, patience) as app:
        if not is_partitioned(app):
            yield app
            return
        routed = PartitionedLedger(app, app.clock, patience)
        try:
            yield routed
        finally:
            routed.close_partitions()


@contextmanager
def open_citizen_ledger(url: str, citizen: str) -> Iterator[Ledger]:
    """As `open_ledger`, on a partitioned ledger the ledger of the citizen's partition."""
    with open_routed(url) as routed:
        yield routed if isinstance(routed, Ledger) else routed.for_resident(citizen)


@contextmanager
def open_citizen_audit(url: str, citizen: str) -> Iterator[tuple[Scores, TopLink | None]]:
    """As `open_citizen_scores`, with, on a partitioned ledger, what links a bundle
    of the citizen's partition to the whole ledger's checkpoint."""
    with open_routed(url) as routed:
        if isinstance(routed, Ledger):
            app, top = routed, None
        else:
            app, top = routed.for_resident(citizen), top_of(routed, citizen)
        with open_views(app.url) as store:
            yield Scores(app, store), top


@contextmanager
def open_citizen_scores(url: str, citizen: str) -> Iterator[Scores]:
    """As `open_scores`, on a partitioned ledger those of the citizen's partition."""
    with open_citizen_ledger(url, citizen) as app, open_views(app.url) as store:
        yield Scores(app, store)


def each_partition(routed: PartitionedLedger) -> Iterator[tuple[int, Scores]]:
    """Every partition of a partitioned ledger in order, with its ledger and views."""
    for number in range(routed.partitions):
        app = routed.partition(number)
        with open_views(app.url) as store:
            yield number, Scores(app, store)


@contextmanager
def open_ledger(url: str, patience: float = 0.0) -> Iterator[Ledger]:
    """Open the ledger, waiting up to `patience` seconds for a database that does not
    answer; a failure to reach it is exit 2, and a refusal while it is open ends the
    command as the error map says."""
    try:
        app = open_patiently(url, injected_clock(), patience)
    except LedgerError as e:
        raise exit_for(e, url) from None
    except (*DATABASE, OSError) as e:
        raise Unusable(f"db: cannot open {redact(url)}: {redact_text(str(e), url)}") from None
    try:
        with refusals_as_exits(url):
            yield app
    finally:
        app.close()


def parse_date(_: Any, param: click.Parameter, value: str | None) -> date | None:
    """An ISO date, or a usage error naming the value."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date such as 2024-05-31") from None


def parse_timestamp(_: Any, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO timestamp, UTC unless it has an offset, or a usage error naming the value."""
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
    """Print data as one line of JSON."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=None))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """An event-sourced ledger of records about citizens from registered authorities."""


@contextmanager
def open_views(url: str) -> Iterator[ViewStore]:
    """Open the read models; a failure to reach the database is exit 2, and a refusal
    while they are open ends the command as the error map says."""
    try:
        store = ViewStore(url)
    except LedgerError as e:
        raise exit_for(e, url) from None
    except (*DATABASE, OSError) as e:
        raise Unusable(
            f"db: cannot open the views in {redact(url)}: {redact_text(str(e), url)}"
        ) from None
    try:
        with refusals_as_exits(url):
            yield store
    finally:
        store.close()


@contextmanager
def open_scores(url: str) -> Iterator[Scores]:
    """The ledger and its read models together, as open_ledger and open_views open them."""
    with open_ledger(url) as app, open_views(url) as store:
        yield Scores(app, store)


def answer_or_exit(ask: Callable[[], T]) -> T:
    """Ask; a refusal ends the command as the error map says."""
    try:
        return ask()
    except LedgerError as e:
        raise exit_for(e) from None


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
