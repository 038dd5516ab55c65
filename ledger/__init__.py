"""The write side of the social credit ledger: identity numbers, the wire format,
the Citizen and authority aggregates, the application service and its storage.

Nothing here computes scores; the read side lives in ``projections`` and may import
this package, never the other way round.
"""
