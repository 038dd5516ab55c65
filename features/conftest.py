"""Steps shared by the features: people, authorities and records in the business's words.

Steps drive the ledger only through its application service and check only what it
reports and what a history shows; they hold no rules of the ledger.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import pytest
from pytest_bdd import given, parsers, then, when

from ledger.application import AppendReport, FixedClock, HistoryEntry, Ledger
from ledger.domain import records as r
from ledger.domain.identity import make_resident_id
from ledger.errors import UnknownCitizen
from projections import policy as policies
from projections.queries import Listing, Scores
from projections.runner import catch_up
from projections.store import ViewStore
from tests.builders import (
    AUTHORITIES,
    LI_WEI,
    WANG_FANG,
    ZHANG_MIN,
    append,
    record,
    register_authorities,
    target,
)

CHEN_JIE = make_resident_id("320102", date(1978, 6, 15), 233)
PEOPLE = {"Wang Fang": WANG_FANG, "Li Wei": LI_WEI, "Zhang Min": ZHANG_MIN, "Chen Jie": CHEN_JIE}

# The policies every scenario's projections are built for.
POLICIES = ("national-v1", "finance-v1")

AUTHORITY_IDS = {
    "the civil registry": "civil-registry",
    "the traffic police": "traffic-police",
    "the tax bureau": "tax-bureau",
    "the people's court": "peoples-court",
    "the bank": "bank",
    "the university": "university",
    "the dispute office": "dispute-office",
    "the credit repair office": "repair-office",
    # Not among the registered authorities unless a scenario registers them.
    "the secret police": "secret-police",
    "the new bank": "new-bank",
}
assert set(AUTHORITIES) <= set(AUTHORITY_IDS.values())

# What a record is called in a feature: its wire type and kind.
RECORDS: dict[str, tuple[str, str | None]] = {
    "enrolment": (r.ENROLLED, None),
    "traffic fine": (r.INFRACTION, "traffic_fine"),
    "tax arrears": (r.INFRACTION, "tax_arrears"),
    "court judgment": (r.INFRACTION, "court_judgment"),
    "judgment default": (r.INFRACTION, "judgment_default"),
    "loan default": (r.INFRACTION, "loan_default"),
    "criminal conviction": (r.INFRACTION, "criminal_conviction"),
    "settlement": (r.SETTLED, None),
    "tax paid on time": (r.PAYMENT, "tax_paid_on_time"),
    "loan repaid on time": (r.PAYMENT, "loan_repaid_on_time"),
    "degree": (r.VERIFICATION, "degree"),
    "professional licence": (r.VERIFICATION, "professional_license"),
    "revocation": (r.REVOKED, None),
    "dispute": (r.DISPUTED, None),
    "resolution": (r.RESOLVED, None),
    "vacating order": (r.VACATED, None),
    "credit repair": (r.REPAIRED, None),
}
RECORD_NAMES = {kind: name for name, kind in RECORDS.items()}

# The one free-text field each type has, shown in a table's "details" column.
DETAILS = {
    r.VERIFICATION: "credential",
    r.REVOKED: "reason",
    r.DISPUTED: "reason",
    r.VACATED: "reason",
    r.RESOLVED: "outcome",
}


T = TypeVar("T")


def with_pattern(regex: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    """What parse's `with_pattern` does, typed: the regex a `{name:Type}` field matches."""

    def mark(convert: Callable[[str], T]) -> Callable[[str], T]:
        convert.pattern = regex  # type: ignore[attr-defined]
        return convert

    return mark


def _alternatives(names: Any) -> str:
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


@with_pattern(_alternatives(PEOPLE) + r"|\d{17}[\dXx]")
def person(text: str) -> str:
    """A person by name, or an identity number written out."""
    return PEOPLE.get(text, text)


@with_pattern(_alternatives(AUTHORITY_IDS))
def authority(text: str) -> str:
    return AUTHORITY_IDS[text]


