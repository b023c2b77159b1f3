"""The per-request security context and helpers to reach the app's services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mininova.api import microversions as mvs
from mininova.api.errors import Forbidden

if TYPE_CHECKING:
    from mininova.api.services import Services


@dataclass
class RequestContext:
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: list[str] = field(default_factory=list)
    request_id: str = ""
    token: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def require_admin(self, what: str = "this operation") -> None:
        if not self.is_admin:
            raise Forbidden(f"Policy doesn't allow {what} to be performed.")


REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
CONTEXT: web.RequestKey[RequestContext] = web.RequestKey("context", RequestContext)
MICROVERSION: web.RequestKey[tuple] = web.RequestKey("microversion", tuple)


def context(request: web.Request) -> RequestContext:
    ctx = request.get(CONTEXT)
    if ctx is None:
        raise RuntimeError("no authenticated context on this request")
    return ctx


def services(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def microversion(request: web.Request) -> tuple[int, int]:
    return request.get(MICROVERSION, mvs.MIN)


def mv_at_least(request: web.Request, since: mvs.Microversion) -> bool:
    """Whether the request's microversion is `since` (a registered `V2_xx`) or later."""
    return mvs.at_least(microversion(request), since)


SERVICES: web.AppKey[Any] = web.AppKey("services", object)
