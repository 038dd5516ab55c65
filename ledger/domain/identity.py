"""Resident identity numbers (GB 11643-1999) and the ids derived from them.

The check is deliberately about the number itself: the province-level region code,
a real birth date and the ISO 7064 MOD 11-2 check character. County-level codes are
not checked against a list because they change every year while the numbers issued
under abolished codes stay valid for life.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass, field
from datetime import date

from ledger.errors import InvalidRecord

NAMESPACE = uuid.UUID("6b1d2c34-9a7e-5f0b-8c3d-2e4f6a8b0c1d")

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"

PROVINCES: dict[str, str] = {
    "11": "Beijing", "12": "Tianjin", "13": "Hebei", "14": "Shanxi",
    "15": "Inner Mongolia", "21": "Liaoning", "22": "Jilin", "23": "Heilongjiang",
    "31": "Shanghai", "32": "Jiangsu", "33": "Zhejiang", "34": "Anhui", "35": "Fujian",
    "36": "Jiangxi", "37": "Shandong", "41": "Henan", "42": "Hubei", "43": "Hunan",
    "44": "Guangdong", "45": "Guangxi", "46": "Hainan", "50": "Chongqing",
    "51": "Sichuan", "52": "Guizhou", "53": "Yunnan", "54": "Tibet", "61": "Shaanxi",
    "62": "Gansu", "63": "Qinghai", "64": "Ningxia", "65": "Xinjiang", "71": "Taiwan",
    "81": "Hong Kong", "82": "Macao", "83": "Taiwan (residence permit)",
}  # fmt: skip

_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]")


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARACTERS[total % 11]


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A valid 18-character resident identity number, upper-case check character."""

    value: str
    birth_date: date = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        v = self.value
        object.__setattr__(self, "birth_date", date(int(v[6:10]), int(v[10:12]), int(v[12:14])))

    @property
    def region(self) -> str:
        return self.value[:6]

    @property
    def province(self) -> str:
        return self.value[:2]

    @property
    def citizen_id(self) -> uuid.UUID:
        return citizen_id(self.value)

    def __str__(self) -> str:
        return self.value


def parse_resident_id(text: object) -> ResidentId:
    """Validate an identity number; raise `InvalidRecord` naming what is wrong."""
    if not isinstance(text, str):
        raise InvalidRecord("must be a string of 18 characters", "citizen")
    if len(text) != 18:
        raise InvalidRecord(f"must be 18 characters, not {len(text)}", "citizen")
    if not _SHAPE.fullmatch(text):
        raise InvalidRecord("must be 17 digits followed by a digit or X", "citizen")
    value = text.upper()
    if value[:2] not in PROVINCES:
        raise InvalidRecord(
            f"region code {value[:6]} does not start with a province code", "citizen"
        )
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidRecord(f"birth date {value[6:14]} is not a real date", "citizen") from None
    if int(value[6:10]) < 1900:
        raise InvalidRecord(f"birth date {value[6:14]} is before 1900", "citizen")
    expected = check_character(value[:17])
    if value[17] != expected:
        raise InvalidRecord(f"check character should be {expected}", "citizen")
    return ResidentId(value)


@functools.lru_cache(maxsize=1 << 18)
def citizen_id(resident_id: str) -> uuid.UUID:
    """The Citizen aggregate's id: a uuid5 of the normalised identity number."""
    return uuid.uuid5(NAMESPACE, "citizen:" + resident_id.upper())


def make_resident_id(region: str, birth: date, sequence: int) -> str:
    """Build a valid number; `sequence` is 0-999 (odd for men, even for women)."""
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)
