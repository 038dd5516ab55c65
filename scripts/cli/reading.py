"""Reading scores: score, explain, the enforcement list, policies and the projector."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import date, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ledger.application import Ledger
from ledger.errors import LedgerError
from ledger.lifecycle import end_with_parent
from ledger.partitioned import Catalog, PartitionedLedger, is_partitioned
from ledger.partitioned.ledger import MOVE_WAIT, gone
from ledger.storage import redact_text
from projections import policy as policies
from projections.explanation import Explanation
from projections.lock import acquire, projector_lock
from projections.policy import Policy
from projections.queries import ScoreAnswer, Scores, merged
from projections.runner import TRANSIENT, Projector, catch_up, tracking_name
from projections.store import PositionConflict, ViewStore
from scripts.cli.base import (
    Unusable,
    answer_or_exit,
    as_of_option,
    db_option,
    each_partition,
    emit_json,
    exit_for,
    injected_clock,
    main,
    open_citizen_scores,
    open_routed,
    open_scores,
    open_views,
    policy_option,
    reading_options,
)
from scripts.cli.progress import ProjectionProgress


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
    with open_citizen_scores(url, citizen) as scores:
        answer = answer_or_exit(lambda: scores.score(citizen, policy, as_of, known_at))
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
    with open_citizen_scores(url, citizen) as scores:
        answer, explanation = answer_or_exit(
            lambda: scores.explain(citizen, policy, as_of, known_at)
        )
    if as_json:
        emit_json({**answer.to_json(), **explanation.to_json()})
        return
    print_explanation(answer, explanation)


def print_explanation(answer: ScoreAnswer, explanation: Explanation) -> None:
    """The score, its source, the reasons and the counting contributions, as tables."""
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
    # Inside open_routed, a refusal ends the command as the error map says.
    with open_routed(url) as routed:
        if isinstance(routed, Ledger):
            day = as_of or routed.today()
            with open_views(url) as store:
                listed = Scores(routed, store).enforcement(day, policy)
        else:
            day = as_of or routed.catalog.today()
            listed = merged(
                [scores.enforcement(day, policy) for _, scores in each_partition(routed)]
            )
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
@click.option(
    "--wait",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Without --follow: seconds to wait for a running projector to stop.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Processes sharing a rebuild or a catch-up [default: both cores once there are "
    "20,000 events or more to fold; one a partition when following a partitioned ledger].",
)
# Set by a parent such as `ledger serve`, so that this ends when the parent does.
@click.option("--parent-pid", envvar="LEDGER_PARENT_PID", type=int, hidden=True)
@db_option
def project(
    follow: bool, interval: float, wait: float, workers: int | None, parent_pid: int | None,
    url: str,
) -> None:  # fmt: skip
    """Bring every policy's projection up to the end of the log.

    One projector writes a ledger's projections at a time. Beside a running one this
    waits --wait seconds, then exits with 2; with --follow it waits as a standby and
    takes over when the other stops. A follower rides out database outages and stops
    cleanly on Ctrl-C or SIGTERM, its worker processes with it.
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
            urls = _partition_urls(url, interval)
            positions = (
                _follow(url, interval, workers)
                if urls is None
                else _follow_partitions(url, urls, interval)
            )
        else:
            positions = _project_once(url, console, wait, workers)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for name, position in positions.items():
        click.echo(f"{name}: position {position}")


def _project_once(url: str, console: Console, wait: float, workers: int | None) -> dict[str, int]:
    """Bring every policy's projection up to the end of the log, or of every
    partition's log; the positions reached, by projection."""
    with open_routed(url) as routed:
        if isinstance(routed, Ledger):
            with open_views(url) as store:
                return _projected(Scores(routed, store), console, wait, workers)
        positions = {}
        for number, scores in each_partition(routed):
            positions.update(_projected(scores, console, wait, workers, f"partition {number} "))
        return positions


def _projected(
    scores: Scores, console: Console, wait: float, workers: int | None, prefix: str = ""
) -> dict[str, int]:
    chosen = scores.all_policies()
    project_views(scores.ledger, scores.store, chosen, console, wait, workers)
    return {prefix + p.name: scores.store.position(tracking_name(p)) for p in chosen}


