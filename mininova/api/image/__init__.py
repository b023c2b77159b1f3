"""Image v2 API subset (Glance)."""
