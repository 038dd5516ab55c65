"""The scenarios of enforcement.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("enforcement.feature")
