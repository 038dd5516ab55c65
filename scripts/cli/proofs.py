"""Proving the log: Merkle proofs, the signing key, checkpoints, verification and audits."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from ledger.application import Ledger
from ledger.errors import LedgerError
from ledger.partitioned import PartitionedLedger
from ledger.partitioned.checkpoints import (
    check_top_checkpoints,
    sign_top,
    top_checkpoints,
)
from ledger.partitioned.checkpoints import prove_inclusion as prove_partitioned
from ledger.partitioned.claims import check_claims
from ledger.transparency.audit import Log, verify_log
from ledger.transparency.audit import checkpoint as sign_checkpoint
from ledger.transparency.checkpoint import (
    DEFAULT_ORIGIN,
    init_key,
    key_path,
    load_signer,
    load_verifier,
)
from projections.bundle import make_bundle, verify_bundle
from scripts.cli.base import (
    F,
    answer_or_exit,
    db_option,
    emit_json,
    main,
    open_citizen_audit,
    open_ledger,
    open_routed,
    reading_options,
)
from scripts.cli.reading import print_explanation
from scripts.errors import EXIT_REJECTED


@main.group()
def prove() -> None:
    """Merkle proofs over the ledger's log (RFC 9162, SHA-256)."""


@prove.command("inclusion")
@click.argument("position", type=click.IntRange(1))
@click.option("--size", type=click.IntRange(1), help="The tree size [default: the current one].")
@click.option("--partition", type=click.IntRange(0),
              help="On a partitioned ledger: the partition of POSITION; the proof then goes "
                   "up to the latest top checkpoint.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object; hashes in hex.")
@db_option
def prove_inclusion(
    position: int, size: int | None, partition: int | None, as_json: bool, url: str
) -> None:
    """Prove the event at POSITION is in the log of the given size."""
    with open_routed(url) as routed:
        if not isinstance(routed, Ledger):
            if partition is None or size is not None:
                raise click.UsageError(
                    "on a partitioned ledger give --partition, and no --size: the proof "
                    "is up to the latest top checkpoint"
                )
            found = prove_partitioned(routed, partition, position)
            if as_json:
                emit_json(found.to_json())
                return
            inclusion = found.inclusion
            click.echo(
                f"position {position} of partition {partition} is leaf "
                f"{inclusion.index} of {inclusion.size}, root {inclusion.root.hex()}"
            )
            click.echo(f"partition {partition}'s checkpoint is leaf {partition + 1} of "
                       f"{len(found.top.leaves)} in the top checkpoint:")  # fmt: skip
            click.echo(found.top.note, nl=False)
            return
        if partition is not None:
            raise click.UsageError("--partition is for a partitioned ledger")
        proof = Log(routed).inclusion(position, size)
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
        proof = answer_or_exit(lambda: Log(app).consistency(old_size, new_size))
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
    verifier = answer_or_exit(lambda: init_key(path, origin))
    click.echo(verifier.vkey())


@main.group(invoke_without_command=True)
@key_option
@db_option
@click.pass_context
def checkpoint(ctx: click.Context, key: str | None, url: str) -> None:
    """Sign the log's current tree head as a C2SP checkpoint, keep it and print it."""
    if ctx.invoked_subcommand is not None:
        return
    private, verifier = answer_or_exit(lambda: load_signer(key_path(key)))
    with open_routed(url) as routed:
        if isinstance(routed, Ledger):
            note = sign_checkpoint(routed, private, verifier)
        else:
            note = sign_top(routed, private, verifier)
    click.echo(note, nl=False)


@checkpoint.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def checkpoint_list(as_json: bool, url: str) -> None:
    """The checkpoints kept, oldest first (of a partitioned ledger, the top ones)."""
    with open_routed(url) as routed:
        if not isinstance(routed, Ledger):
            tops = top_checkpoints(routed)
            if as_json:
                emit_json([{"note": top.note, "leaves": list(top.leaves)} for top in tops])
            for top in [] if as_json else tops:
                click.echo(top.note)
            return
        kept = Log(routed).store.checkpoints()
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
        answer_or_exit(lambda: load_verifier(pub)) if (public_key or Path(pub).is_file()) else None
    )
    with open_routed(url) as routed:
        if isinstance(routed, Ledger):
            logs = [("", routed)]
        else:
            logs = [("the catalog: ", routed.catalog)] + [
                (f"partition {n}: ", routed.partition(n)) for n in range(routed.partitions)
            ]
        for name, app in logs:
            size = Log(app).size()
            kept = len(Log(app).store.checkpoints())
            damage = verify_log(app, verifier)
            if damage is not None:
                click.echo(f"{name}damage at {damage}", err=True)
                sys.exit(EXIT_REJECTED)
            plural = "" if kept == 1 else "s"
            checked = f" and {kept} signed checkpoint{plural}" if verifier else " (no public key: "
            checked += "" if verifier else "checkpoints not checked)"
            click.echo(f"{name}verified {size} events: every leaf and node matches{checked}")
        if not isinstance(routed, Ledger):
            damage = check_top_checkpoints(routed, verifier)
            if damage is not None:
                click.echo(f"damage at {damage}", err=True)
                sys.exit(EXIT_REJECTED)
            tops = len(top_checkpoints(routed))
            signed = "signed and " if verifier else ""
            click.echo(f"{tops} top checkpoint(s): each {signed}matching every log's tree")
            _claims_verified(routed)


def _claims_verified(routed: PartitionedLedger) -> None:
    """That every stored record holds the claim on its reference; else exit 1."""
    checked = check_claims(routed, fill=False)
    for double in checked.doubles():
        click.echo(f"damage: {double}", err=True)
    if checked.unclaimed:
        click.echo(f"{len(checked.unclaimed)} stored record(s) hold no claim on their reference "
                   f"(the first: {checked.unclaimed[0]}); run `ledger shards claim-references`",
                   err=True)  # fmt: skip
    if checked.doubled or checked.unclaimed:
        sys.exit(EXIT_REJECTED)
    click.echo(f"{checked.records} references: each held by its record's claim alone")


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
    with open_citizen_audit(url, citizen) as (scores, top):
        chosen = answer_or_exit(lambda: scores.policy(policy))
        steps = answer_or_exit(lambda: scores.audit_history(citizen, known_at))
        answer, explanation = answer_or_exit(
            lambda: scores.explain(citizen, chosen.name, as_of, known_at or _END_OF_TIME)
        )
        bundle = (
            answer_or_exit(
                lambda: make_bundle(scores, citizen, chosen.name, as_of, known_at, top)
            )
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
    print_explanation(answer, explanation)
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
    verifier = answer_or_exit(lambda: load_verifier(public_key))
    try:
        bundle = orjson.loads(Path(bundle_file).read_bytes())
        checked = verify_bundle(bundle, verifier)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, LedgerError) as e:
        click.echo(f"the bundle does not hold: {e}", err=True)
        sys.exit(EXIT_REJECTED)
    click.echo(
        f"the bundle holds: {checked.events} events and {checked.uses} inquiry or decision "
        f"records, each in the log of {checked.size} signed by the key, every score and "
        "decision replayed"
        + (f"; that log's checkpoint is in the whole ledger's, over {checked.logs} logs"
           if checked.logs else "")
    )  # fmt: skip
