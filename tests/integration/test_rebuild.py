"""A rebuild and a catch-up shared by worker processes, on both stores: they write
what one process writes, and a worker killed half-way (kill -9) leaves the old views
served."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import closing
from datetime import date
from typing import Any

import pytest

from ledger.application import Ledger, Used
from ledger.domain import Inquired
from ledger.domain.identity import citizen_id, make_resident_id
from ledger.domain.records import RecordKey
from ledger.log import CitizenFile
from projections import policy, shares
from projections.known import KnownFacts
from projections.queries import Scores
from projections.runner import CatchUpFailed, RebuildFailed, catch_up, rebuild, tracking_name
from projections.scoring import CitizenFacts, Contribution
from projections.store import (
    CitizenChange,
    CitizenViews,
    EncodedViews,
    ViewStore,
    encode_views,
    page_rows,
)
from projections.store.changes import FOLD_EVERY
from tests.builders import append, enrolled, fine, record, register_authorities, target

POLICIES = [policy.load("national-v1"), policy.load("finance-v1")]
CITIZENS = [make_resident_id("110105", date(1980, 1, 1), n) for n in range(100, 700)]


def feed(ledger: Ledger, fines: range, enrol: bool = False) -> None:
    """Every citizen enrolled (when `enrol`), then a traffic fine each per number."""
    records = [enrolled(c) for c in CITIZENS] if enrol else []
    records += [fine(f"TP-{c}-{n}", c) for c in CITIZENS for n in fines]
    assert append(ledger, *records).rejected == []


def contents(store: ViewStore) -> dict[str, Any]:
    """Every policy's citizens and contributions, and the positions."""
    views = {
        p.name: sorted(
            (resident, json.dumps(item.to_json(), sort_keys=True))
            for resident, item in store.contributions(p.name)
        )
        for p in POLICIES
    }
    citizens = {p.name: sorted(store.residents(p.name)) for p in POLICIES}
    return {"views": views, "citizens": citizens, "positions": store.positions()}


@pytest.fixture
def store(store_url: str) -> Iterator[ViewStore]:
    views = ViewStore(store_url)
    yield views
    views.close()


def test_a_rebuild_by_two_workers_writes_what_one_process_writes(
    ledger: Ledger, store: ViewStore
) -> None:
    register_authorities(ledger)
    feed(ledger, range(2), enrol=True)
    head = ledger.max_position()
    rebuild(ledger.reader, store, POLICIES, head, workers=1, chunk=50)
    alone = contents(store)
    assert alone["positions"] == {tracking_name(p): head for p in POLICIES}
    assert len(alone["citizens"]["national-v1"]) == len(CITIZENS)
    assert len(alone["views"]["national-v1"]) == 2 * len(CITIZENS)
    rebuild(ledger.reader, store, POLICIES, head, workers=2, chunk=50)
    assert contents(store) == alone
    assert multiprocessing.active_children() == []


def test_rebuilding_one_policy_keeps_every_other_policys_views(
    ledger: Ledger, store: ViewStore
) -> None:
    register_authorities(ledger)
    feed(ledger, range(2), enrol=True)
    catch_up(ledger, store, POLICIES)
    before = contents(store)
    with store.transaction() as tx:
        tx.execute("DELETE FROM projection_tracking WHERE name = ?", [tracking_name(POLICIES[0])])
    feed(ledger, range(2, 3))
    head = ledger.max_position()
    rebuild(ledger.reader, store, POLICIES[:1], head, workers=1, chunk=50)
    after = contents(store)
    # The other policy's views and position are as they were; the one rebuilt has the
    # new fines.
    assert len(before["citizens"]["finance-v1"]) == len(CITIZENS)
    assert after["citizens"]["finance-v1"] == before["citizens"]["finance-v1"]
    assert after["views"]["finance-v1"] == before["views"]["finance-v1"]
    assert after["positions"] == {tracking_name(POLICIES[0]): head,
                                  tracking_name(POLICIES[1]): before["positions"][
                                      tracking_name(POLICIES[1])]}  # fmt: skip
    assert len(after["views"]["national-v1"]) == 3 * len(CITIZENS)
    # A rebuild of both again gives what catching the other one up gives.
    catch_up(ledger, store, POLICIES)
    caught = contents(store)
    rebuild(ledger.reader, store, POLICIES, head, workers=1, chunk=50)
    assert contents(store) == caught


