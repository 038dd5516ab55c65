"""The views the service reads through: shared by threads, their connections pooled,
checked and replaced; an unreachable database is DatabaseUnavailable, soon."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import psycopg
import pytest

from ledger.errors import DatabaseUnavailable
from projections.store import ViewStore


def test_many_threads_read_and_write_the_views_at_once(store_url: str) -> None:
    store = ViewStore(store_url)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for k in range(20):
                store.set_setting(f"key-{n}", str(k))
                assert store.setting(f"key-{n}") == str(k)
                store.positions()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert [store.setting(f"key-{n}") for n in range(8)] == ["19"] * 8
    finally:
        store.close()


@pytest.mark.postgres
def test_killed_connections_are_replaced(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "views-test-" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("PGAPPNAME", name)  # libpq names the store's connections
    store = ViewStore(postgres_schema_url)
    try:
        store.set_setting("k", "1")
        with psycopg.connect(postgres_schema_url.split("?", 1)[0], autocommit=True,
                             application_name="views-test-admin") as admin:  # fmt: skip
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE application_name = %s", [name],
            ).fetchone()  # fmt: skip
        assert killed is not None
        assert killed[0] >= 1
        assert store.setting("k") == "1"
        store.set_setting("k", "2")
        assert store.setting("k") == "2"
    finally:
        store.close()


def test_an_unreachable_database_is_unavailable_within_seconds_without_its_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as raised:
        ViewStore(f"postgresql://postgres:Hidden-pw@127.0.0.1:{port}/test")
    assert time.monotonic() - started < 8
    assert "Hidden-pw" not in str(raised.value)