@with_pattern(r"-?\d+(?:\.\d+)?")
def amount(text: str) -> str:
    """An amount as the authority wrote it: "200" and "200.00" stay apart on the wire."""
    return text


@with_pattern(r"\d{4}-\d{2}-\d{2}")
def day(text: str) -> str:
    return date.fromisoformat(text).isoformat()


@with_pattern(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})")
def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@with_pattern(_alternatives(policies.available()))
def policy_name(text: str) -> str:
    """A scoring policy by the name of its file."""
    return text


@with_pattern(r"[A-Za-z0-9._:/-]+")
def reference(text: str) -> str:
    return text


@with_pattern(r"[A-Za-z0-9._:/-]+(?:(?:, | and )[A-Za-z0-9._:/-]+)*")
def references(text: str) -> list[str]:
    """References listed in prose: TP-1; TP-1 and TP-2; TP-1, TP-2 and TP-3."""
    return re.split(r", | and ", text)


TYPES = {
    "Person": person,
    "Authority": authority,
    "Amount": amount,
    "Day": day,
    "Instant": instant,
    "Reference": reference,
    "References": references,
    "Policy": policy_name,
}


def step(text: str) -> parsers.parse:
    return parsers.parse(text, extra_types=TYPES)


# Records in the business's words


def name_of(citizen: str) -> str:
    return next((n for n, number in PEOPLE.items() if number == citizen), citizen)


def authority_name(authority_id: str) -> str:
    return next(n for n, a in AUTHORITY_IDS.items() if a == authority_id)


def acted_on(text: str, by: str) -> dict[str, str]:
    """What a record acts on: TP-1 is the acting authority's own, the tax bureau's TX-1 not."""
    if "'s " in text:
        owner, ref = text.rsplit("'s ", 1)
        return target(authority(owner), ref)
    return target(by, text)


def record_from_row(row: dict[str, str]) -> dict[str, Any]:
    """A wire record from a table row; empty cells are fields the record does not have."""
    record_type, kind = RECORDS[row["record"]]
    by = authority(row["authority"])
    fields: dict[str, Any] = {}
    if kind is not None:
        fields["kind"] = kind
    if row.get("amount"):
        fields["amount"] = amount(row["amount"])
    if row.get("acts on"):
        fields["target"] = acted_on(row["acts on"], by)
    if row.get("details"):
        fields[DETAILS[record_type]] = row["details"]
    if row.get("remark"):
        fields["remark"] = row["remark"]
    return record(record_type, row["reference"], person(row["citizen"]), by,
                  day(row["on"]), **fields)  # fmt: skip


def row_of(entry: HistoryEntry) -> dict[str, str]:
    """A history entry as a table row, in the same words a feed uses."""
    rec = entry.record
    row = {
        "citizen": name_of(rec.citizen.value),
        "authority": authority_name(rec.authority),
        "record": RECORD_NAMES[(rec.type, rec.kind)],
        "reference": rec.reference,
        "on": rec.occurred_on.isoformat(),
        "amount": "" if rec.amount is None else str(rec.amount),
        "acts on": "",
        "details": "",
    }
    if rec.target is not None:
        row["acts on"] = (
            rec.target.reference
            if rec.target.authority == rec.authority
            else f"{authority_name(rec.target.authority)}'s {rec.target.reference}"
        )
    if rec.type in DETAILS:
        row["details"] = getattr(rec, DETAILS[rec.type])
    return row


def rows(datatable: list[list[str]]) -> list[dict[str, str]]:
    header, *body = datatable
    return [dict(zip(header, cells, strict=True)) for cells in body]


# What the ledger held before an append, and what the append reported


Histories = dict[str, list[HistoryEntry] | None]


def histories(ledger: Ledger) -> Histories:
    """The history of everyone the features know by name; None for the never enrolled."""
    found: Histories = {}
    for citizen in PEOPLE.values():
        try:
            found[citizen] = ledger.history(citizen)
        except UnknownCitizen:
            found[citizen] = None
    return found


