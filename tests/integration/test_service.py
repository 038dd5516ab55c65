"""The HTTP service through Flask's test client, on both stores: every endpoint for
every role, the errors, and the OpenAPI document."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from ledger.application import FixedClock, Ledger
from ledger.domain.disputes import CITIZEN_CHANNEL
from ledger.transparency.audit import checkpoint
from ledger.transparency.checkpoint import init_key, load_signer
from projections import policy
from projections.runner import catch_up
from projections.store import ViewStore
from scripts.service import close_app, create_app
from scripts.tokens import TokenStore
from tests.builders import (
    LI_WEI,
    WANG_FANG,
    append,
    enrolled,
    fine,
    record,
    register_authorities,
)


@pytest.fixture
def service(ledger: Ledger, store_url: str, clock: FixedClock, tmp_path: Any) -> Iterator[Any]:
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG), enrolled(LI_WEI),
           record("infraction.recorded", "J-1", kind="judgment_default", amount="900.00",
                  occurred_on="2024-05-01"), fine("TP-1"))  # fmt: skip
    init_key(tmp_path / "ledger.key")
    checkpoint(ledger, *load_signer(tmp_path / "ledger.key"))
    views = ViewStore(store_url)
    catch_up(ledger, views, [policy.load(n) for n in policy.available()])
    ledger.register_party("bank-a", "Bank A", ["mortgage"])
    ledger.register_authority(CITIZEN_CHANNEL, "Citizens", ["record.disputed"])
    tokens = TokenStore(views)
    now = clock.now()
    issued = {
        "service": tokens.create("service", "traffic-police", None, now)[0],
        "reader": tokens.create("reader", None, None, now)[0],
        "auditor": tokens.create("auditor", None, None, now)[0],
        "admin": tokens.create("admin", None, None, now)[0],
        "party": tokens.create("party", "bank-a", None, now)[0],
        "citizen": tokens.create("citizen", WANG_FANG, None, now)[0],
    }
    app = create_app(store_url, clock=clock, max_body=200_000)
    yield app.test_client(), issued, tokens
    close_app(app)
    views.close()


FINE = {
    "type": "infraction.recorded", "citizen": WANG_FANG, "authority": "traffic-police",
    "reference": "HTTP-1", "occurred_on": "2025-02-01", "kind": "traffic_fine",
    "amount": "10.00",
}  # fmt: skip

ROLES = ("none", "service", "reader", "auditor", "admin", "party", "citizen")
DECISION = {"citizen": WANG_FANG, "purpose": "mortgage"}
DISPUTE = {"target": {"authority": "peoples-court", "reference": "J-1"},
           "statement": "I paid this judgment in full"}  # fmt: skip


def roles(*statuses: int) -> dict[str, int]:
    return dict(zip(ROLES, statuses, strict=True))


# (method, path, body) and the status each role (in ROLES' order) gets.
TABLE: list[tuple[str, str, Any, dict[str, int]]] = [
    ("POST", "/v1/records", FINE, roles(401, 201, 403, 403, 403, 403, 403)),
    ("GET", f"/v1/citizens/{WANG_FANG}/score", None, roles(401, 403, 200, 200, 200, 403, 403)),
    ("GET", f"/v1/citizens/{WANG_FANG}/score?purpose=mortgage", None,
     roles(401, 403, 200, 200, 200, 200, 403)),
    ("GET", f"/v1/citizens/{WANG_FANG}/explanation", None,
     roles(401, 403, 403, 200, 200, 403, 403)),
    ("GET", f"/v1/citizens/{WANG_FANG}/history", None, roles(401, 403, 403, 200, 200, 403, 403)),
    ("GET", f"/v1/citizens/{WANG_FANG}/bundle", None, roles(401, 403, 403, 200, 200, 403, 403)),
    ("GET", "/v1/lists/enforcement?as_of=2025-06-01", None,
     roles(401, 403, 200, 200, 200, 403, 403)),
    ("GET", "/v1/checkpoints/latest", None, roles(401, 403, 403, 200, 200, 403, 403)),
    ("GET", "/v1/proofs/inclusion/3", None, roles(401, 403, 403, 200, 200, 403, 403)),
    ("GET", "/v1/proofs/consistency?from=2", None, roles(401, 403, 403, 200, 200, 403, 403)),
    ("POST", "/v1/decisions", DECISION, roles(401, 403, 403, 403, 403, 201, 403)),
    ("GET", "/v1/me/report", None, roles(401, 403, 403, 403, 403, 403, 200)),
    ("POST", "/v1/me/disputes", DISPUTE, roles(401, 403, 403, 403, 403, 403, 201)),
    ("GET", "/healthz", None, roles(200, 200, 200, 200, 200, 200, 200)),
    ("GET", "/readyz", None, roles(200, 200, 200, 200, 200, 200, 200)),
]  # fmt: skip


def _call(client: FlaskClient, method: str, path: str, body: Any, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "POST":
        return client.post(path, json=body, headers=headers)
    return client.get(path, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "expected"), TABLE,
                         ids=[f"{m} {p}" for m, p, _, _ in TABLE])  # fmt: skip
def test_every_role_gets_exactly_what_the_table_says(
    service: Any, method: str, path: str, body: Any, expected: dict[str, int]
) -> None:
    client, issued, _ = service
    seen = {}
    for role in ROLES:
        response = _call(client, method, path, body, issued.get(role))
        seen[role] = response.status_code
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json"
            assert response.json["status"] == response.status_code
    assert seen == expected


def test_a_service_appends_only_as_its_own_authority(service: Any) -> None:
    client, issued, _ = service
    other = dict(FINE, authority="tax-bureau", kind="tax_arrears")
    response = _call(client, "POST", "/v1/records", other, issued["service"])
    assert response.status_code == 403
    assert "only for traffic-police" in response.json["detail"]


def test_append_answers_duplicates_conflicts_and_bad_input(service: Any) -> None:
    client, issued, _ = service
    token = issued["service"]
    first = _call(client, "POST", "/v1/records", FINE, token)
    assert first.status_code == 201
    position = first.json["positions"][0]["position"]
    again = _call(client, "POST", "/v1/records", FINE, token)
    assert again.status_code == 200
    assert again.json["duplicate_of"] == [{"line": 1, "position": position}]
    conflict = _call(client, "POST", "/v1/records", dict(FINE, amount="11.00"), token)
    assert conflict.status_code == 409
    bad = _call(client, "POST", "/v1/records", dict(FINE, reference="H-2", amount="-1"), token)
    assert bad.status_code == 422
    assert bad.json["errors"] == [{"line": 1, "field": "amount", "error": "must not be negative"}]
    assert _call(client, "GET", f"/v1/citizens/{WANG_FANG}/history", None,
                 issued["auditor"]).json[-1]["reference"] == "HTTP-1"  # fmt: skip


def test_batches_and_ndjson_report_like_ledger_append(service: Any) -> None:
    client, issued, _ = service
    headers = {"Authorization": f"Bearer {issued['service']}"}
    batch = [dict(FINE, reference="B-1"), dict(FINE, reference="B-2", amount="1.234")]
    response = client.post("/v1/records", json=batch, headers=headers)
    assert response.status_code == 201
    assert response.json["appended"] == 1
    assert response.json["rejected"] == [
        {"line": 2, "field": "amount", "error": "must have at most 2 decimal places"}
    ]
    lines = "\n".join(json.dumps(dict(FINE, reference=f"N-{n}")) for n in range(50))
    response = client.post("/v1/records", data=lines, headers=headers,
                           content_type="application/x-ndjson")  # fmt: skip
    assert response.status_code == 201
    assert response.json["appended"] == 50


def test_malformed_and_oversize_bodies_write_nothing(service: Any, ledger: Ledger) -> None:
    client, issued, _ = service
    headers = {"Authorization": f"Bearer {issued['service']}"}
    before = ledger.max_position()
    response = client.post("/v1/records", data="{not json", headers=headers,
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 400
    big = [dict(FINE, reference=f"X-{n}") for n in range(2000)]
    response = client.post("/v1/records", json=big, headers=headers)
    assert response.status_code == 413
    assert ledger.max_position() == before


def test_unknown_citizens_are_404_and_bad_queries_422(service: Any) -> None:
    client, issued, _ = service
    token = issued["reader"]
    assert _call(client, "GET", "/v1/citizens/110105199003071263/score", None,
                 token).status_code == 404  # fmt: skip
    response = _call(client, "GET", f"/v1/citizens/{WANG_FANG}/score?as_of=soon", None, token)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "as_of"


@pytest.mark.parametrize("name", ["/etc/hostname", "../policies/national-v1", "national-v1.toml",
                                  "no-such-policy"])  # fmt: skip
def test_a_policy_is_named_never_pathed_and_an_unknown_one_is_404(
    service: Any, name: str, tmp_path: Any
) -> None:
    client, issued, _ = service
    elsewhere = tmp_path / "evil.toml"
    elsewhere.write_text((policy.POLICY_FOLDER / "national-v1.toml").read_text())
    for asked in (name, str(elsewhere)):
        response = _call(client, "GET", f"/v1/citizens/{WANG_FANG}/explanation?policy={asked}",
                         None, issued["auditor"])  # fmt: skip
        assert response.status_code == 404
        assert "available: employment-v1, finance-v1, national-v1" in response.json["detail"]


def test_revoked_and_expired_tokens_are_refused(service: Any, clock: FixedClock) -> None:
    from datetime import date  # noqa: PLC0415

    client, issued, tokens = service
    reader = issued["reader"]
    tokens.revoke(reader.split("_")[1], clock.now())
    assert _call(client, "GET", f"/v1/citizens/{WANG_FANG}/score", None, reader).status_code == 401
    expired, _ = tokens.create("reader", None, date(2026, 2, 28), clock.now())
    response = _call(client, "GET", f"/v1/citizens/{WANG_FANG}/score", None, expired)
    assert response.status_code == 401
    assert "expired on 2026-02-28" in response.json["detail"]
    forged = reader[:-4] + "AAAA"
    assert _call(client, "GET", "/v1/lists/enforcement", None, forged).status_code == 401


def test_the_openapi_document_describes_every_route(service: Any) -> None:
    client, _, _ = service
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/v1/records", "/v1/citizens/{citizen}/score", "/v1/citizens/{citizen}/explanation",
        "/v1/citizens/{citizen}/history", "/v1/citizens/{citizen}/bundle",
        "/v1/lists/enforcement", "/v1/checkpoints/latest",
        "/v1/proofs/inclusion/{position}", "/v1/proofs/consistency", "/healthz", "/readyz",
        "/v1/decisions", "/v1/me/report", "/v1/me/disputes",
    }  # fmt: skip
    validate(document)  # raises on any departure from the OpenAPI 3.0 specification


def test_the_docs_page_needs_nothing_from_outside_the_service(service: Any) -> None:
    client, _, _ = service
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http" not in html  # no address elsewhere
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    for source in sources:
        assert source.startswith("/docs/assets/"), source  # no CDN, no external font
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.get_data()) > 10_000
    assert client.get("/docs/assets/../../app.py").status_code == 404


def test_ndjson_lines_for_another_authority_are_rejected_alone(service: Any) -> None:
    client, issued, _ = service
    other = dict(FINE, reference="S-2", authority="tax-bureau", kind="tax_arrears")
    lines = [dict(FINE, reference="S-1"), other, dict(FINE, reference="S-3")]
    response = client.post("/v1/records", data="\n".join(json.dumps(x) for x in lines),
                           headers={"Authorization": f"Bearer {issued['service']}"},
                           content_type="application/x-ndjson")  # fmt: skip
    assert response.status_code == 201
    assert response.json["appended"] == 2
    assert response.json["rejected"] == [
        {"line": 2, "field": "authority", "error": "this token appends only for traffic-police"}
    ]


def test_history_comes_a_page_at_a_time(service: Any) -> None:
    client, issued, _ = service
    headers = {"Authorization": f"Bearer {issued['auditor']}"}
    whole = client.get(f"/v1/citizens/{WANG_FANG}/history", headers=headers)
    assert [e["reference"] for e in whole.json] == [f"E-{WANG_FANG}", "J-1", "TP-1"]
    second = client.get(f"/v1/citizens/{WANG_FANG}/history?page=2&page_size=2", headers=headers)
    assert [e["reference"] for e in second.json] == ["TP-1"]
    assert json.loads(second.headers["X-Pagination"])["total"] == 3
