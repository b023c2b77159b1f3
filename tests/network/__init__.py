"""The network API (Neutron v2.0 subset): in-process API tests and the real clients."""
