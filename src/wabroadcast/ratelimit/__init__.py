"""Rate limits: token buckets per API tenant and per sign-in address."""
