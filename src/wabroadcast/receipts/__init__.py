"""Receipts: delivered/read/failed reports from providers, applied to recipients.

Separate from dispatch because receipts come from outside (webhooks, or a
provider's own pass such as the simulator's) at any time, in any order, and
must never move a status backwards or make a broadcast's counters drift.
"""
