"""A citizen's dispute, sent by the service as the citizens' channel."""

from __future__ import annotations

from collections.abc import Mapping

from ledger.application import AppendReport, Ledger
from ledger.domain.disputes import CITIZEN_CHANNEL, citizen_dispute
from scripts.group_commit import GroupCommit, RoutedCommits
from scripts.service.problems import Problem


def dispute_record(
    ledger: Ledger,
    writer: GroupCommit | RoutedCommits,
    citizen: str,
    target: Mapping[str, str],
    statement: str,
) -> AppendReport:
    """Append the citizen's dispute of `target`, filed today; 409 while the citizens'
    channel is not a registered authority."""
    if CITIZEN_CHANNEL not in {a.authority_id for a in ledger.authorities()}:
        raise Problem(409, "Conflict", f"the citizens' channel is not registered; an admin "
                      f"registers it: ledger authority add {CITIZEN_CHANNEL} --name "
                      "\"Citizens' own channel\" --may-issue record.disputed")  # fmt: skip
    return writer.append([citizen_dispute(citizen, target, statement, ledger.today())])
