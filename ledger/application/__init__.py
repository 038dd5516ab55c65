"""The application service: register authorities, append records, read histories
(ledger.application.service), with the batch it applies (batch), what it answers
(reports) and its clock (clock)."""

from ledger.application.batch import Line, Parsed, ReferenceClaims, parse_numbered
from ledger.application.clock import CHINA_STANDARD_TIME, Clock, FixedClock, SystemClock
from ledger.application.reports import AppendReport, Duplicate, HistoryEntry, Rejection
from ledger.application.service import (
    BATCH_SIZE,
    Ledger,
    Used,
    open_patiently,
    patiently,
)

__all__ = [
    "BATCH_SIZE",
    "CHINA_STANDARD_TIME",
    "AppendReport",
    "Clock",
    "Duplicate",
    "FixedClock",
    "HistoryEntry",
    "Ledger",
    "Line",
    "Parsed",
    "ReferenceClaims",
    "Rejection",
    "SystemClock",
    "Used",
    "open_patiently",
    "parse_numbered",
    "patiently",
]
