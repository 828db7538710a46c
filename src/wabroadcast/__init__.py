"""wabroadcast: one WhatsApp message to many recipients, with proof of what happened to each."""

__version__ = "0.1.0"
