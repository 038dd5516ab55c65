"""Fixtures shared by tests/ and features/: the stores, a fixed clock, a ledger.

PostgreSQL comes from LEDGER_TEST_POSTGRES_URL, else a server on 127.0.0.1:5432,
else a throwaway server started from the local binaries (pytest-postgresql). When
none can be had the PostgreSQL tests skip with the reason, except under CI=true,
where that fails the run. Each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ledger.application import FixedClock, Ledger
from tests.schemas import fresh_schema

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL the tests may create schemas in."""
    reasons = []
    for url in filter(None, (os.environ.get("LEDGER_TEST_POSTGRES_URL"), LOCAL_POSTGRES)):
        if _reachable(url):
            yield url
            return
        reasons.append(f"{url} is not reachable")
    try:
        from pytest_postgresql.executor import PostgreSQLExecutor  # noqa: PLC0415
        from pytest_postgresql.executor_noop import NoopExecutor  # noqa: F401, PLC0415

        proc = request.getfixturevalue("postgresql_proc")
        assert isinstance(proc, PostgreSQLExecutor)
        url = f"postgresql://{proc.user}@{proc.host}:{proc.port}/postgres"
        if _reachable(url):
            yield url
            return
        reasons.append("pytest-postgresql started a server that does not answer")
    except Exception as e:  # noqa: BLE001 - any failure to start one means "none to be had"
        reasons.append(f"pytest-postgresql could not start one ({e.__class__.__name__}: {e})")
    message = "no PostgreSQL server: " + "; ".join(reasons)
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh schema on the test server, as a ledger URL."""
    with fresh_schema(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The URL of an empty ledger on each store in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def clock() -> FixedClock:
    """Time starts at NOW and moves on a second at every reading."""
    return FixedClock(NOW, timedelta(seconds=1))


@pytest.fixture
def open_ledger(store_url: str, clock: FixedClock) -> Iterator[Callable[[], Ledger]]:
    """Opens ledgers on the test's store; all are closed afterwards."""
    opened: list[Ledger] = []

    def opener() -> Ledger:
        app = Ledger(store_url, clock=clock)
        opened.append(app)
        return app

    yield opener
    for app in opened:
        app.close()


@pytest.fixture
def ledger(open_ledger: Callable[[], Ledger]) -> Ledger:
    return open_ledger()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser's tests last: Playwright's sync API keeps an event loop running from
    its first test to the end of the session, and tests that start their own loop
    (asyncio.run) cannot run beside it."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/browser/"))
