"""Database URLs: the default, the schema names allowed, and how a URL is shown
(never with its password)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_URL = "sqlite:///ledger.db"
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def redact(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<an unreadable database URL>"
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def redact_text(text: str, url: str) -> str:
    """A message from a driver, with the URL's password taken out wherever it appears."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = text.replace(url, redact(url))
    return text.replace(unquote(password), "***") if password else text


def is_in_memory(url: str) -> bool:
    """An in-memory SQLite ledger lives in one process only."""
    return url.startswith("sqlite:") and url.rstrip("/").endswith(":memory:")