@dataclass(frozen=True)
class Outcome:
    """One feed sent to the ledger: its records, the report, and the ledger before it."""

    sent: list[dict[str, Any]]
    report: AppendReport
    position_before: int
    histories_before: Histories

    def sent_on_line(self, line: int) -> dict[str, Any]:
        return self.sent[line - 1]


def send(ledger: Ledger, records: list[dict[str, Any]]) -> Outcome:
    position_before = ledger.max_position()
    before = histories(ledger)
    report = append(ledger, *records)
    return Outcome(records, report, position_before, before)


def entry_for(ledger: Ledger, ref: str) -> HistoryEntry:
    """The one entry, in anyone's history, under this reference."""
    found = [e for h in histories(ledger).values() for e in h or [] if e.record.reference == ref]
    assert len(found) == 1, f"{len(found)} records under {ref}"
    return found[0]


def assert_table(actual: list[HistoryEntry], datatable: list[list[str]]) -> None:
    expected = rows(datatable)
    columns = datatable[0]
    shown = [{c: row_of(e)[c] for c in columns} for e in actual]
    assert shown == expected


@pytest.fixture(autouse=True)
def _on_every_store(ledger: Ledger) -> Ledger:
    """Steps ask for the ledger only at run time, too late to parametrise the store.

    Asking here puts `store_url` in every scenario's fixtures, so each runs on both.
    """
    return ledger


# Given


@given("the authorities are registered")
def _registered(ledger: Ledger) -> None:
    register_authorities(ledger)


@given(step("{who:Authority} is registered to record {entitlement} from {since:Day}"))
def _registered_from(ledger: Ledger, who: str, entitlement: str, since: str) -> None:
    record_type, kind = RECORDS[entitlement]
    may_issue = record_type if kind is None else f"{record_type}:{kind}"
    ledger.register_authority(who, authority_name(who), [may_issue], date.fromisoformat(since))


@given(step("it is {now:Instant}"))
def _it_is(clock: FixedClock, now: datetime) -> None:
    clock.at = now


@given("a second ledger is open on the same store", target_fixture="second_ledger")
def _second_ledger(open_ledger: Callable[[], Ledger]) -> Ledger:
    return open_ledger()


@given("these records are in the ledger:")
def _in_the_ledger(ledger: Ledger, datatable: list[list[str]]) -> None:
    records = [record_from_row(row) for row in rows(datatable)]
    report = append(ledger, *records)
    assert report.rejected == [], report.rejected
    assert report.appended == len(records)


# When


@when("the ledger receives these records:", target_fixture="outcome")
def _receives(ledger: Ledger, datatable: list[list[str]]) -> Outcome:
    return send(ledger, [record_from_row(row) for row in rows(datatable)])


@when("the ledger receives the same records again", target_fixture="outcome")
def _receives_again(ledger: Ledger, outcome: Outcome) -> Outcome:
    return send(ledger, outcome.sent)


@when("the second ledger receives the same records", target_fixture="outcome")
def _second_receives(second_ledger: Ledger, outcome: Outcome) -> Outcome:
    return send(second_ledger, outcome.sent)


@when(
    step(
        "{by:Authority} record a fine of {fined:Amount} for {citizen:Person} on {on:Day} "
        "under reference {ref:Reference}"
    ),
    target_fixture="outcome",
)
def _fine(ledger: Ledger, by: str, fined: str, citizen: str, on: str, ref: str) -> Outcome:
    fine = record(r.INFRACTION, ref, citizen, by, on, kind="traffic_fine", amount=fined)
    return send(ledger, [fine])


@when(
    step(
        "{by:Authority} record that {citizen:Person} settled {settled:Reference} "
        "with {paid:Amount} on {on:Day} under reference {ref:Reference}"
    ),
    target_fixture="outcome",
)
def _settled(
    ledger: Ledger, by: str, citizen: str, settled: str, paid: str, on: str, ref: str
) -> Outcome:
    settlement = record(r.SETTLED, ref, citizen, by, on, target=target(by, settled), amount=paid)
    return send(ledger, [settlement])