def _partition_urls(url: str, interval: float) -> list[str] | None:
    """The partitions' URLs when `url` is a partitioned ledger's catalog, else None.
    A follower may start before its database: this waits until it answers, since only
    then can it tell a catalog from a ledger of one log."""
    told = False
    while True:
        try:
            catalog = Ledger(url, clock=injected_clock())
        except TRANSIENT as e:
            if not told:
                click.echo(f"project: the database does not answer ({type(e).__name__}); "
                           "waiting for it", err=True)  # fmt: skip
                told = True
            time.sleep(interval)
            continue
        except LedgerError as e:
            raise exit_for(e, url) from None
        try:
            return list(PartitionedLedger(catalog).urls) if is_partitioned(catalog) else None
        finally:
            catalog.close()


def _follow_partitions(catalog: str, urls: list[str], interval: float) -> dict[str, int]:
    """Follow every partition's log, a projector each on a thread of its own, until
    interrupted. A projector whose partition moved to another shard follows it there
    once the shard map says where; one that fails otherwise ends them all, with exit 2,
    for whatever supervises this to start it again."""
    chosen = [policies.load(name) for name in policies.available()]
    stop = threading.Event()
    failed: list[str] = []
    # Read here: the threads have no command context to read it from.
    clock = injected_clock()
    reached: dict[str, int] = {}

    def told(number: int) -> Callable[[str], None]:
        return lambda message: click.echo(f"project: partition {number}: {message}", err=True)

    def run(number: int) -> None:
        at = urls[number]
        try:
            while not stop.is_set():
                # One process for all the partitions: worker processes forked from its
                # threads would multiply by the partitions, on the same cores.
                projector = Projector(at, chosen, interval, told(number),
                                      lambda opened: Ledger(opened, clock=clock),
                                      workers=1)  # fmt: skip
                try:
                    positions = projector.run(stop.is_set)
                except Exception as e:
                    if not gone(e):
                        raise
                    at = _moved_to(catalog, number, at, e)
                    told(number)(f"moved to {redact_text(at, at)}; following it there")
                    continue
                reached.update((f"partition {number} {name}", position)
                               for name, position in positions.items())  # fmt: skip
        except Exception as e:  # noqa: BLE001 - told to the main thread, which exits 2
            failed.append(redact_text(f"partition {number}: {type(e).__name__}: {e}", at))
            stop.set()

    threads = [
        threading.Thread(target=run, args=(n,), name=f"projector-{n}", daemon=True)
        for n in range(len(urls))
    ]
    for thread in threads:
        thread.start()
    try:
        while not stop.is_set():
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for thread in threads:
            thread.join(interval + 10)
    if failed:
        raise Unusable("; ".join(failed))
    return dict(sorted(reached.items()))


def _moved_to(catalog: str, partition: int, was: str, error: Exception) -> str:
    """Where the shard map places `partition` once it no longer says `was`; `error`
    again if it still does after MOVE_WAIT seconds (the partition is gone, not moved)."""
    deadline = time.monotonic() + MOVE_WAIT
    while True:
        opened = Ledger(catalog)
        try:
            now = Catalog(opened).shard_map().partition_url(partition)
        finally:
            opened.close()
        if now != was:
            return now
        if time.monotonic() > deadline:
            raise error
        time.sleep(0.5)


def _follow(url: str, interval: float, workers: int | None) -> dict[str, int]:
    """Follow as the one projector, or its standby, until interrupted; even the first
    connection is retried, so a follower may start before its database."""
    try:
        chosen = [policies.load(name) for name in policies.available()]
        projector = Projector(
            url, chosen, interval, lambda message: click.echo(f"project: {message}", err=True),
            lambda at: Ledger(at, clock=injected_clock()), workers,
        )  # fmt: skip
    except LedgerError as e:
        raise exit_for(e, url) from None
    with suppress(KeyboardInterrupt):
        projector.run()
    return projector.positions


def project_views(
    app: Ledger,
    store: ViewStore,
    chosen: list[Policy],
    console: Console,
    wait: float | None = None,
    workers: int | None = None,
) -> None:
    """Catch up as the one projector. Beside a running one, give up after `wait` seconds,
    or with None wait until it (or this, once it stops) has reached the end of the log.
    `workers`: processes sharing the work, as `catch_up` takes them."""
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
        with ProjectionProgress(console, behind) as progress:
            catch_up(app, store, chosen, progress=progress, before_write=lock.check,
                     workers=workers)  # fmt: skip
    except (LedgerError, PositionConflict) as e:
        raise exit_for(e, app.url) from None
    finally:
        lock.close()


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
