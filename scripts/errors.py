"""One map from the errors below the entry points to what each entry point answers:
the HTTP service's status, problem title and detail, and the `ledger` command's exit.

A class is looked up along its MRO, so a subclass answers as its nearest mapped
ancestor unless it has an entry of its own. The map is presentation; the ledger and
its projections only raise.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

import psycopg
from eventsourcing.persistence import DataError, PersistenceError
from psycopg_pool import PoolTimeout

from ledger.bulk import WorkerFailed, WorkerUnavailable
from ledger.errors import (
    ConcurrencyConflict,
    DatabaseUnavailable,
    LedgerError,
    PurposeRefused,
    ReferenceConflict,
    StorageError,
    UnknownCitizen,
)
from ledger.storage import UNREACHABLE
from ledger.transparency.checkpoint import CheckpointError
from projections.bundle import BundleError
from projections.lock import LockLost, ProjectorBusy
from projections.policy import PolicyError, UnknownPolicy
from projections.queries import NotProjected
from projections.store import PositionConflict
from scripts.tokens import TokenError

EXIT_REJECTED = 1
EXIT_UNUSABLE = 2


class Exit(Enum):
    """How the `ledger` command ends on an error; both styles exit with 2."""

    USAGE = "usage"  # what the caller asked for is wrong: click's usage error
    UNUSABLE = "unusable"  # the input, a file or the database cannot be used

    @property
    def code(self) -> int:
        """The command's exit status."""
        return EXIT_UNUSABLE


def text(error: BaseException) -> str:
    """The error as the ledger words it: `field: message`."""
    return str(error)


def message(error: BaseException) -> str:
    """The message alone; the status and title already say what kind of error it is."""
    return getattr(error, "message", str(error))


def fixed(detail: str) -> Callable[[BaseException], str]:
    """A detail that never shows the error's own text (a driver's may name hosts)."""
    return lambda _: detail


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an entry point answers for one kind of error."""

    status: int
    title: str
    exit: Exit
    detail: Callable[[BaseException], str] = text
    fields: bool = False  # the problem lists {"field", "error"} for a LedgerError
    hint: str = ""  # what the command adds after the error's text
    log: str = ""  # the event the service logs when it answers so


UNAVAILABLE_DETAIL = "the database does not answer now; try again in a few seconds"
UNSTORABLE_DETAIL = "a value in these records cannot be stored (a NUL character, for one)"
INTERNAL_DETAIL = "the request could not be completed"
_WORKER_HINT = ("; the append stopped: the records the database acknowledged stay stored, "
                "and sending the same feed again is safe")  # fmt: skip

_UNPROCESSABLE = (422, "Unprocessable Content")
_CONFLICT = (409, "Conflict")
_NOT_FOUND = (404, "Not Found")
_UNAVAILABLE = (503, "Service Unavailable")
_INTERNAL = (500, "Internal Server Error")

# The database did not answer, from the ledger or from a driver: 503 with Retry-After.
UNAVAILABLE: tuple[type[BaseException], ...] = (*UNREACHABLE, PoolTimeout)
# Values a database refuses to store (a NUL character in text, for one).
UNSTORABLE = (DataError, psycopg.DataError)
# Any other failure of the database or its driver.
DATABASE = (PersistenceError, psycopg.Error, sqlite3.Error)

_AWAY = Outcome(*_UNAVAILABLE, Exit.UNUSABLE, fixed(UNAVAILABLE_DETAIL),
                log="database_unavailable")  # fmt: skip

ERRORS: dict[type[BaseException], Outcome] = {
    LedgerError: Outcome(*_UNPROCESSABLE, Exit.USAGE, fields=True),
    ReferenceConflict: Outcome(*_CONFLICT, Exit.USAGE, message),
    PurposeRefused: Outcome(403, "Forbidden", Exit.USAGE, message),
    UnknownCitizen: Outcome(*_NOT_FOUND, Exit.USAGE, message),
    ConcurrencyConflict: Outcome(*_CONFLICT, Exit.UNUSABLE, message),
    # The URL is the operator's, and its text may hold it: never shown to a client.
    StorageError: Outcome(*_INTERNAL, Exit.UNUSABLE, fixed(INTERNAL_DETAIL)),
    DatabaseUnavailable: _AWAY,
    WorkerFailed: Outcome(*_INTERNAL, Exit.UNUSABLE, fixed(INTERNAL_DETAIL), hint=_WORKER_HINT),
    # Listed, or the MRO would find WorkerFailed before DatabaseUnavailable.
    WorkerUnavailable: replace(_AWAY, hint=_WORKER_HINT),
    CheckpointError: Outcome(*_UNPROCESSABLE, Exit.UNUSABLE, fields=True),
    NotProjected: Outcome(*_UNAVAILABLE, Exit.UNUSABLE, message),
    PolicyError: Outcome(*_UNPROCESSABLE, Exit.USAGE),
    UnknownPolicy: Outcome(*_NOT_FOUND, Exit.USAGE, message),
    BundleError: Outcome(*_CONFLICT, Exit.USAGE, message),
    ProjectorBusy: Outcome(*_CONFLICT, Exit.UNUSABLE, message),
    LockLost: Outcome(*_CONFLICT, Exit.UNUSABLE, message),
    TokenError: Outcome(401, "Unauthorized", Exit.USAGE, lambda e: f"the token {message(e)}"),
    PositionConflict: Outcome(*_CONFLICT, Exit.UNUSABLE),
    **dict.fromkeys(UNAVAILABLE[1:], _AWAY),
    **dict.fromkeys(UNSTORABLE, Outcome(*_UNPROCESSABLE, Exit.UNUSABLE, fixed(UNSTORABLE_DETAIL))),
    **dict.fromkeys(DATABASE, Outcome(*_INTERNAL, Exit.UNUSABLE, fixed(INTERNAL_DETAIL))),
}

# Refusals of the values a query was asked with. Only around a query: a ValueError
# anywhere else is a bug, and the service answers it 500.
QUERY_ERRORS: dict[type[BaseException], Outcome] = {
    ValueError: Outcome(*_UNPROCESSABLE, Exit.USAGE),
    OverflowError: Outcome(*_UNPROCESSABLE, Exit.USAGE, fixed("a number is out of range")),
}


def outcome(error: BaseException | type[BaseException], query: bool = False) -> Outcome | None:
    """The entry of the error's nearest mapped class; with `query`, a query's value errors
    count too. None for an error nothing maps: a bug."""
    kind = error if isinstance(error, type) else type(error)
    for ancestor in kind.__mro__:
        found = ERRORS.get(ancestor) or (QUERY_ERRORS.get(ancestor) if query else None)
        if found is not None:
            return found
    return None


def field_errors(error: BaseException) -> list[dict[str, str]]:
    """A LedgerError's field and message, as a problem's `errors` lists them."""
    if isinstance(error, LedgerError):
        return [{"field": error.field, "error": error.message}]
    return []


def rejected_as(field: str, error: str) -> type[LedgerError]:
    """The kind of refusal an append report's rejection was. A report keeps a rejection's
    field and text, not its class; a reference that already names other content is the
    one rejection answered differently."""
    if field == "reference" and "already names" in error:
        return ReferenceConflict
    return LedgerError
