"""Fixtures for the libvirt driver tests."""

from __future__ import annotations

import pytest
from virtspec import make_spec

from mininova.virt.driver import InstanceSpec


@pytest.fixture
def spec() -> InstanceSpec:
    return make_spec()
