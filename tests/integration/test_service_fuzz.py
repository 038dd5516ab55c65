"""Schemathesis against the service's own OpenAPI document: no 5xx, responses match
their schemas. Bounded examples; SQLite only, the store does not change the HTTP layer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.application import FixedClock, Ledger
from ledger.transparency.audit import checkpoint
from ledger.transparency.checkpoint import init_key, load_signer
from projections import policy
from projections.runner import catch_up
from projections.store import ViewStore
from scripts.service import close_app, create_app
from scripts.tokens import TokenStore
from tests.builders import WANG_FANG, append, enrolled, fine, register_authorities

TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder}/ledger.db"
    clock = FixedClock(__import__("datetime").datetime(2026, 3, 1, tzinfo=__import__(
        "datetime").UTC))  # fmt: skip
    ledger = Ledger(url, clock=clock)
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG), fine("TP-1"))
    init_key(folder / "ledger.key")
    checkpoint(ledger, *load_signer(folder / "ledger.key"))
    views = ViewStore(url)
    catch_up(ledger, views, [policy.load(n) for n in policy.available()])
    TOKEN["admin"] = TokenStore(views).create("admin", None, None, clock.now())[0]
    app = create_app(url, clock=clock)
    yield schemathesis.openapi.from_wsgi("/openapi.json", app)
    close_app(app)
    views.close()
    ledger.close()


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


def test_no_request_gets_a_server_error_and_responses_match(api_schema: Any) -> None:
    # Each operation in turn, with its own bounded search: schemathesis's pytest
    # plugin does not load under this pytest.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 11
    headers = {"Authorization": f"Bearer {TOKEN['admin']}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        run()