def test_views_with_characters_copy_escapes_are_written_and_read_back_whole(
    store: ViewStore,
) -> None:
    awkward = "back\\slash\ttab\nnew\rreturn"
    found = [Contribution(awkward, "R-1", "traffic_fine", "traffic_fine.open", -5,
                          date(2024, 1, 1), None)]  # fmt: skip
    citizen = uuid.uuid4()
    store.replace_all(
        [("scores:x", "x")], 7, [CitizenViews(citizen, CitizenFacts("resident"), [found])]
    )
    assert store.view("scores:x", "x", citizen) == (found, 7)
    # And as a change a catch-up adds to the view, replacing what the record counted.
    again = [found[0]._replace(points=-9)]
    change = CitizenChange(citizen, frozenset({RecordKey(awkward, "R-1")}), [again], False, None)
    store.save_rows([("scores:x", "x")], 8, page_rows([change], ["x"], 8, store.postgres))
    assert store.view("scores:x", "x", citizen) == (again, 8)


class KillingStore(ViewStore):
    """Kills one rebuild worker with SIGKILL once the first chunk has been written."""

    killed: list[int]

    def replace_all_encoded(
        self, projections: Any, position: int, chunks: Iterable[EncodedViews]
    ) -> None:
        self.killed = []

        def kill_after_first() -> Iterator[EncodedViews]:
            for n, chunk in enumerate(chunks):
                yield chunk
                if n == 0:
                    victim = multiprocessing.active_children()[0]
                    os.kill(victim.pid or 0, signal.SIGKILL)
                    self.killed.append(victim.pid or 0)

        super().replace_all_encoded(projections, position, kill_after_first())


@pytest.mark.parametrize("workers", [1, 2])
def test_a_rebuild_reports_its_progress_chunk_by_chunk(
    ledger: Ledger, store: ViewStore, workers: int
) -> None:
    register_authorities(ledger)
    feed(ledger, range(2), enrol=True)
    told: list[tuple[int, int]] = []
    rebuild(ledger.reader, store, POLICIES, ledger.max_position(), workers=workers, chunk=50,
            progress=lambda records, citizens: told.append((records, citizens)))  # fmt: skip
    # Enrolment and two fines each, told as the chunks of 50 citizens are written.
    assert len(told) >= len(CITIZENS) // 50
    assert all(0 < citizens <= 50 for _, citizens in told)
    assert sum(records for records, _ in told) == 3 * len(CITIZENS)
    assert sum(citizens for _, citizens in told) == len(CITIZENS)


def _stalled_after_one_chunk(*args: Any, **kwargs: Any) -> Iterator[EncodedViews]:
    """A worker's chunks, the rest of its share held back after the first: it is
    killed before it could finish (its whole share would fit in the socket's buffer)."""
    for n, chunk in enumerate(encode_views(*args, **kwargs)):
        yield chunk
        if n == 0:
            time.sleep(60)


