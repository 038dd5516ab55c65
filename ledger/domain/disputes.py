"""Disputes a citizen files themselves: a record.disputed sent through the citizens'
own channel, an authority like any other (registered, entitled to record.disputed
only), so it goes through the same validation as every record. Its reference is made
from what it says, so the same dispute sent twice on one day is one record."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from typing import Any

from ledger.domain import records as r

CITIZEN_CHANNEL = "citizens"
CITIZEN_CHANNEL_NAME = "Citizens' own channel"


def citizen_dispute(
    resident_id: str, target: Mapping[str, str], statement: str, day: date
) -> dict[str, Any]:
    """The wire record of a citizen's dispute of `target`, filed on `day`."""
    said = "\x1f".join([resident_id, target["authority"], target["reference"],
                        day.isoformat(), statement])  # fmt: skip
    return {
        "type": r.DISPUTED,
        "citizen": resident_id,
        "authority": CITIZEN_CHANNEL,
        "reference": "self:" + hashlib.sha256(said.encode()).hexdigest()[:32],
        "occurred_on": day.isoformat(),
        "target": {"authority": target["authority"], "reference": target["reference"]},
        "reason": statement,
    }
