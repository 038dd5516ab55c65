"""The HTTP service: its bearer tokens and the command that serves it."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from datetime import date
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ledger.domain.identity import parse_resident_id
from ledger.transparency.checkpoint import load_verifier
from scripts.cli.base import (
    answer_or_exit,
    db_option,
    emit_json,
    main,
    open_ledger,
    open_views,
    parse_date,
)
from scripts.tokens import BOUND, ROLES, TokenStore


@main.group()
def token() -> None:
    """Bearer tokens for the HTTP service."""


_audit_log = logging.getLogger("ledger.tokens")


@token.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--authority", help="The authority a service token appends for.")
@click.option("--party", "party_id", help="The relying party a party token asks for.")
@click.option("--citizen", help="The resident id of the citizen a citizen token reads.")
@click.option("--expires", callback=parse_date, help="The last day it is accepted.")
@db_option
def token_create(
    role: str, authority: str | None, party_id: str | None, citizen: str | None,
    expires: date | None, url: str,
) -> None:  # fmt: skip
    """Create a token and print it, once, alone on one line; only its hash is kept."""
    named = {"authority": authority, "party": party_id, "citizen": citizen}
    given = {what: value for what, value in named.items() if value}
    if len(given) > 1:
        raise click.UsageError(f"name one of --{' or --'.join(given)}, not both")
    bound_to = next(iter(given.values()), None)
    if bound_to is not None and BOUND.get(role) != next(iter(given)):
        raise click.UsageError(f"a {role} token cannot be for a {next(iter(given))}")
    with open_ledger(url) as app, open_views(url) as views:
        if authority and authority not in {a.authority_id for a in app.authorities()}:
            raise click.UsageError(f"authority: {authority} is not a registered authority")
        if party_id:
            answer_or_exit(lambda: app.party(party_id))
        if citizen:
            bound_to = answer_or_exit(lambda: parse_resident_id(citizen).value)
        secret, made = answer_or_exit(
            lambda: TokenStore(views).create(role, bound_to, expires, app.clock.now())
        )
    _audit_log.warning(json.dumps({"event": "token_created", "token": made.token_id,
                                   "role": role, "bound_to": bound_to}))  # fmt: skip
    click.echo(secret)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_option
def token_list(as_json: bool, url: str) -> None:
    """Every token: id, role, authority, expiry, and whether revoked (never the secret)."""
    with open_views(url) as views:
        kept = TokenStore(views).list()
    rows = [{"id": t.token_id, "role": t.role, "authority": t.authority, "party": t.party,
             "citizen": t.citizen,
             "expires": t.expires.isoformat() if t.expires else None,
             "created_at": t.created_at, "revoked_at": t.revoked_at} for t in kept]  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "role", "for", "expires", "created", "revoked")
    columns = ("id", "role", "for", "expires", "created_at", "revoked_at")
    for row in rows:
        row["for"] = row["authority"] or row["party"] or row["citizen"]
        table.add_row(*(str(row[k] or "") for k in columns))
    Console(width=160).print(table)


@token.command("revoke")
@click.argument("token_id")
@db_option
def token_revoke(token_id: str, url: str) -> None:
    """Revoke a token by its id; it is refused from then on."""
    with open_ledger(url) as app, open_views(url) as views:
        answer_or_exit(lambda: TokenStore(views).revoke(token_id, app.clock.now()))
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
@click.option("--access-log", is_flag=True,
              help="Log a line for every request answered (costs a read about a tenth "
                   "of its time).")  # fmt: skip
@click.option("--public-key", envvar="LEDGER_PUBLIC_KEY",
              help="The log's verifier key (or a file holding it), which the console's "
                   "pages check checkpoints against.")  # fmt: skip
@db_option
def serve(
    host: str,
    port: int,
    workers: int,
    max_body_mb: int,
    with_runner: bool,
    access_log: bool,
    public_key: str | None,
    url: str,
) -> None:
    """Run the HTTP service: granian worker processes, each running the app in threads.

    Refused requests are always logged; every request only with --access-log.

    A request is read whole, under time limits, before it takes a thread, so slow
    clients cannot starve the others. The database URL reaches the server and the
    runner through their environment, never their command lines.
    """
    with open_ledger(url):
        pass  # fails early, with exit 2, when the database cannot be used
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_PARENT_PID": str(os.getpid()),
           "LEDGER_MAX_BODY": str(max_body_mb * 1024 * 1024)}  # fmt: skip
    if public_key:
        env["LEDGER_PUBLIC_KEY"] = answer_or_exit(lambda: load_verifier(public_key)).vkey()
    children = []
    if with_runner:
        children.append(subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "project", "--follow"], env=env
        ))  # fmt: skip
    server = subprocess.Popen(  # noqa: S603 - this program's own server
        [sys.executable, "-m", "scripts.service.server", "--host", host, "--port", str(port),
         "--workers", str(workers), *(["--access-log"] if access_log else [])], env=env,
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