@when("the ledger is restarted on the same store", target_fixture="ledger")
def _restarted(open_ledger: Callable[[], Ledger]) -> Ledger:
    return open_ledger()


@when(step("the history of {citizen:Person} is read"), target_fixture="history")
def _read(ledger: Ledger, citizen: str) -> list[HistoryEntry]:
    return ledger.history(citizen)


@when(
    step("the history of {citizen:Person} is read as known at {known_at:Instant}"),
    target_fixture="history",
)
def _read_as_known_at(ledger: Ledger, citizen: str, known_at: datetime) -> list[HistoryEntry]:
    return ledger.history(citizen, known_at=known_at)


@when(
    step("the history of {citizen:Person} is read as known when {ref:Reference} was recorded"),
    target_fixture="history",
)
def _read_when_recorded(ledger: Ledger, citizen: str, ref: str) -> list[HistoryEntry]:
    return ledger.history(citizen, known_at=entry_for(ledger, ref).recorded_at)


@when(
    step(
        "the history of {citizen:Person} is read as known a second before "
        "{ref:Reference} was recorded"
    ),
    target_fixture="history",
)
def _read_before_recorded(ledger: Ledger, citizen: str, ref: str) -> list[HistoryEntry]:
    known_at = entry_for(ledger, ref).recorded_at - timedelta(seconds=1)
    return ledger.history(citizen, known_at=known_at)


@when(step("the history of {citizen:Person} is asked for"), target_fixture="refusal")
def _asked_for(ledger: Ledger, citizen: str) -> UnknownCitizen:
    with pytest.raises(UnknownCitizen) as refused:
        ledger.history(citizen)
    return refused.value


# Then: what an append reported and wrote


@then("nothing is rejected")
def _none_rejected(outcome: Outcome) -> None:
    assert outcome.report.rejected == []


@then(step("{count:d} records are appended"))
@then(step("{count:d} record is appended"))
def _appended(ledger: Ledger, outcome: Outcome, count: int) -> None:
    assert outcome.report.appended == count, outcome.report
    assert len(outcome.report.positions) == count
    assert ledger.max_position() == outcome.position_before + count


@then("there are no duplicates")
def _no_duplicates(outcome: Outcome) -> None:
    assert outcome.report.duplicates == []


@then(step('line {line:d} is the only one rejected, for its {field}: "{message}"'))
def _only_rejected(outcome: Outcome, line: int, field: str, message: str) -> None:
    assert [(x.line, x.field, x.error) for x in outcome.report.rejected] == [(line, field, message)]


@then("nothing is written to the ledger")
def _nothing_written(ledger: Ledger, outcome: Outcome) -> None:
    assert outcome.report.appended == 0
    assert outcome.report.positions == []
    assert ledger.max_position() == outcome.position_before
    assert histories(ledger) == outcome.histories_before


@then(step("line {line:d} is a duplicate of {ref:Reference}, at the position it was written"))
def _duplicate_of_stored(ledger: Ledger, outcome: Outcome, line: int, ref: str) -> None:
    original = entry_for(ledger, ref)
    assert outcome.sent_on_line(line)["reference"] == ref
    duplicates = {d.line: d.position for d in outcome.report.duplicates}
    assert duplicates.get(line) == original.position, outcome.report.duplicates


@then(step("line {line:d} is a duplicate of line {earlier:d}, at the position that line was given"))
def _duplicate_of_line(outcome: Outcome, line: int, earlier: int) -> None:
    given_positions = dict(outcome.report.positions)
    duplicates = {d.line: d.position for d in outcome.report.duplicates}
    assert earlier in given_positions, outcome.report
    assert duplicates.get(line) == given_positions[earlier], outcome.report.duplicates


@then("every line is a duplicate of its original, at the position it was written")
def _all_duplicates(ledger: Ledger, outcome: Outcome) -> None:
    expected = [
        (line, entry_for(ledger, sent["reference"]).position)
        for line, sent in enumerate(outcome.sent, start=1)
    ]
    assert [(d.line, d.position) for d in outcome.report.duplicates] == expected


