"""Webhooks to the CRM: subscriptions, an outbox written with each change, a deliverer."""
