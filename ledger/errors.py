"""The one tree of errors the ledger raises; each names the field it is about."""


class LedgerError(Exception):
    """A rule of the ledger refused something; nothing was written."""

    field = ""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidRecord(LedgerError):
    """The record does not fit the wire format."""


class RuleViolation(LedgerError):
    """The record is well formed but breaks a rule of the ledger."""


class NotEntitled(RuleViolation):
    """The authority is not registered, or may not issue this record on that date."""

    field = "authority"


class PurposeRefused(NotEntitled):
    """The relying party is not registered, or not for this purpose, or not yet."""

    field = "purpose"


class NotEnrolled(RuleViolation):
    """A record about a citizen the ledger has never enrolled."""

    field = "citizen"


class TargetError(RuleViolation):
    """The record's target does not exist, is someone else's, or is in the wrong state."""

    field = "target"


class ReferenceConflict(RuleViolation):
    """The (authority, reference) already names a record with other content."""

    field = "reference"


class UnknownCitizen(LedgerError):
    """No records exist for this citizen."""

    field = "citizen"


class AuthorityExists(LedgerError):
    """An authority is registered once; its id is never reused."""

    field = "authority"


class PartyExists(LedgerError):
    """A relying party is registered once; its id is never reused."""

    field = "party"


class PlacementError(LedgerError):
    """A change of a partitioned ledger's shard map that the map's rules refuse."""

    field = "shards"


class ConcurrencyConflict(LedgerError):
    """Other writers kept changing the same citizens; the batch was not written."""


class StorageError(LedgerError):
    """The database URL cannot be used."""

    field = "db"


class DatabaseUnavailable(StorageError):
    """The database did not answer in time; nothing was written, and asking again may work."""
