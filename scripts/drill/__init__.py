"""The fault drill: concurrent appends through the CLI and over HTTP while processes and
the database are killed, then an account of what was acknowledged, stored, lost or
doubled. `scripts/fault_drill.py` runs it; nothing in the ledger imports it.
"""
