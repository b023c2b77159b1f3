"""Keystone v3 subset: password tokens, catalog, projects, users, roles."""
