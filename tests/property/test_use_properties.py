"""Property: inquiries and decisions (uses of a citizen's file) never change a score.

The same random history goes into two ledgers; into one of them, uses of random
citizens' files are recorded between its chunks. Both are projected page by page
under every policy: their views are the same, and so is every citizen's score on
random days, projected and replayed.
"""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from ledger.application import Ledger, Used
from ledger.domain import Decided, Inquired
from ledger.domain.identity import parse_resident_id
from ledger.log import CitizenFile
from projections.queries import Scores
from projections.runner import catch_up
from tests.property.test_projection_properties import (
    AS_OF,
    PAGE_SIZES,
    POLICIES,
    PROPERTY_SETTINGS,
    FreshStores,
    History,
    append_all,
    chunked,
    histories,
    snapshot,
)


def record_uses(ledger: Ledger, citizens: list[str], data: st.DataObject) -> int:
    """Uses of the files of some of these citizens (those enrolled so far)."""
    made = 0
    for citizen in data.draw(st.lists(st.sampled_from(citizens), max_size=3), label="used"):
        cid = parse_resident_id(citizen).citizen_id
        if not ledger.reader.file(cid).records:
            continue
        decided = data.draw(st.booleans(), label="decided")

        def use(file: CitizenFile, decided: bool = decided) -> tuple[None, Used]:
            fields = {"party": "bank-a", "purpose": "mortgage", "as_of": date(2026, 1, 1),
                      "position": file.records[-1].position, "score": 1}  # fmt: skip
            if decided:
                return None, (
                    Decided,
                    {**fields, "rule": "mortgage-v1", "outcome": "deny", "request": None},
                )
            return None, (Inquired, {**fields, "policy": "finance-v1"})

        ledger.record_use(cid, use)
        made += 1
    return made


@PROPERTY_SETTINGS
@given(history=histories(), page_size=PAGE_SIZES, data=st.data())
def test_uses_of_a_file_never_change_any_score(
    fresh: FreshStores, history: History, page_size: int, data: st.DataObject
) -> None:
    chunks = chunked(history, data)
    with (
        fresh.ledger() as plain, fresh.views(plain.url) as plain_views,
        fresh.ledger() as used, fresh.views(used.url) as used_views,
    ):  # fmt: skip
        uses = 0
        for chunk in chunks:
            append_all(plain, chunk)
            append_all(used, chunk)
            uses += record_uses(used, history.citizens, data)
            catch_up(plain, plain_views, POLICIES, page_size=page_size)
            catch_up(used, used_views, POLICIES, page_size=page_size)
        assert used.max_position() == plain.max_position() + uses
        assert snapshot(used_views) == snapshot(plain_views)
        days = data.draw(st.lists(AS_OF, min_size=1, max_size=3), label="as_of")
        plain_scores, used_scores = Scores(plain, plain_views), Scores(used, used_views)
        after = used.clock.now()
        for citizen in history.citizens:
            assert len(used.reader.file(parse_resident_id(citizen).citizen_id).records) == len(
                plain.history(citizen))  # fmt: skip
            for policy in POLICIES:
                for day in days:
                    expected = plain_scores.score(citizen, policy.name, day).score
                    assert used_scores.score(citizen, policy.name, day).score == expected
                    replayed = used_scores.score(citizen, policy.name, day, known_at=after)
                    assert replayed.score == expected
