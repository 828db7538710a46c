"""broadcasts package."""