@then(
    step(
        "each appended line is given the position of its record in the history of {citizen:Person}"
    )
)
def _positions_match(ledger: Ledger, outcome: Outcome, citizen: str) -> None:
    in_history = {e.record.reference: e.position for e in ledger.history(citizen)}
    reported = [
        (line, in_history[outcome.sent_on_line(line)["reference"]])
        for line, _ in outcome.report.positions
    ]
    assert outcome.report.positions == reported


@then(step("the history of {citizen:Person} has gained {refs:References} and nothing else"))
def _gained(ledger: Ledger, outcome: Outcome, citizen: str, refs: list[str]) -> None:
    before = outcome.histories_before[citizen] or []
    after = ledger.history(citizen)
    assert after[: len(before)] == before
    assert [e.record.reference for e in after[len(before) :]] == refs


@then(step("the history of {citizen:Person} is unchanged"))
def _unchanged(ledger: Ledger, outcome: Outcome, citizen: str) -> None:
    assert histories(ledger)[citizen] == outcome.histories_before[citizen]


# Then: what a history shows


@then(step("the history of {citizen:Person} is:"))
def _history_is(ledger: Ledger, citizen: str, datatable: list[list[str]]) -> None:
    assert_table(ledger.history(citizen), datatable)


@then("it shows:")
def _shows(history: list[HistoryEntry], datatable: list[list[str]]) -> None:
    assert_table(history, datatable)


@then("it is empty")
def _empty(history: list[HistoryEntry]) -> None:
    assert history == []


@then(step("it ends with {ref:Reference}"))
def _ends_with(history: list[HistoryEntry], ref: str) -> None:
    assert history, "the history is empty"
    assert history[-1].record.reference == ref


@then("its positions rise in the order received")
def _positions_rise(history: list[HistoryEntry]) -> None:
    positions = [e.position for e in history]
    assert positions == sorted(set(positions))
    assert [e.version for e in history] == list(range(1, len(history) + 1))


@then("its recording times never go back")
def _times_rise(history: list[HistoryEntry]) -> None:
    times = [e.recorded_at for e in history]
    assert times == sorted(times)


@then(step("{ref:Reference} was recorded within a minute of {sent_at:Instant}"))
def _recorded_at(ledger: Ledger, ref: str, sent_at: datetime) -> None:
    recorded_at = entry_for(ledger, ref).recorded_at
    assert sent_at <= recorded_at < sent_at + timedelta(minutes=1), recorded_at


@then(step('it is refused for its {field}: "{message}"'))
def _refused(refusal: UnknownCitizen, field: str, message: str) -> None:
    assert (refusal.field, refusal.message) == (field, message)


# Scores and the enforcement list: read from the projections, never computed here

RECKONING = re.compile(r"(?P<terms>\d+(?: [+-] \d+)*)(?:, floored at (?P<floor>\d+))?")


def reckoned(text: str) -> int:
    """What a table's reckoning comes to: "1000 - 30 + 5", "1000 - 1050, floored at 0"."""
    found = RECKONING.fullmatch(text)
    assert found, f"cannot reckon {text!r}: write it as 1000 - 30 + 5, optionally floored at N"
    first, *rest = found["terms"].split(" ")
    total = int(first)
    for sign, points in zip(rest[::2], rest[1::2], strict=True):
        total += int(points) if sign == "+" else -int(points)
    return total if found["floor"] is None else max(total, int(found["floor"]))


def assert_scores(
    scores: Scores,
    datatable: list[list[str]],
    citizen: str | None = None,
    policy: str | None = None,
    known_at: datetime | None = None,
) -> None:
    """Each row's score and band, as of its date; a row may name its citizen or policy."""
    expected = rows(datatable)
    for row in expected:
        if row.get("reckoning"):
            assert reckoned(row["reckoning"]) == int(row["score"]), (
                f"the reckoning {row['reckoning']!r} does not come to {row['score']}"
            )
    shown = []
    for row in expected:
        who = person(row["citizen"]) if "citizen" in row else citizen
        under = row.get("policy", policy)
        assert who is not None, "name the citizen in the step or in a column"
        assert under is not None, "name the policy in the step or in a column"
        answer = scores.score(who, under, date.fromisoformat(day(row["as of"])), known_at)
        assert answer.policy == under
        shown.append({**row, "score": str(answer.score), "band": answer.band})
    assert shown == expected


