"""Dashboard test fixtures: one real cloud per module (serve + a libvirt agent, the same
`cloud` as tests/libvirt_e2e), the tiny image as a public image, a student account."""

from __future__ import annotations

import secrets

import pytest

from tests.libvirt_e2e import conftest as libvirt_cloud
from tests.libvirt_e2e.conftest import Cloud
from tests.libvirt_e2e.host import TINY_IMAGE
from tests.ui.helpers import Account

cloud = libvirt_cloud.cloud  # the module-scoped real cloud


@pytest.fixture(scope="module")
def tiny_image(cloud: Cloud) -> str:  # noqa: F811
    """The tiny guest image, public, uploaded with the CLI."""
    cloud.run(
        "image",
        "create",
        "--public",
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--file",
        str(TINY_IMAGE),
        "tiny",
    )
    return "tiny"


@pytest.fixture(scope="module")
def student(cloud: Cloud) -> Account:  # noqa: F811
    """A member of their own project, made with the CLI as an instructor would."""
    # "pw" first: a password starting with "-" would be read as an option by the CLI.
    account = Account("alice", "pw" + secrets.token_urlsafe(12), "class-a")
    cloud.run("project", "create", account.project)
    cloud.run(
        "user",
        "create",
        "--project",
        account.project,
        "--password",
        account.password,
        account.user,
    )
    cloud.run("role", "add", "--user", account.user, "--project", account.project, "member")
    return account
