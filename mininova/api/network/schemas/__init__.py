"""Request schemas of the network API (validators compiled once)."""
