"""The scenarios of decisions.feature, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from features.conftest import step
from ledger.application import FixedClock, Ledger
from ledger.domain.disputes import CITIZEN_CHANNEL
from ledger.domain.identity import citizen_id
from projections import decisions
from projections.decisions.requests import Answer, request_decision
from projections.store import ViewStore
from scripts.service import close_app, create_app
from scripts.tokens import TokenStore

scenarios("decisions.feature")

PARTIES = {"the bank": ("bank-a", "Bank A"), "the medical board": ("medical-board",
                                                                   "Medical Board")}  # fmt: skip


@pytest.fixture
def http(ledger: Ledger, store_url: str, clock: FixedClock) -> Iterator[dict[str, Any]]:
    """The service, and the tokens made for it as the scenario asks."""
    if CITIZEN_CHANNEL not in {a.authority_id for a in ledger.authorities()}:
        ledger.register_authority(CITIZEN_CHANNEL, "Citizens", ["record.disputed"])
    app = create_app(store_url, clock=clock)
    views = ViewStore(store_url)
    yield {"client": app.test_client(), "tokens": TokenStore(views), "clock": clock}
    close_app(app)
    views.close()


def _token(http: dict[str, Any], role: str, bound_to: str) -> dict[str, str]:
    secret = http["tokens"].create(role, bound_to, None, http["clock"].now())[0]
    return {"Authorization": f"Bearer {secret}"}


def _party(name: str) -> str:
    return PARTIES[name][0]


@given(parsers.parse("{name} is registered as a relying party for {purpose}"))
def _registered(ledger: Ledger, name: str, purpose: str) -> None:
    party_id, title = PARTIES[name]
    ledger.register_party(party_id, title, [purpose])


@when(step("the bank asks for a mortgage decision about {citizen:Person}"),
      target_fixture="decision")  # fmt: skip
def _asks(ledger: Ledger, citizen: str) -> Answer:
    return request_decision(ledger, "bank-a", "mortgage", citizen)


@given(step("the bank asked for a mortgage decision about {citizen:Person}"),
       target_fixture="first")  # fmt: skip
def _asked(ledger: Ledger, citizen: str) -> Answer:
    return request_decision(ledger, "bank-a", "mortgage", citizen)


@then(parsers.parse("the decision is {outcome} with a score of {score:d} under {policy}"))
def _outcome(decision: Answer, outcome: str, score: int, policy: str) -> None:
    made = decision.decision
    assert (made.outcome, made.explanation.score.score, made.rule.policy.name) == (
        outcome, score, policy)  # fmt: skip


@then("the decision carries no notice")
def _no_notice(decision: Answer) -> None:
    assert decision.decision.notice() is None


@then(step("the first reason is {who:Authority}'s {ref:Reference} at {points:d} points"))
def _first_reason(decision: Answer, who: str, ref: str, points: int) -> None:
    first = decision.decision.reasons[0].contribution
    assert (first.authority, first.reference, first.points) == (who, ref, points)


@then(step("the notice names {who:Authority} as the source and the right to dispute"))
def _notice(decision: Answer, who: str) -> None:
    notice = decision.decision.notice()
    assert notice is not None
    assert notice.sources == [who]
    assert any("dispute" in right for right in notice.rights)


@then("the traffic fine is not among the reasons")
def _no_fine(decision: Answer) -> None:
    assert all(i.contribution.kind != "traffic_fine" for i in decision.decision.reasons)


@then(step("the file of {citizen:Person} shows {count:d} decision by the bank"))
def _shows(ledger: Ledger, citizen: str, count: int) -> None:
    uses = ledger.reader.file(citizen_id(citizen)).uses
    assert [(u.use, u.fields["party"]) for u in uses] == [("decision", "bank-a")] * count


@when(parsers.parse("a rule for {purpose} under {policy} is loaded"), target_fixture="refusal")
def _load_rule(purpose: str, policy: str) -> decisions.DecisionRuleError:
    data = {"name": "x-v1", "version": 1, "title": "X", "purpose": purpose, "policy": policy,
            "approve_from": 700, "refer_from": 600}  # fmt: skip
    with pytest.raises(decisions.DecisionRuleError) as refused:
        decisions.parse(data, "x-v1.toml")
    return refused.value


@then(parsers.parse("it is refused naming {kind}"))
def _refused_naming(refusal: decisions.DecisionRuleError, kind: str) -> None:
    assert f"counts {kind}, which the purpose" in refusal.message


@when(
    step("the medical board asks over HTTP for a mortgage decision about {citizen:Person}"),
    target_fixture="response",
)
def _board_asks(http: dict[str, Any], ledger: Ledger, citizen: str) -> Any:
    http["head"] = ledger.max_position()
    return http["client"].post("/v1/decisions", json={"citizen": citizen, "purpose": "mortgage"},
                               headers=_token(http, "party", "medical-board"))  # fmt: skip


@then(parsers.parse("the answer is {status:d}"))
def _status(response: Any, status: int) -> None:
    assert response.status_code == status, response.json


@then(step("nothing was recorded on the file of {citizen:Person}"))
def _nothing(http: dict[str, Any], ledger: Ledger, citizen: str) -> None:
    assert ledger.max_position() == http["head"]
    assert ledger.reader.file(citizen_id(citizen)).uses == []


@given(step("the bank read the mortgage score of {citizen:Person} over HTTP"))
def _bank_reads(http: dict[str, Any], citizen: str) -> None:
    read = http["client"].get(f"/v1/citizens/{citizen}/score?purpose=mortgage",
                              headers=_token(http, "party", "bank-a"))  # fmt: skip
    assert read.status_code == 200, read.json


@given(step("the bank asked over HTTP for a mortgage decision about {citizen:Person}"))
def _bank_decides(http: dict[str, Any], citizen: str) -> None:
    made = http["client"].post("/v1/decisions", json={"citizen": citizen, "purpose": "mortgage"},
                               headers=_token(http, "party", "bank-a"))  # fmt: skip
    assert made.status_code == 201, made.json


@when(step("{citizen:Person} reads her own file over HTTP"), target_fixture="own_file")
def _reads_own(http: dict[str, Any], citizen: str) -> dict[str, Any]:
    read = http["client"].get("/v1/me/report", headers=_token(http, "citizen", citizen))
    assert read.status_code == 200, read.json
    body: dict[str, Any] = read.json
    return body


@then("it shows an inquiry and a decision by the bank, for mortgage")
def _who_looked(own_file: dict[str, Any]) -> None:
    assert [(u["use"], u["party_name"], u["purpose"])
            for u in own_file["inquiries_and_decisions"]] == [
        ("inquiry", "Bank A", "mortgage"), ("decision", "Bank A", "mortgage")]  # fmt: skip


@then(step("it lists {ref:Reference} against her, with how to dispute it"))
def _against(own_file: dict[str, Any], ref: str) -> None:
    listed = {a["reference"]: a for a in own_file["against"]}
    assert "dispute" in listed[ref]["how_to_dispute"]


@when(step("{citizen:Person} disputes {who:Authority}'s {ref:Reference} over HTTP"),
      target_fixture="citizen_headers")  # fmt: skip
def _disputes(http: dict[str, Any], citizen: str, who: str, ref: str) -> dict[str, str]:
    headers = _token(http, "citizen", citizen)
    filed = http["client"].post(
        "/v1/me/disputes",
        headers=headers,
        json={"target": {"authority": who, "reference": ref}, "statement": "I paid it in full"},
    )
    assert filed.status_code == 201, filed.json
    return headers


@then(step("under {policy:Policy} her own file shows a score of {score:d} on {on:Day}"))
def _own_score(http: dict[str, Any], citizen_headers: dict[str, str], policy: str, score: int,
               on: str) -> None:  # fmt: skip
    shown = http["client"].get(f"/v1/me/report?as_of={on}", headers=citizen_headers).json
    assert next(s["score"] for s in shown["scores"] if s["policy"] == policy) == score


@when("the first decision is replayed as known at its time", target_fixture="replay")
def _replayed(ledger: Ledger, first: Answer) -> Answer:
    return request_decision(ledger, "bank-a", "mortgage", first.resident_id,
                            as_of=first.decision.as_of, known_at=first.recorded_at)  # fmt: skip


@then("the replay is the first decision, outcome and reasons alike")
def _same(first: Answer, replay: Answer) -> None:
    assert replay.position is None
    assert replay.decision.to_json() == first.decision.to_json()