def test_a_rebuild_worker_killed_half_way_leaves_the_old_views_served(
    ledger: Ledger, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_authorities(ledger)
    feed(ledger, range(1), enrol=True)
    old_head = ledger.max_position()
    with closing(ViewStore(store_url)) as views:
        assert catch_up(ledger, views, POLICIES, workers=1)["national-v1"] == old_head
        before = contents(views)
        old_score = Scores(ledger, views).score(CITIZENS[0], "national-v1")
    feed(ledger, range(1, 3))
    head = ledger.max_position()
    killing = KillingStore(store_url)
    try:
        # The workers are forked from here, with what this patches.
        with monkeypatch.context() as patched:
            patched.setattr(shares, "encode_views", _stalled_after_one_chunk)
            with pytest.raises(RebuildFailed, match="died"):
                rebuild(ledger.reader, killing, POLICIES, head, workers=2, chunk=20)
        assert len(killing.killed) == 1
    finally:
        killing.close()
    assert multiprocessing.active_children() == []
    with closing(ViewStore(store_url)) as views:
        assert contents(views) == before
        served = Scores(ledger, views).score(CITIZENS[0], "national-v1")
        assert (served.score, served.position) == (old_score.score, old_head)
        assert served.lag == head - old_head
        # A later rebuild succeeds, and serves the new views.
        rebuild(ledger.reader, views, POLICIES, head, workers=2, chunk=20)
        assert views.positions() == {tracking_name(p): head for p in POLICIES}
        now = Scores(ledger, views).score(CITIZENS[0], "national-v1")
        assert (now.position, now.lag) == (head, 0)
        assert now.score < old_score.score  # two more fines count against them


@pytest.mark.parametrize(
    "old_table",
    [
        "score_facts (policy TEXT, citizen_id TEXT, facts TEXT)",
        "score_contributions (policy TEXT, citizen_id TEXT, authority TEXT, points INTEGER)",
    ],
)
def test_views_of_an_old_layout_are_dropped_and_built_again(
    ledger: Ledger, store_url: str, old_table: str
) -> None:
    """Views once kept citizens' facts as JSON in `score_facts`, then a row for each
    contribution; a store opened on either drops them and every score projection's
    position, so the projector rebuilds."""
    register_authorities(ledger)
    feed(ledger, range(1), enrol=True)
    first = ViewStore(store_url)
    catch_up(ledger, first, POLICIES)
    expected = contents(first)
    with first.transaction() as tx:
        tx.execute(f"CREATE TABLE {old_table}")
        tx.execute("INSERT INTO projection_tracking (name, position) VALUES (?, ?)",
                   ["tokens:other", 7])  # fmt: skip
    first.close()
    reopened = ViewStore(store_url)
    try:
        positions = reopened.positions()
        assert positions == {"tokens:other": 7}
        assert all(reopened.residents(p.name) == [] for p in POLICIES)
        catch_up(ledger, reopened, POLICIES)
        again = contents(reopened)
        assert again["views"] == expected["views"]
        assert again["citizens"] == expected["citizens"]
    finally:
        reopened.close()


def test_a_catch_up_adds_changes_to_views_and_folds_them_in_every_few_events(
    ledger: Ledger, store: ViewStore, tmp_path: Any
) -> None:
    """A traffic fine counts under national-v1 only: a catch-up adds it to that view as a
    change and leaves the views' rows as they were (finance-v1 gets no change at all);
    the fine that brings the citizen's events to a multiple of FOLD_EVERY has the
    changes folded into the view's row. At every step the views read what a rebuild
    gives."""
    register_authorities(ledger)
    feed(ledger, range(1), enrol=True)
    catch_up(ledger, store, POLICIES, known=KnownFacts())
    citizen = citizen_id(CITIZENS[0]).hex

    def rows() -> tuple[dict[str, str], dict[str, int]]:
        views = store.read("SELECT policy, contributions FROM score_views WHERE citizen_id = ?",
                           [citizen])  # fmt: skip
        gathered = store.read("SELECT policy, COUNT(*) FROM score_changes "
                              "WHERE citizen_id = ? GROUP BY policy", [citizen])  # fmt: skip
        return dict(views), {policy: int(n) for policy, n in gathered}

    def rebuilt() -> dict[str, Any]:
        with closing(ViewStore(f"sqlite:///{tmp_path}/{ledger.max_position()}.db")) as again:
            catch_up(ledger, again, POLICIES)
            return contents(again)

    first, _ = rows()
    # The citizen has two events (the enrolment and a fine); kept warm for some of the
    # catch-ups, from cold for the others: a change needs no facts either way.
    known = KnownFacts()
    more = FOLD_EVERY - 2
    for n in range(1, more):
        append(ledger, fine(f"TP-again-{n}", CITIZENS[0]))
        catch_up(ledger, store, POLICIES, known=known if n % 2 else KnownFacts())
        assert rows() == (first, {"national-v1": n})
        assert contents(store) == rebuilt()
    append(ledger, fine(f"TP-again-{more}", CITIZENS[0]))
    catch_up(ledger, store, POLICIES, known=known)
    views, gathered = rows()
    assert gathered == {}
    assert views["finance-v1"] == first["finance-v1"]
    assert views["national-v1"].count("TP-again-") == more
    assert contents(store) == rebuilt()


def test_a_use_of_a_file_that_brings_its_citizen_to_a_fold_folds_the_changes(
    ledger: Ledger, store: ViewStore
) -> None:
    """A use of the citizen's file is one of their events but no record: when it is the
    one that reaches a multiple of FOLD_EVERY, the page that holds it, with no record of
    theirs, folds their views' changes, so no view holds more than FOLD_EVERY - 1."""
    register_authorities(ledger)
    cid = citizen_id(CITIZENS[0])
    assert append(ledger, enrolled(CITIZENS[0])).rejected == []
    catch_up(ledger, store, POLICIES)
    for n in range(FOLD_EVERY - 2):  # the enrolment and these: FOLD_EVERY - 1 events
        assert append(ledger, fine(f"TP-use-{n}", CITIZENS[0])).rejected == []
        catch_up(ledger, store, POLICIES)

    def gathered() -> int:
        rows = store.read("SELECT COUNT(*) FROM score_changes WHERE citizen_id = ?", [cid.hex])
        return int(rows[0][0])

    assert gathered() == FOLD_EVERY - 2
    scored = contents(store)["views"]

    def inquiry(file: CitizenFile) -> tuple[None, Used]:
        return None, (Inquired, {"party": "bank-a", "purpose": "mortgage",
                                 "as_of": date(2026, 1, 1), "position": file.records[-1].position,
                                 "policy": "national-v1", "score": 1})  # fmt: skip

    ledger.record_use(cid, inquiry)
    catch_up(ledger, store, POLICIES)
    assert gathered() == 0
    assert contents(store)["views"] == scored


@pytest.mark.postgres
def test_a_view_folded_with_its_changes_is_rewritten_on_its_own_page(
    postgres_schema_url: str,
) -> None:
    """Pages of views are left half free, by a rebuild and on a table made before, so
    that a view rewritten with its changes folded in goes on the same page as the old
    one (a HOT update, with no new index entry) while the page has room."""
    ledger, store = Ledger(postgres_schema_url), ViewStore(postgres_schema_url)
    try:
        with store.transaction() as tx:
            tx.execute("ALTER TABLE score_views RESET (fillfactor)")
        store.close()
        store = ViewStore(postgres_schema_url)
        assert store.read("SELECT reloptions FROM pg_class WHERE oid = 'score_views'::regclass",
                          []) == [(["fillfactor=50"],)]  # fmt: skip
        register_authorities(ledger)
        feed(ledger, range(3), enrol=True)
        rebuild(ledger.reader, store, POLICIES, ledger.max_position(), workers=1)

        def pages() -> dict[str, tuple[str, str]]:
            rows = store.read("SELECT citizen_id, (ctid::text::point)[0]::text, xmin::text "
                              "FROM score_views WHERE policy = 'national-v1'", [])  # fmt: skip
            return {citizen: (page, xmin) for citizen, page, xmin in rows}

        before = pages()
        # A third of them, as a stretch of the log touches some of a page's citizens.
        fined = CITIZENS[::3]
        # Enrolled, then three fines: these bring them to FOLD_EVERY events.
        for n in range(FOLD_EVERY - 4):
            assert append(ledger, *[fine(f"TP-{c}-again-{n}", c) for c in fined]).rejected == []
            catch_up(ledger, store, POLICIES)
        after = pages()
        rewritten = [c for c in before if after[c][1] != before[c][1]]
        assert len(rewritten) == len(fined)
        # A view that grew past its page's room moves; with the pages full, all would.
        moved = [c for c in rewritten if after[c][0] != before[c][0]]
        assert len(moved) <= len(rewritten) // 10
    finally:
        store.close()
        ledger.close()


class FailingWrite(ViewStore):
    """Fails the write of the page that ends at `fail_at`, once, before writing it."""

    fail_at = -1

    def save_rows(self, projections: Any, position: int, rows: Any) -> None:
        if position == self.fail_at:
            self.fail_at = -1
            raise RuntimeError(f"the write of the page up to {position} failed")
        super().save_rows(projections, position, rows)


def test_a_page_whose_write_failed_is_folded_again_not_taken_as_kept(
    ledger: Ledger, store_url: str, tmp_path: Any
) -> None:
    """A catch-up keeps what it wrote of its citizens before the write is done. When the
    write fails, a retry with the same kept views (as a projector makes) must fold the
    page again from the log: folding a dispute twice would leave a second one open,
    and the fine suspended after the first is resolved."""
    register_authorities(ledger)
    append(ledger, enrolled(), fine("TP-1"))
    known = KnownFacts()
    failing = FailingWrite(store_url)
    try:
        catch_up(ledger, failing, POLICIES, page_size=1, known=known)
        disputed = record("record.disputed", "D-1", target=target("traffic-police", "TP-1"),
                          reason="not my car", occurred_on="2025-01-20")  # fmt: skip
        append(ledger, disputed)
        failing.fail_at = ledger.max_position()
        with pytest.raises(RuntimeError, match="failed"):
            catch_up(ledger, failing, POLICIES, page_size=1, known=known)
        append(ledger, record("dispute.resolved", "R-1", target=target("dispute-office", "D-1"),
                              outcome="upheld", occurred_on="2025-02-01"))  # fmt: skip
        catch_up(ledger, failing, POLICIES, page_size=1, known=known)
        retried = contents(failing)
    finally:
        failing.close()
    with closing(ViewStore(f"sqlite:///{tmp_path}/rebuilt.db")) as rebuilt:
        catch_up(ledger, rebuilt, POLICIES)
        expected = contents(rebuilt)
    assert retried["views"] == expected["views"]
    assert any("TP-1" in item for _, item in retried["views"]["national-v1"])


def test_a_catch_up_by_two_workers_writes_what_one_process_writes(
    ledger: Ledger, store_url: str, tmp_path: Any
) -> None:
    """Kept warm from one call to the next, as a follower keeps its workers, and from
    cold; the workers end with whoever keeps them."""
    register_authorities(ledger)
    feed(ledger, range(1), enrol=True)
    alone, shared = ViewStore(f"sqlite:///{tmp_path}/alone.db"), ViewStore(store_url)
    known = KnownFacts(keep_shares=True)
    try:
        for views, workers in ((alone, 1), (shared, 2)):
            catch_up(ledger, views, POLICIES, workers=workers)
        told: list[tuple[int, int]] = []
        for fines in (range(1, 2), range(2, 4)):
            feed(ledger, fines)
            told.clear()
            catch_up(ledger, alone, POLICIES, workers=1, page_size=150)
            catch_up(ledger, shared, POLICIES, workers=2, page_size=150, known=known,
                     progress=lambda moved, citizens: told.append((moved, citizens)))  # fmt: skip
            assert contents(shared)["views"] == contents(alone)["views"]
            assert shared.positions() == alone.positions()
            # Pages of 150 positions, each fine of a citizen in one of them.
            assert sum(moved for moved, _ in told) == len(fines) * len(CITIZENS)
            assert all(0 < citizens <= 150 for _, citizens in told)
            assert len(multiprocessing.active_children()) == 2
        known.close()
        assert multiprocessing.active_children() == []
        # From cold, with workers of its own that end with it.
        feed(ledger, range(4, 5))
        catch_up(ledger, alone, POLICIES, workers=1)
        catch_up(ledger, shared, POLICIES, workers=2, page_size=150)
        assert contents(shared) == contents(alone)
        assert multiprocessing.active_children() == []
    finally:
        known.close()
        alone.close()
        shared.close()


class KillingWrite(ViewStore):
    """Kills one catch-up worker with SIGKILL once it has made all of the first page,
    before the page is committed (the workers are on the next one by then)."""

    killed: list[int]

    def save_row_chunks(self, projections: Any, position: int, chunks: Any) -> None:
        def then_kill() -> Iterator[Any]:
            yield from chunks
            if not self.killed:
                victim = multiprocessing.active_children()[0]
                os.kill(victim.pid or 0, signal.SIGKILL)
                self.killed.append(victim.pid or 0)

        super().save_row_chunks(projections, position, then_kill())


def test_a_catch_up_worker_killed_half_way_leaves_the_pages_written_before_it(
    ledger: Ledger, store_url: str, tmp_path: Any
) -> None:
    register_authorities(ledger)
    feed(ledger, range(1), enrol=True)
    old_head = ledger.max_position()
    with closing(ViewStore(store_url)) as views:
        catch_up(ledger, views, POLICIES, workers=1)
    feed(ledger, range(1, 3))
    head = ledger.max_position()
    killing = KillingWrite(store_url)
    killing.killed = []
    known = KnownFacts(keep_shares=True)
    try:
        # The first page is written as its worker dies; the next one is lost with it.
        with pytest.raises(CatchUpFailed, match="died"):
            catch_up(ledger, killing, POLICIES, workers=2, page_size=200, known=known)
        assert len(killing.killed) == 1
        assert killing.positions() == {tracking_name(p): old_head + 200 for p in POLICIES}
    finally:
        killing.close()
    # The catch-up's workers are gone, and so is what they kept.
    assert multiprocessing.active_children() == []
    assert known.shares is None
    with closing(ViewStore(store_url)) as views:
        assert catch_up(ledger, views, POLICIES, workers=2, known=known) == {
            p.name: head for p in POLICIES
        }
        known.close()
        with closing(ViewStore(f"sqlite:///{tmp_path}/rebuilt.db")) as rebuilt:
            catch_up(ledger, rebuilt, POLICIES, workers=1)
            assert contents(views)["views"] == contents(rebuilt)["views"]
