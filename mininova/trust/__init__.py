"""Trust between the controller and its agents: join tokens, host credentials, capabilities.

Nothing here is a Keystone token: agents authenticate as hosts and act on the API only
through capabilities scoped to one order (see `capabilities`).
"""
