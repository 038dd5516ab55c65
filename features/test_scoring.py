"""The scenarios of scoring.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("scoring.feature")
