"""The `ledger` command, in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.application import FixedClock
from scripts.cli import main
from scripts.demo import Population
from tests.builders import (
    AUTHORITIES,
    LI_WEI,
    WANG_FANG,
    enrolled,
    fine,
    record,
    target,
)
from tests.schemas import fresh_schema

SUMMARY = re.compile(r"^appended (\d+), duplicates (\d+), rejected (\d+)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ambient database URL, and a working directory of the test's own."""
    monkeypatch.delenv("LEDGER_DATABASE_URL", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def cli(clock: FixedClock) -> Any:
    """Runs `ledger ARGS...` in-process with the test's clock."""
    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None, env: dict[str, str] | None = None
            ) -> Result:  # fmt: skip
        return runner.invoke(main, list(args), input=input, env=env, obj={"clock": clock})

    return run


@pytest.fixture
def with_authorities(cli: Any, store_url: str) -> str:
    """The store, with the builders' authorities registered through the CLI."""
    for authority_id, (name, may_issue) in AUTHORITIES.items():
        args = ["authority", "add", authority_id, "--name", name, "--db", store_url]
        for entitlement in may_issue:
            args += ["--may-issue", entitlement]
        result = cli(*args)
        assert result.exit_code == 0, result.output
    return store_url


def ndjson(*records: dict[str, Any] | str) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def summary(result: Result) -> tuple[int, int, int]:
    match = SUMMARY.search(result.stdout)
    assert match, result.output
    appended, duplicates, rejected = match.groups()
    return int(appended), int(duplicates), int(rejected)


def history_json(cli: Any, url: str, citizen: str, *args: str) -> list[dict[str, Any]]:
    result = cli("history", citizen, "--json", "--db", url, *args)
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def content(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("position", "recorded_at")} for e in entries]


FEED = (
    enrolled(WANG_FANG),
    fine("TP-1"),
    record("infraction.settled", "TP-2", target=target("traffic-police", "TP-1"),
           amount="200.00", occurred_on="2025-02-01"),
)  # fmt: skip


# authority add / list


def test_authority_add_registers_and_names_the_position(cli: Any, store_url: str) -> None:
    first = cli("authority", "add", "traffic-police", "--name", "Traffic Management Bureau",
                "--may-issue", "infraction.recorded:traffic_fine",
                "--may-issue", "infraction.settled", "--db", store_url)  # fmt: skip
    second = cli("authority", "add", "civil-registry", "--name", "Civil Registry",
                 "--may-issue", "citizen.enrolled", "--db", store_url)  # fmt: skip
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    one = re.fullmatch(r"registered traffic-police at position (\d+)\n", first.stdout)
    two = re.fullmatch(r"registered civil-registry at position (\d+)\n", second.stdout)
    assert one, first.stdout
    assert two, second.stdout
    assert int(two.group(1)) > int(one.group(1)) > 0


def test_authority_list_json_shows_every_registration(
    cli: Any, store_url: str, clock: FixedClock
) -> None:
    start = clock.at
    assert cli("authority", "add", "traffic-police", "--name", "Traffic Police",
               "--may-issue", "infraction.recorded:traffic_fine",
               "--may-issue", "infraction.settled", "--db", store_url).exit_code == 0  # fmt: skip
    assert cli("authority", "add", "new-bank", "--name", "New Bank",
               "--may-issue", "payment.recorded", "--from", "2025-01-01",
               "--db", store_url).exit_code == 0  # fmt: skip
    result = cli("authority", "list", "--json", "--db", store_url)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [{k: v for k, v in a.items() if k != "registered_at"} for a in listed] == [
        {"id": "traffic-police", "name": "Traffic Police",
         "may_issue": ["infraction.recorded:traffic_fine", "infraction.settled"], "from": None},
        {"id": "new-bank", "name": "New Bank", "may_issue": ["payment.recorded"],
         "from": "2025-01-01"},
    ]  # fmt: skip
    stamps = [datetime.fromisoformat(a["registered_at"]) for a in listed]
    assert stamps[0] == start
    assert start < stamps[1] < start + timedelta(minutes=1)


