"""Liveness and readiness: is the process up, and can it serve (database and schema)."""
