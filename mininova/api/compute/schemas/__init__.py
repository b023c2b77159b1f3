"""Compute API request JSON schemas (module-level, compiled once), one module per resource."""
