"""A ledger partitioned over three shards (three databases on the test server) answers
as one database does: the same feed gives the same scores, lists and explanations."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner, Result

from ledger.application import FixedClock, Ledger
from ledger.domain.identity import citizen_id
from ledger.domain.shards import partition_of
from ledger.partitioned import Catalog, PartitionedLedger
from ledger.partitioned import ledger as ledger_module
from ledger.partitioned.checkpoints import check_top_link, prove_inclusion, verify_inclusion
from ledger.transparency.checkpoint import Checkpoint, load_verifier, open_note
from ledger.transparency.merkle import ProofError
from ledger.transparency.merkle import verify_inclusion as verify_inclusion_proof
from projections.queries import Scores
from projections.store import ViewStore
from scripts.cli import main
from scripts.demo import DEMO_AUTHORITIES, DEMO_UNTIL, Population
from tests.behind import behind_the_back
from tests.proxy import Proxy, through
from tests.schemas import fresh_databases, fresh_schema
from tests.served import Service

pytestmark = pytest.mark.postgres

PARTITIONS = 16
# Enough lines that the feed is written by writer processes, not in this one.
CITIZENS = 600
DAYS = (date(2019, 6, 30), date(2023, 1, 1), DEMO_UNTIL)


@pytest.fixture
def shards(postgres_url: str) -> Iterator[list[tuple[str, str]]]:
    """Three empty databases on the test server, as (name, URL) shards."""
    with fresh_databases(postgres_url) as made:
        yield made


@pytest.fixture
def single_url(postgres_url: str) -> Iterator[str]:
    """One database's ledger, beside the partitioned one, for the same feed."""
    with fresh_schema(postgres_url) as url:
        yield url


@pytest.fixture
def cli() -> Any:
    """`ledger ARGS...` in-process, with a clock after the demo's last day."""
    clock = FixedClock(datetime(2026, 7, 1, tzinfo=UTC), timedelta(milliseconds=1))
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), obj={"clock": clock})

    return run


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _init(cli: Any, catalog: str, partitions: int, *shards: tuple[str, str]) -> None:
    """`ledger shards init` of `partitions` partitions on these (name, URL) shards."""
    args = ["shards", "init", "--partitions", str(partitions), "--db", catalog]
    for name, url in shards:
        args += ["--shard", f"{name}={url}"]
    _ok(cli(*args))


def _until_projected(partitioned: PartitionedLedger, stores: list[ViewStore]) -> list[int]:
    """Each partition's head, once every projection of each (`stores`, in partition
    order) has reached it; a minute at most."""
    heads = [partitioned.partition(n).max_position() for n in range(partitioned.partitions)]
    deadline = time.monotonic() + 60
    reached: list[int] = []
    while time.monotonic() < deadline:
        reached = [min(store.positions().values(), default=0) for store in stores]
        if reached == heads:
            break
        time.sleep(0.2)
    assert reached == heads
    return heads


def _registered(cli: Any, url: str) -> None:
    for spec in DEMO_AUTHORITIES:
        args = ["authority", "add", spec.authority_id, "--name", spec.name, "--db", url]
        for entitlement in spec.may_issue:
            args += ["--may-issue", entitlement]
        _ok(cli(*args))


