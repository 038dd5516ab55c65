"""A decision under a rule: its outcome, its principal reasons and, when it is not an
approval, the adverse-action notice owed to the citizen (FCRA §615, Regulation B
§1002.9: up to four principal reasons, their sources, the right to a free copy of the
file and to dispute). Pure: the same facts, contributions and day give the same
decision, so a decision replayed as known at its time gives the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from projections.decisions.rules import (
    APPROVE,
    COUNT,
    OUTCOMES,
    Condition,
    DecisionRule,
)
from projections.explanation import Explanation, Item, explain
from projections.scoring import CitizenFacts, Contribution


@dataclass(frozen=True, slots=True)
class Notice:
    """What a citizen is told of a decision that went against them, in plain words."""

    outcome: str
    reasons: list[str]
    sources: list[str]
    rights: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reasons": self.reasons, "sources": self.sources,
                "rights": self.rights}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decision:
    rule: DecisionRule
    as_of: date
    outcome: str
    explanation: Explanation
    unmet: list[Condition]

    @property
    def reasons(self) -> list[Item]:
        """The principal reasons, ranked as the explanation ranks them (at most four)."""
        return self.explanation.reasons

    def notice(self) -> Notice | None:
        """The adverse-action notice; None for an approval."""
        if self.outcome == APPROVE:
            return None
        grace = self.rule.policy.dispute_grace_days
        return Notice(
            self.outcome,
            [f"the rule asks for {c.words()}, and there is none" if c.must == COUNT
             else f"the rule asks for {c.words()}" for c in self.unmet]
            + [reason_words(item) for item in self.reasons],
            sorted({item.contribution.authority for item in self.reasons}),
            [
                "You may have a free copy of your file: every record about you with the "
                "authority that sent it, your scores with their reasons, and every inquiry "
                "and decision made about you.",
                "You may dispute any record you believe is wrong: send a dispute naming its "
                "authority and reference, with your statement, from your own file (POST "
                "/v1/me/disputes) or to the dispute office; a record whose dispute is not "
                f"resolved within {grace} days stops counting until it is.",
                "You may ask for this decision to be looked at again by a person.",
            ],
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        notice = self.notice()
        score = self.explanation.score
        return {
            "outcome": self.outcome,
            "as_of": self.as_of.isoformat(),
            "rule": self.rule.name,
            "rule_version": self.rule.version,
            "purpose": self.rule.purpose.name,
            "policy": self.rule.policy.name,
            "policy_version": self.rule.policy.version,
            "score": score.score,
            "band": score.band,
            "approve_from": self.rule.approve_from,
            "refer_from": self.rule.refer_from,
            "conditions_unmet": [c.words() for c in self.unmet],
            "reasons": [{**item.to_json(), "words": reason_words(item)}
                        for item in self.reasons],
            "notice": notice.to_json() if notice else None,
        }  # fmt: skip


def decide(
    rule: DecisionRule, facts: CitizenFacts, items: list[Contribution], day: date
) -> Decision:
    """The decision `rule` makes on `day` for a citizen with these facts and these
    contributions under the rule's policy: the least favourable of what the score
    and each condition say."""
    explanation = explain(facts, items, day, rule.policy)
    unmet = [c for c in rule.conditions if not _holds(c, explanation.counting)]
    outcome = max([rule.by_score(explanation.score.score), *(c.otherwise for c in unmet)],
                  key=OUTCOMES.index)  # fmt: skip
    return Decision(rule, day, outcome, explanation, unmet)


def _holds(condition: Condition, counting: list[Item]) -> bool:
    """COUNT: some contribution of the kind adds points on the day (a licence in force,
    not its revocation); NOT_COUNT: none of the kind takes points away."""
    of_kind = [i.contribution.points for i in counting if i.contribution.kind == condition.kind]
    if condition.must == COUNT:
        return any(points > 0 for points in of_kind)
    return not any(points < 0 for points in of_kind)


def reason_words(item: Item) -> str:
    """One reason in plain words: what, from whom, how many points, and what ends it."""
    c = item.contribution
    what = c.kind.replace("_", " ")
    if c.rule.endswith(".residual"):
        what += " (settled, still counting for a while)"
    elif c.rule.endswith(".revoked"):
        what += " revoked"
    words = (f"{what}, recorded by {c.authority} as {c.reference} on "
             f"{item.occurred_on.isoformat()}: {c.points:+d} points")  # fmt: skip
    return f"{words}; {item.remedy}" if item.remedy else words
