"""The console's sessions, kept in the ledger's database beside the tokens: a session
is a random id in an HttpOnly, SameSite=Strict cookie, standing for the token it was
opened with. Every request looks the token up again, so revoking it, or its expiry,
ends the session at once; signing out deletes it, and opening one deletes those that
have lapsed."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from projections.store import ViewStore
from scripts.tokens import Token, TokenError, TokenStore, token_of_row

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS console_sessions (id TEXT PRIMARY KEY, token_id TEXT NOT NULL, "
    "expires TEXT NOT NULL)"
)
# A session lasts this long after it is opened, whatever its token allows.
LIFETIME = timedelta(hours=8)


class Sessions:
    def __init__(self, views: ViewStore, tokens: TokenStore) -> None:
        self.views = views
        self.tokens = tokens
        with views.transaction() as tx:
            tx.execute(SCHEMA)

    def open(self, presented: str, now: datetime) -> tuple[str, Token]:
        """A new session for the bearer of a valid token: its id, and the token."""
        token = self.tokens.check(presented, now.date())
        session_id = secrets.token_urlsafe(32)
        with self.views.transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE expires < ?", [now.isoformat()])
            tx.execute("INSERT INTO console_sessions (id, token_id, expires) VALUES (?, ?, ?)",
                       [session_id, token.token_id, (now + LIFETIME).isoformat()])  # fmt: skip
        return session_id, token

    def token(self, session_id: str, now: datetime) -> Token:
        """The token a live session stands for; TokenError when there is none."""
        rows = self.views.read(
            "SELECT t.id, t.role, t.authority, t.expires, t.created_at, t.revoked_at, "
            "s.expires FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id "
            "WHERE s.id = ?",
            [session_id],
        )
        if not rows or datetime.fromisoformat(str(rows[0][6])) <= now:
            raise TokenError("the session has ended; sign in again", "session")
        token = token_of_row(rows[0][:6])
        if token.revoked_at is not None or (
            token.expires is not None and now.date() > token.expires
        ):  # fmt: skip
            raise TokenError("the session's token is no longer valid; sign in again", "session")
        return token

    def close(self, session_id: str) -> None:
        with self.views.transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE id = ?", [session_id])
