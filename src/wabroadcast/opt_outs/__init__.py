"""Opt-outs: numbers a tenant must not message, from the API, CSV files and stop words."""
