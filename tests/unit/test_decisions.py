"""Decision rules: refused when loaded if they reach outside their purpose, and each
shipped rule around each of its boundaries.

Expected outcomes are worked out by hand from the rule files and their policies:
finance-v1 starts at 700 (tax arrears -60, loan default -120, court judgment -40,
judgment default -150 while open and -50 for two years once settled, a tax payment
+10, a loan repaid on time +3); employment-v1 starts at 600 (a licence +150, a degree
+50, a conviction -300 for ten years, a revoked licence -200 for five).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from ledger.domain import records as r
from ledger.domain.purposes import purpose
from projections import decisions
from projections.decisions import APPROVE, DENY, REFER, DecisionRuleError, decide
from projections.explanation import explain
from projections.scoring import contributions
from tests.unit.test_scoring import (
    disputed,
    given,
    infraction,
    payments,
    revoked,
    settled,
    verification,
)

MORTGAGE = decisions.load("mortgage-v1")
CONSUMER = decisions.load("consumer-loan-v1")
EMPLOYMENT = decisions.load("licensed-employment-v1")
DAY = "2026-01-10"


def outcome(rule: decisions.DecisionRule, *wires: dict[str, Any], day: str = DAY) -> str:
    return decided(rule, *wires, day=day).outcome


def decided(
    rule: decisions.DecisionRule, *wires: dict[str, Any], day: str = DAY
) -> decisions.Decision:
    facts = given(*wires)
    return decide(rule, facts, contributions(facts, rule.policy), date.fromisoformat(day))


# Loading: proportionate by construction


def rule_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "test-v1", "version": 1, "title": "Test", "purpose": "mortgage",
        "policy": "finance-v1", "approve_from": 720, "refer_from": 660,
        "conditions": [{"kind": "judgment_default", "must": "not_count", "otherwise": "deny"}],
    }  # fmt: skip
    data.update(changes)
    return data


def test_every_shipped_rule_loads_and_its_policy_counts_only_what_its_purpose_allows() -> None:
    assert decisions.available() == [
        "consumer-loan-v1", "licensed-employment-v1", "mortgage-v1",
    ]  # fmt: skip
    for name in decisions.available():
        rule = decisions.load(name)
        policy = rule.policy
        assert {*policy.infractions, *policy.payments, *policy.verifications} <= rule.purpose.kinds


def test_no_credit_purpose_may_use_traffic_fines_or_convictions() -> None:
    for name in ("mortgage", "consumer_loan"):
        assert {"traffic_fine", "criminal_conviction"}.isdisjoint(purpose(name).kinds)


def test_a_rule_whose_policy_counts_a_kind_outside_its_purpose_is_refused_naming_it() -> None:
    with pytest.raises(DecisionRuleError, match=(
        "policy national-v1 counts criminal_conviction, which the purpose mortgage may not "
        "take into account"
    )):  # fmt: skip
        decisions.parse(rule_data(policy="national-v1"), "test-v1.toml")
    with pytest.raises(DecisionRuleError, match="finance-v1 counts court_judgment, which the "
                       "purpose licensed_employment"):  # fmt: skip
        decisions.parse(rule_data(purpose="licensed_employment", conditions=[]), "test-v1.toml")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"conditions": [{"kind": "traffic_fine", "must": "not_count", "otherwise": "deny"}]},
         "conditions\\[0\\].kind: traffic_fine, which the purpose mortgage may not"),
        ({"purpose": "licensed_employment", "policy": "employment-v1",
          "conditions": [{"kind": "degree", "must": "sometimes", "otherwise": "deny"}]},
         "conditions\\[0\\].must: must be count or not_count"),
        ({"conditions": [{"kind": "loan_default", "must": "count", "otherwise": "approve"}]},
         "conditions\\[0\\].otherwise: must be refer or deny"),
        ({"conditions": [{"kind": "loan_default"}]}, "conditions\\[0\\]: must have kind"),
        ({"refer_from": 721}, "refer_from must not be above approve_from"),
        ({"approve_from": "720"}, "approve_from: must be int"),
        ({"purpose": "espionage"}, "no purpose 'espionage'"),
        ({"policy": "nope-v1"}, "no policy 'nope-v1'"),
        ({"colour": "red"}, "colour: is not a decision rule setting"),
    ],
)  # fmt: skip
def test_a_malformed_rule_is_refused_naming_what_is_wrong(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(DecisionRuleError, match=message):
        decisions.parse(rule_data(**changes), "test-v1.toml")


def test_a_rule_is_chosen_by_name_never_by_path() -> None:
    with pytest.raises(decisions.UnknownRule, match=r"no decision rule '\.\./policies/x'"):
        decisions.load("../policies/x")


# mortgage-v1: approve from 720, refer from 660; a judgment default counting denies,
# a loan default counting refers


def test_mortgage_approves_from_720_and_refers_just_below() -> None:
    assert outcome(MORTGAGE, *payments(r.PAYMENT_KINDS[0], 2)) == APPROVE  # 720
    # 710 + 3 x 3 = 719
    assert outcome(MORTGAGE, *payments("tax_paid_on_time", 1),
                   *payments("loan_repaid_on_time", 3, prefix="L")) == REFER  # fmt: skip
    assert outcome(MORTGAGE) == REFER  # 700, nothing on file


def test_mortgage_refers_from_660_and_denies_just_below() -> None:
    arrears = infraction("T-1", "tax_arrears", "2025-01-01")
    assert outcome(MORTGAGE, arrears, *payments("tax_paid_on_time", 2)) == REFER  # 660
    assert outcome(MORTGAGE, arrears, *payments("tax_paid_on_time", 1),
                   *payments("loan_repaid_on_time", 3, prefix="L")) == DENY  # 659  # fmt: skip


def test_a_judgment_default_still_counting_denies_a_mortgage_whatever_the_score() -> None:
    default = infraction("J-1", "judgment_default", "2023-01-01")
    paid = settled("J-2", default, "2024-06-01")
    cap = payments("tax_paid_on_time", 8)  # +80, the positive cap
    # 700 + 80 - 50 (residual until 2026-06-01) = 730: approved by score, denied by rule.
    decision = decided(MORTGAGE, default, paid, *cap)
    assert (decision.explanation.score.score, decision.outcome) == (730, DENY)
    assert [c.kind for c in decision.unmet] == ["judgment_default"]
    assert outcome(MORTGAGE, default, paid, *cap, day="2026-05-31") == DENY
    assert outcome(MORTGAGE, default, paid, *cap, day="2026-06-01") == APPROVE  # 780


def test_a_loan_default_still_counting_refers_a_mortgage() -> None:
    default = infraction("LD-1", "loan_default", "2022-01-01")
    paid = settled("LD-2", default, "2023-03-01")
    cap = payments("tax_paid_on_time", 8)
    assert outcome(MORTGAGE, default, paid, *cap, day="2026-02-28") == REFER  # 740
    assert outcome(MORTGAGE, default, paid, *cap, day="2026-03-01") == APPROVE  # 780


def test_a_disputed_judgment_default_stops_denying_on_the_31st_day_unresolved() -> None:
    default = infraction("J-1", "judgment_default", "2025-01-01")
    dispute = disputed("D-1", default, "2025-12-01")
    cap = payments("tax_paid_on_time", 8, occurred_on="2025-06-01")
    assert outcome(MORTGAGE, default, dispute, *cap, day="2025-12-30") == DENY
    assert outcome(MORTGAGE, default, dispute, *cap, day="2025-12-31") == APPROVE  # 780


# consumer-loan-v1: approve from 660, refer from 580, a judgment default denies


def test_consumer_loan_boundaries() -> None:
    judgment = infraction("CJ-1", "court_judgment", "2025-01-01")
    arrears = infraction("T-1", "tax_arrears", "2025-01-01")
    loan = infraction("LD-1", "loan_default", "2025-01-01")
    assert outcome(CONSUMER) == APPROVE  # 700
    assert outcome(CONSUMER, judgment) == APPROVE  # 660
    assert outcome(CONSUMER, arrears) == REFER  # 640
    assert outcome(CONSUMER, loan, judgment, *payments("tax_paid_on_time", 4)) == REFER  # 580
    assert outcome(CONSUMER, loan, judgment,
                   *payments("loan_repaid_on_time", 13, prefix="L")) == DENY  # 579  # fmt: skip
    default = infraction("J-1", "judgment_default", "2025-01-01")
    assert outcome(CONSUMER, default, *payments("tax_paid_on_time", 8)) == DENY  # 630


# licensed-employment-v1: a licence in force is required; a conviction refers


def test_licensed_employment_needs_a_licence_in_force() -> None:
    licence = verification("PL-1", "professional_license", "2020-01-01")
    degree = verification("U-1", "degree", "2015-07-01")
    assert outcome(EMPLOYMENT, licence) == APPROVE  # 750
    assert outcome(EMPLOYMENT, licence, degree) == APPROVE  # 800
    decision = decided(EMPLOYMENT, degree)  # 650: refer by score, but no licence
    assert (decision.outcome, [c.kind for c in decision.unmet]) == (DENY, ["professional_license"])
    withdrawn = revoked("PL-2", licence, "2025-03-01")
    assert outcome(EMPLOYMENT, licence, withdrawn, degree) == DENY  # 450, and no licence


def test_a_conviction_refers_licensed_employment_until_it_expires() -> None:
    licence = verification("PL-1", "professional_license", "2015-01-01")
    conviction = infraction("CV-1", "criminal_conviction", "2016-04-01")
    assert outcome(EMPLOYMENT, licence, conviction, day="2026-03-31") == REFER  # 450
    assert outcome(EMPLOYMENT, licence, conviction, day="2026-04-01") == APPROVE  # 750


# Reasons and the adverse-action notice


def test_reasons_are_the_explanations_four_and_a_refusal_carries_a_notice() -> None:
    wires = [
        infraction("J-1", "judgment_default", "2025-01-01"),
        infraction("LD-1", "loan_default", "2025-02-01"),
        infraction("T-1", "tax_arrears", "2025-03-01"),
        infraction("CJ-1", "court_judgment", "2025-04-01"),
        infraction("T-2", "tax_arrears", "2025-05-01"),
    ]
    decision = decided(MORTGAGE, *wires)
    facts = given(*wires)
    expected = explain(facts, contributions(facts, MORTGAGE.policy), date.fromisoformat(DAY),
                       MORTGAGE.policy).reasons  # fmt: skip
    assert decision.reasons == expected
    assert [i.contribution.reference for i in decision.reasons] == ["J-1", "LD-1", "T-2", "T-1"]
    notice = decision.notice()
    assert notice is not None
    assert notice.outcome == DENY
    assert notice.reasons[:2] == [
        "the rule asks for no judgment default counting",
        "the rule asks for no loan default counting",
    ]
    assert notice.reasons[2].startswith("judgment default, recorded by peoples-court as J-1 on "
                                        "2025-01-01: -150 points; settle; dispute")  # fmt: skip
    assert len(notice.reasons) == 2 + 4  # two unmet conditions, four reasons
    assert notice.sources == sorted({i.contribution.authority for i in decision.reasons})
    assert any("free copy of your file" in right for right in notice.rights)
    assert any("within 30 days" in right for right in notice.rights)
    body = decision.to_json()
    # 700 - 150 - 120 - 60 - 40 - 60 = 270, floored at 300.
    assert (body["outcome"], body["score"], body["notice"]["outcome"]) == (DENY, 300, DENY)


def test_an_approval_carries_no_notice() -> None:
    decision = decided(CONSUMER)
    assert decision.outcome == APPROVE
    assert decision.notice() is None
    assert decision.to_json()["notice"] is None
