"""The scenarios of rejecting.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("rejecting.feature")
