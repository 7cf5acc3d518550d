"""The federation service."""
