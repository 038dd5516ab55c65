"""Score reads: what one statement gives, and a promotion seen at once by a reader
that is already serving."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from ledger.application import Ledger
from ledger.domain.identity import citizen_id
from projections import policy
from projections.queries import NotProjected, Scores
from projections.runner import catch_up, tracking_name
from projections.store import ViewStore
from tests.builders import (
    LI_WEI,
    WANG_FANG,
    ZHANG_MIN,
    append,
    enrolled,
    fine,
    register_authorities,
)

POLICIES = [policy.load("national-v1"), policy.load("finance-v1")]
DAY = date(2025, 7, 1)


@pytest.fixture
def store(store_url: str) -> Iterator[ViewStore]:
    views = ViewStore(store_url)
    yield views
    views.close()


@pytest.fixture
def projected(ledger: Ledger, store: ViewStore) -> Ledger:
    """Wang Fang with an open traffic fine, Li Wei with no record that counts."""
    register_authorities(ledger)
    assert append(ledger, enrolled(WANG_FANG), enrolled(LI_WEI)).rejected == []
    assert append(ledger, fine("TP-1", occurred_on="2025-06-01")).rejected == []
    catch_up(ledger, store, POLICIES)
    return ledger


def test_score_inputs_come_from_one_snapshot(projected: Ledger, store: ViewStore) -> None:
    head = projected.max_position()
    store.set_setting("some-key", "some-value")
    found = store.score_inputs(
        tracking_name(POLICIES[0]), "national-v1", citizen_id(WANG_FANG),
        projected.reader.head_query(), "some-key",
    )  # fmt: skip
    assert (found.position, found.head, found.setting) == (head, head, "some-value")
    assert [c.reference for c in found.contributions or []] == ["TP-1"]
    clean = store.score_inputs(
        tracking_name(POLICIES[0]), "national-v1", citizen_id(LI_WEI),
        projected.reader.head_query(), "no-such-key",
    )  # fmt: skip
    assert (clean.contributions, clean.setting) == ([], None)
    unseen = store.score_inputs(
        tracking_name(POLICIES[0]), "national-v1", citizen_id(ZHANG_MIN),
        projected.reader.head_query(), "some-key",
    )  # fmt: skip
    assert unseen.contributions is None


def test_a_citizen_with_nothing_counting_scores_the_base(
    projected: Ledger, store: ViewStore
) -> None:
    answer = Scores(projected, store).score(LI_WEI, as_of=DAY)
    assert (answer.score, answer.policy, answer.lag) == (POLICIES[0].base, "national-v1", 0)


def test_a_promotion_elsewhere_is_served_at_the_next_read(
    projected: Ledger, store: ViewStore, store_url: str
) -> None:
    serving = Scores(projected, store)
    assert serving.score(WANG_FANG, as_of=DAY).policy == "national-v1"
    # Another process's store: its own connections, nothing shared with `serving`.
    elsewhere = Scores(projected, ViewStore(store_url))
    elsewhere.promote("finance-v1")
    answer = serving.score(WANG_FANG, as_of=DAY)
    assert (answer.policy, answer.score) == (
        "finance-v1", serving.score(WANG_FANG, "finance-v1", DAY).score
    )  # fmt: skip
    assert answer.score != serving.score(WANG_FANG, "national-v1", DAY).score
    elsewhere.promote("national-v1")
    assert serving.score(WANG_FANG, as_of=DAY).policy == "national-v1"
    elsewhere.promote("finance-v1")
    assert serving.explain(WANG_FANG, as_of=DAY)[0].policy == "finance-v1"
    elsewhere.store.close()


def test_a_promoted_policy_not_yet_projected_is_named(
    projected: Ledger, store: ViewStore, store_url: str
) -> None:
    serving = Scores(projected, store)
    serving.score(WANG_FANG)
    with store.transaction() as tx:
        tx.execute("DELETE FROM projection_tracking WHERE name = ?", ["scores:finance-v1"])
        tx.execute("DELETE FROM score_views WHERE policy = ?", ["finance-v1"])
    other = ViewStore(store_url)
    Scores(projected, other).promote("finance-v1")
    other.close()
    head = projected.max_position()
    with pytest.raises(NotProjected, match=f"finance-v1 has not reached them; it lags {head}"):
        serving.score(WANG_FANG)
