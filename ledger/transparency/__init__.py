"""The tamper-evident log: RFC 9162 Merkle hashing and proofs (merkle), the leaf
encoding and stored subtrees (tree), signed checkpoints (checkpoint), and proofs over
the ledger and its verification (audit)."""
