"""Scoring policies: versioned TOML files in `projections/policies/`, loaded as data.

A policy names the points each kind of record is worth and for how long; the engine
in `projections.scoring` applies it. Loading checks every value and names the file
and key of anything wrong. Readers choose a policy by name only, among the files
shipped with the package and those registered in the process: a name never becomes
a path, so no caller can make the engine read a file of their choosing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ledger.domain import records as r
from ledger.errors import LedgerError

# Read through importlib.resources so that the files are found inside a wheel too.
POLICY_FOLDER: Traversable = files("projections").joinpath("policies")
DEFAULT_POLICY = "national-v1"

_registered: dict[str, Policy] = {}


class PolicyError(LedgerError, ValueError):
    """A policy file is missing or does not say what the engine needs."""


class UnknownPolicy(PolicyError):
    """The name is not one of the shipped or registered policies."""


@dataclass(frozen=True, slots=True)
class InfractionRule:
    open: int
    expires_after_years: int
    residual: int = 0
    residual_years: int = 0


@dataclass(frozen=True, slots=True)
class PaymentRule:
    points: int
    years: int
    cap: int | None = None


@dataclass(frozen=True, slots=True)
class VerificationRule:
    points: int
    revoked: int
    revoked_years: int


@dataclass(frozen=True, slots=True)
class Band:
    band: str
    min: int


@dataclass(frozen=True, slots=True)
class Policy:
    """One issuer's rules, as its file states them."""

    name: str
    version: int
    title: str
    base: int
    floor: int
    ceiling: int | None
    positive_cap: int
    dispute_grace_days: int
    enforcement_kinds: tuple[str, ...]
    bands: tuple[Band, ...]
    infractions: dict[str, InfractionRule]
    payments: dict[str, PaymentRule]
    verifications: dict[str, VerificationRule]

    def band_of(self, score: int) -> str:
        for band in self.bands:
            if score >= band.min:
                return band.band
        return self.bands[-1].band


def shipped() -> list[str]:
    """The names of the policy files shipped with the package, sorted."""
    return sorted(
        p.name.removesuffix(".toml")
        for p in POLICY_FOLDER.iterdir()
        if p.name.endswith(".toml") and p.is_file()
    )


def available() -> list[str]:
    """The names a reader may ask for: the shipped policies and the registered ones."""
    return sorted({*shipped(), *_registered})


def load(name: str) -> Policy:
    """Load and check the shipped or registered policy called `name`."""
    # Compared with the listing, never joined onto a path: "../x" or "/tmp/x" is no name.
    if name not in available():
        raise UnknownPolicy(f"no policy {name!r}; available: {', '.join(available()) or 'none'}")
    if name in _registered:
        return _registered[name]
    source = f"{name}.toml"
    return _parse_text(POLICY_FOLDER.joinpath(source).read_text(encoding="utf-8"), source)


def load_file(path: Path) -> Policy:
    """Load and check a policy file an operator chose; it is not nameable until registered."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"cannot read {path}: {e.strerror}") from None
    return _parse_text(text, path.name)


def register(policy: Policy) -> None:
    """Make `policy` nameable in this process, beside the shipped ones."""
    if policy.name in shipped():
        raise PolicyError(f"{policy.name!r} is a shipped policy; give a new one a new name")
    if _registered.setdefault(policy.name, policy) != policy:
        raise PolicyError(f"another policy is registered as {policy.name!r}")


def _parse_text(text: str, source: str) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{source}: not valid TOML ({e})") from None
    return parse(data, source)


def parse(data: dict[str, Any], source: str) -> Policy:
    """Build a `Policy` from decoded TOML, naming `source` and the key of any error."""
    reader = _Reader(data, source)
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise reader.fail(unknown[0], "is not a policy setting")
    policy = Policy(
        name=reader.text("name"),
        version=reader.integer("version", low=1),
        title=reader.text("title"),
        base=reader.integer("base"),
        floor=reader.integer("floor"),
        ceiling=reader.integer("ceiling") if "ceiling" in data else None,
        positive_cap=reader.integer("positive_cap", low=0),
        dispute_grace_days=reader.integer("dispute_grace_days", low=0),
        enforcement_kinds=tuple(reader.kinds("enforcement_kinds", r.INFRACTION_KINDS)),
        bands=tuple(reader.bands()),
        infractions=reader.table("infractions", r.INFRACTION_KINDS, InfractionRule),
        payments=reader.table("payments", r.PAYMENT_KINDS, PaymentRule),
        verifications=reader.table("verifications", r.VERIFICATION_KINDS, VerificationRule),
    )
    if source.endswith(".toml") and policy.name != source.removesuffix(".toml"):
        raise PolicyError(f"{source}: name {policy.name!r} must match the file name")
    return policy


_TOP_LEVEL = frozenset({
    "name", "version", "title", "base", "floor", "ceiling", "positive_cap",
    "dispute_grace_days", "enforcement_kinds", "bands", "infractions", "payments",
    "verifications",
})  # fmt: skip


class _Reader:
    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def fail(self, key: str, message: str) -> PolicyError:
        return PolicyError(f"{self.source}: {key}: {message}")

    def get(self, key: str, data: dict[str, Any] | None = None, prefix: str = "") -> Any:
        data = self.data if data is None else data
        if key not in data:
            raise self.fail(prefix + key, "is required")
        return data[key]

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        return value

    def integer(self, key: str, data: dict[str, Any] | None = None, prefix: str = "",
                low: int | None = None) -> int:  # fmt: skip
        value = self.get(key, data, prefix)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(prefix + key, "must be a whole number")
        if low is not None and value < low:
            raise self.fail(prefix + key, f"must be at least {low}")
        return value

    def kinds(self, key: str, allowed: tuple[str, ...]) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or any(k not in allowed for k in value):
            raise self.fail(key, "must be a list of " + ", ".join(allowed))
        return value

    def bands(self) -> list[Band]:
        value = self.get("bands")
        if not isinstance(value, list) or not value:
            raise self.fail("bands", "must be a non-empty list")
        bands = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("band"), str):
                raise self.fail(f"bands[{i}]", "must have a band name and a min")
            bands.append(Band(item["band"], self.integer("min", item, f"bands[{i}]."))
                         )  # fmt: skip
        if [b.min for b in bands] != sorted((b.min for b in bands), reverse=True):
            raise self.fail("bands", "must be listed from the highest minimum down")
        return bands

    def table(self, key: str, allowed: tuple[str, ...], rule: type[Any]) -> dict[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        rules = {}
        for kind, fields in value.items():
            if kind not in allowed:
                raise self.fail(f"{key}.{kind}", "is not a kind of " + ", ".join(allowed))
            if not isinstance(fields, dict):
                raise self.fail(f"{key}.{kind}", "must be a table")
            names = set(rule.__dataclass_fields__)
            unknown = set(fields) - names
            if unknown:
                raise self.fail(f"{key}.{kind}.{sorted(unknown)[0]}", "is not a setting")
            prefix = f"{key}.{kind}."
            rules[kind] = rule(**{
                name: self.integer(name, fields, prefix)
                for name in names if name in fields or _required(rule, name)
            })  # fmt: skip
        return rules


def _required(rule: type[Any], name: str) -> bool:
    from dataclasses import MISSING  # noqa: PLC0415

    field = rule.__dataclass_fields__[name]
    return field.default is MISSING
