"""Identity domain: users, projects, roles, tokens (no HTTP)."""
