"""The scenarios of history.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("history.feature")
