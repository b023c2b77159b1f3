"""Image domain: Glance records, files, snapshots (no HTTP)."""
