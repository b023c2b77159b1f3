"""Agent requests: a host credential plus a capability instead of a Keystone token.

A request carrying the capability header never gets a Keystone context; the handler it
reaches (image download or upload) sees the grant under `CAPABILITY` and acts on exactly the
object the grant names.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from mininova.api.context import SERVICES
from mininova.api.errors import error_response_for
from mininova.trust import enrolment
from mininova.trust.capabilities import CapabilityDenied, Grant

log = logging.getLogger(__name__)

# The only routes an agent's order ever needs: image data download (spawn) and upload
# (snapshot), and a migration's disk on its way between two hosts (resize, cold migration).
CAPABILITY_ROUTES = re.compile(
    r"^(/image/v2/images/[0-9A-Za-z-]+/file|/migration-disks/[0-9a-f-]+)$"
)

CAPABILITY: web.RequestKey[Grant] = web.RequestKey("capability", Grant)


async def check_capability(request: web.Request, capability: str) -> web.Response | None:
    """Admit a request carrying a capability (None: admitted, `CAPABILITY` set) or refuse it."""
    svc = request.config_dict[SERVICES]
    credential = enrolment.bearer_secret(request.headers.get("Authorization", ""))
    raw_path = request.raw_path.split("?", 1)[0]
    if raw_path != request.path or not CAPABILITY_ROUTES.match(raw_path):
        # Routing uses the raw path: `%2F` or a route no grant can name must not get through.
        log.warning(
            "capability request %s %r refused: not an agent route", request.method, raw_path
        )
        return error_response_for(
            request.path, 403, "Capability refused: not allowed on this path."
        )
    try:
        host = await enrolment.host_for_credential(svc.store, credential)
        grant = svc.capabilities.check(capability, host, request.method, raw_path)
    except enrolment.EnrolmentRefused as exc:
        log.warning("capability request %s %s refused: %s", request.method, request.path, exc)
        return error_response_for(request.path, 401, f"Host credential refused: {exc}.")
    except CapabilityDenied as exc:
        log.warning(
            "capability request %s %s refused: %s", request.method, request.path, exc.reason
        )
        return error_response_for(request.path, exc.status, f"Capability refused: {exc.reason}.")
    request[CAPABILITY] = grant
    return None
