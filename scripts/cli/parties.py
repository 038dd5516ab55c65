"""Relying parties: `ledger party` registers them and their purposes, and `ledger
decide` answers one's request for a decision about a citizen."""

from __future__ import annotations

from datetime import date, datetime

import click
from rich.console import Console
from rich.table import Table

from ledger.domain.purposes import purposes
from projections.decisions import reason_words
from projections.decisions.requests import Answer, request_decision
from scripts.cli.base import (
    answer_or_exit,
    as_of_option,
    db_option,
    emit_json,
    known_at_option,
    main,
    open_citizen_ledger,
    open_ledger,
    parse_date,
)


@main.group()
def party() -> None:
    """Register and list the relying parties (banks, employers, licensing boards)."""


@party.command("add")
@click.argument("party_id", metavar="ID")
@click.option("--name", required=True, help="The party's official name.")
@click.option("--purpose", "chosen", multiple=True, required=True, metavar="PURPOSE",
              help="A purpose it may ask for decisions for; repeatable. One of: "
                   + ", ".join(sorted(purposes())) + ".")  # fmt: skip
@click.option("--from", "entitled_from", callback=parse_date, help="Entitled from this date on.")
@db_option
def party_add(
    party_id: str, name: str, chosen: tuple[str, ...], entitled_from: date | None, url: str
) -> None:
    """Register relying party ID for the given purposes."""
    with open_ledger(url) as app:
        position = app.register_party(party_id, name, list(chosen), entitled_from)
    click.echo(f"registered {party_id} at position {position}")


@party.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def party_list(as_json: bool, url: str) -> None:
    """List the registered relying parties."""
    with open_ledger(url) as app:
        parties = app.parties()
    if as_json:
        emit_json([
            {"id": p.party_id, "name": p.name, "purposes": list(p.purposes),
             "from": p.entitled_from.isoformat() if p.entitled_from else None,
             "registered_at": p.registered_at.isoformat()}
            for p in parties
        ])  # fmt: skip
        return
    table = Table("id", "name", "purposes", "from")
    for p in parties:
        table.add_row(p.party_id, p.name, "\n".join(p.purposes),
                      p.entitled_from.isoformat() if p.entitled_from else "always")  # fmt: skip
    Console().print(table)


@main.command()
@click.argument("citizen")
@click.option("--party", "party_id", required=True, help="The relying party asking.")
@click.option("--purpose", required=True, help="What the party asks for, e.g. mortgage.")
@click.option("--rule", "rule_name", help="The decision rule; by default the purpose's newest.")
@as_of_option
@known_at_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@db_option
def decide(
    citizen: str, party_id: str, purpose: str, rule_name: str | None, as_of: date | None,
    known_at: datetime | None, as_json: bool, url: str,
) -> None:  # fmt: skip
    """Decide for a relying party about CITIZEN, and record the decision on their file.

    With --known-at, replay a decision as the file stood at that time, recording
    nothing: the same outcome and reasons as the decision recorded then."""
    with open_citizen_ledger(url, citizen) as app:
        answer = answer_or_exit(lambda: request_decision(
            app, party_id, purpose, citizen, rule_name, as_of, known_at))  # fmt: skip
    if as_json:
        emit_json(answer.to_json())
        return
    _print_answer(answer)


def _print_answer(answer: Answer) -> None:
    decision = answer.decision
    rule, score = decision.rule, decision.explanation.score
    console = Console(width=160)
    recorded = (f"recorded at position {answer.position}" if answer.position is not None
                else "a replay, not recorded")  # fmt: skip
    console.print(
        f"{answer.resident_id}: {decision.outcome.upper()} for {answer.party} "
        f"({rule.purpose.name}) under {rule.name}, on {decision.as_of}; score {score.score} "
        f"({score.band}) under {rule.policy.name} version {rule.policy.version}, "
        f"read up to position {answer.read_up_to}; {recorded}"
    )
    for condition in decision.unmet:
        console.print(f"condition not met: {condition.words()} (at best {condition.otherwise})")
    for n, item in enumerate(decision.reasons, start=1):
        console.print(f"reason {n}: {reason_words(item)}")
    notice = decision.notice()
    if notice is not None:
        console.print("adverse-action notice, sources: " + ", ".join(notice.sources))
        for right in notice.rights:
            console.print(f"  {right}")
