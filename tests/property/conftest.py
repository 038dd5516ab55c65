"""What the property tests share: fresh ledgers per example, on the store under test."""

from __future__ import annotations

import pytest

from ledger.application import FixedClock
from tests.property.test_projection_properties import FreshStores


@pytest.fixture
def fresh(store_url: str, clock: FixedClock) -> FreshStores:
    return FreshStores(store_url, clock.at)
