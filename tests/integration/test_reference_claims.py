"""A partitioned ledger's references are one namespace: an (authority, reference)
names one record across every partition, as it does in one database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner

from ledger.application import Ledger
from ledger.domain.identity import citizen_id, make_resident_id
from ledger.domain.shards import partition_of
from ledger.partitioned import Catalog, PartitionedLedger
from scripts.cli import main
from tests.behind import behind_the_back
from tests.builders import append, enrolled, fine, register_authorities
from tests.proxy import Proxy, through
from tests.schemas import fresh_databases

pytestmark = pytest.mark.postgres

PARTITIONS = 4
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def catalog(postgres_url: str, postgres_schema_url: str) -> Iterator[str]:
    """A ledger of four partitions on two databases, with the test authorities."""
    with fresh_databases(postgres_url, "ab") as shards:
        opened = Ledger(postgres_schema_url)
        try:
            Catalog(opened).init(PARTITIONS, shards)
            register_authorities(opened)
        finally:
            opened.close()
        yield postgres_schema_url


def _pairs(count: int) -> list[tuple[str, str]]:
    """(citizen, other citizen) pairs whose partitions differ, each side's citizens in
    every partition."""
    residents = [make_resident_id("110101", date(1980, 1, 1), n) for n in range(1000)]
    pairs: list[tuple[str, str]] = []
    waiting: str | None = None
    for resident in residents:
        if waiting is None:
            waiting = resident
        elif partition_of(citizen_id(resident), PARTITIONS) != partition_of(
            citizen_id(waiting), PARTITIONS
        ):
            pairs.append((waiting, resident) if len(pairs) % 2 else (resident, waiting))
            waiting = None
    assert len(pairs) >= count
    return pairs[:count]


def _stored(ledger: PartitionedLedger) -> Counter[tuple[str, str]]:
    """How many records each (authority, reference) names, over every partition."""
    seen: Counter[tuple[str, str]] = Counter()
    for number in range(ledger.partitions):
        reader = ledger.partition(number).reader
        for _, logged in reader.by_citizen(reader.head()):
            seen.update((e.record.authority, e.record.reference) for e in logged)
    return seen


def test_a_reference_of_another_partitions_record_is_refused(catalog: str) -> None:
    ((wang, li),) = _pairs(1)
    ledger = PartitionedLedger(Ledger(catalog))
    try:
        assert append(ledger, enrolled(wang), enrolled(li)).rejected == []
        # A fine refused by a rule (it is dated after today) leaves its claim behind,
        # as a writer that died before its save would.
        late = append(ledger, fine("TP-1", citizen=wang, occurred_on="2999-01-01"))
        assert [r.field for r in late.rejected] == ["occurred_on"]
        # The reference is free: another citizen's record in another partition takes it.
        assert append(ledger, fine("TP-1", citizen=li)).appended == 1
        again = append(ledger, fine("TP-1", citizen=wang), fine("TP-1", citizen=li))
        assert [(r.line, r.field) for r in again.rejected] == [(1, "reference")]
        assert "a record in another partition" in again.rejected[0].error
        assert [d.line for d in again.duplicates] == [2]
        assert _stored(ledger)[("traffic-police", "TP-1")] == 1
    finally:
        ledger.close()


def test_writers_racing_for_the_same_references_store_each_once(
    catalog: str, tmp_path: Path
) -> None:
    """Two `ledger append` processes send the same references for different citizens
    in different partitions at once: each reference is stored once, by whichever
    process had it acknowledged, and the other is told it is taken."""
    pairs = _pairs(400)
    ledger = PartitionedLedger(Ledger(catalog))
    try:
        enrolments = [enrolled(c) for pair in pairs for c in pair]
        assert append(ledger, *enrolments).appended == len(enrolments)
    finally:
        ledger.close()
    feeds = []
    for side in (0, 1):
        feed = tmp_path / f"feed-{side}.ndjson"
        fines = [fine(f"TP-{n}", citizen=pair[side]) for n, pair in enumerate(pairs)]
        feed.write_text("".join(json.dumps(f) + "\n" for f in fines))
        feeds.append(feed)
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "append", str(feed), "--json", "--db", catalog],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for feed in feeds
    ]
    reports: list[dict[str, Any]] = []
    for writer in writers:
        out, err = writer.communicate(timeout=240)
        assert writer.returncode in (0, 1), err[-2000:]
        reports.append(json.loads(out))
    for report in reports:
        assert report["appended"] + len(report["rejected"]) == len(pairs)
        assert {r["field"] for r in report["rejected"]} <= {"reference"}
    assert sum(r["appended"] for r in reports) == len(pairs)
    ledger = PartitionedLedger(Ledger(catalog))
    try:
        stored = _stored(ledger)
    finally:
        ledger.close()
    assert [stored[("traffic-police", f"TP-{n}")] for n in range(len(pairs))] == [1] * len(pairs)


def test_a_claim_taken_over_before_its_save_is_found_and_the_record_refused(
    catalog: str,
) -> None:
    """Between a writer's claim and its save, another writer takes the claim over (it
    sees no record yet) and stores its own record: the first writer's save finds its
    claim gone, and its batch, applied again, is refused the reference."""
    ((wang, li),) = _pairs(1)
    first, other = PartitionedLedger(Ledger(catalog)), PartitionedLedger(Ledger(catalog))
    try:
        assert append(first, enrolled(wang), enrolled(li)).rejected == []
        claims = first._claims
        claim = claims.claim
        overtaken: list[Any] = []

        def claim_then_overtaken(wanted: Any) -> Any:
            refused = claim(wanted)
            if not overtaken:
                overtaken.append(append(other, fine("TP-7", citizen=li)))
            return refused

        claims.claim = claim_then_overtaken  # type: ignore[method-assign]
        report = append(first, fine("TP-7", citizen=wang))
        assert overtaken[0].appended == 1
        assert report.retries >= 1
        assert [(r.line, r.field) for r in report.rejected] == [(1, "reference")]
        assert _stored(first)[("traffic-police", "TP-7")] == 1
    finally:
        first.close()
        other.close()


def test_records_stored_without_claims_are_found_claimed_and_doubles_named(
    catalog: str,
) -> None:
    """A ledger partitioned before references were claimed: `ledger verify` finds its
    records without claims, `ledger shards claim-references` claims them, and a
    reference taken meanwhile by a record in another partition is named in both."""
    (wang, li), (zhao, qian) = _pairs(2)
    ledger = PartitionedLedger(Ledger(catalog))
    try:
        citizens = [enrolled(c) for c in (wang, li, zhao, qian)]
        assert append(ledger, *citizens, fine("TP-1", citizen=wang)).rejected == []
        for number in range(PARTITIONS):
            with behind_the_back(ledger.urls[number]) as run:
                run("DELETE FROM ledger_reference_claims")
        # Unclaimed, TP-1 is taken by another citizen's record in another partition.
        assert append(ledger, fine("TP-1", citizen=li)).appended == 1
        assert append(ledger, fine("TP-2", citizen=zhao)).appended == 1
    finally:
        ledger.close()
    runner = CliRunner()
    verified = runner.invoke(main, ["verify", "--db", catalog])
    assert verified.exit_code == 1
    assert "run `ledger shards claim-references`" in verified.output
    claimed = runner.invoke(main, ["shards", "claim-references", "--db", catalog])
    assert claimed.exit_code == 1, claimed.output
    doubled = next(line for line in claimed.output.splitlines() if "TP-1 is held" in line)
    assert {int(w) for w in doubled.split() if w.isdigit()} == {
        partition_of(citizen_id(c), PARTITIONS) for c in (wang, li)
    }
    assert "references claimed now" in claimed.output
    again = runner.invoke(main, ["verify", "--db", catalog])
    assert again.exit_code == 1
    assert "damage: traffic-police/TP-1 is held by records in" in again.output
    assert "hold no claim" not in again.output
    # The other references are claimed now: TP-2 is refused to another partition.
    ledger = PartitionedLedger(Ledger(catalog))
    try:
        refused = append(ledger, fine("TP-2", citizen=qian))
        assert [r.field for r in refused.rejected] == ["reference"]
    finally:
        ledger.close()


def test_a_partitioned_append_rides_out_a_shard_that_goes_away(
    postgres_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    """`ledger append --patience` into partitions of which half are on a shard reached
    through a forwarder that is killed mid-feed (every connection to it cut, as by a
    restart) and started again: every record is stored once, its claim with it."""
    catalog = postgres_schema_url
    host = urlsplit(postgres_url)
    with fresh_databases(postgres_url, "ab") as shards:
        proxy = Proxy(host.hostname or "127.0.0.1", host.port or 5432)
        proxy.start()
        try:
            (a, url_a), (b, url_b) = shards
            opened = Ledger(catalog)
            try:
                Catalog(opened).init(PARTITIONS, [(a, url_a), (b, through(url_b, proxy.port))])
                register_authorities(opened)
            finally:
                opened.close()
            residents = [
                make_resident_id(region, date(1980, 1, 1), n)
                for region in ("110101", "110102", "110105", "110106")
                for n in range(1000)
            ]
            records = [enrolled(r) for r in residents]
            records += [fine(f"TP-{n}", citizen=r) for n, r in enumerate(residents)]
            feed = tmp_path / "feed.ndjson"
            feed.write_text("".join(json.dumps(r) + "\n" for r in records))
            appending = subprocess.Popen(
                [sys.executable, "-m", "scripts.cli", "append", str(feed), "--json",
                 "--patience", "60", "--db", catalog],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            # Once partition 1, on the forwarded shard, has taken records: cut it off.
            deadline = time.monotonic() + 60
            while _count(url_b, "partition_0001") == 0:
                assert time.monotonic() < deadline
                assert appending.poll() is None, appending.communicate()
                time.sleep(0.05)
            proxy.kill()
            time.sleep(1.5)
            proxy.start()
            out, err = appending.communicate(timeout=240)
            assert appending.returncode == 0, err[-2000:]
            report = json.loads(out)
            assert report["rejected"] == []
            # A batch cut off at its commit was stored: sent again, its records come
            # back as duplicates of themselves. Stored once each is checked below.
            assert report["appended"] + report["duplicates"] == len(records)
            ledger = PartitionedLedger(Ledger(catalog))
            try:
                stored = _stored(ledger)
            finally:
                ledger.close()
            assert sum(stored.values()) == len(records)
            assert max(stored.values()) == 1
            verified = CliRunner().invoke(main, ["verify", "--db", catalog])
            assert verified.exit_code == 0, verified.output
            assert f"{len(records)} references: each held by its record's claim alone" in (
                verified.output
            )
        finally:
            proxy.close()


def _count(url: str, schema: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {schema}.ledger_events").fetchone()
        return int(row[0]) if row else 0
