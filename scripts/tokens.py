"""Bearer tokens for the HTTP service: created once, stored only as a hash.

A token reads `lt_<id>_<secret>`; the id finds the row, and the SHA-256 of the secret
is compared in constant time. Roles: `service` (appends as its own authority),
`reader` (scores, bands, lists), `auditor` (also histories, explanations, bundles and
proofs), `admin` (tokens and authorities), `party` (a relying party: decisions, and
scores for a purpose it is registered for, each recorded on the citizen's file), and
`citizen` (one citizen: their own file, and disputes of their records). A service,
party or citizen token is bound to its authority, party or citizen.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from ledger.errors import LedgerError
from ledger.storage import connect_postgres, environment
from projections.store import ViewStore

ROLES = ("service", "reader", "auditor", "admin", "party", "citizen")
# What each role may do, by the capability an endpoint asks for.
GRANTS: dict[str, frozenset[str]] = {
    "service": frozenset({"append"}),
    "reader": frozenset({"read"}),
    "auditor": frozenset({"read", "audit"}),
    "admin": frozenset({"read", "audit", "admin"}),
    "party": frozenset({"decide", "inquire"}),
    "citizen": frozenset({"own_file"}),
}
# The roles bound to someone, and what they are bound to.
BOUND: dict[str, str] = {"service": "authority", "party": "party", "citizen": "citizen"}

# Revocations are announced on this channel, with the schema as payload.
CHANNEL = "ledger_tokens"
# At most this many accepted tokens are remembered by a service process.
REMEMBERED = 10_000
# How often the listener checks its connection while no notice comes.
HEARTBEAT = 1.0
log = logging.getLogger("ledger.tokens")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS api_tokens (id TEXT PRIMARY KEY, digest TEXT NOT NULL, "
    "role TEXT NOT NULL, authority TEXT, expires TEXT, created_at TEXT NOT NULL, "
    "revoked_at TEXT)"
)


class TokenError(LedgerError):
    """A token cannot be created, or is not accepted."""

    field = "token"


@dataclass(frozen=True, slots=True)
class Token:
    token_id: str
    role: str
    # The authority a service token appends for, the relying party a party token asks
    # for, or the resident id of the citizen a citizen token reads; None for the others.
    bound_to: str | None
    expires: date | None
    created_at: str
    revoked_at: str | None

    def may(self, capability: str) -> bool:
        return capability in GRANTS[self.role]

    @property
    def authority(self) -> str | None:
        return self.bound_to if self.role == "service" else None

    @property
    def party(self) -> str | None:
        return self.bound_to if self.role == "party" else None

    @property
    def citizen(self) -> str | None:
        return self.bound_to if self.role == "citizen" else None


class TokenStore:
    """Tokens kept beside the ledger, in its database.

    With `remember` (the service, on PostgreSQL) a token once accepted is not looked up
    again: every revocation is announced with NOTIFY in its own transaction, and a
    listener forgets all remembered tokens when it hears one, and whenever it cannot
    hear: while its connection is down nothing is remembered."""

    def __init__(self, views: ViewStore, remember: bool = False) -> None:
        self.views = views
        with views.transaction() as tx:
            tx.execute(SCHEMA)
        self._schema = environment(views.url)["POSTGRES_SCHEMA"] if views.postgres else ""
        self._known: dict[str, Token] = {}
        self._listener = _Revocations(views.url, self._schema, self._known.clear) if (
            remember and views.postgres) else None  # fmt: skip

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def create(
        self, role: str, bound_to: str | None, expires: date | None, now: datetime
    ) -> tuple[str, Token]:
        """A new token: the secret text, shown once, and what is kept of it. `bound_to`
        names the authority, party or citizen a service, party or citizen token is for."""
        if role not in ROLES:
            raise TokenError(f"must be one of {', '.join(ROLES)}", "role")
        if role in BOUND and not bound_to:
            raise TokenError(f"a {role} token is for one {BOUND[role]}; name it", BOUND[role])
        if role not in BOUND and bound_to:
            raise TokenError(f"a {role} token is for nobody in particular", "role")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.views.transaction() as tx:
            tx.execute(
                "INSERT INTO api_tokens (id, digest, role, authority, expires, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [token_id, _digest(secret), role, bound_to,
                 expires.isoformat() if expires else None, now.isoformat()],
            )  # fmt: skip
        return f"lt_{token_id}_{secret}", Token(token_id, role, bound_to, expires,
                                                 now.isoformat(), None)  # fmt: skip

    def list(self) -> list[Token]:
        with self.views.transaction(write=False) as tx:
            rows = tx.rows(
                "SELECT id, role, authority, expires, created_at, revoked_at FROM api_tokens "
                "ORDER BY created_at, id"
            )
        return [token_of_row(row) for row in rows]

    def revoke(self, token_id: str, now: datetime) -> None:
        with self.views.transaction() as tx:
            found = tx.rows(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL "
                "RETURNING id",
                [now.isoformat(), token_id],
            )
            if found and self.views.postgres:
                # Delivered when this transaction commits, to every service listening.
                tx.execute("SELECT pg_notify(?, ?)", [CHANNEL, self._schema])
        if not found:
            raise TokenError(f"no active token {token_id}", "token_id")

    def check(self, presented: str, today: date) -> Token:
        """The token a bearer presented, if it is known, unrevoked and unexpired."""
        listener = self._listener
        token = self._known.get(presented) if listener is not None and listener.live else None
        if token is None:
            heard = listener.heard if listener is not None else 0
            token = self._look_up(presented)
            # Not if a revocation was heard meanwhile: the row read may predate it.
            if listener is not None and listener.live and listener.heard == heard:
                if len(self._known) >= REMEMBERED:
                    self._known.clear()
                self._known[presented] = token
        if token.expires is not None and today > token.expires:
            raise TokenError(f"expired on {token.expires}")
        return token

    def _look_up(self, presented: str) -> Token:
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != "lt":
            raise TokenError("is not a ledger token")
        # One statement on its own, prepared: a single round trip on every request.
        rows = self.views.read(
            "SELECT id, role, authority, expires, created_at, revoked_at, digest "
            "FROM api_tokens WHERE id = ?",
            [parts[1]],
            prepare=True,
        )
        # Compare even when no row matched, so timing does not tell ids apart.
        digest = rows[0][6] if rows else _digest("")
        if not hmac.compare_digest(digest, _digest(parts[2])) or not rows:
            raise TokenError("is not a valid token")
        token = token_of_row(rows[0][:6])
        if token.revoked_at is not None:
            raise TokenError("has been revoked")
        return token


class _Revocations:
    """Listens for revocations on a connection of its own, on a daemon thread: `live`
    while it is listening, `heard` counting what it heard (and every loss of its
    connection); each time, `forget` is called."""

    def __init__(self, url: str, schema: str, forget: Callable[[], None]) -> None:
        self.url, self.schema, self.forget = url, schema, forget
        self.live = False
        self.heard = 0
        self.backend = 0  # the listening connection's server process, to tell it apart
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="token-revocations",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * HEARTBEAT + 1)

    def _lost(self) -> None:
        self.live = False
        self.heard += 1
        self.forget()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with connect_postgres(self.url) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend = conn.info.backend_pid
                    self.heard += 1
                    self.forget()
                    self.live = True
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=HEARTBEAT):
                            if notice.payload == self.schema:
                                self.heard += 1
                                self.forget()
                        conn.execute("SELECT 1")  # a dead connection fails here
            except psycopg.Error as e:
                log.warning("token revocation listener lost its connection (%s)",
                            type(e).__name__)  # fmt: skip
            finally:
                self._lost()
            self._stop.wait(HEARTBEAT)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_of_row(row: tuple[object, ...]) -> Token:
    token_id, role, authority, expires, created_at, revoked_at = row
    return Token(
        str(token_id), str(role), str(authority) if authority else None,
        date.fromisoformat(str(expires)) if expires else None, str(created_at),
        str(revoked_at) if revoked_at else None,
    )  # fmt: skip
