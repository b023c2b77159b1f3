"""First start: admin project/user with a random password, roles and flavors.

The database keeps only the password's hash; the clear password is in the 0600
`admin-credentials` file (and the 0600 `clouds.yaml`/`openrc` made from it).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from mininova.identity.service import hash_password, new_id
from mininova.paths import write_private
from mininova.store import Store, flavors, identity, instances
from mininova.timeutil import now_iso

log = logging.getLogger(__name__)

ROLES = ("admin", "member", "reader")

# (id, name, ram MiB, vcpus, disk GiB). m1.nano is for 64 MiB guests (fake driver demos);
# the tiny busybox image (examples/images) needs m1.micro (128 MiB).
DEFAULT_FLAVORS = (
    ("1", "m1.nano", 64, 1, 1),
    ("2", "m1.micro", 128, 1, 1),
    ("3", "m1.tiny", 512, 1, 1),
    ("4", "m1.small", 2048, 1, 20),
    ("5", "m1.medium", 4096, 2, 40),
)


@dataclass
class Credentials:
    username: str
    password: str
    project: str
    created: bool


def read_admin_password(secrets_file: Path) -> str:
    """The password saved in `admin-credentials` ("" if the file is gone)."""
    try:
        match = re.search(r"^password=(.*)$", secrets_file.read_text(), re.MULTILINE)
    except FileNotFoundError:
        return ""
    return match.group(1).strip() if match else ""


async def bootstrap(store: Store, data_dir: Path) -> Credentials:
    """Create the first records once; later starts read the saved credentials file."""
    secrets_file = data_dir / "admin-credentials"
    if await store.get_setting("bootstrapped") == "1":
        password = read_admin_password(secrets_file)
        if not password:
            log.warning(
                "%s is missing: the admin password cannot be shown (only its hash is stored)",
                secrets_file,
            )
        return Credentials("admin", password, "admin", created=False)
    password = secrets.token_urlsafe(12)
    now = now_iso()
    async with store.transaction() as tx:
        role_ids = {}
        for name in ROLES:
            role_ids[name] = new_id()
            await identity.insert_role(tx, role_ids[name], name)
        admin_project, service_project = new_id(), new_id()
        await identity.insert_project(
            tx,
            {
                "id": admin_project,
                "name": "admin",
                "description": "Administrators",
                "created_at": now,
            },
        )
        await identity.insert_project(
            tx,
            {
                "id": service_project,
                "name": "service",
                "description": "mininova internal services",
                "created_at": now,
            },
        )
        admin_user = new_id()
        await identity.insert_user(
            tx,
            {
                "id": admin_user,
                "name": "admin",
                "password_hash": hash_password(password),
                "default_project_id": admin_project,
                "created_at": now,
            },
        )
        for role in ("admin", "member", "reader"):
            await identity.grant(tx, admin_user, admin_project, role_ids[role])
        await flavors.insert_defaults(tx, DEFAULT_FLAVORS, now)
        # Guests are named instance-<id in hex> on the hypervisor (as in Nova). Start each cloud's
        # ids at a random offset, so two clouds that share a libvirtd (a controller rebuilt
        # from scratch, a test next to a lab) do not hand out the same domain names.
        await instances.seed_ids(store, (1 + secrets.randbelow(0x7FFF)) << 16)
        await store.set_setting("bootstrapped", "1")
    write_private(secrets_file, f"username=admin\npassword={password}\nproject=admin\n")
    log.info("bootstrapped a new cloud in %s", data_dir)
    return Credentials("admin", password, "admin", created=True)


def write_clouds_yaml(
    path: Path, auth_url: str, creds: Credentials, region: str, cacert: Path | None = None
) -> None:
    """clouds.yaml with cloud `mininova` (and `mininova-nofip` for the SDK cloud layer)."""
    if not creds.password and path.exists():
        return  # keep the one written when the password was still known
    tls = f"    cacert: {cacert}\n" if cacert else ""
    body = []
    body.append("clouds:")
    for name, extra in (("mininova", ""), ("mininova-nofip", "    floating_ip_source: None\n")):
        body.append(
            f"  {name}:\n"
            f"    auth:\n"
            f"      auth_url: {auth_url}\n"
            f"      username: {creds.username}\n"
            f"      password: {creds.password}\n"
            f"      project_name: {creds.project}\n"
            f"      user_domain_name: Default\n"
            f"      project_domain_name: Default\n"
            f"    region_name: {region}\n"
            f"    identity_api_version: 3\n"
            f"    interface: public\n" + tls + extra
        )
    write_private(path, "\n".join(body))


def write_openrc(
    path: Path, auth_url: str, creds: Credentials, region: str, cacert: Path | None = None
) -> None:
    if not creds.password and path.exists():
        return
    write_private(
        path,
        f"export OS_AUTH_URL={auth_url}\n"
        f"export OS_USERNAME={creds.username}\n"
        f"export OS_PASSWORD={creds.password}\n"
        f"export OS_PROJECT_NAME={creds.project}\n"
        "export OS_USER_DOMAIN_NAME=Default\n"
        "export OS_PROJECT_DOMAIN_NAME=Default\n"
        f"export OS_REGION_NAME={region}\n"
        "export OS_IDENTITY_API_VERSION=3\n" + (f"export OS_CACERT={cacert}\n" if cacert else ""),
    )
