"""nova-api: the REST API (Keystone v3 subset, Compute v2.1 + microversions, Glance v2 subset)."""
