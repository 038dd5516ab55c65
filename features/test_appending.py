"""The scenarios of appending.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("appending.feature")