def test_authority_list_json_on_an_empty_ledger_is_an_empty_array(cli: Any, store_url: str) -> None:
    result = cli("authority", "list", "--json", "--db", store_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_authority_list_table_shows_ids_names_entitlements_and_dates(
    cli: Any, with_authorities: str
) -> None:
    assert cli("authority", "add", "new-bank", "--name", "New Bank",
               "--may-issue", "payment.recorded", "--from", "2025-01-01",
               "--db", with_authorities).exit_code == 0  # fmt: skip
    # wide enough that rich does not wrap the cells
    result = cli("authority", "list", "--db", with_authorities, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for authority_id, (name, may_issue) in AUTHORITIES.items():
        assert authority_id in result.stdout
        assert name in result.stdout
        for entitlement in may_issue:
            assert entitlement in result.stdout
    assert "2025-01-01" in result.stdout
    assert "always" in result.stdout


@pytest.mark.parametrize(
    ("may_issue", "message"),
    [
        ("infraction.forgiven", "may_issue: 'infraction.forgiven' is not a record type"),
        ("infraction.recorded:jaywalking",
         "may_issue: 'jaywalking' is not a kind of infraction.recorded"),
        ("citizen.enrolled:adult", "may_issue: 'adult' is not a kind of citizen.enrolled"),
    ],
)  # fmt: skip
def test_authority_add_with_a_bad_may_issue_fails_naming_it(
    cli: Any, store_url: str, may_issue: str, message: str
) -> None:
    result = cli("authority", "add", "x-office", "--name", "X Office",
                 "--may-issue", "citizen.enrolled", "--may-issue", may_issue,
                 "--db", store_url)  # fmt: skip
    assert result.exit_code != 0
    assert message in result.output
    assert json.loads(cli("authority", "list", "--json", "--db", store_url).stdout) == []


def test_authority_add_without_may_issue_fails(cli: Any, store_url: str) -> None:
    result = cli("authority", "add", "x-office", "--name", "X Office", "--db", store_url)
    assert result.exit_code != 0
    assert "--may-issue" in result.output


def test_authority_add_with_a_registered_id_fails_and_keeps_the_first(
    cli: Any, store_url: str
) -> None:
    assert cli("authority", "add", "bank", "--name", "Bank", "--may-issue", "payment.recorded",
               "--db", store_url).exit_code == 0  # fmt: skip
    result = cli("authority", "add", "bank", "--name", "Other Bank",
                 "--may-issue", "infraction.settled", "--db", store_url)  # fmt: skip
    assert result.exit_code != 0
    assert "bank is already registered" in result.output
    listed = json.loads(cli("authority", "list", "--json", "--db", store_url).stdout)
    assert [(a["id"], a["name"], a["may_issue"]) for a in listed] == [
        ("bank", "Bank", ["payment.recorded"])
    ]


@pytest.mark.parametrize("bad", ["2025-13-01", "01/02/2025", "yesterday"])
def test_authority_add_with_a_bad_from_date_fails_naming_it(
    cli: Any, store_url: str, bad: str
) -> None:
    result = cli("authority", "add", "bank", "--name", "Bank", "--may-issue",
                 "payment.recorded", "--from", bad, "--db", store_url)  # fmt: skip
    assert result.exit_code != 0
    assert f"'{bad}' is not an ISO date" in result.output
    assert "--from" in result.output


def test_authority_entitled_from_a_date_is_applied_on_append(
    cli: Any, with_authorities: str
) -> None:
    assert cli("authority", "add", "new-bank", "--name", "New Bank",
               "--may-issue", "payment.recorded", "--from", "2025-01-01",
               "--db", with_authorities).exit_code == 0  # fmt: skip

    def payment(reference: str, on: str) -> dict[str, Any]:
        return record("payment.recorded", reference, authority="new-bank",
                      kind="tax_paid_on_time", amount="1.00", occurred_on=on)  # fmt: skip

    feed = ndjson(enrolled(), payment("P-1", "2024-12-31"), payment("P-2", "2025-01-01"))
    result = cli("append", "-", "--db", with_authorities, input=feed)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "line 2: authority: new-bank may issue payment.recorded:tax_paid_on_time "
        "only from 2025-01-01"
    )
    assert summary(result) == (2, 0, 1)


# append


def test_append_file_then_again_reports_duplicates(
    cli: Any, with_authorities: str, tmp_path: Path
) -> None:
    feed = tmp_path / "feed.ndjson"
    feed.write_text(ndjson(*FEED))
    first = cli("append", str(feed), "--db", with_authorities)
    assert first.exit_code == 0, first.output
    assert first.stdout == "appended 3, duplicates 0, rejected 0\n"
    again = cli("append", str(feed), "--db", with_authorities)
    assert again.exit_code == 0, again.output
    assert again.stdout == "appended 0, duplicates 3, rejected 0\n"
    assert content(history_json(cli, with_authorities, WANG_FANG)) == list(FEED)


def test_append_stdin_with_dash(cli: Any, with_authorities: str) -> None:
    result = cli("append", "-", "--db", with_authorities, input=ndjson(*FEED))
    assert result.exit_code == 0, result.output
    assert summary(result) == (3, 0, 0)
    assert content(history_json(cli, with_authorities, WANG_FANG)) == list(FEED)


def test_append_without_a_source_reads_stdin(cli: Any, with_authorities: str) -> None:
    result = cli("append", "--db", with_authorities, input=ndjson(*FEED).encode())
    assert result.exit_code == 0, result.output
    assert summary(result) == (3, 0, 0)


def test_append_rejections_name_line_field_and_message(cli: Any, with_authorities: str) -> None:
    feed = ndjson(
        enrolled(WANG_FANG),
        enrolled(LI_WEI),
        fine("TP-1"),
        fine("TP-2", amount="-5.00"),
        fine("TP-3", citizen=LI_WEI),
        fine("TP-1", amount="250.00"),
        fine("TP-4") | {"citizen": "110105194912310021"},
    )
    result = cli("append", "-", "--db", with_authorities, input=feed)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "line 4: amount: must not be negative",
        "line 6: reference: already names line 3 with different content; a record is never changed",
        "line 7: citizen: check character should be X",
        "appended 4, duplicates 0, rejected 3",
    ]


