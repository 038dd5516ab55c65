"""The fault drill: its accounting sees what it must, and its short form, run for real
(its own PostgreSQL cluster; an append, a service worker, the projector and the
postmaster killed -9), finds nothing lost, doubled or wrongly refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.application import Ledger
from ledger.storage import connect_postgres
from projections import policy
from projections.runner import catch_up
from projections.store import ViewStore
from scripts.drill.cluster import missing
from scripts.drill.load import Tally
from scripts.drill.plan import key
from scripts.drill.report import account
from scripts.drill.verdict import KINDS
from tests.builders import append, enrolled, fine, register_authorities

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_short_drill_loses_doubles_and_wrongly_refuses_nothing() -> None:
    reason = missing()
    if reason is not None:
        message = f"the fault drill cannot make a PostgreSQL cluster: {reason}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [sys.executable, "-m", "scripts.fault_drill", "--short", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    progress = done.stderr[-3000:]
    assert {kind: figures["faults"][kind] >= 1 for kind in KINDS} == dict.fromkeys(KINDS, True)
    assert figures["sent"] > 5000
    assert figures["lost"] == 0, figures["lost_examples"]
    assert figures["doubled"] == 0
    assert figures["index_rows"] == figures["citizen_events"]
    assert figures["wrongly_refused"] == 0, figures["refusals"]
    assert figures["refused_feeds"] == 0, figures["refused_feed_runs"]
    assert figures["unanswered"] == 0, (figures["unanswered_by_path"], figures["errors"])
    assert figures["acknowledged"] == figures["stored"] == figures["sent"]
    assert figures["verify"]["ok"], figures["verify"]["detail"]
    assert figures["rebuild"]["agrees"], figures["rebuild"]["detail"]
    assert figures["failures"] == [], figures["findings"]
    assert done.returncode == 0, progress


@pytest.mark.postgres
def test_accounting_sees_a_wrong_view_a_lost_a_doubled_and_a_refused_record(
    postgres_schema_url: str,
) -> None:
    url = postgres_schema_url
    ledger = Ledger(url)
    views = ViewStore(url)
    try:
        register_authorities(ledger)
        stored = [enrolled(), fine("TP-1"), fine("TP-2")]
        append(ledger, *stored)
        catch_up(ledger, views, [policy.load(name) for name in policy.available()])
        tally = Tally()
        tally.offer(stored, "feed")
        tally.ack(key(r) for r in stored)
        whole = account(url, tally, caught_up=True)
        assert (whole["sent"], whole["acknowledged"], whole["stored"]) == (3, 3, 3)
        assert (whole["lost"], whole["doubled"], whole["wrongly_refused"]) == (0, 0, 0)
        assert whole["rebuild"]["agrees"], whole["rebuild"]["detail"]

        with connect_postgres(url) as conn:
            # Every record here is a fine: "-5" points become "-95".
            conn.execute(
                "UPDATE score_views SET contributions = replace(contributions, ',-', ',-9')"
            )
        assert not account(url, tally, caught_up=True)["rebuild"]["agrees"]

        never_stored = fine("TP-3")
        tally.offer([never_stored], "http")
        tally.ack([key(never_stored)])
        tally.refuse([(key(stored[2]), "HTTP 422: target: is not a record of this citizen")])
        with connect_postgres(url) as conn:
            conn.execute(
                "INSERT INTO ledger_events (originator_id, originator_version, topic, state) "
                "SELECT originator_id, originator_version + 100, topic, state FROM ledger_events "
                "WHERE topic LIKE '%InfractionRecorded' "
                "AND convert_from(state, 'UTF8') LIKE '%TP-1%'"
            )
        broken = account(url, tally, caught_up=True)
        assert (broken["lost"], broken["doubled"], broken["wrongly_refused"]) == (1, 1, 1)
        assert broken["citizen_events"] == broken["index_rows"] + 1
    finally:
        views.close()
        ledger.close()
