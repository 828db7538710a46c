"""All SQL of the dispatcher, one module per aggregate: leases and pacing, claims,
results, and the broadcast status writes the dispatcher makes."""