def test_append_numbers_lines_counting_blank_ones(cli: Any, with_authorities: str) -> None:
    feed = ndjson(enrolled()) + "\n   \n" + ndjson("{not json", fine("TP-1"))
    result = cli("append", "-", "--db", with_authorities, input=feed)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("line 4: record: not valid JSON")
    assert summary(result) == (2, 0, 1)


def test_append_json_reports_counts_rejections_and_positions(
    cli: Any, with_authorities: str
) -> None:
    assert cli("append", "-", "--db", with_authorities, input=ndjson(FEED[0])).exit_code == 0
    feed = ndjson(FEED[0], fine("TP-1"), fine("TP-1", amount="200"), fine("TP-2", amount="x"),
                  fine("TP-3") | {"note": "hi"})  # fmt: skip
    result = cli("append", "-", "--json", "--db", with_authorities, input=feed)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"appended", "duplicates", "rejected", "positions", "duplicate_of"}
    assert report["appended"] == 1
    assert report["duplicates"] == 2
    assert report["rejected"] == [
        {"line": 4, "field": "amount", "error": '"x" is not a decimal number'},
        {"line": 5, "field": "note", "error": "is not a field of infraction.recorded records"},
    ]
    positions = {p["line"]: p["position"] for p in report["positions"]}
    assert list(positions) == [2]
    duplicate_of = {d["line"]: d["position"] for d in report["duplicate_of"]}
    history = {e["reference"]: e["position"] for e in history_json(cli, with_authorities,
                                                                     WANG_FANG)}  # fmt: skip
    assert duplicate_of == {1: history[f"E-{WANG_FANG}"], 3: history["TP-1"]}
    assert positions[2] == history["TP-1"]


def test_append_json_with_nothing_rejected_exits_0(cli: Any, with_authorities: str) -> None:
    result = cli("append", "-", "--json", "--db", with_authorities, input=ndjson(*FEED))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["appended"], report["duplicates"], report["rejected"]) == (3, 0, [])
    assert [p["line"] for p in report["positions"]] == [1, 2, 3]


def test_append_of_an_empty_input_appends_nothing(cli: Any, with_authorities: str) -> None:
    result = cli("append", "-", "--db", with_authorities, input="")
    assert result.exit_code == 0, result.output
    assert summary(result) == (0, 0, 0)


