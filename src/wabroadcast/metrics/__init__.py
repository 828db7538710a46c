"""Numbers about a tenant's sending, from the database: the metrics endpoint and its chart."""
