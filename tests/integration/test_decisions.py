"""Decisions for relying parties, on both stores: recorded on the citizen's file before
they are answered, tamper-evident like every event, never a record, and reproducible
by replaying the file as known at their time."""

from __future__ import annotations

import json
import multiprocessing
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.application import FixedClock, Ledger
from ledger.domain.identity import citizen_id
from ledger.errors import NotEntitled, ReferenceConflict
from ledger.transparency.audit import verify_log
from projections.decisions import APPROVE, DENY, DecisionRuleError
from projections.decisions.requests import request_decision
from projections.queries import Scores
from projections.runner import catch_up
from projections.store import ViewStore
from scripts.cli import main
from tests.builders import WANG_FANG, append, enrolled, record, register_authorities, target

CID = citizen_id(WANG_FANG)


def judgment_default(reference: str = "J-1") -> dict[str, Any]:
    return record("infraction.recorded", reference, kind="judgment_default", amount="900.00",
                  occurred_on="2025-05-01")  # fmt: skip


@pytest.fixture
def filed(ledger: Ledger) -> Ledger:
    """Wang Fang enrolled, with a judgment she defaulted on; bank-a registered."""
    register_authorities(ledger)
    assert append(ledger, enrolled(), judgment_default()).rejected == []
    ledger.register_party("bank-a", "Bank A", ["mortgage", "consumer_loan"])
    return ledger


def test_a_decision_is_recorded_on_the_file_as_an_event_that_is_no_record(filed: Ledger) -> None:
    head = filed.max_position()
    last_record = filed.reader.file(CID).records[-1].position
    answer = request_decision(filed, "bank-a", "mortgage", WANG_FANG)
    assert answer.decision.outcome == DENY
    assert answer.read_up_to == last_record < head  # the party was registered after it
    assert answer.position == filed.max_position() == head + 1
    file = filed.reader.file(CID)
    assert [r.record.reference for r in file.records] == [f"E-{WANG_FANG}", "J-1"]
    (use,) = file.uses
    assert (use.position, use.version, use.use) == (answer.position, 3, "decision")
    assert use.fields == {"party": "bank-a", "purpose": "mortgage", "rule": "mortgage-v1",
                          "outcome": "deny", "score": answer.decision.explanation.score.score,
                          "as_of": filed.today().isoformat(), "position": last_record,
                          "request": None}  # fmt: skip
    assert file.version == 3
    assert [e.record.reference for e in filed.history(WANG_FANG)] == [f"E-{WANG_FANG}", "J-1"]
    assert verify_log(filed) is None  # in the Merkle tree like every event


def test_records_appended_after_a_decision_follow_it(filed: Ledger, open_ledger: Any) -> None:
    request_decision(filed, "bank-a", "mortgage", WANG_FANG)
    settled = record("infraction.settled", "J-2", target=target("peoples-court", "J-1"),
                     amount="900.00", occurred_on="2025-06-01")  # fmt: skip
    # By this writer, which kept the citizen, and by another, which loads them.
    assert append(filed, settled).rejected == []
    vacated = record("record.vacated", "V-1", target=target("peoples-court", "J-1"),
                     reason="error", occurred_on="2025-07-01")  # fmt: skip
    assert append(open_ledger(), vacated).rejected == []
    file = filed.reader.file(CID)
    assert [(r.version, r.record.reference) for r in file.records][-2:] == [(4, "J-2"), (5, "V-1")]
    assert verify_log(filed) is None


def test_a_party_asking_for_a_purpose_it_is_not_registered_for_is_refused_and_nothing_recorded(
    filed: Ledger,
) -> None:
    filed.register_party("board", "Medical Board", ["licensed_employment"])
    head = filed.max_position()
    with pytest.raises(NotEntitled, match="not registered for the purpose 'mortgage'"):
        request_decision(filed, "board", "mortgage", WANG_FANG)
    with pytest.raises(NotEntitled, match="nobody is not a registered relying party"):
        request_decision(filed, "nobody", "mortgage", WANG_FANG)
    with pytest.raises(DecisionRuleError, match="consumer-loan-v1 is a rule for consumer_loan"):
        request_decision(filed, "bank-a", "mortgage", WANG_FANG, rule_name="consumer-loan-v1")
    assert filed.max_position() == head
    assert filed.reader.file(CID).uses == []


def test_a_decision_replayed_as_known_at_its_time_gives_the_same_outcome_and_reasons(
    filed: Ledger,
) -> None:
    first = request_decision(filed, "bank-a", "consumer_loan", WANG_FANG)
    assert first.decision.outcome == DENY
    vacated = record("record.vacated", "V-1", target=target("peoples-court", "J-1"),
                     reason="wrong person", occurred_on="2025-07-01")  # fmt: skip
    assert append(filed, vacated).rejected == []
    now = request_decision(filed, "bank-a", "consumer_loan", WANG_FANG)
    assert now.decision.outcome == APPROVE
    assert first.recorded_at is not None
    head = filed.max_position()
    replayed = request_decision(filed, "bank-a", "consumer_loan", WANG_FANG,
                                as_of=first.decision.as_of, known_at=first.recorded_at)  # fmt: skip
    assert replayed.position is None  # a replay records nothing
    assert filed.max_position() == head
    assert replayed.decision.to_json() == first.decision.to_json()
    assert replayed.read_up_to == first.read_up_to


