"""The scenarios of credit_repair.feature, on SQLite and on PostgreSQL."""

from pytest_bdd import scenarios

scenarios("credit_repair.feature")
