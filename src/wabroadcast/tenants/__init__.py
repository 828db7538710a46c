"""Tenants, their API keys and their WhatsApp sessions."""
