"""The projection runner and the read commands, on both stores."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from ledger.application import FixedClock, Ledger
from ledger.storage import environment
from projections import policy
from projections.lock import LockLost, advisory_key, projector_lock
from projections.queries import NotProjected, Scores
from projections.runner import catch_up, follow, tracking_name
from projections.store import PageRows, ViewStore
from scripts.cli import main
from tests.builders import (
    LI_WEI,
    WANG_FANG,
    append,
    enrolled,
    fine,
    record,
    register_authorities,
    target,
)

POLICIES = [policy.load("national-v1"), policy.load("finance-v1")]


@pytest.fixture
def store(store_url: str) -> Iterator[ViewStore]:
    views = ViewStore(store_url)
    yield views
    views.close()


@pytest.fixture
def scored(ledger: Ledger) -> Ledger:
    """Wang Fang with an open judgment default and a settled tax arrears; Li Wei clean."""
    register_authorities(ledger)
    feeds = [
        [
            enrolled(WANG_FANG),
            enrolled(LI_WEI),
            record("infraction.recorded", "J-1", kind="judgment_default", amount="9000.00",
                   occurred_on="2024-05-01"),
            record("infraction.recorded", "TX-1", kind="tax_arrears", amount="300.00",
                   occurred_on="2025-01-15"),
        ],
        [
            record("infraction.settled", "TX-2", target=target("tax-bureau", "TX-1"),
                   amount="300.00", occurred_on="2025-03-01"),
        ],
        [
            fine("TP-1", occurred_on="2025-06-01"),
            record("payment.recorded", "P-1", citizen=LI_WEI, kind="tax_paid_on_time",
                   amount="10.00", occurred_on="2025-06-01"),
        ],
    ]  # fmt: skip
    for feed in feeds:
        assert append(ledger, *feed).rejected == []
    return ledger


def invoke(store_url: str, clock: FixedClock, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--db", store_url], obj={"clock": clock})
    return result.exit_code, result.output


def test_catch_up_brings_every_policy_to_the_end_of_the_log(
    scored: Ledger, store: ViewStore
) -> None:
    positions = catch_up(scored, store, POLICIES, page_size=3)
    assert positions == {"national-v1": scored.max_position(), "finance-v1": scored.max_position()}
    scores = Scores(scored, store)
    answer = scores.score(WANG_FANG, as_of=_day("2025-07-01"))
    # -100 open judgment default, -10 tax arrears residual, -5 open traffic fine
    assert (answer.score, answer.band, answer.lag) == (885, "B", 0)
    finance = scores.score(WANG_FANG, "finance-v1", _day("2025-07-01"))
    assert (finance.score, finance.band) == (700 - 150 - 20, "very poor")


def test_a_new_policy_catches_up_while_the_others_stay_current(
    scored: Ledger, store: ViewStore
) -> None:
    catch_up(scored, store, POLICIES[:1])
    append(scored, fine("TP-2", occurred_on="2025-07-01"))
    catch_up(scored, store, POLICIES, page_size=2)
    head = scored.max_position()
    assert store.position(tracking_name(POLICIES[0])) == head
    assert store.position(tracking_name(POLICIES[1])) == head


def test_a_citizen_not_yet_projected_is_named_with_the_lag(
    scored: Ledger, store: ViewStore
) -> None:
    with pytest.raises(NotProjected, match=f"lags {scored.max_position()} events"):
        Scores(scored, store).score(WANG_FANG)


def test_follow_picks_up_new_records_until_stopped(scored: Ledger, store_url: str) -> None:
    stop = threading.Event()
    views = ViewStore(store_url)
    runner = threading.Thread(
        target=follow, args=(scored, views, POLICIES, 0.2, stop.is_set), daemon=True
    )
    runner.start()
    try:
        _wait_for(lambda: views.position(tracking_name(POLICIES[0])) == scored.max_position())
        append(scored, fine("TP-3", occurred_on="2025-08-01"))
        _wait_for(lambda: views.position(tracking_name(POLICIES[0])) == scored.max_position())
    finally:
        stop.set()
        runner.join(timeout=10)
    assert not runner.is_alive()
    views.close()


def test_score_command_from_the_projection_and_by_replay(
    scored: Ledger, store_url: str, clock: FixedClock
) -> None:
    code, out = invoke(store_url, clock, "project")
    assert code == 0, out
    assert f"national-v1: position {scored.max_position()}" in out
    # Not a terminal: the progress ends in one plain line of what was done.
    everyone = dict(scored.reader.by_citizen(scored.max_position()))
    records = sum(len(found) for found in everyone.values())
    done = rf"projected: {records} records, {len(everyone)} citizens, [\d,]+ records/s"
    assert re.search(done, out), out
    code, out = invoke(store_url, clock, "score", WANG_FANG, "--as-of", "2025-07-01", "--json")
    assert code == 0, out
    answer = json.loads(out)
    assert answer == {
        "citizen": WANG_FANG, "policy": "national-v1", "as_of": "2025-07-01",
        "known_at": None, "score": 885, "band": "B", "position": scored.max_position(),
    }  # fmt: skip
    before_settlement = _recorded_at(scored, "TX-2")
    code, out = invoke(store_url, clock, "score", WANG_FANG, "--as-of", "2025-07-01",
                       "--known-at", before_settlement, "--json")  # fmt: skip
    assert code == 0, out
    # Known before the settlement was recorded: tax arrears still open (-30), no fine yet.
    assert json.loads(out)["score"] == 1000 - 100 - 30
    assert json.loads(out)["known_at"] is not None
    code, out = invoke(store_url, clock, "score", WANG_FANG)
    assert code == 0, out
    assert "up to date" in out


def test_explain_command_ranks_reasons_and_names_remedies(
    scored: Ledger, store_url: str, clock: FixedClock
) -> None:
    invoke(store_url, clock, "project")
    code, out = invoke(store_url, clock, "explain", WANG_FANG, "--as-of", "2025-07-01", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert [(r["reference"], r["points"]) for r in data["reasons"]] == [
        ("J-1", -100), ("TX-1", -10), ("TP-1", -5)
    ]  # fmt: skip
    assert data["reasons"][0]["remedy"] == "settle; dispute; expires on 2031-05-01"
    assert data["reasons"][1]["rule"] == "tax_arrears.residual"
    assert data["reasons"][1]["counts_until"] == "2026-03-01"
    assert set(data["reasons"][0]) == {
        "authority", "reference", "kind", "points", "rule", "status", "counts_from",
        "counts_until", "remedy",
    }  # fmt: skip


def test_enforcement_list_command(scored: Ledger, store_url: str, clock: FixedClock) -> None:
    invoke(store_url, clock, "project")
    code, out = invoke(store_url, clock, "list", "enforcement", "--as-of", "2025-07-01", "--json")
    assert code == 0, out
    assert json.loads(out) == [{
        "citizen": WANG_FANG, "authority": "peoples-court", "reference": "J-1",
        "listed_on": "2024-05-01", "until": "2031-05-01",
    }]  # fmt: skip
    code, out = invoke(store_url, clock, "list", "enforcement", "--as-of", "2024-04-30", "--json")
    assert json.loads(out) == []


def test_policy_list_and_promote(scored: Ledger, store_url: str, clock: FixedClock) -> None:
    code, out = invoke(store_url, clock, "policy", "list", "--json")
    assert code == 0, out
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["national-v1"]["default"] is True
    assert rows["finance-v1"]["lag"] == scored.max_position()
    invoke(store_url, clock, "project")
    code, out = invoke(store_url, clock, "policy", "promote", "finance-v1")
    assert code == 0, out
    code, out = invoke(store_url, clock, "score", WANG_FANG, "--as-of", "2025-07-01", "--json")
    assert json.loads(out)["policy"] == "finance-v1"
    code, out = invoke(store_url, clock, "policy", "promote", "lenient-v9")
    assert code != 0
    assert "no policy 'lenient-v9'" in out


def test_unknown_citizen_and_unknown_policy_are_clear_errors(
    scored: Ledger, store_url: str, clock: FixedClock
) -> None:
    invoke(store_url, clock, "project")
    code, out = invoke(store_url, clock, "score", "110105199003071263")
    assert code != 0
    assert "has no records" in out
    code, out = invoke(store_url, clock, "score", WANG_FANG, "--policy", "nope")
    assert code != 0
    assert "no policy 'nope'" in out


def _recorded_at(ledger: Ledger, reference: str) -> str:
    """Half a second before the record was recorded, as an ISO timestamp."""
    entry = next(e for e in ledger.history(WANG_FANG) if e.record.reference == reference)
    return datetime.fromtimestamp(entry.recorded_at.timestamp() - 0.5, tz=UTC).isoformat()


def _wait_for(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


def _day(text: str) -> object:
    from datetime import date  # noqa: PLC0415

    return date.fromisoformat(text)


def test_audit_history_shows_what_each_event_started_and_ended(
    scored: Ledger, store: ViewStore
) -> None:
    steps = Scores(scored, store).audit_history(WANG_FANG, as_of=_day("2025-07-01"))
    assert [s.entry.record.reference for s in steps] == [
        f"E-{WANG_FANG}", "J-1", "TX-1", "TX-2", "TP-1"
    ]  # fmt: skip
    by_ref = {s.entry.record.reference: s for s in steps}
    assert by_ref[f"E-{WANG_FANG}"].started == {
        "national-v1": [],
        "finance-v1": [],
        "employment-v1": [],
    }
    assert [(c.rule, c.points) for c in by_ref["J-1"].started["national-v1"]] == [
        ("judgment_default.open", -100)
    ]
    settlement = by_ref["TX-2"]
    assert [(c.rule, str(c.counts_until)) for c in settlement.ended["national-v1"]] == [
        ("tax_arrears.open", "2032-01-15")
    ]
    assert sorted((c.rule, str(c.counts_from), str(c.counts_until))
                  for c in settlement.started["national-v1"]) == [
        ("tax_arrears.open", "2025-01-15", "2025-03-01"),
        ("tax_arrears.residual", "2025-03-01", "2026-03-01"),
    ]  # fmt: skip
    assert by_ref["TX-1"].scores["national-v1"] == (1000 - 100 - 30, "B")
    assert by_ref["TX-2"].scores["national-v1"] == (1000 - 100 - 10, "B")
    assert by_ref["TP-1"].scores["national-v1"] == (885, "B")
    assert by_ref["TP-1"].started["finance-v1"] == []
    assert by_ref["TP-1"].to_json()["scores"]["finance-v1"] == {"score": 530, "band": "very poor"}


def test_audit_history_as_known_at_an_earlier_time_stops_there(
    scored: Ledger, store: ViewStore
) -> None:
    known_at = datetime.fromisoformat(_recorded_at(scored, "TX-2"))
    steps = Scores(scored, store).audit_history(WANG_FANG, known_at, _day("2025-07-01"))
    assert [s.entry.record.reference for s in steps][-1] == "TX-1"
    assert steps[-1].scores["national-v1"] == (870, "B")


def test_one_projector_holds_a_ledgers_lock_at_a_time(store_url: str) -> None:
    first, second = projector_lock(store_url), projector_lock(store_url)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        first.close()
        assert second.try_acquire()
        with pytest.raises(LockLost):
            first.check()
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_ledgers_in_other_schemas_have_locks_of_their_own(postgres_schema_url: str) -> None:
    here, there = projector_lock(postgres_schema_url), projector_lock(postgres_schema_url + "x")
    try:
        assert here.try_acquire()
        assert there.try_acquire()
    finally:
        here.close()
        there.close()


@pytest.mark.postgres
def test_a_lock_whose_connection_is_cut_is_noticed_and_must_be_taken_again(
    postgres_schema_url: str,
) -> None:
    holder, other = projector_lock(postgres_schema_url), projector_lock(postgres_schema_url)
    try:
        assert holder.try_acquire()
        env = environment(postgres_schema_url)
        key = advisory_key(env["POSTGRES_DBNAME"], env["POSTGRES_SCHEMA"]) % 2**64
        server = postgres_schema_url.split("?", maxsplit=1)[0]
        with psycopg.connect(server, autocommit=True) as conn:
            cut = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = %s AND objid = %s AND objsubid = 1",
                [key >> 32, key & 0xFFFFFFFF],
            ).fetchall()
        assert cut == [(True,)]
        with pytest.raises(LockLost):
            holder.check()
        assert other.try_acquire()
        assert not holder.try_acquire()
    finally:
        holder.close()
        other.close()


def test_catch_up_writes_nothing_once_the_lock_is_lost(scored: Ledger, store: ViewStore) -> None:
    def lost() -> None:
        raise LockLost("the projector lock's connection ended")

    with pytest.raises(LockLost):
        catch_up(scored, store, POLICIES, before_write=lost)
    assert store.positions() == {}


def test_rows_still_being_made_hold_no_write_lock_on_sqlite(scored: Ledger, tmp_path: Any) -> None:
    """A shared catch-up hands its rows over as its workers make them; on SQLite the
    store takes them all before it takes the database's one write lock, which the
    ledger's writers wait on."""
    url = f"sqlite:///{tmp_path}/views.db"
    found: list[str] = []

    def made() -> Iterator[PageRows]:
        for n in range(3):
            other = sqlite3.connect(f"{tmp_path}/views.db", timeout=0.2, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # a writer, while rows are still made
                other.execute("ROLLBACK")
                found.append("free")
            except sqlite3.OperationalError as e:
                found.append(str(e))
            finally:
                other.close()
            yield PageRows([("national-v1", f"{n:032x}", "110105198001010018", "[]")], [], [], 1)

    with closing(ViewStore(url)) as views:
        views.save_row_chunks([("scores:national-v1", "national-v1")], 7, made())
        assert found == ["free"] * 3
        assert views.positions() == {"scores:national-v1": 7}
        assert len(views.residents("national-v1")) == 3
