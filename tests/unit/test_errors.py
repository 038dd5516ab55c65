"""The one error map: every error below the entry points has an HTTP answer and an exit.

Given the error classes the ledger, its projections and the scripts define, when each
is looked up, then it has a status, a title and an exit style; a subclass without an
entry of its own answers as its parent; and the service and the command both draw
their answers from the same entry.
"""

from __future__ import annotations

import importlib
import pkgutil

import click
import orjson
import pytest

import ledger
import projections
from ledger.bulk import WorkerFailed, WorkerUnavailable
from ledger.errors import (
    DatabaseUnavailable,
    LedgerError,
    NotEnrolled,
    ReferenceConflict,
    RuleViolation,
    UnknownCitizen,
)
from projections.bundle import BundleError
from projections.policy import PolicyError, UnknownPolicy
from projections.queries import NotProjected
from projections.store import PositionConflict
from scripts.cli.base import Unusable, exit_for
from scripts.errors import ERRORS, EXIT_UNUSABLE, UNAVAILABLE, Exit, outcome, rejected_as
from scripts.service.problems import RETRY_AFTER, Problem, problem
from scripts.tokens import TokenError


def _every_ledger_error() -> list[type[LedgerError]]:
    for package in (ledger, projections):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    found, todo = [], [LedgerError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return [k for k in found if k.__module__.split(".")[0] in {"ledger", "projections", "scripts"}]


EVERY = _every_ledger_error()


def test_the_walk_finds_the_errors_of_every_layer() -> None:
    names = {kind.__name__ for kind in EVERY}
    assert {"NotEnrolled", "WorkerUnavailable", "CheckpointError", "ProofRequestError",
            "NotProjected", "UnknownPolicy", "BundleError", "LockLost",
            "TokenError"} <= names  # fmt: skip


@pytest.mark.parametrize("kind", [*EVERY, PositionConflict, *UNAVAILABLE],
                         ids=lambda k: k.__name__)  # fmt: skip
def test_every_error_has_a_status_a_title_and_an_exit(kind: type[BaseException]) -> None:
    found = outcome(kind)
    assert found is not None
    assert 400 <= found.status < 600
    assert found.title
    assert found.exit in Exit
    assert found.exit.code == EXIT_UNUSABLE


def test_a_subclass_without_an_entry_answers_as_its_parent() -> None:
    class StaleBundle(BundleError):
        pass

    class Brand(LedgerError):
        pass

    assert StaleBundle not in ERRORS
    assert outcome(StaleBundle) is ERRORS[BundleError]
    assert outcome(Brand) is ERRORS[LedgerError]
    assert outcome(NotEnrolled) is ERRORS[LedgerError]
    assert outcome(UnknownPolicy) is not outcome(PolicyError)


def test_the_nearest_entry_wins_over_a_farther_parent() -> None:
    # WorkerUnavailable is a WorkerFailed (500) and a DatabaseUnavailable (503).
    assert outcome(WorkerFailed).status == 500  # type: ignore[union-attr]
    assert outcome(WorkerUnavailable).status == 503  # type: ignore[union-attr]


def test_a_value_error_is_answered_only_around_a_query() -> None:
    assert outcome(ValueError("no")) is None
    assert outcome(OverflowError(), query=True).status == 422  # type: ignore[union-attr]
    assert outcome(PolicyError("bad")) is ERRORS[PolicyError]


def test_the_service_answers_from_the_map() -> None:
    missing = problem(UnknownCitizen("X has no records in the ledger")).response()
    assert missing.status_code == 404
    assert orjson.loads(missing.get_data()) == {
        "type": "about:blank", "title": "Not Found", "status": 404,
        "detail": "X has no records in the ledger",
    }  # fmt: skip
    broken = orjson.loads(problem(RuleViolation("is after today", "occurred_on")).response().data)
    assert (broken["status"], broken["detail"]) == (422, "occurred_on: is after today")
    assert broken["errors"] == [{"field": "occurred_on", "error": "is after today"}]
    token = orjson.loads(problem(TokenError("has been revoked")).response().data)
    assert (token["status"], token["detail"]) == (401, "the token has been revoked")


def test_a_database_away_is_503_with_retry_after_and_no_driver_text() -> None:
    away = problem(DatabaseUnavailable("postgresql://u:secret@h/db timed out")).response()
    assert away.status_code == 503
    assert away.headers["Retry-After"] == str(RETRY_AFTER)
    assert b"secret" not in away.data
    behind = problem(NotProjected("not projected yet")).response()
    assert behind.status_code == 503
    assert b"not projected yet" in behind.data


def test_an_error_nothing_maps_is_500() -> None:
    assert problem(KeyError("x")).status == 500


def test_a_rejected_reference_is_a_conflict_and_others_unprocessable() -> None:
    assert rejected_as("reference", "already names 1 with different content") is ReferenceConflict
    assert rejected_as("amount", "must not be negative") is LedgerError
    assert problem(ReferenceConflict("already names 1", "reference")).status == 409


def test_the_command_exits_from_the_map() -> None:
    usage = exit_for(UnknownCitizen("X has no records in the ledger"))
    assert isinstance(usage, click.UsageError)
    assert usage.format_message() == "citizen: X has no records in the ledger"
    unusable = exit_for(NotProjected("not yet"))
    assert type(unusable) is Unusable
    assert unusable.exit_code == EXIT_UNUSABLE
    stopped = exit_for(WorkerUnavailable("shard 1 cannot reach the database"))
    assert "sending the same feed again is safe" in stopped.format_message()
    url = "postgresql://u:hunter2@h/db"
    assert "hunter2" not in exit_for(DatabaseUnavailable(f"{url} is away"), url).format_message()


def test_a_problem_already_made_is_answered_as_it_is() -> None:
    made = Problem(404, "Not Found", "no checkpoint has been signed yet")
    assert problem(made) is made
