"""The network domain service: security groups and floating IPs as policy, and the state each
host's agent must enforce (no aiohttp; the HTTP side is `mininova.api.network`)."""
