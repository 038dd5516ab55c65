"""Purposes: why a relying party may ask about a citizen, and the kinds of record each
may take into account (`purposes.toml` beside this module, loaded as data).

A party is registered for purposes; a decision rule is made for one, and may read
nothing outside it (see projections.decisions).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from ledger.domain import records as r
from ledger.errors import LedgerError

ALL_KINDS = frozenset(k for kinds in r.KINDS.values() for k in kinds)


class UnknownPurpose(LedgerError):
    """The name is not one of the purposes in purposes.toml."""

    field = "purpose"


class PurposeFileError(LedgerError, ValueError):
    """purposes.toml does not say what a purpose needs."""

    field = "purpose"


@dataclass(frozen=True, slots=True)
class Purpose:
    name: str
    title: str
    kinds: frozenset[str]


@cache
def purposes() -> dict[str, Purpose]:
    """Every purpose in purposes.toml, by name."""
    source = "purposes.toml"
    text = files("ledger.domain").joinpath(source).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PurposeFileError(f"{source}: not valid TOML ({e})") from None
    found = {}
    for name, entry in data.items():
        where = f"{source}: {name}"
        if not isinstance(entry, dict) or set(entry) != {"title", "kinds"}:
            raise PurposeFileError(f"{where}: must have a title and kinds, and nothing else")
        kinds = entry["kinds"]
        if not isinstance(entry["title"], str) or not isinstance(kinds, list) or not kinds:
            raise PurposeFileError(f"{where}: title must be text and kinds a non-empty list")
        unknown = [k for k in kinds if k not in ALL_KINDS]
        if unknown:
            raise PurposeFileError(f"{where}: {unknown[0]!r} is not a kind of record")
        found[name] = Purpose(name, entry["title"], frozenset(kinds))
    return found


def purpose(name: str) -> Purpose:
    """The purpose called `name`; UnknownPurpose, naming the others, if there is none."""
    known = purposes()
    if name not in known:
        raise UnknownPurpose(f"no purpose {name!r}; purposes: {', '.join(sorted(known))}")
    return known[name]