def test_a_decision_made_from_a_file_that_changed_is_made_again(
    filed: Ledger, open_ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = open_ledger()
    read = filed.reader.file
    vacated = record("record.vacated", "V-1", target=target("peoples-court", "J-1"),
                     reason="wrong person", occurred_on="2025-07-01")  # fmt: skip

    def changing(cid: Any) -> Any:
        file = read(cid)
        if len(file.records) == 2:  # another writer adds a record once it has been read
            assert append(other, vacated).rejected == []
        return file

    monkeypatch.setattr(filed.reader, "file", changing)
    answer = request_decision(filed, "bank-a", "consumer_loan", WANG_FANG)
    assert answer.decision.outcome == APPROVE  # decided on the file with the vacation
    monkeypatch.undo()
    file = filed.reader.file(CID)
    assert [u.version for u in file.uses] == [4]
    assert file.uses[0].fields["position"] == file.records[-1].position


def test_decisions_leave_the_projections_as_the_records_make_them(filed: Ledger) -> None:
    views = ViewStore(filed.url)
    try:
        scores = Scores(filed, views)
        chosen = scores.all_policies()
        catch_up(filed, views, chosen)
        before = {p.name: scores.score(WANG_FANG, p.name).score for p in chosen}
        request_decision(filed, "bank-a", "mortgage", WANG_FANG)
        reached = catch_up(filed, views, chosen)
        assert set(reached.values()) == {filed.max_position()}
        assert {p.name: scores.score(WANG_FANG, p.name).score for p in chosen} == before
    finally:
        views.close()


def test_ledger_decide_prints_the_outcome_and_the_notice(
    filed: Ledger, store_url: str, clock: FixedClock
) -> None:
    def cli(*args: str) -> Any:
        return CliRunner().invoke(main, [*args, "--db", store_url], obj={"clock": clock})

    shown = cli("decide", WANG_FANG, "--party", "bank-a", "--purpose", "mortgage")
    assert shown.exit_code == 0, shown.output
    assert f"{WANG_FANG}: DENY for bank-a (mortgage) under mortgage-v1" in shown.stdout
    assert "condition not met: no judgment default counting (at best deny)" in shown.stdout
    assert "reason 1: judgment default, recorded by peoples-court as J-1" in shown.stdout
    assert "adverse-action notice, sources: peoples-court" in shown.stdout
    body = json.loads(cli("decide", WANG_FANG, "--party", "bank-a", "--purpose",
                          "consumer_loan", "--json").stdout)  # fmt: skip
    assert (body["outcome"], body["rule"], body["notice"]["outcome"]) == (
        "deny", "consumer-loan-v1", "deny")  # fmt: skip
    assert body["position"] == filed.max_position()
    refused = cli("decide", WANG_FANG, "--party", "bank-a", "--purpose", "licensed_employment")
    assert refused.exit_code == 2
    assert "bank-a is not registered for the purpose 'licensed_employment'" in refused.output


def _decider(url: str, start: Any, count: int) -> None:
    ledger = Ledger(url)
    start.wait()
    for _ in range(count):
        request_decision(ledger, "bank-a", "consumer_loan", WANG_FANG)
    ledger.close()


def _appender(url: str, start: Any, count: int) -> None:
    ledger = Ledger(url)
    start.wait()
    for n in range(count):
        report = append(ledger, record("payment.recorded", f"TX-{n}", kind="tax_paid_on_time",
                                       amount="10.00", occurred_on="2025-09-01"))  # fmt: skip
        assert report.rejected == [], report.rejected
    ledger.close()


def test_decisions_and_appends_from_many_processes_each_follow_what_they_read(
    filed: Ledger, store_url: str
) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    workers = [
        context.Process(target=_decider, args=(store_url, start, 8)),
        context.Process(target=_decider, args=(store_url, start, 8)),
        context.Process(target=_appender, args=(store_url, start, 16)),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    file = filed.reader.file(CID)
    assert len(file.records) == 2 + 16
    assert len(file.uses) == 16
    versions = sorted([r.version for r in file.records] + [u.version for u in file.uses])
    assert versions == list(range(1, len(versions) + 1))
    for use in file.uses:
        read = [r for r in file.records if r.version < use.version]
        # Made from exactly the records before it: the last it read, and its score.
        assert use.fields["position"] == read[-1].position
        replayed = request_decision(filed, "bank-a", "consumer_loan", WANG_FANG,
                                    known_at=use.recorded_at)  # fmt: skip
        assert replayed.read_up_to == read[-1].position
        assert (replayed.decision.outcome, replayed.decision.explanation.score.score) == (
            use.fields["outcome"], use.fields["score"])  # fmt: skip
    assert verify_log(filed) is None


def test_a_key_sent_again_for_another_purpose_is_a_conflict(filed: Ledger) -> None:
    first = request_decision(filed, "bank-a", "mortgage", WANG_FANG, request="k-1")
    again = request_decision(filed, "bank-a", "mortgage", WANG_FANG, request="k-1")
    assert (again.repeated, again.position, again.decision.to_json()) == (
        True, first.position, first.decision.to_json())  # fmt: skip
    with pytest.raises(ReferenceConflict, match="request k-1 was a mortgage decision"):
        request_decision(filed, "bank-a", "consumer_loan", WANG_FANG, request="k-1")
    assert len(filed.reader.file(CID).uses) == 1
