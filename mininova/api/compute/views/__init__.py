"""Compute API views: pure functions of (row, microversion, context) → dict, one per resource."""
