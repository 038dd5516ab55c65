"""The scenarios of idempotency.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("idempotency.feature")
