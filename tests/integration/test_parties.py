"""Relying parties: registered as events, like authorities, only for known purposes."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.application import FixedClock, Ledger
from ledger.errors import NotEntitled
from scripts.cli import main


@pytest.fixture
def cli(clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("LEDGER_DATABASE_URL", raising=False)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), obj={"clock": clock})

    return run


def listed(cli: Any, store_url: str) -> list[dict[str, Any]]:
    result = cli("party", "list", "--json", "--db", store_url)
    assert result.exit_code == 0, result.output
    return [{k: v for k, v in p.items() if k != "registered_at"} for p in json.loads(result.stdout)]


def test_a_party_is_registered_for_its_purposes_and_listed(cli: Any, store_url: str) -> None:
    added = cli("party", "add", "bank-a", "--name", "Bank A", "--purpose", "mortgage",
                "--purpose", "consumer_loan", "--db", store_url)  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith("registered bank-a at position ")
    assert cli("party", "add", "board", "--name", "Medical Board", "--purpose",
               "licensed_employment", "--from", "2026-01-01", "--db", store_url
               ).exit_code == 0  # fmt: skip
    assert listed(cli, store_url) == [
        {"id": "bank-a", "name": "Bank A", "purposes": ["mortgage", "consumer_loan"],
         "from": None},
        {"id": "board", "name": "Medical Board", "purposes": ["licensed_employment"],
         "from": "2026-01-01"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bank-a", "--name", "Again", "--purpose", "mortgage"], "bank-a is already registered"),
        (["bank-b", "--name", "B", "--purpose", "espionage"], "no purpose 'espionage'"),
        (["bank b", "--name", "B", "--purpose", "mortgage"], "party: must be 1 to 64"),
        (["bank-b", "--name", "", "--purpose", "mortgage"], "name: must be 1 to 200"),
    ],
)
def test_a_bad_registration_is_refused_naming_what_is_wrong_and_writes_nothing(
    cli: Any, store_url: str, args: list[str], message: str
) -> None:
    assert cli("party", "add", "bank-a", "--name", "Bank A", "--purpose", "mortgage",
               "--db", store_url).exit_code == 0  # fmt: skip
    before = listed(cli, store_url)
    result = cli("party", "add", *args, "--db", store_url)
    assert result.exit_code == 2
    assert message in result.output
    assert listed(cli, store_url) == before


def test_a_party_may_ask_only_for_its_purposes_from_its_date(ledger: Ledger) -> None:
    ledger.register_party("board", "Medical Board", ["licensed_employment"], date(2026, 1, 1))
    party = ledger.party("board")
    party.check_entitled("licensed_employment", date(2026, 1, 1))
    with pytest.raises(NotEntitled, match="not registered for the purpose 'mortgage'"):
        party.check_entitled("mortgage", date(2026, 1, 1))
    with pytest.raises(NotEntitled, match="only from 2026-01-01"):
        party.check_entitled("licensed_employment", date(2025, 12, 31))
    with pytest.raises(NotEntitled, match="nobody is not a registered relying party"):
        ledger.party("nobody")


def test_party_and_citizen_tokens_are_bound_to_a_registered_party_and_a_valid_citizen(
    cli: Any, store_url: str
) -> None:
    assert cli("party", "add", "bank-a", "--name", "Bank A", "--purpose", "mortgage",
               "--db", store_url).exit_code == 0  # fmt: skip
    made = cli("token", "create", "--role", "party", "--party", "bank-a", "--db", store_url)
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("lt_")
    citizen = cli("token", "create", "--role", "citizen", "--citizen", "11010519491231002x",
                  "--db", store_url)  # fmt: skip
    assert citizen.exit_code == 0, citizen.output
    listed = json.loads(cli("token", "list", "--json", "--db", store_url).stdout)
    assert [(t["role"], t["party"], t["citizen"]) for t in listed] == [
        ("party", "bank-a", None), ("citizen", None, "11010519491231002X"),
    ]  # fmt: skip
    for args, message in (
        (["--role", "party"], "a party token is for one party"),
        (["--role", "party", "--party", "nobody"], "nobody is not a registered relying party"),
        (["--role", "reader", "--party", "bank-a"], "a reader token cannot be for a party"),
        (["--role", "citizen", "--citizen", "110105194912310021"], "citizen"),
        (["--role", "party", "--party", "bank-a", "--citizen", "11010519491231002X"],
         "not both"),
    ):  # fmt: skip
        refused = cli("token", "create", *args, "--db", store_url)
        assert refused.exit_code == 2, (args, refused.output)
        assert message in refused.output
    assert len(json.loads(cli("token", "list", "--json", "--db", store_url).stdout)) == 2
