"""Database URLs: what is accepted, and how a URL is shown."""

from __future__ import annotations

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
