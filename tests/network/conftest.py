"""The real-process fixtures of tests/e2e (`mininova serve` + a fake agent per module)."""

from tests.e2e.conftest import fake_agent, image, keypair, serve

__all__ = ["fake_agent", "image", "keypair", "serve"]
