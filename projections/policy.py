"""Scoring policies: versioned TOML files in `projections/policies/`, loaded as data.

A policy names the points each kind of record is worth and for how long; the engine
in `projections.scoring` applies it. Loading checks every value and names the file
and key of anything wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import records as r

POLICY_FOLDER = Path(__file__).with_name("policies")
DEFAULT_POLICY = "national-v1"


class PolicyError(ValueError):
    """A policy file is missing or does not say what the engine needs."""


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


def available() -> list[str]:
    """The names of the policy files shipped, sorted."""
    return sorted(p.stem for p in POLICY_FOLDER.glob("*.toml"))


def load(name: str, folder: Path = POLICY_FOLDER) -> Policy:
    """Load and check the policy called `name`."""
    path = folder / f"{name}.toml"
    if not path.is_file():
        raise PolicyError(f"no policy {name!r}; available: {', '.join(available()) or 'none'}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{path.name}: not valid TOML ({e})") from None
    return parse(data, path.name)


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
