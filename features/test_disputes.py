"""The scenarios of disputes.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("disputes.feature")
