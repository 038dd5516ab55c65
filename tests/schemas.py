"""Schemas and databases of their own on the test server, for ledgers that must not
share one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg


@contextmanager
def fresh_schema(postgres_url: str) -> Iterator[str]:
    """A schema of its own on the test server, as a ledger URL, dropped afterwards."""
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_url}?schema={schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def fresh_databases(postgres_url: str, names: str = "abc") -> Iterator[list[tuple[str, str]]]:
    """Empty databases on the test server, one a name, as (name, URL) shards of a
    partitioned ledger; dropped afterwards."""
    stem = "shard_" + uuid.uuid4().hex[:10]
    databases = [f"{stem}_{name}" for name in names]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for database in databases:
            conn.execute(f"CREATE DATABASE {database}")
    try:
        yield [
            (name, urlunsplit(urlsplit(postgres_url)._replace(path=f"/{database}", query="")))
            for name, database in zip(names, databases, strict=True)
        ]
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for database in databases:
                conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
