"""Relying parties and citizens over HTTP, on both stores: a party reads and decides
only for its purposes and every use is recorded on the citizen's file; a citizen reads
their own file and disputes their own records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.application import FixedClock, Ledger
from ledger.domain.disputes import CITIZEN_CHANNEL
from ledger.domain.identity import citizen_id
from projections import policy
from projections.runner import catch_up
from projections.store import ViewStore
from scripts.service import close_app, create_app
from scripts.tokens import TokenStore
from tests.builders import LI_WEI, WANG_FANG, append, enrolled, fine, record, register_authorities

CID = citizen_id(WANG_FANG)


@pytest.fixture
def served(ledger: Ledger, store_url: str, clock: FixedClock) -> Iterator[Any]:
    register_authorities(ledger)
    judgment = record("infraction.recorded", "J-1", kind="judgment_default", amount="900.00",
                      occurred_on="2024-05-01")  # fmt: skip
    append(ledger, enrolled(WANG_FANG), enrolled(LI_WEI), judgment, fine("TP-1"),
           fine("TP-9", citizen=LI_WEI))  # fmt: skip
    ledger.register_party("bank-a", "Bank A", ["mortgage"])
    ledger.register_authority(CITIZEN_CHANNEL, "Citizens", ["record.disputed"])
    views = ViewStore(store_url)
    catch_up(ledger, views, [policy.load(n) for n in policy.available()])
    tokens = TokenStore(views)
    now = clock.now()
    issued = {
        "party": tokens.create("party", "bank-a", None, now)[0],
        "citizen": tokens.create("citizen", WANG_FANG, None, now)[0],
    }
    app = create_app(store_url, clock=clock)
    yield app.test_client(), issued, ledger
    close_app(app)
    views.close()


def get(client: FlaskClient, path: str, token: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def post(client: FlaskClient, path: str, body: Any, token: str) -> Any:
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def test_a_partys_score_read_names_a_purpose_it_has_and_is_recorded(served: Any) -> None:
    client, issued, ledger = served
    token, score = issued["party"], f"/v1/citizens/{WANG_FANG}/score"
    head = ledger.max_position()
    for path, why in ((score, "names the purpose of its read"),
                      (f"{score}?purpose=licensed_employment", "not registered for the purpose"),
                      (f"{score}?purpose=mortgage&policy=national-v1",
                       "national-v1 counts criminal_conviction")):  # fmt: skip
        refused = get(client, path, token)
        assert refused.status_code == 403, refused.json
        assert why in refused.json["detail"]
    assert ledger.max_position() == head  # refusals record nothing
    read = get(client, f"{score}?purpose=mortgage&as_of=2026-03-01", token)
    assert read.status_code == 200, read.json
    assert (read.json["policy"], read.json["score"]) == ("finance-v1", 700 - 150)
    (inquiry,) = ledger.reader.file(CID).uses
    assert inquiry.use == "inquiry"
    assert inquiry.position == read.json["inquiry_position"] == head + 1
    assert inquiry.fields == {"party": "bank-a", "purpose": "mortgage", "policy": "finance-v1",
                              "score": 550, "as_of": "2026-03-01",
                              "position": read.json["position"]}  # fmt: skip


def test_a_party_gets_a_decision_with_its_notice_and_it_is_recorded(served: Any) -> None:
    client, issued, ledger = served
    token = issued["party"]
    made = post(client, "/v1/decisions", {"citizen": WANG_FANG, "purpose": "mortgage"}, token)
    assert made.status_code == 201, made.json
    assert (made.json["outcome"], made.json["rule"], made.json["policy"]) == (
        "deny", "mortgage-v1", "finance-v1")  # fmt: skip
    assert made.json["reasons"][0]["reference"] == "J-1"
    assert made.json["notice"]["sources"] == ["peoples-court"]
    assert made.json["position"] == ledger.max_position()
    head = ledger.max_position()
    for body, status in (
        ({"citizen": WANG_FANG, "purpose": "licensed_employment"}, 403),
        ({"citizen": WANG_FANG}, 422),
        ([1], 400),
        ({"citizen": "110105198001011234", "purpose": "mortgage"}, 422),
    ):
        refused = post(client, "/v1/decisions", body, token)
        assert refused.status_code == status, (body, refused.json)
    assert ledger.max_position() == head
    assert [u.use for u in ledger.reader.file(CID).uses] == ["decision"]


def test_a_citizen_reads_their_own_file_and_sees_who_looked(served: Any) -> None:
    client, issued, _ = served
    get(client, f"/v1/citizens/{WANG_FANG}/score?purpose=mortgage", issued["party"])
    post(client, "/v1/decisions", {"citizen": WANG_FANG, "purpose": "mortgage"},
         issued["party"])  # fmt: skip
    report = get(client, "/v1/me/report", issued["citizen"])
    assert report.status_code == 200, report.json
    body = report.json
    assert body["citizen"] == WANG_FANG
    assert [r["reference"] for r in body["records"]] == [f"E-{WANG_FANG}", "J-1", "TP-1"]
    assert {r["source"] for r in body["records"]} == {
        "Civil Registry",
        "People's Court",
        "Traffic Police",
    }
    assert {s["policy"] for s in body["scores"]} == set(policy.available())
    assert [(u["use"], u["party"], u["party_name"], u["purpose"])
            for u in body["inquiries_and_decisions"]] == [
        ("inquiry", "bank-a", "Bank A", "mortgage"), ("decision", "bank-a", "Bank A", "mortgage"),
    ]  # fmt: skip
    against = {a["reference"]: a for a in body["against"]}
    assert set(against) == {"J-1", "TP-1"}
    assert "POST /v1/me/disputes" in against["J-1"]["how_to_dispute"]
    # Never anyone else's file, nor the auditors' view of their own.
    assert get(client, f"/v1/citizens/{LI_WEI}/score", issued["citizen"]).status_code == 403
    assert get(client, f"/v1/citizens/{WANG_FANG}/history", issued["citizen"]).status_code == 403


def test_a_citizens_dispute_stops_a_record_counting_on_day_31_unresolved(served: Any) -> None:
    client, issued, ledger = served
    token = issued["citizen"]
    dispute = {"target": {"authority": "peoples-court", "reference": "J-1"},
               "statement": "I paid this judgment in full"}  # fmt: skip
    filed = post(client, "/v1/me/disputes", dispute, token)
    assert filed.status_code == 201, filed.json
    again = post(client, "/v1/me/disputes", dispute, token)
    assert again.status_code == 200  # the same dispute on the same day is one record
    stored = ledger.history(WANG_FANG)[-1].record
    assert (stored.type, stored.authority, str(stored.target)) == (
        "record.disputed", CITIZEN_CHANNEL, "peoples-court/J-1")  # fmt: skip
    assert stored.occurred_on == ledger.today()

    def finance(day: str) -> int:
        shown = get(client, f"/v1/me/report?as_of={day}", token).json["scores"]
        return next(s["score"] for s in shown if s["policy"] == "finance-v1")

    # Filed on 2026-03-01 (day 1); from day 31 the judgment no longer counts.
    assert finance("2026-03-30") == 700 - 150
    assert finance("2026-03-31") == 700
    other = {"target": {"authority": "traffic-police", "reference": "TP-9"}, "statement": "x"}
    refused = post(client, "/v1/me/disputes", other, token)
    assert refused.status_code == 422
    assert refused.json["errors"][0]["field"] == "target"


def test_a_decision_sent_again_with_its_idempotency_key_is_answered_not_recorded_again(
    served: Any,
) -> None:
    client, issued, ledger = served
    headers = {"Authorization": f"Bearer {issued['party']}", "Idempotency-Key": "loan-77"}
    body = {"citizen": WANG_FANG, "purpose": "mortgage"}
    first = client.post("/v1/decisions", json=body, headers=headers)
    assert first.status_code == 201, first.json
    # The citizen's file changes before the retry; the retry still gets the first answer.
    append(ledger, record("infraction.recorded", "J-2", kind="court_judgment", amount="10.00",
                          occurred_on="2025-01-01"))  # fmt: skip
    again = client.post("/v1/decisions", json=body, headers=headers)
    assert again.status_code == 200, again.json
    assert again.json == first.json
    assert [u.fields["request"] for u in ledger.reader.file(CID).uses] == ["loan-77"]
    other = client.post("/v1/decisions", json=dict(body, rule="mortgage-v1"),
                        headers={**headers, "Idempotency-Key": "loan-78"})  # fmt: skip
    assert other.status_code == 201
    assert other.json["position"] != first.json["position"]
    misused = client.post(
        "/v1/decisions",
        json={"citizen": WANG_FANG, "purpose": "mortgage", "rule": "consumer-loan-v1"},
        headers=headers,
    )
    assert misused.status_code == 422  # a consumer-loan rule is not for mortgages
    bad = client.post("/v1/decisions", json=body, headers={**headers, "Idempotency-Key": "a b"})
    assert bad.status_code == 422
    assert "Idempotency-Key" in bad.json["detail"]
    assert len(ledger.reader.file(CID).uses) == 2
