"""Database URLs: what is accepted, and how a URL is shown."""

from __future__ import annotations

import os

import pytest

from ledger.errors import StorageError
from ledger.storage import environment, redact, redact_text


@pytest.mark.parametrize("schema", ["x -c log_statement=all", "Public", "a;b", "9lives", "a" * 64,
                                    'a"b'])  # fmt: skip
def test_a_schema_that_is_not_a_plain_name_is_refused_naming_it(schema: str) -> None:
    with pytest.raises(StorageError) as refused:
        environment(f"postgresql://postgres@127.0.0.1/test?schema={schema}")
    assert repr(schema) in str(refused.value)


def test_a_plain_schema_name_is_taken_as_it_is() -> None:
    env = environment("postgresql://postgres@127.0.0.1/test?schema=ledger_2")
    assert env["POSTGRES_SCHEMA"] == "ledger_2"


def test_a_password_is_never_shown() -> None:
    url = "postgresql://clerk:p%40ss@db.example:5433/ledger?schema=x"
    assert redact(url) == "postgresql://clerk:***@db.example:5433/ledger?schema=x"
    message = f"connection to {url} failed for user clerk with password p@ss"
    assert "p@ss" not in redact_text(message, url)
    assert "p%40ss" not in redact_text(message, url)
    with pytest.raises(StorageError) as refused:
        environment("postgresql://clerk:p%40ss@db.example/")
    assert "p%40ss" not in str(refused.value)
    assert "clerk:***@" in str(refused.value)


def test_several_hosts_are_the_nodes_of_one_replicated_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Set first, so that whatever the URL sets is undone after the test.
    monkeypatch.setenv("PGTARGETSESSIONATTRS", "any")
    monkeypatch.delenv("PGTARGETSESSIONATTRS")
    env = environment("postgresql://clerk@10.0.0.1:6001,10.0.0.2,[::1]:6003/ledger?schema=p")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("10.0.0.1,10.0.0.2,::1",
                                                            "6001,5432,6003")  # fmt: skip
    # With several nodes, connections go to the one that takes writes.
    assert os.environ["PGTARGETSESSIONATTRS"] == "read-write"


def test_one_host_leaves_libpq_to_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set first, so that whatever the URL sets is undone after the test.
    monkeypatch.setenv("PGTARGETSESSIONATTRS", "any")
    monkeypatch.delenv("PGTARGETSESSIONATTRS")
    env = environment("postgresql://clerk@db.example:5433/ledger")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("db.example", "5433")
    assert "PGTARGETSESSIONATTRS" not in os.environ


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://h1:5432,h2:port/ledger", "port 'port'"),
        ("postgresql://h1,h2/ledger?target_session_attrs=writable", "target_session_attrs"),
    ],
)
def test_a_bad_node_list_is_refused_naming_what_is_wrong(url: str, named: str) -> None:
    with pytest.raises(StorageError) as refused:
        environment(url)
    assert named in str(refused.value)