def listing_row(listing: Listing) -> tuple[str, str, str, str]:
    return (name_of(listing.citizen), authority_name(listing.authority), listing.reference,
            listing.listed_on.isoformat())  # fmt: skip


@pytest.fixture
def view_store(store_url: str) -> Iterator[ViewStore]:
    """The read models, in the same database as the scenario's ledger."""
    store = ViewStore(store_url)
    yield store
    store.close()


def brought_up_to_date(ledger: Ledger, view_store: ViewStore) -> Scores:
    positions = catch_up(ledger, view_store, [policies.load(name) for name in POLICIES])
    assert positions == dict.fromkeys(POLICIES, ledger.max_position())
    return Scores(ledger, view_store)


@given("the scores have been brought up to date with the ledger", target_fixture="scores")
def _scores_were_caught_up(ledger: Ledger, view_store: ViewStore) -> Scores:
    return brought_up_to_date(ledger, view_store)


@given(
    step(
        "{citizen:Person} repaid {count:d} loans on time to {by:Authority}, "
        "one a week from {first:Day}"
    )
)
def _weekly_repayments(ledger: Ledger, citizen: str, count: int, by: str, first: str) -> None:
    start = date.fromisoformat(first)
    repayments = [
        record(
            r.PAYMENT,
            f"LR-{citizen[-6:]}-{n}",
            citizen,
            by,
            paid_on.isoformat(),
            kind="loan_repaid_on_time",
            amount="1500.00",
        )
        for n, paid_on in enumerate((start + timedelta(weeks=w) for w in range(count)), start=1)
    ]
    report = append(ledger, *repayments)
    assert report.rejected == [], report.rejected
    assert report.appended == count


@when("the scores are brought up to date with the ledger", target_fixture="scores")
def _scores_caught_up(ledger: Ledger, view_store: ViewStore) -> Scores:
    return brought_up_to_date(ledger, view_store)


@then(step("under {policy:Policy} the score of {citizen:Person} is:"))
def _score_is(scores: Scores, policy: str, citizen: str, datatable: list[list[str]]) -> None:
    assert_scores(scores, datatable, citizen=citizen, policy=policy)


@then(step("under {policy:Policy} the scores are:"))
def _scores_are(scores: Scores, policy: str, datatable: list[list[str]]) -> None:
    assert_scores(scores, datatable, policy=policy)


@then(step("the scores of {citizen:Person} are:"))
def _scores_of(scores: Scores, citizen: str, datatable: list[list[str]]) -> None:
    assert_scores(scores, datatable, citizen=citizen)


@then(
    step(
        "under {policy:Policy}, as the ledger knew it at {known_at:Instant}, "
        "the score of {citizen:Person} is:"
    )
)
def _score_known_at(
    scores: Scores, policy: str, known_at: datetime, citizen: str, datatable: list[list[str]]
) -> None:
    assert_scores(scores, datatable, citizen=citizen, policy=policy, known_at=known_at)


@then(step("on {on:Day} the enforcement list is:"))
def _enforcement_list(scores: Scores, on: str, datatable: list[list[str]]) -> None:
    listed = sorted(listing_row(x) for x in scores.enforcement(as_of=date.fromisoformat(on)))
    expected = sorted(
        (row["citizen"], row["authority"], row["reference"], row["listed on"])
        for row in rows(datatable)
    )
    assert listed == expected


@then(step("on {on:Day} nobody is on the enforcement list"))
def _enforcement_list_empty(scores: Scores, on: str) -> None:
    assert scores.enforcement(as_of=date.fromisoformat(on)) == []
