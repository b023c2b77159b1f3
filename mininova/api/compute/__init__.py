"""Compute v2.1 API (nova-api)."""
