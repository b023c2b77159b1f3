"""Domain errors (L0): raised by the services below the HTTP layer, never tied to HTTP.

`mininova.api.errors` maps each of them to a status code and an error body in one place
(`DOMAIN_STATUS`); code below the API raises these instead of `mininova.api.errors.*`.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of the domain errors; `message` is what the API shows the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The object does not exist or the caller may not see it (HTTP 404)."""


class PermissionDenied(DomainError):
    """The caller may see the object but not do this to it (HTTP 403)."""


class Conflict(DomainError):
    """The object's state does not allow this now (HTTP 409)."""


class QuotaExceeded(DomainError):
    """A project or user quota would be exceeded (HTTP 403, as Nova answers)."""


class StorageFull(DomainError):
    """The controller's disk has no room for this change (database or files; HTTP 507)."""


class ImageStorageFull(StorageFull):
    """An image upload ran out of room in the image store (HTTP 413, as Glance answers)."""


class NoValidHost(DomainError):
    """The scheduler found no host for the request (handled by the conductor, not HTTP)."""


class Invalid(DomainError):
    """The request is malformed or names something it may not use (HTTP 400)."""
