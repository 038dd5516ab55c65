"""Purposes and decision rules: TOML files shipped with the package, loaded as data.

Each purpose (ledger.domain.purposes) names the kinds of record it may take into
account. Each file in `projections/decisions/` is a
decision rule: its purpose, the scoring policy it reads, the scores from which it
approves and refers, and conditions on kinds of record. A rule is proportionate by
construction: one whose policy counts, or whose conditions look at, a kind outside its
purpose is refused when it is loaded, with the kind named. As with policies, a rule is
chosen by name among the shipped files, never by a path.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from ledger.domain.purposes import Purpose, purpose
from ledger.errors import LedgerError
from projections import policy as policies
from projections.policy import Policy

RULE_FOLDER: Traversable = files("projections").joinpath("decisions")

APPROVE, REFER, DENY = "approve", "refer", "deny"
# From the most to the least favourable: a decision takes the least favourable of
# what its score and its conditions say.
OUTCOMES = (APPROVE, REFER, DENY)
# A condition on a kind: some contribution of it must count on the day, or none may.
COUNT, NOT_COUNT = "count", "not_count"


class DecisionRuleError(LedgerError, ValueError):
    """A purpose or decision rule file is missing, malformed or disproportionate."""

    field = "rule"


class UnknownRule(DecisionRuleError):
    """The name is not one of the shipped decision rules."""


@dataclass(frozen=True, slots=True)
class Condition:
    """`kind` must count (COUNT) or must not (NOT_COUNT) on the day decided for; when
    it does not hold, the decision is at best `otherwise`."""

    kind: str
    must: str
    otherwise: str

    def words(self) -> str:
        kind = self.kind.replace("_", " ")
        return f"a {kind} in force" if self.must == COUNT else f"no {kind} counting"


@dataclass(frozen=True, slots=True)
class DecisionRule:
    name: str
    version: int
    title: str
    purpose: Purpose
    policy: Policy
    approve_from: int
    refer_from: int
    conditions: tuple[Condition, ...]

    def by_score(self, score: int) -> str:
        if score >= self.approve_from:
            return APPROVE
        return REFER if score >= self.refer_from else DENY


def available() -> list[str]:
    """The names of the shipped decision rules, sorted."""
    return sorted(
        p.name.removesuffix(".toml")
        for p in RULE_FOLDER.iterdir()
        if p.name.endswith(".toml") and p.is_file()
    )


def for_purpose(name: str) -> list[str]:
    """The shipped rules made for a purpose, sorted (the last is the newest name)."""
    return [rule for rule in available() if load(rule).purpose.name == name]


def load(name: str) -> DecisionRule:
    """Load and check the shipped decision rule called `name`."""
    # Compared with the listing, never joined onto a path.
    if name not in available():
        raise UnknownRule(f"no decision rule {name!r}; rules: {', '.join(available())}")
    source = f"{name}.toml"
    rule = parse(_toml(RULE_FOLDER.joinpath(source).read_text(encoding="utf-8"), source), source)
    if rule.name != name:
        raise DecisionRuleError(f"{source}: name {rule.name!r} must match the file name")
    return rule


def parse(data: dict[str, Any], source: str) -> DecisionRule:
    """Build a rule from decoded TOML, naming `source` and the key of anything wrong,
    and refuse it if its policy or conditions reach outside its purpose."""
    allowed = {"name", "version", "title", "purpose", "policy", "approve_from", "refer_from",
               "conditions"}  # fmt: skip
    extra = sorted(set(data) - allowed)
    if extra:
        raise DecisionRuleError(f"{source}: {extra[0]}: is not a decision rule setting")

    def get(key: str, kind: type, entry: dict[str, Any] = data, prefix: str = "") -> Any:
        value = entry.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            raise DecisionRuleError(f"{source}: {prefix}{key}: must be {kind.__name__} "
                                    "and is required")  # fmt: skip
        return value

    try:
        chosen = purpose(get("purpose", str))
        scoring = policies.load(get("policy", str))
    except LedgerError as e:
        raise DecisionRuleError(f"{source}: {e.message}") from None
    counted = counted_kinds(scoring)
    outside = outside_purpose(scoring, chosen)
    if outside:
        raise DecisionRuleError(
            f"{source}: policy {scoring.name} counts {outside[0]}, which the purpose "
            f"{chosen.name} may not take into account (it may: {', '.join(sorted(chosen.kinds))})"
        )
    approve_from, refer_from = get("approve_from", int), get("refer_from", int)
    if refer_from > approve_from:
        raise DecisionRuleError(f"{source}: refer_from must not be above approve_from")
    conditions = []
    for i, entry in enumerate(data.get("conditions", [])):
        prefix = f"conditions[{i}]."
        if not isinstance(entry, dict) or set(entry) != {"kind", "must", "otherwise"}:
            raise DecisionRuleError(f"{source}: {prefix[:-1]}: must have kind, must and "
                                    "otherwise, and nothing else")  # fmt: skip
        condition = Condition(get("kind", str, entry, prefix), get("must", str, entry, prefix),
                              get("otherwise", str, entry, prefix))  # fmt: skip
        if condition.kind not in chosen.kinds:
            raise DecisionRuleError(
                f"{source}: {prefix}kind: {condition.kind}, which the purpose {chosen.name} "
                "may not take into account"
            )
        if condition.kind not in counted:
            raise DecisionRuleError(f"{source}: {prefix}kind: policy {scoring.name} does not "
                                    f"count {condition.kind}")  # fmt: skip
        if condition.must not in (COUNT, NOT_COUNT):
            raise DecisionRuleError(f"{source}: {prefix}must: must be {COUNT} or {NOT_COUNT}")
        if condition.otherwise not in (REFER, DENY):
            raise DecisionRuleError(f"{source}: {prefix}otherwise: must be {REFER} or {DENY}")
        conditions.append(condition)
    return DecisionRule(get("name", str), get("version", int), get("title", str), chosen,
                        scoring, approve_from, refer_from, tuple(conditions))  # fmt: skip


def counted_kinds(policy: Policy) -> set[str]:
    """Every kind of record the policy gives points for."""
    return {*policy.infractions, *policy.payments, *policy.verifications}


def outside_purpose(policy: Policy, purpose: Purpose) -> list[str]:
    """The kinds the policy counts that the purpose may not take into account, sorted:
    a policy with any is never used for that purpose."""
    return sorted(counted_kinds(policy) - purpose.kinds)


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DecisionRuleError(f"{source}: not valid TOML ({e})") from None
