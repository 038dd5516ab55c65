"""The scenarios of vacating.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("vacating.feature")
