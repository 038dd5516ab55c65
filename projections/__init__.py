"""The read side: scoring policies, projections over the ledger's log, and queries.

May import ``ledger``; ``ledger`` never imports this package.
"""
