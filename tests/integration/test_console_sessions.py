"""Console sessions, through Flask's test client on both stores: a session stands for
its token, so revoking the token ends it; only console roles sign in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger.application import FixedClock, Ledger
from projections.store import ViewStore
from scripts.service import close_app, create_app
from scripts.tokens import TokenStore
from tests.builders import WANG_FANG, append, enrolled, register_authorities


@pytest.fixture
def console(ledger: Ledger, store_url: str, clock: FixedClock) -> Iterator[dict[str, Any]]:
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG))
    views = ViewStore(store_url)
    tokens = TokenStore(views)
    app = create_app(store_url, clock=clock)
    yield {"client": app.test_client(), "tokens": tokens, "clock": clock}
    close_app(app)
    views.close()


def test_revoking_the_token_ends_its_console_session(console: dict[str, Any]) -> None:
    client, tokens, clock = console["client"], console["tokens"], console["clock"]
    secret, made = tokens.create("auditor", None, None, clock.now())
    signed = client.post("/console/sign-in", data={"token": secret})
    assert signed.status_code == 302
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    page = client.get(f"/console/citizens/{WANG_FANG}")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    tokens.revoke(made.token_id, clock.now())
    after = client.get(f"/console/citizens/{WANG_FANG}")
    assert after.status_code == 302
    assert client.get("/console/").get_data(as_text=True).count("Bearer token") == 1


def test_only_auditors_admins_and_citizens_sign_in(console: dict[str, Any]) -> None:
    client, tokens, clock = console["client"], console["tokens"], console["clock"]
    reader, _ = tokens.create("reader", None, None, clock.now())
    refused = client.post("/console/sign-in", data={"token": reader})
    assert refused.status_code == 403
    assert "a reader token does not open the console" in refused.get_data(as_text=True)
    assert "Set-Cookie" not in refused.headers
    wrong = client.post("/console/sign-in", data={"token": "lt_nope_nope"})
    assert wrong.status_code == 401
