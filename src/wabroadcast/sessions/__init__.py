"""WhatsApp sessions: a tenant's numbers, each through one provider, with its config."""
