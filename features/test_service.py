"""The service feature: an authority appends through HTTP, a lender reads a score."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import given, scenarios, then, when

from features.conftest import step
from ledger.application import FixedClock, Ledger
from projections.store import ViewStore
from scripts.service import close_app, create_app
from scripts.tokens import TokenStore
from tests.builders import record

scenarios("service.feature")


@pytest.fixture
def client(ledger: Ledger, store_url: str, clock: FixedClock) -> Any:
    app = create_app(store_url, clock=clock)
    yield app.test_client()
    close_app(app)


@pytest.fixture
def tokens(store_url: str) -> Any:
    views = ViewStore(store_url)
    yield {"store": TokenStore(views)}
    views.close()


@given("the traffic police hold a service token")
def _service_token(tokens: dict[str, Any], clock: FixedClock) -> None:
    tokens["traffic-police"] = tokens["store"].create("service", "traffic-police", None,
                                                      clock.now())[0]  # fmt: skip


@given("a lender holds a reader token")
def _reader_token(tokens: dict[str, Any], clock: FixedClock) -> None:
    tokens["lender"] = tokens["store"].create("reader", None, None, clock.now())[0]


def _send(client: Any, token: str, body: dict[str, Any]) -> Any:
    return client.post("/v1/records", json=body, headers={"Authorization": f"Bearer {token}"})


@when(
    step("the traffic police send a fine of {fined:Amount} for {citizen:Person} on {on:Day} "
         "under reference {ref:Reference} through the service"),
    target_fixture="answers",
)  # fmt: skip
@given(
    step("the traffic police sent a fine of {fined:Amount} for {citizen:Person} on {on:Day} "
         "under reference {ref:Reference} through the service"),
    target_fixture="answers",
)  # fmt: skip
def _send_fine(client: Any, tokens: dict[str, Any], fined: str, citizen: str, on: str,
               ref: str, request: pytest.FixtureRequest) -> list[Any]:  # fmt: skip
    try:
        answers = request.getfixturevalue("answers")
    except pytest.FixtureLookupError:
        answers = []
    body = record("infraction.recorded", ref, citizen, "traffic-police", on,
                  kind="traffic_fine", amount=fined)  # fmt: skip
    return [*answers, _send(client, tokens["traffic-police"], body)]


@when(
    step("the traffic police send tax arrears of {owed:Amount} for {citizen:Person} on "
         "{on:Day} under reference {ref:Reference} through the service"),
    target_fixture="answers",
)  # fmt: skip
def _send_arrears(client: Any, tokens: dict[str, Any], owed: str, citizen: str, on: str,
                  ref: str) -> list[Any]:  # fmt: skip
    body = record("infraction.recorded", ref, citizen, "tax-bureau", on, kind="tax_arrears",
                  amount=owed)  # fmt: skip
    return [_send(client, tokens["traffic-police"], body)]


@when(step("the lender reads the score of {citizen:Person} as of {on:Day} through the service"),
      target_fixture="answers")  # fmt: skip
def _read_score(client: Any, tokens: dict[str, Any], citizen: str, on: str) -> list[Any]:
    headers = {"Authorization": f"Bearer {tokens['lender']}"}
    return [client.get(f"/v1/citizens/{citizen}/score?as_of={on}", headers=headers)]


@when(step("the lender asks the service for the history of {citizen:Person}"),
      target_fixture="answers")  # fmt: skip
def _read_history(client: Any, tokens: dict[str, Any], citizen: str) -> list[Any]:
    headers = {"Authorization": f"Bearer {tokens['lender']}"}
    return [client.get(f"/v1/citizens/{citizen}/history", headers=headers)]


@then(step("the service answers that {count:d} record was appended"))
def _appended(answers: list[Any], count: int) -> None:
    assert answers[-1].status_code == 201
    assert answers[-1].json["appended"] == count


@then("the service answers that the record was already in the ledger at the same position")
def _duplicate(answers: list[Any]) -> None:
    first, again = answers[-2], answers[-1]
    assert again.status_code == 200
    assert again.json["appended"] == 0
    assert again.json["duplicate_of"][0]["position"] == first.json["positions"][0]["position"]


@then(step("the service refuses with status {status:d}"))
def _refused(answers: list[Any], status: int) -> None:
    assert answers[-1].status_code == status
    assert answers[-1].mimetype == "application/problem+json"


@then(step("the history of {citizen:Person} ends with {ref:Reference}"))
def _ends_with(ledger: Ledger, citizen: str, ref: str) -> None:
    assert ledger.history(citizen)[-1].record.reference == ref


@then(step("the lender is told {score:d} in band {band} under {policy}"))
def _told(answers: list[Any], score: int, band: str, policy: str) -> None:
    answer = answers[-1]
    assert answer.status_code == 200, answer.json
    assert (answer.json["score"], answer.json["band"], answer.json["policy"]) == (
        score, band, policy
    )  # fmt: skip
