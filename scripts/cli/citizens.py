"""The citizen's side: `ledger report` shows a citizen their own file, and `ledger
disputes pending` the dispute office what it has to resolve, by deadline."""

from __future__ import annotations

from datetime import date

import click
from rich.console import Console
from rich.table import Table

from ledger.application import Ledger
from projections.disputes import by_deadline, pending_disputes
from projections.report import citizen_report
from scripts.cli.base import (
    answer_or_exit,
    as_of_option,
    db_option,
    emit_json,
    main,
    open_citizen_ledger,
    open_routed,
)


@main.command()
@click.argument("citizen")
@as_of_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@db_option
def report(citizen: str, as_of: date | None, as_json: bool, url: str) -> None:
    """CITIZEN's own file: every record and its source, every score and its reasons,
    every inquiry and decision about them, and how to dispute what counts against them."""
    with open_citizen_ledger(url, citizen) as app:
        made = answer_or_exit(lambda: citizen_report(app, citizen, as_of))
    if as_json:
        emit_json(made.to_json())
        return
    console = Console(width=160)
    console.print(f"the file of {made.resident_id} on {made.as_of}, read up to position "
                  f"{made.read_up_to}")  # fmt: skip
    records = Table("position", "recorded at", "type", "source", "reference", "occurred on",
                    title="records")  # fmt: skip
    for logged in made.records:
        rec = logged.record
        records.add_row(str(logged.position), logged.recorded_at.isoformat(timespec="seconds"),
                        rec.type, made.authorities.get(rec.authority, rec.authority),
                        rec.reference, rec.occurred_on.isoformat())  # fmt: skip
    console.print(records)
    for explanation in made.scores:
        reasons = "; ".join(f"{i.contribution.kind} {i.contribution.points:+d}"
                            for i in explanation.reasons) or "none"  # fmt: skip
        console.print(f"{explanation.policy.name}: {explanation.score.score} "
                      f"({explanation.score.band}); reasons: {reasons}")  # fmt: skip
    uses = Table("position", "recorded at", "what", "party", "purpose", "outcome",
                 title="inquiries and decisions")  # fmt: skip
    for use in made.uses:
        party = str(use.fields.get("party"))
        uses.add_row(str(use.position), use.recorded_at.isoformat(timespec="seconds"), use.use,
                     made.parties.get(party, party), str(use.fields.get("purpose")),
                     str(use.fields.get("outcome", "")))  # fmt: skip
    console.print(uses)
    for against in made.against:
        until = against.until.isoformat() if against.until else "no end date"
        console.print(
            f"counts against you: {against.key} until {until}"
            f"{' (disputed)' if against.disputed else ''}; {against.how_to_dispute}"
        )


@main.group()
def disputes() -> None:
    """Disputes of records, for the dispute office."""


@disputes.command("pending")
@click.option("--due-within", type=click.IntRange(0), help="Only those due within DAYS.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def disputes_pending(due_within: int | None, as_json: bool, url: str) -> None:
    """Open disputes by deadline, the earliest first; resolve each with a
    dispute.resolved record."""
    with open_routed(url) as routed:
        apps = [routed] if isinstance(routed, Ledger) else [
            routed.partition(n) for n in range(routed.partitions)
        ]  # fmt: skip
        found = by_deadline(p for app in apps for p in pending_disputes(app, due_within))
        today = apps[0].today()
    if as_json:
        emit_json([p.to_json() for p in found])
        return
    table = Table("due", "citizen", "dispute", "of record", "opened on", title="open disputes")
    for p in found:
        late = " (overdue)" if p.due < today else ""
        table.add_row(p.due.isoformat() + late, p.citizen, str(p.dispute), str(p.target),
                      p.opened_on.isoformat())  # fmt: skip
    Console(width=160).print(table)
