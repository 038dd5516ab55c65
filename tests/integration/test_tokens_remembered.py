"""The service remembers tokens it accepted, and forgets them when one is revoked
anywhere (NOTIFY) or when it cannot hear of revocations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from projections.store import ViewStore
from scripts.tokens import TokenError, TokenStore

TODAY = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def stores(postgres_schema_url: str) -> Iterator[tuple[TokenStore, TokenStore]]:
    """A remembering store, as the service has, and a plain one, as `ledger token` has."""
    service_views, admin_views = ViewStore(postgres_schema_url), ViewStore(postgres_schema_url)
    service = TokenStore(service_views, remember=True)
    admin = TokenStore(admin_views)
    yield service, admin
    service.close()
    service_views.close()
    admin_views.close()


def _until(ask: Callable[[], bool], seconds: float = 5) -> float:
    started = time.monotonic()
    while not ask():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.01)
    return time.monotonic() - started


def _refused(store: TokenStore, secret: str) -> bool:
    try:
        store.check(secret, TODAY.date())
    except TokenError:
        return True
    return False


@pytest.mark.postgres
def test_a_remembered_token_is_refused_moments_after_its_revocation(
    stores: tuple[TokenStore, TokenStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, admin = stores
    assert service._listener is not None
    _until(lambda: service._listener is not None and service._listener.live)
    secret, made = admin.create("reader", None, None, TODAY)
    looked_up = []
    look_up = service._look_up
    monkeypatch.setattr(service, "_look_up", lambda s: looked_up.append(s) or look_up(s))
    for _ in range(3):
        assert service.check(secret, TODAY.date()).token_id == made.token_id
    assert len(looked_up) == 1

    admin.revoke(made.token_id, TODAY)
    assert _until(lambda: _refused(service, secret)) < 1.0


@pytest.mark.postgres
def test_nothing_is_remembered_while_revocations_cannot_be_heard(
    stores: tuple[TokenStore, TokenStore], postgres_schema_url: str
) -> None:
    service, admin = stores
    listener = service._listener
    assert listener is not None
    _until(lambda: listener.live)
    secret, made = admin.create("reader", None, None, TODAY)
    service.check(secret, TODAY.date())
    with psycopg.connect(postgres_schema_url.split("?", 1)[0], autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [listener.backend])
    _until(lambda: not listener.live)
    # Revoked while the listener is away: the next check looks the token up again.
    admin.revoke(made.token_id, TODAY)
    assert _refused(service, secret)
    _until(lambda: listener.live)
    other, _ = admin.create("reader", None, None, TODAY)
    assert not _refused(service, other)
