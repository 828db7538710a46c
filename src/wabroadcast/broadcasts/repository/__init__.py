"""All SQL about broadcasts, their recipients and client idempotency keys, one module
per aggregate: the rows, their per-status counters, and the keys."""
