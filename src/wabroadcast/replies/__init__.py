"""Replies: inbound messages from a broadcast's recipients within the reply window."""
