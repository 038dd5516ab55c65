"""What the drill's figures say: what went wrong for callers and operators, which of
that fails the drill, and whether it passed."""

from __future__ import annotations

from typing import Any

# The faults the drill injects, each as many times as it is asked.
KINDS = ("append", "worker", "projector", "postgres")
# Seconds of unavailability a fault may cost beyond the database's outage.
SLACK_PER_FAULT = 3.0


def judged(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures with their findings, failures and verdict (`ok`) added."""
    figures["findings"] = _findings(figures)
    figures["failures"] = _failures(figures)
    planned = figures["faults_planned"]
    figures["ok"] = bool(
        figures["lost"] == 0 and figures["doubled"] == 0
        and figures["wrongly_refused"] == 0 and figures["refused_feeds"] == 0
        and figures["unanswered"] == 0 and figures["verify"]["ok"]
        and figures["rebuild"]["agrees"]
        and all(figures["faults"][k] >= planned[k] for k in KINDS)
        and not figures["failures"]
    )  # fmt: skip
    return figures


def _failures(figures: dict[str, Any]) -> list[str]:
    """The findings that fail the drill: what the service promises operators."""
    counts = figures["counts"]
    failed = [f"{n} process(es) of {name} outlived it"
              for name, n in figures["left_behind"].items() if n]  # fmt: skip
    if counts.get("append runs hung"):
        failed.append("a ledger append hung")
    if any(k.startswith("http 5") and k != "http 503" for k in counts):
        failed.append("the service answered 5xx other than 503")
    if figures["readyz_slowest_seconds"] > 2:
        failed.append("/readyz took over 2 s")
    # A client that got 503 waits its Retry-After before it asks again, and requests
    # in flight on a killed worker are lost: some seconds beyond the database's outage
    # are the clients', not the service's.
    slack = SLACK_PER_FAULT * (figures["faults"]["postgres"] + figures["faults"]["worker"])
    if figures["unavailable_seconds"] - figures["database_down_seconds"] > slack:
        failed.append(f"the service stayed unavailable over {slack:.0f} s longer than "
                      "the database")  # fmt: skip
    return failed


def _findings(figures: dict[str, Any]) -> list[str]:
    """What went wrong for callers and operators, though no record came to harm."""
    counts = figures["counts"]
    found = [f"ledger {name} ended on its own {n} time(s) and was restarted by the drill"
             for name, n in figures["unexpected_exits"].items()]  # fmt: skip
    found += [f"{n} process(es) of {name} left running after it was killed or stopped"
              for name, n in figures["left_behind"].items()]  # fmt: skip
    if counts.get("append runs hung"):
        found.append(f"{counts['append runs hung']} ledger append run(s) hung and were killed")
    if counts.get("append runs failed"):
        found.append(f"{counts['append runs failed']} ledger append run(s) ended with no "
                     "report (exit 2 or a traceback) and were run again")  # fmt: skip
    served_500 = sum(n for k, n in counts.items() if k.startswith("http 5") and k != "http 503")
    if served_500:
        found.append(f"{served_500} HTTP 5xx answers other than 503")
    beyond = figures["unavailable_seconds"] - figures["database_down_seconds"]
    if beyond > 1:
        found.append(f"the service was unavailable {beyond:.1f}s longer than the database")
    stall = figures["projector_longest_stall_seconds"]
    if stall > 10:
        found.append(f"the projections stood {stall}s behind the log without moving")
    if figures["readyz_slowest_seconds"] > 2:
        found.append(f"/readyz took {figures['readyz_slowest_seconds']}s to answer")
    return found
