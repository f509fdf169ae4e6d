"""Append-only, idempotent, hash-chained audit log of every event in PostgreSQL."""
