"""All SQL of the simulator's own tables: scenarios, the send log, and the receipt pump."""
