"""Decisions for relying parties: purposes and decision rules as data (`rules`), and
the decision a rule makes, with its reasons and notice (`engine`)."""

from projections.decisions.engine import Decision, Notice, decide, reason_words
from projections.decisions.rules import (
    APPROVE,
    DENY,
    OUTCOMES,
    REFER,
    Condition,
    DecisionRule,
    DecisionRuleError,
    UnknownRule,
    available,
    for_purpose,
    load,
    parse,
)

__all__ = [
    "APPROVE",
    "DENY",
    "OUTCOMES",
    "REFER",
    "Condition",
    "Decision",
    "DecisionRule",
    "DecisionRuleError",
    "Notice",
    "UnknownRule",
    "available",
    "decide",
    "for_purpose",
    "load",
    "parse",
    "reason_words",
]