def test_append_of_a_missing_file_exits_2(cli: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    result = cli("append", str(tmp_path / "missing.ndjson"), "--db", url)
    assert result.exit_code == 2
    assert "missing.ndjson" in result.output
    assert "No such file or directory" in result.output
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize(
    "command",
    [["append", "-"], ["authority", "list"], ["history", WANG_FANG], ["demo", "--citizens", "1"]],
    ids=["append", "authority list", "history", "demo"],
)
def test_unsupported_db_url_exits_2(cli: Any, command: list[str]) -> None:
    result = cli(*command, "--db", "mysql://x", input=ndjson(*FEED))
    assert result.exit_code == 2
    assert "mysql://x" in result.output
    assert "unsupported database" in result.output


def test_sqlite_path_in_a_missing_folder_exits_2(cli: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nowhere/ledger.db"
    result = cli("append", "-", "--db", url, input=ndjson(*FEED))
    assert result.exit_code == 2
    assert f"folder {tmp_path}/nowhere does not exist" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_database_url_comes_from_the_environment_without_db(
    cli: Any, store_url: str, cwd: Path
) -> None:
    env = {"LEDGER_DATABASE_URL": store_url}
    added = cli("authority", "add", "civil-registry", "--name", "Civil Registry",
                "--may-issue", "citizen.enrolled", env=env)  # fmt: skip
    assert added.exit_code == 0, added.output
    appended = cli("append", "-", input=ndjson(enrolled()), env=env)
    assert appended.exit_code == 0, appended.output
    assert summary(appended) == (1, 0, 0)
    listed = json.loads(cli("authority", "list", "--json", "--db", store_url).stdout)
    assert [a["id"] for a in listed] == ["civil-registry"]
    assert content(history_json(cli, store_url, WANG_FANG)) == [enrolled()]
    assert not (cwd / "ledger.db").exists()


def test_db_option_wins_over_the_environment(
    cli: Any, store_url: str, tmp_path: Path, cwd: Path
) -> None:
    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/nowhere/ledger.db"}
    result = cli("authority", "list", "--json", "--db", store_url, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


# history


@pytest.fixture
def two_appends(cli: Any, with_authorities: str) -> tuple[str, list[dict[str, Any]]]:
    """Wang Fang's three records appended in one run, a fourth in a later one."""
    first = cli("append", "-", "--db", with_authorities, input=ndjson(*FEED))
    assert first.exit_code == 0, first.output
    second = cli("append", "-", "--db", with_authorities, input=ndjson(fine("TP-3")))
    assert second.exit_code == 0, second.output
    entries = history_json(cli, with_authorities, WANG_FANG)
    return with_authorities, entries


def test_history_json_lists_records_in_order_received(
    cli: Any, two_appends: tuple[str, list[dict[str, Any]]]
) -> None:
    _, entries = two_appends
    assert content(entries) == [*FEED, fine("TP-3")]
    positions = [e["position"] for e in entries]
    assert positions == sorted(positions)
    assert len(set(positions)) == 4
    stamps = [datetime.fromisoformat(e["recorded_at"]) for e in entries]
    assert stamps[0] == stamps[1] == stamps[2] < stamps[3]


def test_history_table_shows_the_citizen_and_each_record(
    cli: Any, two_appends: tuple[str, list[dict[str, Any]]]
) -> None:
    url, entries = two_appends
    result = cli("history", WANG_FANG, "--db", url)
    assert result.exit_code == 0, result.output
    assert f"citizen {WANG_FANG}" in result.stdout
    for entry in entries:
        assert entry["reference"] in result.stdout
        assert entry["type"] in result.stdout
    assert '"amount": "200.00"' in result.stdout
    assert '"target": {"authority": "traffic-police"' in result.stdout


def test_history_known_at_shows_only_what_was_recorded_by_then(
    cli: Any, two_appends: tuple[str, list[dict[str, Any]]]
) -> None:
    url, entries = two_appends
    first_run = entries[0]["recorded_at"]
    assert content(history_json(cli, url, WANG_FANG, "--known-at", first_run)) == list(FEED)
    before = (datetime.fromisoformat(first_run) - timedelta(seconds=1)).isoformat()
    assert history_json(cli, url, WANG_FANG, "--known-at", before) == []
    later = entries[3]["recorded_at"]
    assert history_json(cli, url, WANG_FANG, "--known-at", later) == entries


def test_history_known_at_reads_offsets_and_naive_times_as_utc(
    cli: Any, two_appends: tuple[str, list[dict[str, Any]]]
) -> None:
    url, entries = two_appends
    first_run = datetime.fromisoformat(entries[0]["recorded_at"])
    in_beijing = first_run.astimezone(timezone(timedelta(hours=8))).isoformat()
    naive_utc = first_run.replace(tzinfo=None).isoformat()
    for known_at in (in_beijing, naive_utc):
        assert content(history_json(cli, url, WANG_FANG, "--known-at", known_at)) == list(FEED)


def test_history_table_with_known_at(
    cli: Any, two_appends: tuple[str, list[dict[str, Any]]]
) -> None:
    url, entries = two_appends
    result = cli("history", WANG_FANG, "--known-at", entries[0]["recorded_at"], "--db", url)
    assert result.exit_code == 0, result.output
    assert "TP-2" in result.stdout
    assert "TP-3" not in result.stdout


def test_history_with_a_bad_known_at_fails_naming_it(
    cli: Any, two_appends: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = two_appends
    result = cli("history", WANG_FANG, "--known-at", "last tuesday", "--db", url)
    assert result.exit_code != 0
    assert "'last tuesday' is not an ISO timestamp" in result.output


def test_history_accepts_lower_case_x(cli: Any, with_authorities: str) -> None:
    citizen = "11010519491231002x"
    assert cli("append", "-", "--db", with_authorities,
               input=ndjson(enrolled(citizen))).exit_code == 0  # fmt: skip
    entries = history_json(cli, with_authorities, citizen)
    assert [e["citizen"] for e in entries] == [citizen.upper()]


def test_history_of_an_unknown_citizen_fails_with_a_message(
    cli: Any, with_authorities: str
) -> None:
    for as_json in ([], ["--json"]):
        result = cli("history", LI_WEI, *as_json, "--db", with_authorities)
        assert result.exit_code != 0
        assert f"{LI_WEI} has no records in the ledger" in result.output


def test_history_of_an_invalid_number_fails_naming_the_problem(
    cli: Any, with_authorities: str
) -> None:
    result = cli("history", "110105194912310021", "--db", with_authorities)
    assert result.exit_code != 0
    assert "citizen: check character should be X" in result.output


# demo


def test_demo_twice_on_the_same_db_appends_once(
    cli: Any, store_url: str, clock: FixedClock
) -> None:
    records = Population(30, 7, date(2026, 3, 1)).records()
    assert len(records) > 30
    first = cli("demo", "--citizens", "30", "--seed", "7", "--db", store_url)
    assert first.exit_code == 0, first.output
    assert summary(first) == (len(records), 0, 0)
    second = cli("demo", "--citizens", "30", "--seed", "7", "--db", store_url)
    assert second.exit_code == 0, second.output
    assert summary(second) == (0, len(records), 0)
    listed = json.loads(cli("authority", "list", "--json", "--db", store_url).stdout)
    assert len(listed) == len({a["id"] for a in listed}) == 10


@pytest.fixture
def other_store_url(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A second empty ledger on the same kind of store."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/other.db"
        return
    with fresh_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


def test_demo_with_the_same_seed_gives_the_same_records(
    cli: Any, store_url: str, other_store_url: str
) -> None:
    for url in (store_url, other_store_url):
        result = cli("demo", "--citizens", "30", "--seed", "7", "--db", url)
        assert result.exit_code == 0, result.output
    records = Population(30, 7, date(2026, 3, 1)).records()
    citizens = list(dict.fromkeys(rec["citizen"] for rec in records))
    assert len(citizens) == 30
    busiest = max(citizens, key=lambda c: sum(rec["citizen"] == c for rec in records))
    for citizen in {citizens[0], citizens[-1], busiest}:
        here = content(history_json(cli, store_url, citizen))
        there = content(history_json(cli, other_store_url, citizen))
        assert here == there
        assert here == [rec for rec in records if rec["citizen"] == citizen]


def test_demo_with_another_seed_gives_other_citizens(
    cli: Any, store_url: str, other_store_url: str
) -> None:
    for url, seed in ((store_url, "7"), (other_store_url, "8")):
        result = cli("demo", "--citizens", "30", "--seed", seed, "--db", url)
        assert result.exit_code == 0, result.output
    citizen = Population(30, 7, date(2026, 3, 1)).records()[0]["citizen"]
    assert history_json(cli, store_url, citizen)
    result = cli("history", citizen, "--json", "--db", other_store_url)
    assert result.exit_code != 0
    assert "has no records in the ledger" in result.output