def test_a_partitioned_ledger_answers_as_one_database(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, single_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    catalog = postgres_schema_url
    _init(cli, catalog, PARTITIONS, *shards)
    listed = json.loads(_ok(cli("shards", "list", "--json", "--db", catalog)).output)
    assert listed["partitions"] == PARTITIONS
    assert sorted(p for shard in listed["shards"] for p in shard["partitions"]) == list(
        range(PARTITIONS)
    )

    records = Population(CITIZENS, 3, DEMO_UNTIL).records()
    feed = tmp_path / "feed.ndjson"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    residents = sorted({r["citizen"] for r in records})
    for url in (single_url, catalog):
        _registered(cli, url)
        report = json.loads(_ok(cli("append", str(feed), "--json", "--db", url)).output)
        assert report["appended"] == len(records), report["rejected"][:3]
        _ok(cli("project", "--db", url))

    # Each line went to its citizen's partition, and there it is.
    report = json.loads(_ok(cli("append", str(feed), "--json", "--db", catalog)).output)
    assert report["appended"] == 0
    assert report["duplicates"] == len(records)
    for line, found in zip(records, report["duplicate_of"], strict=True):
        assert found["partition"] == partition_of(citizen_id(line["citizen"]), PARTITIONS)

    single = Ledger(single_url)
    partitioned = PartitionedLedger(Ledger(catalog))
    stores: list[ViewStore] = []
    try:
        one = Scores(single, ViewStore(single_url))
        stores.append(one.store)
        parts = []
        for number in range(PARTITIONS):
            part = partitioned.partition(number)
            parts.append(Scores(part, ViewStore(part.url)))
            stores.append(parts[-1].store)
        hosted = dict.fromkeys(range(PARTITIONS), 0)
        for resident in residents:
            number = partitioned.partition_of_resident(resident)
            hosted[number] += 1
            theirs = parts[number]
            assert [e.record for e in partitioned.history(resident)] == [
                e.record for e in single.history(resident)
            ]
            for policy in one.all_policies():
                for day in DAYS:
                    expected = one.score(resident, policy.name, day)
                    found = theirs.score(resident, policy.name, day)
                    assert (found.score, found.band) == (expected.score, expected.band), (
                        resident, policy.name, day,
                    )  # fmt: skip
            _, expected_why = one.explain(resident, as_of=DAYS[1])
            _, found_why = theirs.explain(resident, as_of=DAYS[1])
            assert found_why.to_json() == expected_why.to_json()
        # Every partition holds some of the citizens.
        assert min(hosted.values()) > 0
    finally:
        for store in stores:
            store.close()
        single.close()
        partitioned.close()

    for day in DAYS:
        lists = [
            json.loads(_ok(cli("list", "enforcement", "--json", "--as-of", day.isoformat(),
                               "--db", url)).output)
            for url in (single_url, catalog)
        ]  # fmt: skip
        assert lists[0] == lists[1]
    assert any(lists[0]), "the feed should put someone on the list"

    verified = _ok(cli("verify", "--db", catalog)).output.splitlines()
    assert [line.split(":")[0] for line in verified[:-2]] == [
        "the catalog",
        *(f"partition {n}" for n in range(PARTITIONS)),
    ]
    assert all("every leaf and node matches" in line for line in verified[:-2])
    assert verified[-1] == f"{len(records)} references: each held by its record's claim alone"
    assert verified[-2].startswith("0 top checkpoint(s)")


def test_a_record_of_an_unregistered_authority_is_refused_in_every_partition(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, tmp_path: Path
) -> None:
    catalog = postgres_schema_url
    _init(cli, catalog, 4, ("a", shards[0][1]))
    records = Population(40, 5, DEMO_UNTIL).records()
    feed = tmp_path / "feed.ndjson"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    # The authorities are registered in the catalog only after the first append.
    result = cli("append", str(feed), "--json", "--db", catalog)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["appended"] == 0
    assert {x["field"] for x in report["rejected"]} == {"authority"}
    _registered(cli, catalog)
    report = json.loads(_ok(cli("append", str(feed), "--json", "--db", catalog)).output)
    assert report["appended"] == len(records)


def test_the_shard_map_refuses_what_it_cannot_keep(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str
) -> None:
    catalog = postgres_schema_url
    (name, url), (_, other) = shards[0], shards[1]
    secret = url.replace("postgres@", "postgres:hunter2@")
    result = cli("shards", "init", "--partitions", "4", "--shard", f"a={secret}", "--db", catalog)
    assert result.exit_code != 0
    assert "must not hold a password" in result.output
    assert "hunter2" not in result.output
    result = cli("shards", "list", "--db", catalog)
    assert result.exit_code != 0
    assert "holds no shard map" in result.output

    _init(cli, catalog, 4, (name, url))
    again = cli("shards", "init", "--partitions", "4", "--shard", f"{name}={url}", "--db", catalog)
    assert again.exit_code != 0
    assert "already has a shard map" in again.output
    same = cli("shards", "add", name, other, "--db", catalog)
    assert same.exit_code != 0
    assert f"shard {name!r} is already in the map" in same.output
    _ok(cli("shards", "add", "b", other, "--db", catalog))
    for args, named in (
        (("9", "b"), "there is no partition 9: the ledger has 4"),
        (("0", name), f"partition 0 is already on shard {name!r}"),
        (("0", "zz"), "there is no shard 'zz'; add it first"),
    ):
        refused = cli("shards", "move", *args, "--db", catalog)
        assert refused.exit_code != 0
        assert named in refused.output
    listed = json.loads(_ok(cli("shards", "list", "--json", "--db", catalog)).output)
    assert [(s["name"], s["partitions"]) for s in listed["shards"]] == [
        (name, [0, 1, 2, 3]), ("b", []),
    ]  # fmt: skip
    app = Ledger(catalog)
    try:
        assert Catalog(app).shard_map().partitions == 4
    finally:
        app.close()


def test_threads_asking_for_partitions_at_once_share_one_ledger_each(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The service's threads share a PartitionedLedger: a partition asked for by many at
    once is opened once (a second one would hold its own pool, never closed), and a
    slow one does not hold up the others."""
    _init(cli, postgres_schema_url, 4, ("a", shards[0][1]), ("b", shards[1][1]))
    real = ledger_module.open_patiently
    opened: Counter[str] = Counter()

    def slow_open(url: str, *args: Any, **kwargs: Any) -> Ledger:
        opened[url] += 1
        time.sleep(0.3)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(ledger_module, "open_patiently", slow_open)
    partitioned = PartitionedLedger(Ledger(postgres_schema_url))
    try:
        with ThreadPoolExecutor(16) as pool:
            started = time.monotonic()
            got = list(pool.map(partitioned.partition, [n % 4 for n in range(32)]))
            spent = time.monotonic() - started
        assert sorted(opened.values()) == [1, 1, 1, 1]
        for n, ledger in zip([n % 4 for n in range(32)], got, strict=True):
            assert ledger is partitioned.partition(n)
        # Four opens of 0.3 s each, side by side rather than one after another.
        assert spent < 1.0
    finally:
        partitioned.close()


def test_a_partition_is_a_hash_of_the_citizen_not_a_range_of_the_id() -> None:
    """Stable for ever, even, and independent of the id ranges that share a partition's
    rebuild between processes: each partition has citizens in both halves of the ids."""
    ids = [uuid.uuid5(uuid.NAMESPACE_OID, str(n)) for n in range(4000)]
    counts = [0] * 16
    halves: dict[int, set[bool]] = {}
    for cid in ids:
        part = partition_of(cid, 16)
        counts[part] += 1
        halves.setdefault(part, set()).add(cid.int >= 1 << 127)
    assert min(counts) > 4000 / 16 * 0.7
    assert max(counts) < 4000 / 16 * 1.3
    assert all(both == {True, False} for both in halves.values())
    # Pinned: a citizen's partition never changes between versions.
    assert partition_of(citizen_id("110101199003078515"), 64) == 20
    assert partition_of(citizen_id("110101199003078515"), 16) == 4


def test_one_signature_covers_every_partition(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, tmp_path: Path
) -> None:
    catalog, key = postgres_schema_url, str(tmp_path / "ledger.key")
    _ok(cli("keys", "init", "--key", key, "--origin", "ledger.test/log"))
    _init(cli, catalog, 4, ("a", shards[0][1]), ("b", shards[1][1]))
    _registered(cli, catalog)
    records = Population(60, 7, DEMO_UNTIL).records()
    feed = tmp_path / "feed.ndjson"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = json.loads(_ok(cli("append", str(feed), "--json", "--db", catalog)).output)
    note = _ok(cli("checkpoint", "--key", key, "--db", catalog)).output
    tops = json.loads(_ok(cli("checkpoint", "list", "--json", "--db", catalog)).output)
    assert [top["note"] for top in tops] == [note]
    assert [leaf.split("\n")[0] for leaf in tops[0]["leaves"]] == [
        "ledger.test/log/catalog",
        *(f"ledger.test/log/partition/{k}" for k in range(4)),
    ]
    verifier = load_verifier(key + ".pub")
    assert open_note(note, verifier).size == 5

    # Every appended record is proved up to the one signature.
    partitioned = PartitionedLedger(Ledger(catalog))
    try:
        for where in report["positions"][::7]:
            proof = prove_inclusion(partitioned, where["partition"], where["position"])
            verify_inclusion(proof, verifier)
            assert proof.inclusion.position == where["position"]
        proof = prove_inclusion(partitioned, 2, 1)
        wrong = dataclasses.replace(proof, top_proof=[bytes(32), *proof.top_proof[1:]])
        with pytest.raises(ProofError):
            verify_inclusion(wrong, verifier)
        with pytest.raises(ProofError):
            verify_inclusion(dataclasses.replace(proof, partition=1), verifier)
    finally:
        partitioned.close()
    shown = _ok(cli("prove", "inclusion", "1", "--partition", "3", "--json", "--db", catalog))
    assert json.loads(shown.output)["top_note"] == note

    verified = _ok(cli("verify", "--public-key", key + ".pub", "--db", catalog)).output
    assert "1 top checkpoint(s): each signed and matching every log's tree" in verified

    # An event altered in one partition is found, and named by its partition.
    partition_1 = PartitionedLedger(Ledger(catalog))
    try:
        url = partition_1.urls[1]
    finally:
        partition_1.close()
    with behind_the_back(url) as run:
        state = bytes(run("SELECT state FROM EVENTS WHERE POS = 1")[0][0])
        middle = len(state) // 2
        changed = state[:middle] + bytes([state[middle] ^ 1]) + state[middle + 1 :]
        run("UPDATE EVENTS SET state = %s WHERE POS = 1", [changed])
    damaged = cli("verify", "--public-key", key + ".pub", "--db", catalog)
    assert damaged.exit_code == 1
    assert "partition 1: damage at position" in damaged.output


def test_a_partition_moves_to_another_shard_under_load(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, tmp_path: Path
) -> None:
    """`ledger append` (writer processes) goes on through a move of one partition: the
    records written before it and after it are each stored once, the moved partition's
    proofs from before still verify, and its old copy is gone."""
    catalog, key = postgres_schema_url, str(tmp_path / "ledger.key")
    (a, url_a), (b, url_b), (c, url_c) = shards
    _ok(cli("keys", "init", "--key", key))
    _init(cli, catalog, 4, (a, url_a), (b, url_b))
    _ok(cli("shards", "add", c, url_c, "--db", catalog))
    _registered(cli, catalog)
    lines = [json.dumps(r) + "\n" for r in Population(1200, 9, DEMO_UNTIL).records()]
    ledger = [sys.executable, "-m", "scripts.cli"]
    appending = subprocess.Popen(
        [*ledger, "append", "-", "--json", "--db", catalog],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert appending.stdin is not None
    try:
        # More than the threshold at which writer processes take over, then the move.
        first = len(lines) // 2
        appending.stdin.write("".join(lines[:first]).encode())
        appending.stdin.flush()
        partitioned = PartitionedLedger(Ledger(catalog))
        try:
            moving = partitioned.partition(1)
            deadline = time.monotonic() + 60
            while moving.max_position() < 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            before = partitioned.partition(1).max_position()
        finally:
            partitioned.close()
        _ok(cli("checkpoint", "--key", key, "--db", catalog))
        proof = _ok(cli("prove", "inclusion", "1", "--partition", "1", "--json", "--db", catalog))
        moved = _ok(cli("shards", "move", "1", c, "--db", catalog))
        assert "moved partition 1" in moved.output
        out, err = appending.communicate("".join(lines[first:]).encode(), timeout=240)
    finally:
        if appending.poll() is None:
            appending.kill()
    assert appending.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert report["appended"] == len(lines)
    # Partition 1 took records at its new shard, after the move.
    assert max(p["position"] for p in report["positions"] if p["partition"] == 1) > before

    listed = json.loads(_ok(cli("shards", "list", "--json", "--db", catalog)).output)
    assert {s["name"]: s["partitions"] for s in listed["shards"]} == {a: [0, 2], b: [3], c: [1]}
    with psycopg.connect(url_a, autocommit=True) as conn:
        gone = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'partition_0001'")
        assert gone.fetchone() is None
    partitioned = PartitionedLedger(Ledger(catalog))
    try:
        seen: Counter[tuple[str, str]] = Counter()
        for number in range(4):
            reader = partitioned.partition(number).reader
            for _, logged in reader.by_citizen(reader.head()):
                seen.update((e.record.authority, e.record.reference) for e in logged)
    finally:
        partitioned.close()
    assert sum(seen.values()) == len(lines)
    assert max(seen.values()) == 1
    again = _ok(cli("prove", "inclusion", "1", "--partition", "1", "--json", "--db", catalog))
    assert again.output == proof.output
    verified = _ok(cli("verify", "--public-key", key + ".pub", "--db", catalog)).output
    assert "each signed and matching every log's tree" in verified


def test_a_follower_keeps_every_partition_current_and_stops_on_sigterm(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, tmp_path: Path
) -> None:
    """The follower keeps each partition's projections current, follows a partition
    moved to another shard there, and ends on SIGTERM with exit 0."""
    catalog = postgres_schema_url
    _init(cli, catalog, 3, ("a", shards[0][1]))
    _ok(cli("shards", "add", "b", shards[1][1], "--db", catalog))
    _registered(cli, catalog)
    follower = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "project", "--follow", "--interval", "0.2",
         "--db", catalog],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        records = Population(90, 4, DEMO_UNTIL).records()
        feed = tmp_path / "feed.ndjson"
        half = len(records) // 2
        feed.write_text("".join(json.dumps(r) + "\n" for r in records[:half]))
        _ok(cli("append", str(feed), "--db", catalog))
        _projected_everywhere(catalog, [])
        # Partition 1 moves to shard b; the rest of the feed goes on to it there.
        _ok(cli("shards", "move", "1", "b", "--db", catalog))
        feed.write_text("".join(json.dumps(r) + "\n" for r in records[half:]))
        _ok(cli("append", str(feed), "--db", catalog))
        heads = _projected_everywhere(catalog, sorted({r["citizen"] for r in records}))
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err[-2000:]
    assert "project: partition 1: moved to " in err
    assert f"partition 1 national-v1: position {heads[1]}" in out
    assert f"partition 2 national-v1: position {heads[2]}" in out


def _projected_everywhere(catalog: str, residents: list[str]) -> list[int]:
    """Each partition's head, once its projections reached it; that the first of
    `residents` read scores with no lag."""
    partitioned = PartitionedLedger(Ledger(catalog))
    try:
        stores = [ViewStore(url) for url in partitioned.urls]
        try:
            heads = _until_projected(partitioned, stores)
            assert min(heads) > 0
            for resident in residents[:10]:
                number = partitioned.partition_of_resident(resident)
                answer = Scores(partitioned.partition(number), stores[number]).score(resident)
                assert answer.lag == 0
            return heads
        finally:
            for store in stores:
                store.close()
    finally:
        partitioned.close()


def test_decisions_files_bundles_and_disputes_work_partitioned(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, single_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    catalog, key = postgres_schema_url, str(tmp_path / "ledger.key")
    _ok(cli("keys", "init", "--key", key))
    _init(cli, catalog, 4, ("a", shards[0][1]), ("b", shards[1][1]))
    records = Population(80, 2, DEMO_UNTIL).records()
    feed = tmp_path / "feed.ndjson"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    for url in (single_url, catalog):
        _registered(cli, url)
        _ok(cli("party", "add", "bank", "--name", "A Bank", "--purpose", "mortgage",
                "--db", url))  # fmt: skip
        _ok(cli("append", str(feed), "--db", url))
        _ok(cli("checkpoint", "--key", key, "--db", url))
    pending = [
        json.loads(_ok(cli("disputes", "pending", "--json", "--db", url)).output)
        for url in (single_url, catalog)
    ]
    assert pending[0] == pending[1]

    citizen = records[0]["citizen"]
    decisions = [
        json.loads(_ok(cli("decide", citizen, "--party", "bank", "--purpose", "mortgage",
                           "--as-of", "2026-01-01", "--json", "--db", url)).output)
        for url in (single_url, catalog)
    ]  # fmt: skip
    assert [d["outcome"] for d in decisions] == [decisions[0]["outcome"]] * 2
    assert [d["score"] for d in decisions] == [decisions[0]["score"]] * 2
    # The decision is on the citizen's file, in their partition.
    made = json.loads(_ok(cli("report", citizen, "--json", "--db", catalog)).output)
    assert [use["use"] for use in made["inquiries_and_decisions"]] == ["decision"]
    partitioned = PartitionedLedger(Ledger(catalog))
    try:
        number = partitioned.partition_of_resident(citizen)
        assert [partitioned.partition(n).max_position() > 0 for n in range(4)] == [True] * 4
        theirs = partitioned.partition(number)
        assert any(e.use == "decision" for e in theirs.reader.file(citizen_id(citizen)).uses)
    finally:
        partitioned.close()

    bundle = tmp_path / "bundle.json"
    _ok(cli("checkpoint", "--key", key, "--db", catalog))  # one that covers the decision
    _ok(cli("audit", citizen, "--bundle", str(bundle), "--db", catalog))
    held = _ok(cli("verify-bundle", str(bundle), "--public-key", key + ".pub")).output
    assert "that log's checkpoint is in the whole ledger's, over 5 logs" in held
    # The partition's checkpoint is linked to the one signed over the whole ledger.
    linked = json.loads(bundle.read_text())
    assert linked["top"]["partition"] == partitioned.partition_of_resident(citizen)
    body = linked["top"]["leaf"].split("\n")
    body[1] = str(int(body[1]) - 1)
    linked["top"]["leaf"] = "\n".join(body)
    bundle.write_text(json.dumps(linked))
    refused = cli("verify-bundle", str(bundle), "--public-key", key + ".pub")
    assert refused.exit_code != 0
    assert "the link to the whole ledger's checkpoint" in refused.output


def test_the_service_serves_a_partitioned_ledger(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, single_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """`ledger serve` on a catalog: appends go to their citizens' partitions, and reads,
    decisions and the enforcement list answer as one database fed the same records."""
    catalog, key = postgres_schema_url, str(tmp_path / "ledger.key")
    _ok(cli("keys", "init", "--key", key))
    _init(cli, catalog, 4, ("a", shards[0][1]), ("b", shards[1][1]))
    _ok(cli("shards", "add", "c", shards[2][1], "--db", catalog))
    records = Population(40, 6, DEMO_UNTIL).records()
    tokens: dict[str, dict[str, str]] = {}
    for url in (single_url, catalog):
        _registered(cli, url)
        _ok(cli("party", "add", "bank", "--name", "A Bank", "--purpose", "mortgage",
                "--db", url))  # fmt: skip
        tokens[url] = {
            role: _ok(cli("token", "create", "--role", role, *extra, "--db", url)).output.strip()
            for role, extra in (("reader", ()), ("auditor", ()), ("party", ("--party", "bank")))
        }  # fmt: skip
        authorities = {r["authority"] for r in records}
        tokens[url] |= {
            a: _ok(cli("token", "create", "--role", "service", "--authority", a, "--db",
                       url)).output.strip()
            for a in authorities
        }  # fmt: skip
    answers: dict[str, list[Any]] = {}
    for url in (single_url, catalog):
        service = Service(url)
        try:
            # One record at a time, as authorities' services send them, then projected.
            for record in records:
                status, _, report = service.get("/v1/records", tokens[url][record["authority"]],
                                                body=record)  # fmt: skip
                assert status == 201, report
            if url == catalog:
                assert "partition" in report["positions"][0]
                # The same records again, as one NDJSON feed: each a duplicate, in its
                # citizen's partition.
                mine = [r for r in records if r["authority"] == records[0]["authority"]]
                sent = urllib.request.Request(
                    service.base + "/v1/records", method="POST",
                    data="".join(json.dumps(r) + "\n" for r in mine).encode(),
                    headers={"Content-Type": "application/x-ndjson",
                             "Authorization": f"Bearer {tokens[url][records[0]['authority']]}"},
                )  # fmt: skip
                with urllib.request.urlopen(sent, timeout=30) as response:
                    again = json.loads(response.read())
                assert again["duplicates"] == len(mine)
                assert [d["partition"] for d in again["duplicate_of"]] == [
                    partition_of(citizen_id(r["citizen"]), 4) for r in mine
                ]
            _ok(cli("project", "--db", url))
            citizen = records[0]["citizen"]
            asked = [
                service.get(f"/v1/citizens/{citizen}/score?as_of=2025-01-01",
                            tokens[url]["reader"]),
                service.get(f"/v1/citizens/{citizen}/explanation?as_of=2025-01-01",
                            tokens[url]["auditor"]),
                service.get(f"/v1/citizens/{citizen}/history", tokens[url]["auditor"]),
                service.get("/v1/lists/enforcement?as_of=2025-01-01", tokens[url]["reader"]),
                service.get("/v1/decisions", tokens[url]["party"], body={
                    "citizen": citizen, "purpose": "mortgage", "as_of": "2025-01-01"}),
            ]  # fmt: skip
            assert [status for status, _, _ in asked] == [200, 200, 200, 200, 201], asked
            answers[url] = [body for _, _, body in asked]
            if url == catalog:
                _proved_over_http(cli, service, tokens[url]["auditor"], catalog, key, citizen)
                _read_after_a_move(cli, service, tokens[url], catalog, citizen, asked[0][2])
        finally:
            service.stop()
    one, routed = answers[single_url], answers[catalog]
    assert (routed[0]["score"], routed[0]["band"]) == (one[0]["score"], one[0]["band"])
    assert routed[1]["reasons"] == one[1]["reasons"]
    assert [e["reference"] for e in routed[2]] == [e["reference"] for e in one[2]]
    assert routed[3]["items"] == one[3]["items"]
    assert (routed[4]["outcome"], routed[4]["score"]) == (one[4]["outcome"], one[4]["score"])


def _proved_over_http(
    cli: Any, service: Service, token: str, catalog: str, key: str, citizen: str
) -> None:
    """The service's proofs of a partitioned ledger verify up to the one signature; a
    proof asked for without its partition is refused, naming it."""
    status, _, body = service.get("/v1/proofs/inclusion/1", token)
    assert status == 422, body
    assert body["errors"][0]["field"] == "partition"
    note = _ok(cli("checkpoint", "--key", key, "--db", catalog)).output
    status, _, top = service.get("/v1/checkpoints/latest", token)
    assert (status, top["note"], top["size"]) == (200, note, 5)
    verifier = load_verifier(key + ".pub")
    partition = partition_of(citizen_id(citizen), 4)
    status, _, history = service.get(f"/v1/citizens/{citizen}/history", token)
    for entry in history:
        status, _, proof = service.get(
            f"/v1/proofs/inclusion/{entry['position']}?partition={partition}", token
        )
        assert status == 200, proof
        root = bytes.fromhex(proof["root"])
        verify_inclusion_proof(bytes.fromhex(proof["leaf_hash"]), proof["index"], proof["size"],
                               [bytes.fromhex(h) for h in proof["proof"]], root)  # fmt: skip
        signed = Checkpoint(f"{verifier.name}/partition/{partition}", proof["size"], root)
        assert check_top_link(proof["top"], signed, verifier) == 5
        assert proof["top"]["note"] == note
    status, _, own = service.get(f"/v1/checkpoints/latest?partition={partition}", token)
    assert open_note(own["note"], verifier).size == proof["size"]
    status, _, body = service.get("/v1/proofs/inclusion/1?partition=4", token)
    assert status == 422, body


def _read_after_a_move(
    cli: Any, service: Service, tokens: dict[str, str], catalog: str, citizen: str, before: Any
) -> None:
    """A citizen's partition moves to another shard while the service runs: the service
    reads it at its new place, without a restart."""
    partition = partition_of(citizen_id(citizen), 4)
    _ok(cli("shards", "move", str(partition), "c", "--db", catalog))
    status, _, history = service.get(f"/v1/citizens/{citizen}/history", tokens["auditor"])
    assert status == 200, history
    _ok(cli("project", "--db", catalog))
    status, _, after = service.get(f"/v1/citizens/{citizen}/score?as_of=2025-01-01",
                                   tokens["reader"])  # fmt: skip
    assert status == 200, after
    assert (after["score"], after["band"]) == (before["score"], before["band"])


def test_concurrent_appends_to_a_partitioned_ledger_store_each_record_once(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, tmp_path: Path
) -> None:
    """Three `ledger append` processes at once, over overlapping feeds (the same records
    in different orders): every record is stored once, and each report accounts for
    every line as appended or as a duplicate of the position that holds it."""
    catalog = postgres_schema_url
    _init(cli, catalog, 4, ("a", shards[0][1]), ("b", shards[1][1]))
    _registered(cli, catalog)
    records = Population(700, 8, DEMO_UNTIL).records()
    by_citizen: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_citizen.setdefault(record["citizen"], []).append(record)
    citizens = sorted(by_citizen)
    feeds = []
    for n, order in enumerate((citizens, citizens[::-1], citizens[1::2] + citizens[0::2])):
        feed = tmp_path / f"feed-{n}.ndjson"
        # Each citizen's records in their own order; citizens in a different order.
        feed.write_text("".join(json.dumps(r) + "\n" for c in order for r in by_citizen[c]))
        feeds.append(feed)
    command = [sys.executable, "-m", "scripts.cli", "append", "--json", "--db", catalog]
    running = [
        subprocess.Popen(
            [*command, str(feed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for feed in feeds
    ]
    reports = []
    for process in running:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        reports.append(json.loads(out))
    assert sum(r["appended"] for r in reports) == len(records)
    for report in reports:
        assert report["appended"] + report["duplicates"] == len(records)
        assert report["rejected"] == []
    partitioned = PartitionedLedger(Ledger(catalog))
    try:
        stored: dict[tuple[int, int], tuple[str, str]] = {}
        for number in range(4):
            reader = partitioned.partition(number).reader
            for _, logged in reader.by_citizen(reader.head()):
                for e in logged:
                    stored[(number, e.position)] = (e.record.authority, e.record.reference)
    finally:
        partitioned.close()
    assert sorted(stored.values()) == sorted((r["authority"], r["reference"]) for r in records)
    for report, feed in zip(reports, feeds, strict=True):
        lines = [json.loads(line) for line in feed.read_text().splitlines()]
        for where in report["positions"] + report["duplicate_of"]:
            line = lines[where["line"] - 1]
            assert stored[(where["partition"], where["position"])] == (
                line["authority"], line["reference"],
            )  # fmt: skip


def test_a_follower_started_before_the_catalog_answers_follows_the_partitions(
    cli: Any, shards: list[tuple[str, str]], postgres_schema_url: str, tmp_path: Path
) -> None:
    catalog = postgres_schema_url
    _init(cli, catalog, 2, ("a", shards[0][1]))
    _registered(cli, catalog)
    records = Population(30, 12, DEMO_UNTIL).records()
    feed = tmp_path / "feed.ndjson"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    _ok(cli("append", str(feed), "--db", catalog))
    parts = urlsplit(catalog)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    said = tmp_path / "follower.err"
    follower = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "project", "--follow", "--interval", "0.2",
         "--db", through(catalog, proxy.port)],
        stdout=subprocess.PIPE, stderr=said.open("w"), text=True,
    )  # fmt: skip
    try:
        # Nothing answers on the proxy's port until the follower has said it waits.
        deadline = time.monotonic() + 60
        while "the database does not answer" not in said.read_text():
            assert time.monotonic() < deadline, said.read_text()
            time.sleep(0.2)
        proxy.start()
        partitioned = PartitionedLedger(Ledger(catalog))
        try:
            stores = [ViewStore(url) for url in partitioned.urls]
            try:
                heads = _until_projected(partitioned, stores)
            finally:
                for store in stores:
                    store.close()
        finally:
            partitioned.close()
        follower.send_signal(signal.SIGTERM)
        out, _ = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
        proxy.close()
    assert follower.returncode == 0, said.read_text()[-2000:]
    assert f"partition 1 national-v1: position {heads[1]}" in out
